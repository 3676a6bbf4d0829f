//! The cost ledger: every cost the mock answers is a sum of one deterministic set of line
//! items per account, so that every view, grouping, API version and filter agrees.
//!
//! A *line item* is one day of one *kind* of cost. A kind is a vendor and the values of the
//! fixture dimensions (`fixtures::DIMENSIONS`) that vendor's costs have: each AWS service in
//! each region and account (4 x 3 x 2 = 24 kinds), each Kubernetes namespace in each cluster
//! (3 x 2 = 6) and GCP (1): 31 line items a day per account. A dimension a kind does not have
//! (a Kubernetes cost's AWS region) reads as absent, answered as [`NO_VALUE`]. An item's
//! amounts are a pure function of (account, kind, day): its net amortized cost in cents, each
//! other cost type a fixed percentage of it (`fixtures::COST_TYPES`), and its usage. Amounts
//! are kept in ten-thousandths (of a dollar, of an hour), so every percentage is exact and
//! every sum of every grouping is the same integer. There are no items after the mock's
//! *today* (the UTC day of its clock).
//!
//! The ledger is never stored: a range of `d` days is `31 x d` items, one hash each (a V1
//! range touches at most 91 days: 2,821 items; a V2 range at most 61: 1,891).
//!
//! Virtual tags are evaluated over the *cells* of a range (day x kind, [`Days`]): each rule in
//! order takes the cells its `filters` and `timeframe` match that no earlier rule took, and
//! assigns them its `to` (a string, or the cell's value of a MegaBill key); the
//! `defaultValue` takes the rest; cells nothing assigns are untagged ([`UNTAGGED`]). A
//! filter may name another virtual tag (cost center `Virtual Tags`); a tag reached again
//! while it is being evaluated reads as absent. The work an evaluation takes is counted
//! ([`Evaluator`]) and bounded.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, LazyLock},
};

use finout_auth::{AccountId, ErrorCode};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{
    error::MockError,
    fixtures::{COST_TYPES, DIMENSIONS},
    state::{State, tags::AccountTags},
};

pub(crate) const DAY_MS: i64 = 86_400_000;
/// Amounts are kept in ten-thousandths of a dollar (or of an hour).
pub(crate) const UNITS: f64 = 10_000.0;
/// How a dimension a line item does not have is answered.
pub(crate) const NO_VALUE: &str = "N/A";
/// How costs that no rule of a virtual tag (and no default) assigns are answered.
pub(crate) const UNTAGGED: &str = "Untagged";
/// The cost center of virtual tags in filters.
const VIRTUAL_TAGS: &str = "Virtual Tags";
/// What evaluating virtual tags for one request may take on an async worker, in work units
/// (about one a byte compared or a cell visited); past it the evaluation starts again on the
/// blocking pool.
const INLINE_EVALUATION_WORK: u64 = 1_000_000;
/// The most work units evaluating virtual tags for one request may take; past it, 400.
pub(crate) const MAX_EVALUATION_WORK: u64 = 32_000_000;
/// A cell no rule assigns a value.
const NONE: u32 = u32::MAX;

/// A kind of line item: the index of its value in each dimension's values, if it has one.
#[derive(Debug, Clone, Copy)]
struct Kind {
    values: [Option<u8>; DIMENSIONS.len()],
    /// Its daily net amortized cost is below this many cents.
    scale: u64,
}

static KINDS: LazyLock<Vec<Kind>> = LazyLock::new(|| {
    let dim = |key: &str| DIMENSIONS.iter().position(|d| d.key == key).unwrap_or(0);
    let (vendor, service, region, account) =
        (dim("vendor"), dim("service"), dim("region"), dim("account"));
    let (namespace, cluster) = (dim("namespace"), dim("cluster"));
    let value = |d: usize, v: &str| {
        let i = DIMENSIONS[d]
            .values
            .iter()
            .position(|x| *x == v)
            .unwrap_or(0);
        u8::try_from(i).unwrap_or(0)
    };
    let count = |d: usize| u8::try_from(DIMENSIONS[d].values.len()).unwrap_or(0);
    let kind = |pairs: &[(usize, u8)], scale: u64| {
        let mut values = [None; DIMENSIONS.len()];
        for &(d, i) in pairs {
            values[d] = Some(i);
        }
        Kind { values, scale }
    };
    let mut kinds = Vec::new();
    for s in 0..count(service) {
        for r in 0..count(region) {
            for a in 0..count(account) {
                let pairs = [
                    (vendor, value(vendor, "AWS")),
                    (service, s),
                    (region, r),
                    (account, a),
                ];
                kinds.push(kind(&pairs, 50_000));
            }
        }
    }
    for n in 0..count(namespace) {
        for c in 0..count(cluster) {
            let pairs = [
                (vendor, value(vendor, "Kubernetes")),
                (namespace, n),
                (cluster, c),
            ];
            kinds.push(kind(&pairs, 30_000));
        }
    }
    kinds.push(kind(&[(vendor, value(vendor, "GCP"))], 200_000));
    kinds
});

/// How many kinds of line item a day has (31).
pub(crate) fn kinds() -> usize {
    KINDS.len()
}

/// The value of dimension `dim` (an index of `DIMENSIONS`) of line items of `kind`.
pub(crate) fn value(kind: usize, dim: usize) -> Option<&'static str> {
    let i = KINDS.get(kind)?.values.get(dim).copied().flatten()?;
    DIMENSIONS[dim].values.get(usize::from(i)).copied()
}

/// The index of that value in the dimension's values; the number of its values (where
/// [`NO_VALUE`] is answered) when the kind has none.
pub(crate) fn value_index(kind: usize, dim: usize) -> usize {
    KINDS
        .get(kind)
        .and_then(|k| k.values.get(dim).copied().flatten())
        .map_or(DIMENSIONS[dim].values.len(), usize::from)
}

/// The label of value index `i` of dimension `dim` (see [`value_index`]).
pub(crate) fn label(dim: usize, i: usize) -> &'static str {
    DIMENSIONS[dim].values.get(i).copied().unwrap_or(NO_VALUE)
}

/// The index in `DIMENSIONS` of a cost center and key (`""` for any cost center), letter
/// case aside.
pub(crate) fn dimension(cost_center: &str, key: &str) -> Option<usize> {
    DIMENSIONS.iter().position(|d| {
        d.key.eq_ignore_ascii_case(key)
            && (cost_center.is_empty() || d.cost_center.eq_ignore_ascii_case(cost_center))
    })
}

/// What is summed: a cost type (its percentage of the net amortized cost) or usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    Cost { percent: i64 },
    Usage,
    NormalizedUsage,
}

impl Measure {
    /// A cost type of `fixtures::COST_TYPES`, `usageAmount` or `normalizedUsageAmount`.
    pub(crate) fn named(name: &str) -> Option<Measure> {
        match name {
            "usageAmount" => Some(Measure::Usage),
            "normalizedUsageAmount" => Some(Measure::NormalizedUsage),
            _ => COST_TYPES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, factor)| Measure::Cost {
                    percent: (factor * 100.0).round() as i64,
                }),
        }
    }
}

/// One account's ledger as of one day.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    account: String,
    today: i64,
}

/// The UTC day (days since 1970-01-01) of an instant.
pub(crate) fn day_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

impl Ledger {
    /// `account`'s ledger, with items up to the day of `now` included.
    pub(crate) fn new(account: AccountId, now: OffsetDateTime) -> Self {
        Ledger::at(account.to_string(), day_of(now))
    }

    /// The ledger of the account whose id is written `account`, up to day `today`.
    pub(crate) fn at(account: String, today: i64) -> Self {
        Ledger { account, today }
    }

    pub(crate) fn today(&self) -> i64 {
        self.today
    }

    /// The line item of `kind` on `day`; none after today.
    pub(crate) fn item(&self, kind: usize, day: i64) -> Option<Item> {
        if day > self.today {
            return None;
        }
        let k = KINDS.get(kind)?;
        let hash = blake3::hash(format!("{}/{kind}/{day}", self.account).as_bytes());
        let bytes = hash.as_bytes();
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Some(Item {
            cents: i64::try_from(word(0) % k.scale).unwrap_or(0),
            centihours: i64::try_from(word(1) % 100_000).unwrap_or(0),
            normalization: 1 + i64::try_from(kind % 4).unwrap_or(0),
        })
    }
}

/// One line item's amounts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    cents: i64,
    centihours: i64,
    normalization: i64,
}

impl Item {
    /// Its amount of `measure`, in ten-thousandths of a dollar (or an hour).
    pub(crate) fn amount(&self, measure: Measure) -> i64 {
        match measure {
            Measure::Cost { percent } => self.cents * percent,
            Measure::Usage => self.centihours * 100,
            Measure::NormalizedUsage => self.centihours * 100 * self.normalization,
        }
    }
}

/// A run of whole UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Days {
    /// The first day, in days since 1970-01-01.
    pub(crate) first: i64,
    pub(crate) count: usize,
}

impl Days {
    /// The days `start_ms..=end_ms` touches, if ordered and at most `max` of them.
    pub(crate) fn touched(start_ms: i64, end_ms: i64, max: usize) -> Option<Days> {
        let first = start_ms.div_euclid(DAY_MS);
        let last = end_ms.div_euclid(DAY_MS);
        let count = usize::try_from(last.checked_sub(first)?.checked_add(1)?).ok()?;
        (1..=max).contains(&count).then_some(Days { first, count })
    }

    /// Its cells: each day's line items, day after day.
    pub(crate) fn cells(&self) -> usize {
        self.count.saturating_mul(kinds())
    }

    /// The day of day index `i`.
    pub(crate) fn day(&self, i: usize) -> i64 {
        self.first
            .saturating_add(i64::try_from(i).unwrap_or(i64::MAX))
    }

    /// How many of the days are on or before `today`: the days with line items.
    pub(crate) fn until(&self, today: i64) -> usize {
        let n = today.saturating_sub(self.first).saturating_add(1);
        usize::try_from(n.max(0))
            .unwrap_or(usize::MAX)
            .min(self.count)
    }
}

/// A set of cells, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellSet {
    words: Vec<u64>,
    len: usize,
}

impl CellSet {
    fn none(len: usize) -> Self {
        CellSet {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    fn all(len: usize) -> Self {
        let mut set = CellSet {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        if !len.is_multiple_of(64)
            && let Some(last) = set.words.last_mut()
        {
            *last = (1u64 << (len % 64)) - 1;
        }
        set
    }

    fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        let mut set = CellSet::none(len);
        for i in 0..len {
            if f(i) {
                set.insert(i);
            }
        }
        set
    }

    fn insert(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn and(&mut self, other: &CellSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    fn or(&mut self, other: &CellSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    fn and_not(&mut self, other: &CellSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.contains(i))
    }

    /// The bytes it holds.
    pub(crate) fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    fn word_count(&self) -> u64 {
        self.words.len() as u64
    }
}

/// A virtual tag evaluated over the cells of a range.
#[derive(Debug)]
pub(crate) struct TagValues {
    /// What it assigns (every string value of its rules and default, and the values taken
    /// from MegaBill keys), sorted; with [`UNTAGGED`] if some cell has no value.
    pub(crate) values: Vec<String>,
    /// Per cell, the index of its value; `NONE` if untagged.
    cells: Vec<u32>,
    /// The index of [`UNTAGGED`] in `values`, or `NONE`.
    untagged: u32,
}

impl TagValues {
    /// The value a cell is assigned.
    fn get(&self, cell: usize) -> Option<&str> {
        match self.cells.get(cell).copied() {
            None | Some(NONE) => None,
            Some(i) => self.values.get(i as usize).map(String::as_str),
        }
    }

    /// The index in `values` of how a cell is answered ([`UNTAGGED`] if it has no value).
    pub(crate) fn label(&self, cell: usize) -> u32 {
        match self.cells.get(cell).copied() {
            None | Some(NONE) => self.untagged,
            Some(i) => i,
        }
    }

    /// Every cell's label (see [`label`](Self::label)).
    pub(crate) fn labels(&self) -> Vec<u32> {
        (0..self.cells.len()).map(|c| self.label(c)).collect()
    }
}

/// Evaluating virtual tags took more than the work units allowed.
#[derive(Debug)]
pub(crate) struct TooCostly;

/// Why a computation over virtual tags stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// An answer to give (a bad request).
    Answer(MockError),
    /// Virtual tags took more work than the budget given.
    TooCostly,
}

impl From<MockError> for Stop {
    fn from(e: MockError) -> Self {
        Stop::Answer(e)
    }
}

impl From<TooCostly> for Stop {
    fn from(_: TooCostly) -> Self {
        Stop::TooCostly
    }
}

/// Run `f` over `account`'s virtual tags with a budget of evaluation work: on this worker
/// with a small one, and if that is not enough, again on the blocking pool with
/// [`MAX_EVALUATION_WORK`] (past which, 400).
pub(crate) async fn with_tags<T: Send + 'static>(
    state: &Arc<State>,
    account: AccountId,
    f: impl Fn(&AccountTags, u64) -> Result<T, Stop> + Send + 'static,
) -> Result<T, MockError> {
    match state.tags(account, |tags| f(tags, INLINE_EVALUATION_WORK)) {
        Ok(done) => return Ok(done),
        Err(Stop::Answer(e)) => return Err(e),
        Err(Stop::TooCostly) => {}
    }
    let tags = state.tags(account, AccountTags::clone);
    let done = tokio::task::spawn_blocking(move || f(&tags, MAX_EVALUATION_WORK))
        .await
        .map_err(|e| {
            tracing::error!(target: "finout_mock", error = %e, "evaluating virtual tags failed");
            MockError::auth(ErrorCode::AuthUnavailable)
        })?;
    done.map_err(|stop| match stop {
        Stop::Answer(e) => e,
        Stop::TooCostly => MockError::invalid(format!(
            "virtual tags: evaluating their rules over this range takes more than \
             {MAX_EVALUATION_WORK} work units; use fewer or smaller rules, or a shorter range"
        )),
    })
}

/// What a key names in a filter or a rule's `to`.
enum Lookup {
    Dimension(usize),
    Tag(Arc<TagValues>),
    Unknown,
}

impl Lookup {
    fn get(&self, cell: usize) -> Option<&str> {
        match self {
            Lookup::Dimension(d) => value(cell % kinds(), *d),
            Lookup::Tag(t) => t.get(cell),
            Lookup::Unknown => None,
        }
    }
}

/// A filter condition's operator and values.
enum Matcher<'v> {
    OneOf(HashSet<&'v str>, bool),
    Contains(Vec<&'v str>, bool),
    Exists(bool),
    Nothing,
}

impl<'v> Matcher<'v> {
    fn new(operator: &str, list: Vec<&'v str>) -> Self {
        match operator {
            "oneOf" | "is" => Matcher::OneOf(list.into_iter().collect(), false),
            "notOneOf" | "notIs" => Matcher::OneOf(list.into_iter().collect(), true),
            "contains" => Matcher::Contains(list, false),
            "notContains" => Matcher::Contains(list, true),
            "exists" => Matcher::Exists(true),
            "notExists" => Matcher::Exists(false),
            _ => Matcher::Nothing,
        }
    }

    /// Whether a cell whose value is `value` matches.
    fn matches(&self, value: Option<&str>) -> bool {
        match self {
            Matcher::OneOf(set, negated) => value.is_some_and(|v| set.contains(v)) != *negated,
            Matcher::Contains(list, negated) => {
                value.is_some_and(|v| list.iter().any(|s| v.contains(s))) != *negated
            }
            Matcher::Exists(wanted) => value.is_some() == *wanted,
            Matcher::Nothing => false,
        }
    }

    /// What matching `candidates` values takes, about.
    fn cost(&self, candidates: usize, list_bytes: u64) -> u64 {
        let candidates = candidates as u64;
        match self {
            Matcher::Contains(..) => candidates.saturating_mul(list_bytes.max(1)),
            _ => candidates,
        }
    }
}

/// Evaluates an account's virtual tags and filters over the cells of a range, each tag at
/// most once, within a budget of work units.
pub(crate) struct Evaluator<'a> {
    tags: &'a AccountTags,
    days: Days,
    done: HashMap<String, Option<Arc<TagValues>>>,
    visiting: Vec<String>,
    work: u64,
    budget: u64,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(tags: &'a AccountTags, days: Days, budget: u64) -> Self {
        Evaluator {
            tags,
            days,
            done: HashMap::new(),
            visiting: Vec::new(),
            work: 0,
            budget,
        }
    }

    fn charge(&mut self, units: u64) -> Result<(), TooCostly> {
        self.work = self.work.saturating_add(units);
        if self.work > self.budget {
            Err(TooCostly)
        } else {
            Ok(())
        }
    }

    fn cells(&self) -> usize {
        self.days.cells()
    }

    /// Virtual tag `id` over the cells; `None` if the account has no such tag (or it is
    /// being evaluated: a tag reached again through its own rules).
    pub(crate) fn tag(&mut self, id: &str) -> Result<Option<Arc<TagValues>>, TooCostly> {
        if let Some(done) = self.done.get(id) {
            return Ok(done.clone());
        }
        if self.visiting.iter().any(|v| v == id) {
            return Ok(None);
        }
        let tags = self.tags;
        let Some(tag) = tags.get(id) else {
            self.done.insert(id.to_owned(), None);
            return Ok(None);
        };
        self.visiting.push(id.to_owned());
        let evaluated = self.evaluate(tag.assigned_values(), &tag.fields);
        self.visiting.pop();
        let evaluated = Some(Arc::new(evaluated?));
        self.done.insert(id.to_owned(), evaluated.clone());
        Ok(evaluated)
    }

    /// Evaluate a tag of these fields (`rules`, `defaultValue`) whose string values are
    /// `values` (sorted, unique).
    fn evaluate(
        &mut self,
        mut values: Vec<String>,
        fields: &Map<String, Value>,
    ) -> Result<TagValues, TooCostly> {
        let n = self.cells();
        self.charge(
            values
                .iter()
                .map(|v| v.len() as u64 + 1)
                .fold(n as u64, u64::saturating_add),
        )?;
        let mut index: HashMap<String, u32> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), u32::try_from(i).unwrap_or(NONE)))
            .collect();
        let mut cells = vec![NONE; n];
        let mut open = CellSet::all(n);
        let rules = fields
            .get("rules")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for rule in rules {
            if open.is_empty() {
                break;
            }
            self.charge(open.word_count() + 1)?;
            let Some(rule) = rule.as_object() else {
                continue;
            };
            let Some(to) = rule.get("to") else {
                continue;
            };
            let mut matched = match rule.get("filters") {
                None | Some(Value::Null) => CellSet::all(n),
                Some(filter) => self.filter(filter)?,
            };
            matched.and(&open);
            if let Some(timeframe) = rule.get("timeframe") {
                let within = self.timeframe(timeframe)?;
                matched.and(&within);
            }
            let assigned = self.assign(to, &matched, &mut cells, &mut values, &mut index)?;
            open.and_not(&assigned);
        }
        if let Some(default) = fields.get("defaultValue")
            && !open.is_empty()
        {
            self.assign(default, &open, &mut cells, &mut values, &mut index)?;
        }
        if cells.contains(&NONE) && !index.contains_key(UNTAGGED) {
            index.insert(
                UNTAGGED.to_owned(),
                u32::try_from(values.len()).unwrap_or(NONE),
            );
            values.push(UNTAGGED.to_owned());
        }
        // Sorted, the cells renumbered.
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[a].cmp(&values[b]));
        let mut renumbered = vec![NONE; values.len()];
        for (new, &old) in order.iter().enumerate() {
            renumbered[old] = u32::try_from(new).unwrap_or(NONE);
        }
        for c in &mut cells {
            if *c != NONE {
                *c = renumbered.get(*c as usize).copied().unwrap_or(NONE);
            }
        }
        let untagged = if cells.contains(&NONE) {
            index
                .get(UNTAGGED)
                .and_then(|&i| renumbered.get(i as usize).copied())
                .unwrap_or(NONE)
        } else {
            NONE
        };
        let values = order
            .into_iter()
            .map(|i| std::mem::take(&mut values[i]))
            .collect();
        Ok(TagValues {
            values,
            cells,
            untagged,
        })
    }

    /// Assign `to` (a string, or a MegaBill key `{key, costCenter}`) to the cells of `set`;
    /// answer those it assigned (a key assigns only cells that have a value of it).
    fn assign(
        &mut self,
        to: &Value,
        set: &CellSet,
        cells: &mut [u32],
        values: &mut Vec<String>,
        index: &mut HashMap<String, u32>,
    ) -> Result<CellSet, TooCostly> {
        let mut intern = |v: &str| -> u32 {
            if let Some(&i) = index.get(v) {
                return i;
            }
            let i = u32::try_from(values.len()).unwrap_or(NONE);
            values.push(v.to_owned());
            index.insert(v.to_owned(), i);
            i
        };
        self.charge(set.len as u64)?;
        match to {
            Value::String(s) => {
                let i = intern(s);
                for cell in set.ones() {
                    cells[cell] = i;
                }
                Ok(set.clone())
            }
            Value::Object(key) => {
                let lookup = self.lookup(
                    key.get("costCenter").and_then(Value::as_str).unwrap_or(""),
                    key.get("key").and_then(Value::as_str).unwrap_or(""),
                )?;
                let mut assigned = CellSet::none(set.len);
                for cell in set.ones() {
                    if let Some(v) = lookup.get(cell) {
                        cells[cell] = intern(v);
                        assigned.insert(cell);
                    }
                }
                Ok(assigned)
            }
            _ => Ok(CellSet::none(set.len)),
        }
    }

    fn lookup(&mut self, cost_center: &str, key: &str) -> Result<Lookup, TooCostly> {
        if cost_center.eq_ignore_ascii_case(VIRTUAL_TAGS) {
            return Ok(self.tag(key)?.map_or(Lookup::Unknown, Lookup::Tag));
        }
        Ok(dimension(cost_center, key).map_or(Lookup::Unknown, Lookup::Dimension))
    }

    /// The cells of the days a rule's `timeframe` (`{"from": ms, "to"?: ms}`) covers.
    fn timeframe(&mut self, timeframe: &Value) -> Result<CellSet, TooCostly> {
        let n = self.cells();
        self.charge(n as u64)?;
        let Value::Object(t) = timeframe else {
            return Ok(if timeframe.is_null() {
                CellSet::all(n)
            } else {
                CellSet::none(n)
            });
        };
        let from = t
            .get("from")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MIN)
            .div_euclid(DAY_MS);
        let to = t
            .get("to")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX)
            .div_euclid(DAY_MS);
        let (days, k) = (self.days, kinds());
        Ok(CellSet::from_fn(n, |cell| {
            (from..=to).contains(&days.day(cell / k))
        }))
    }

    /// The cells a filter matches: a condition `{costCenter, key, operator, value}`, or
    /// `AND`/`OR` of filters. An empty filter, `AND` or `OR` matches every cell; a condition
    /// without a key or operator, none.
    pub(crate) fn filter(&mut self, filter: &Value) -> Result<CellSet, TooCostly> {
        self.filter_at(filter, 0)
    }

    fn filter_at(&mut self, filter: &Value, depth: usize) -> Result<CellSet, TooCostly> {
        let n = self.cells();
        self.charge(n.div_ceil(64) as u64 + 1)?;
        let Value::Object(f) = filter else {
            return Ok(CellSet::none(n));
        };
        if depth > 64 {
            return Ok(CellSet::none(n));
        }
        for (group, all_of) in [("AND", true), ("OR", false)] {
            if let Some(list) = f.get(group) {
                let Some(list) = list.as_array() else {
                    return Ok(CellSet::none(n));
                };
                if list.is_empty() {
                    return Ok(CellSet::all(n));
                }
                let mut acc = if all_of {
                    CellSet::all(n)
                } else {
                    CellSet::none(n)
                };
                for item in list {
                    let one = self.filter_at(item, depth + 1)?;
                    if all_of {
                        acc.and(&one);
                    } else {
                        acc.or(&one);
                    }
                }
                return Ok(acc);
            }
        }
        if f.is_empty() {
            return Ok(CellSet::all(n));
        }
        self.condition(f)
    }

    fn condition(&mut self, c: &Map<String, Value>) -> Result<CellSet, TooCostly> {
        let n = self.cells();
        let (Some(key), Some(operator)) = (
            c.get("key").and_then(Value::as_str),
            c.get("operator").and_then(Value::as_str),
        ) else {
            return Ok(CellSet::none(n));
        };
        let cost_center = c.get("costCenter").and_then(Value::as_str).unwrap_or("");
        let list: Vec<&str> = match c.get("value") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        };
        let list_bytes = list
            .iter()
            .map(|s| s.len() as u64 + 1)
            .fold(0u64, u64::saturating_add);
        self.charge(list_bytes.saturating_add(n as u64))?;
        let matcher = Matcher::new(operator, list);
        let k = kinds();
        match self.lookup(cost_center, key)? {
            Lookup::Unknown => Ok(if matcher.matches(None) {
                CellSet::all(n)
            } else {
                CellSet::none(n)
            }),
            Lookup::Dimension(d) => {
                let values = DIMENSIONS[d].values;
                self.charge(matcher.cost(values.len() + 1, list_bytes))?;
                let matched: Vec<bool> = values
                    .iter()
                    .map(|v| matcher.matches(Some(v)))
                    .chain([matcher.matches(None)])
                    .collect();
                Ok(CellSet::from_fn(n, |cell| {
                    matched[value_index(cell % k, d)]
                }))
            }
            Lookup::Tag(t) => {
                self.charge(matcher.cost(t.values.len() + 1, list_bytes))?;
                let matched: Vec<bool> =
                    t.values.iter().map(|v| matcher.matches(Some(v))).collect();
                let untagged = matcher.matches(None);
                Ok(CellSet::from_fn(n, |cell| match t.cells.get(cell) {
                    None | Some(&NONE) => untagged,
                    Some(&i) => matched.get(i as usize).copied().unwrap_or(false),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn days(count: usize) -> Days {
        Days {
            first: 19_875,
            count,
        }
    }

    fn evaluate(fields: Value, days: Days) -> TagValues {
        let tags = AccountTags::default();
        let mut e = Evaluator::new(&tags, days, MAX_EVALUATION_WORK);
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let mut values: Vec<String> = fields["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["to"].as_str().map(str::to_owned))
            .chain(
                fields
                    .get("defaultValue")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )
            .collect();
        values.sort();
        values.dedup();
        e.evaluate(values, &fields).unwrap()
    }

    #[test]
    fn thirty_one_kinds_each_with_a_vendor() {
        assert_eq!(kinds(), 31);
        let vendor = dimension("Global", "vendor").unwrap();
        for k in 0..kinds() {
            assert!(value(k, vendor).is_some());
        }
        let region = dimension("", "region").unwrap();
        assert_eq!(value(kinds() - 1, region), None);
        assert_eq!(label(region, value_index(kinds() - 1, region)), NO_VALUE);
    }

    #[test]
    fn no_item_after_today_and_the_same_item_every_time() {
        let account = AccountId::new_v4();
        let ledger = Ledger::at(account.to_string(), 100);
        assert!(ledger.item(0, 101).is_none());
        let a = ledger
            .item(3, 100)
            .unwrap()
            .amount(Measure::named("listCost").unwrap());
        let b = ledger
            .item(3, 100)
            .unwrap()
            .amount(Measure::named("listCost").unwrap());
        assert_eq!(a, b);
        let net = ledger
            .item(3, 100)
            .unwrap()
            .amount(Measure::named("netAmortizedCost").unwrap());
        assert_eq!(a * 100, net * 120, "a cost type is an exact percentage");
    }

    #[test]
    fn days_are_total_on_any_range() {
        assert_eq!(Days::touched(i64::MIN, i64::MAX, 92), None);
        assert_eq!(Days::touched(10 * DAY_MS, 0, 92), None);
        assert_eq!(
            Days::touched(0, DAY_MS - 1, 92),
            Some(Days { first: 0, count: 1 })
        );
        let d = Days {
            first: 10,
            count: 5,
        };
        assert_eq!(
            (d.until(9), d.until(10), d.until(12), d.until(99)),
            (0, 1, 3, 5)
        );
        assert_eq!(d.until(i64::MIN), 0);
    }

    #[test]
    fn rules_take_cells_in_order_and_the_default_the_rest() {
        let tag = evaluate(
            json!({"rules": [
                {"to": "compute", "filters": {"AND": [
                    {"costCenter": "Global", "key": "vendor", "operator": "is", "value": ["AWS"]},
                    {"costCenter": "AWS", "key": "service", "operator": "oneOf", "value": ["EC2", "EKS"]}]}},
                {"to": "aws", "filters": {"costCenter": "", "key": "vendor", "operator": "oneOf", "value": ["AWS"]}},
                {"to": {"costCenter": "Kubernetes", "key": "namespace"}, "filters": {}}
            ], "defaultValue": "other"}),
            days(2),
        );
        assert_eq!(
            tag.values,
            ["aws", "compute", "other", "payments", "platform", "search"]
        );
        let service = dimension("AWS", "service").unwrap();
        let namespace = dimension("", "namespace").unwrap();
        for cell in 0..days(2).cells() {
            let kind = cell % kinds();
            let expected = match (value(kind, service), value(kind, namespace)) {
                (Some("EC2" | "EKS"), _) => "compute",
                (Some(_), _) => "aws",
                (None, Some(ns)) => ns,
                (None, None) => "other",
            };
            assert_eq!(tag.get(cell), Some(expected), "{cell}");
        }
    }

    #[test]
    fn timeframes_and_no_default_leave_cells_untagged() {
        let from = 19_876 * DAY_MS + 5;
        let tag = evaluate(
            json!({"rules": [{"to": "late", "filters": {}, "timeframe": {"from": from}}]}),
            days(3),
        );
        assert_eq!(tag.values, ["Untagged", "late"]);
        assert_eq!(tag.get(0), None);
        assert_eq!(tag.label(0), 0);
        assert_eq!(tag.get(kinds()), Some("late"), "the day `from` falls in");
    }

    #[test]
    fn a_filter_over_the_budget_stops() {
        let tags = AccountTags::default();
        let mut e = Evaluator::new(&tags, days(60), 1_000);
        let long: Vec<String> = (0..1_000).map(|i| format!("value-{i}")).collect();
        let filter =
            json!({"costCenter": "AWS", "key": "service", "operator": "contains", "value": long});
        assert!(e.filter(&filter).is_err());
    }
}
