//! Evaluating virtual tags over the cells of a range, within a budget of work units
//! ([`Evaluator`]; its filters are in `filter.rs`), and running it on the right thread
//! ([`with_tags`]).

use std::{collections::HashMap, sync::Arc};

use finout_auth::{AccountId, ErrorCode};
use serde_json::{Map, Value};

use super::{
    DAY_MS, INLINE_EVALUATION_WORK, MAX_EVALUATION_WORK, NONE, UNTAGGED, VIRTUAL_TAGS,
    cells::{CellSet, TagValues},
    items::{Days, dimension, kinds, value},
};
use crate::{
    error::MockError,
    state::{State, tags::AccountTags},
};

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
    // One snapshot for both tries: the blocking pool's sees the same tags.
    let tags = state.tags_now(account);
    match f(&tags, INLINE_EVALUATION_WORK) {
        Ok(done) => return Ok(done),
        Err(Stop::Answer(e)) => return Err(e),
        Err(Stop::TooCostly) => {}
    }
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
pub(super) enum Lookup {
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

    pub(super) fn charge(&mut self, units: u64) -> Result<(), TooCostly> {
        self.work = self.work.saturating_add(units);
        if self.work > self.budget {
            Err(TooCostly)
        } else {
            Ok(())
        }
    }

    pub(super) fn cells(&self) -> usize {
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

    pub(super) fn lookup(&mut self, cost_center: &str, key: &str) -> Result<Lookup, TooCostly> {
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
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::tags::StoredTag;

    pub(in crate::ledger) fn days(count: usize) -> Days {
        Days {
            first: 19_875,
            count,
        }
    }

    /// A tag of these fields evaluated over `days`, with the values the tag assigns.
    fn evaluate(fields: Value, days: Days) -> TagValues {
        let tags = AccountTags::default();
        let mut e = Evaluator::new(&tags, days, MAX_EVALUATION_WORK);
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let tag = StoredTag::new(fields, "ci", time::OffsetDateTime::UNIX_EPOCH, None);
        e.evaluate(tag.assigned_values(), &tag.fields).unwrap()
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
}
