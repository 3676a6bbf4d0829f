//! The body of `POST /v2/data/cost-usage/generate-query`, checked as Finout documents it,
//! and what the checked query costs: its candidate rows and its work units (`rows` makes
//! the rows). Checking also takes the query's snapshot of the account: its virtual tags and
//! filters evaluated over the range's cells (`crate::ledger`), and the mock's today.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde::Deserialize;
use serde_json::Value;

use super::keys::VIRTUAL_TAGS;
use crate::{
    error::{Answer, MockError},
    fixtures,
    ledger::{CellSet, Days, Evaluator, Stop},
    state::tags::AccountTags,
};

const DAY_MS: i64 = 86_400_000;
/// Finout's V2 range limit: 60 days.
const MAX_RANGE_MS: i64 = 60 * DAY_MS;
/// 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;
const MAX_MEASUREMENTS: usize = 5;
const MAX_DIMENSIONS: usize = 20;
const MAX_FILTER_CONDITIONS: usize = 30;
const DEFAULT_ROW_LIMIT: u64 = 1_000;
const MAX_ROW_LIMIT: u64 = 100_000;

const MEASUREMENTS: [&str; 8] = [
    "blendedCost",
    "unblendedCost",
    "netUnblendedCost",
    "amortizedCost",
    "netAmortizedCost",
    "listCost",
    "usageAmount",
    "normalizedUsageAmount",
];
const OPERATORS: [&str; 4] = ["sum", "avg", "min", "max"];
const FILTER_OPERATORS: [&str; 8] = [
    "oneOf",
    "notOneOf",
    "is",
    "notIs",
    "contains",
    "notContains",
    "exists",
    "notExists",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec {
    date: Range,
    time_interval: TimeInterval,
    measurements: Vec<Measurement>,
    #[serde(default)]
    dimensions: Vec<DimensionSpec>,
    #[serde(default)]
    filters: Option<Value>,
    #[serde(default)]
    row_limit: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Range {
    unix_time_milliseconds_start: i64,
    unix_time_milliseconds_end: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeInterval {
    interval: String,
    #[serde(default)]
    sort_direction: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Measurement {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    sort_direction: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DimensionSpec {
    #[serde(default)]
    cost_center: String,
    key: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sort_direction: Option<String>,
}

/// A checked query: what the rows are made of.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    pub(super) interval: &'static str,
    pub(super) measurements: Vec<(&'static str, &'static str)>,
    /// Each dimension: its column (`{costCenter}_{type}_{key}`, with the cost center as the
    /// client sent it: a client sending `""` reads `_billing_dimension_service`) and its
    /// values.
    pub(super) dimensions: Vec<Dim>,
    /// Sort by (column, descending); `None`: the first measurement, descending.
    pub(super) sort: Option<(String, bool)>,
    pub(super) row_limit: u64,
    /// The days the range touches.
    pub(super) days: Days,
    /// The last day with costs: the mock's today when the query was generated.
    pub(super) today: i64,
    /// The cells (day x kind of line item) the filters keep; `None`: every cell.
    pub(super) filter: Option<CellSet>,
}

#[derive(Debug, Clone)]
pub(super) struct Dim {
    pub(super) column: String,
    pub(super) values: Arc<Values>,
    pub(super) source: Source,
}

/// Where a dimension's value of a line item comes from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A fixture dimension (an index of `fixtures::DIMENSIONS`).
    Fixture(usize),
    /// A virtual tag: per cell of the range, the index of its value in the dimension's
    /// values.
    Tag(Arc<[u32]>),
}

/// The values of a dimension. A virtual tag's are shared by every query of the account that
/// names the same version of the tag (`cost::Queries` interns them), never copied per query.
#[derive(Debug)]
pub(crate) struct Values {
    pub(super) list: Vec<String>,
    /// The longest value, in bytes: what hashing a row costs per dimension at most.
    longest: usize,
    /// Bytes held, and the account's count they are charged to (given back on drop).
    charge: Option<(usize, Arc<AtomicUsize>)>,
}

impl Values {
    /// `list`, charged to `charged_to` (the bytes its strings hold) until dropped.
    pub(crate) fn new(list: Vec<String>, charged_to: Option<Arc<AtomicUsize>>) -> Self {
        let longest = list.iter().map(String::len).max().unwrap_or(0);
        let charge = charged_to.map(|count| {
            let bytes = Self::weight(&list);
            count.fetch_add(bytes, Ordering::Relaxed);
            (bytes, count)
        });
        Values {
            list,
            longest,
            charge,
        }
    }

    /// What `list` weighs in memory: its strings and their headers.
    pub(crate) fn weight(list: &[String]) -> usize {
        list.iter()
            .map(|v| v.len().saturating_add(std::mem::size_of::<String>()))
            .fold(0usize, usize::saturating_add)
    }
}

impl Drop for Values {
    fn drop(&mut self) {
        if let Some((bytes, count)) = &self.charge {
            count.fetch_sub(*bytes, Ordering::Relaxed);
        }
    }
}

/// The most rows a query may range over before `rowLimit` (periods x combinations of its
/// dimensions' values): past it, 400.
pub(crate) const MAX_CANDIDATE_ROWS: u64 = 200_000;
/// What one row costs besides its dimensions' values, in work units (bytes).
const ROW_WORK: u64 = 64;
/// The most work units a query may take to rank: candidate rows x (`ROW_WORK` + the
/// longest value of each dimension). Past it, 400. An upper bound: the rows are sums of the
/// ledger's line items (at most 61 days x 31), so a query has at most that many rows
/// whatever its candidates, and ranking the costliest accepted query takes less than the
/// tens of milliseconds of one core SECURITY.md gives for it.
pub(crate) const MAX_WORK_UNITS: u64 = 32_000_000;

fn one_of(value: &str, allowed: &[&'static str], field: &str) -> Answer<&'static str> {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .ok_or_else(|| {
            MockError::invalid(format!(
                "{field}: {value:?} is not one of {}",
                allowed.join(", ")
            ))
        })
}

fn descending(direction: &str, field: &str) -> Answer<bool> {
    Ok(one_of(direction, &["ascending", "descending"], field)? == "descending")
}

/// Which of Finout's filter objects a filter is checked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterObject {
    /// V2's (FO2), as Cost & Usage queries take it: a condition has a string `type` and a
    /// `value` array, and a filter at most 30 conditions.
    V2Query,
    /// V1's (FO1), as a V1 virtual tag's rules take it: a condition needs no `type` (V1's
    /// has none), its `value` is a string or an array of strings, and its other fields
    /// (`displayName`, a `type` sent anyway) are strings; an `AND`/`OR` object has no other
    /// field. No cap on conditions (Finout documents V2's 30 for queries only).
    V1Rule,
}

/// Check a filter (`path` names it in a 400): `AND`/`OR` of filters, nested to any depth
/// (16 here), or a condition `{costCenter, key, operator, value}` with one of the eight
/// operators, `value` needed unless the operator is `exists` or `notExists`.
pub(crate) fn check_filter(filter: &Value, path: &str, object: FilterObject) -> Answer<()> {
    conditions(filter, path, 0, object).map(|_| ())
}

/// Count a filter's conditions, checking each (`AND`/`OR` nest to any depth).
fn conditions(filter: &Value, path: &str, depth: usize, object: FilterObject) -> Answer<usize> {
    let v1 = object == FilterObject::V1Rule;
    let bad = |why: String| Err(MockError::invalid(format!("{path}: {why}")));
    let Value::Object(f) = filter else {
        return bad("a filter is an object".into());
    };
    if depth > 16 {
        return bad("nested too deeply".into());
    }
    for group in ["AND", "OR"] {
        if let Some(list) = f.get(group) {
            let Value::Array(list) = list else {
                return bad(format!("{group} must be an array"));
            };
            if v1 && f.len() > 1 {
                return bad(format!("an object with {group} has no other field"));
            }
            let mut n = 0usize;
            for (i, c) in list.iter().enumerate() {
                n += conditions(c, &format!("{path}.{group}[{i}]"), depth + 1, object)?;
                if !v1 && n > MAX_FILTER_CONDITIONS {
                    return bad(format!("at most {MAX_FILTER_CONDITIONS} conditions"));
                }
            }
            return Ok(n);
        }
    }
    let required: &[&str] = if v1 {
        &["costCenter", "key", "operator"]
    } else {
        &["costCenter", "key", "type", "operator"]
    };
    for field in required {
        if !f.get(*field).is_some_and(Value::is_string) {
            return bad(format!("a condition needs a string {field}"));
        }
    }
    if v1 && let Some((field, _)) = f.iter().find(|(k, v)| *k != "value" && !v.is_string()) {
        return bad(format!("{field} must be a string"));
    }
    let operator = one_of(
        f["operator"].as_str().unwrap_or(""),
        &FILTER_OPERATORS,
        &format!("{path}.operator"),
    )?;
    let needs_value = !matches!(operator, "exists" | "notExists");
    if !v1 {
        if needs_value && !f.get("value").is_some_and(Value::is_array) {
            return bad(format!("{operator} needs a value array"));
        }
        return Ok(1);
    }
    match f.get("value") {
        None if !needs_value => Ok(1),
        None => bad(format!(
            "{operator} needs a value (a string or an array of strings)"
        )),
        Some(Value::String(_)) => Ok(1),
        Some(Value::Array(values)) if values.iter().all(Value::is_string) => Ok(1),
        Some(_) => bad("value must be a string or an array of strings".into()),
    }
}

impl Spec {
    /// Check every field; the first problem answers 400 naming it. Virtual tags (cost
    /// center `Virtual Tags`, key the tag's id) and filters are evaluated over the range
    /// with `tags`, the account's, within `budget` work units; `intern` answers the values
    /// of a tag as the query holds them (shared with other queries, see `cost::Queries`).
    /// Nothing after `today` has costs.
    pub(crate) fn check(
        self,
        today: i64,
        tags: &AccountTags,
        budget: u64,
        intern: &dyn Fn(&str, Vec<String>) -> Arc<Values>,
    ) -> Result<Query, Stop> {
        let (start, end) = (
            self.date.unix_time_milliseconds_start,
            self.date.unix_time_milliseconds_end,
        );
        if !(0..=MAX_MS).contains(&start) || !(0..=MAX_MS).contains(&end) || end < start {
            return Err(MockError::invalid(
                "date: start and end are Unix milliseconds in 1970-9999, start before end",
            )
            .into());
        }
        if end - start > MAX_RANGE_MS {
            return Err(MockError::invalid("date: the range is at most 60 days").into());
        }
        // At most 61 days.
        let days = Days::touched(start, end, 62).ok_or_else(|| {
            MockError::invalid("date: start and end are Unix milliseconds, start before end")
        })?;
        let mut evaluator = Evaluator::new(tags, days, budget);
        let interval = one_of(
            &self.time_interval.interval,
            &["day", "week", "month"],
            "timeInterval.interval",
        )?;
        let mut sort = match &self.time_interval.sort_direction {
            Some(d) => Some((
                interval.to_owned(),
                descending(d, "timeInterval.sortDirection")?,
            )),
            None => None,
        };
        if !(1..=MAX_MEASUREMENTS).contains(&self.measurements.len()) {
            return Err(
                MockError::invalid(format!("measurements: 1 to {MAX_MEASUREMENTS}")).into(),
            );
        }
        let mut measurements = Vec::new();
        for (i, m) in self.measurements.iter().enumerate() {
            let kind = one_of(&m.kind, &MEASUREMENTS, &format!("measurements[{i}].type"))?;
            let op = match &m.operator {
                Some(op) => one_of(op, &OPERATORS, &format!("measurements[{i}].operator"))?,
                None => "sum",
            };
            if measurements.contains(&(kind, op)) {
                return Err(MockError::invalid(format!("measurements[{i}]: repeated")).into());
            }
            if let (None, Some(d)) = (&sort, &m.sort_direction) {
                let field = format!("measurements[{i}].sortDirection");
                sort = Some((format!("{kind}_{op}"), descending(d, &field)?));
            }
            measurements.push((kind, op));
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(MockError::invalid(format!("dimensions: at most {MAX_DIMENSIONS}")).into());
        }
        let mut dimensions: Vec<Dim> = Vec::new();
        // Each dimension as Finout names it: cost center and key case folded, the cost
        // center the one found (a client's "" is the fixture's), with its type.
        let mut named: Vec<String> = Vec::new();
        for (i, d) in self.dimensions.iter().enumerate() {
            let (cost_center, key, types, values, source) =
                if d.cost_center.eq_ignore_ascii_case(VIRTUAL_TAGS) {
                    let tag = evaluator.tag(&d.key)?.ok_or_else(|| unknown_key(i, d))?;
                    let values = intern(&d.key, tag.values.clone());
                    let source = Source::Tag(tag.labels().into());
                    (
                        VIRTUAL_TAGS,
                        d.key.as_str(),
                        &["virtual_tag"][..],
                        values,
                        source,
                    )
                } else {
                    let found = fixtures::DIMENSIONS
                        .iter()
                        .position(|f| {
                            f.key == d.key
                                && (d.cost_center.is_empty()
                                    || f.cost_center.eq_ignore_ascii_case(&d.cost_center))
                        })
                        .ok_or_else(|| unknown_key(i, d))?;
                    let f = &fixtures::DIMENSIONS[found];
                    let values = f.values.iter().map(|v| (*v).to_owned()).collect();
                    (
                        f.cost_center,
                        f.key,
                        f.types,
                        Arc::new(Values::new(values, None)),
                        Source::Fixture(found),
                    )
                };
            let kind = match &d.kind {
                Some(k) => one_of(k, types, &format!("dimensions[{i}].type"))?,
                None => types[0],
            };
            let name = column(cost_center, kind, key).to_lowercase();
            if named.contains(&name) {
                return Err(MockError::invalid(format!(
                    "dimensions[{i}]: repeated (cost center and key compare case-insensitively)"
                ))
                .into());
            }
            named.push(name);
            let column = column(&d.cost_center, kind, key);
            if let (None, Some(s)) = (&sort, &d.sort_direction) {
                let field = format!("dimensions[{i}].sortDirection");
                sort = Some((column.clone(), descending(s, &field)?));
            }
            dimensions.push(Dim {
                column,
                values,
                source,
            });
        }
        let filter = match &self.filters {
            Some(filters) => {
                check_filter(filters, "filters", FilterObject::V2Query)?;
                Some(evaluator.filter(filters)?)
            }
            None => None,
        };
        let row_limit = self.row_limit.unwrap_or(DEFAULT_ROW_LIMIT);
        if !(1..=MAX_ROW_LIMIT).contains(&row_limit) {
            return Err(MockError::invalid(format!("rowLimit: 1 to {MAX_ROW_LIMIT}")).into());
        }
        let query = Query {
            start_ms: start,
            end_ms: end,
            interval,
            measurements,
            dimensions,
            sort,
            row_limit,
            days,
            today,
            filter,
        };
        if query.candidates() > MAX_CANDIDATE_ROWS {
            return Err(MockError::invalid(format!(
                "dimensions: the query ranges over more than {MAX_CANDIDATE_ROWS} rows \
                 (periods x values of every dimension); use fewer dimensions or a shorter range"
            ))
            .into());
        }
        let work = query.work_units();
        if work > MAX_WORK_UNITS {
            return Err(MockError::invalid(format!(
                "dimensions: the query takes {work} work units, more than {MAX_WORK_UNITS} \
                 (rows x ({ROW_WORK} + the longest value of each dimension)); use fewer \
                 dimensions, shorter values or a shorter range"
            ))
            .into());
        }
        Ok(query)
    }
}

fn unknown_key(i: usize, d: &DimensionSpec) -> MockError {
    MockError::invalid(format!(
        "dimensions[{i}]: no key {:?} in cost center {:?} (see /v2/query-language/keys)",
        d.key, d.cost_center
    ))
}

/// A dimension's column: `{costCenter}_{type}_{key}`.
fn column(cost_center: &str, kind: &str, key: &str) -> String {
    format!("{cost_center}_{kind}_{key}")
}

impl Query {
    /// Rows the query ranges over before `rowLimit`, saturating.
    pub(super) fn candidates(&self) -> u64 {
        let periods = super::rows::periods(self.start_ms, self.end_ms, self.interval).len() as u64;
        self.dimensions
            .iter()
            .fold(periods, |n, d| n.saturating_mul(d.values.list.len() as u64))
    }

    /// What ranking the rows costs: candidates x (`ROW_WORK` + the longest value of each
    /// dimension), saturating.
    pub(crate) fn work_units(&self) -> u64 {
        let per_row = self
            .dimensions
            .iter()
            .fold(ROW_WORK, |n, d| n.saturating_add(d.values.longest as u64));
        self.candidates().saturating_mul(per_row)
    }

    /// The most bytes one row of the answer takes, about: its values and measurements.
    pub(super) fn row_bytes(&self) -> u64 {
        let values = self
            .dimensions
            .iter()
            .map(|d| (d.column.len() + d.values.longest) as u64 + 8)
            .fold(0u64, u64::saturating_add);
        values.saturating_add(64 * (self.measurements.len() as u64 + 1))
    }

    /// The bytes the query holds besides its dimensions' values, about: its columns, its
    /// virtual tags' value of each cell and its filter's cells.
    pub(crate) fn weight(&self) -> usize {
        let columns = self
            .dimensions
            .iter()
            .map(|d| {
                let cells = match &d.source {
                    Source::Tag(labels) => labels.len().saturating_mul(4),
                    Source::Fixture(_) => 0,
                };
                d.column.len().saturating_add(64).saturating_add(cells)
            })
            .fold(0usize, usize::saturating_add)
            .saturating_add(self.filter.as_ref().map_or(0, CellSet::bytes));
        let sort = self.sort.as_ref().map_or(0, |(by, _)| by.len());
        std::mem::size_of::<Self>()
            .saturating_add(256)
            .saturating_add(columns)
            .saturating_add(sort)
    }
}
