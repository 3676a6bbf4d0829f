//! The body of `POST /v2/data/cost-usage/generate-query`, checked as Finout documents it,
//! and the rows it answers: a pure function of the account and the query.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::{Date, Duration, OffsetDateTime};

use super::keys::VIRTUAL_TAGS;
use crate::{
    error::{Answer, MockError},
    fixtures::{self, COST_TYPES},
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
    start_ms: i64,
    end_ms: i64,
    interval: &'static str,
    measurements: Vec<(&'static str, &'static str)>,
    /// Each dimension: its column (`{costCenter}_{type}_{key}`, with the cost center as the
    /// client sent it: a client sending `""` reads `_billing_dimension_service`) and its
    /// values.
    dimensions: Vec<Dim>,
    /// Sort by (column, descending); `None`: the first measurement, descending.
    sort: Option<(String, bool)>,
    row_limit: u64,
}

#[derive(Debug, Clone)]
struct Dim {
    column: String,
    values: Vec<String>,
}

/// The most rows a query may range over before `rowLimit` (periods x combinations of its
/// dimensions' values): past it, 400.
pub(crate) const MAX_CANDIDATE_ROWS: u64 = 200_000;

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

/// Count a filter's conditions, checking each (`AND`/`OR` nest to any depth).
fn conditions(filter: &Value, path: &str, depth: usize) -> Answer<usize> {
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
            let mut n = 0usize;
            for (i, c) in list.iter().enumerate() {
                n += conditions(c, &format!("{path}.{group}[{i}]"), depth + 1)?;
                if n > MAX_FILTER_CONDITIONS {
                    return bad(format!("at most {MAX_FILTER_CONDITIONS} conditions"));
                }
            }
            return Ok(n);
        }
    }
    for field in ["costCenter", "key", "type", "operator"] {
        if !f.get(field).is_some_and(Value::is_string) {
            return bad(format!("a condition needs a string {field}"));
        }
    }
    let operator = one_of(
        f["operator"].as_str().unwrap_or(""),
        &FILTER_OPERATORS,
        "operator",
    )?;
    let needs_value = !matches!(operator, "exists" | "notExists");
    if needs_value && !f.get("value").is_some_and(Value::is_array) {
        return bad(format!("{operator} needs a value array"));
    }
    Ok(1)
}

impl Spec {
    /// Check every field; the first problem answers 400 naming it. `virtual_tag` answers
    /// the values of the account's virtual tag of an id (cost center `Virtual Tags`).
    pub(crate) fn check(self, virtual_tag: impl Fn(&str) -> Option<Vec<String>>) -> Answer<Query> {
        let (start, end) = (
            self.date.unix_time_milliseconds_start,
            self.date.unix_time_milliseconds_end,
        );
        if !(0..=MAX_MS).contains(&start) || !(0..=MAX_MS).contains(&end) || end < start {
            return Err(MockError::invalid(
                "date: start and end are Unix milliseconds in 1970-9999, start before end",
            ));
        }
        if end - start > MAX_RANGE_MS {
            return Err(MockError::invalid("date: the range is at most 60 days"));
        }
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
            return Err(MockError::invalid(format!(
                "measurements: 1 to {MAX_MEASUREMENTS}"
            )));
        }
        let mut measurements = Vec::new();
        for (i, m) in self.measurements.iter().enumerate() {
            let kind = one_of(&m.kind, &MEASUREMENTS, &format!("measurements[{i}].type"))?;
            let op = match &m.operator {
                Some(op) => one_of(op, &OPERATORS, &format!("measurements[{i}].operator"))?,
                None => "sum",
            };
            if measurements.contains(&(kind, op)) {
                return Err(MockError::invalid(format!("measurements[{i}]: repeated")));
            }
            if let (None, Some(d)) = (&sort, &m.sort_direction) {
                let field = format!("measurements[{i}].sortDirection");
                sort = Some((format!("{kind}_{op}"), descending(d, &field)?));
            }
            measurements.push((kind, op));
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(MockError::invalid(format!(
                "dimensions: at most {MAX_DIMENSIONS}"
            )));
        }
        let mut dimensions: Vec<Dim> = Vec::new();
        for (i, d) in self.dimensions.iter().enumerate() {
            let (key, types, values) = if d.cost_center.eq_ignore_ascii_case(VIRTUAL_TAGS) {
                let values = virtual_tag(&d.key).ok_or_else(|| unknown_key(i, d))?;
                (d.key.as_str(), &["virtual_tag"][..], values)
            } else {
                let found = fixtures::DIMENSIONS
                    .iter()
                    .find(|f| {
                        f.key == d.key
                            && (d.cost_center.is_empty()
                                || f.cost_center.eq_ignore_ascii_case(&d.cost_center))
                    })
                    .ok_or_else(|| unknown_key(i, d))?;
                let values = found.values.iter().map(|v| (*v).to_owned()).collect();
                (found.key, found.types, values)
            };
            let kind = match &d.kind {
                Some(k) => one_of(k, types, &format!("dimensions[{i}].type"))?,
                None => types[0],
            };
            let column = column(&d.cost_center, kind, key);
            if dimensions.iter().any(|seen| seen.column == column) {
                return Err(MockError::invalid(format!("dimensions[{i}]: repeated")));
            }
            if let (None, Some(s)) = (&sort, &d.sort_direction) {
                let field = format!("dimensions[{i}].sortDirection");
                sort = Some((column.clone(), descending(s, &field)?));
            }
            dimensions.push(Dim { column, values });
        }
        if let Some(filters) = &self.filters {
            conditions(filters, "filters", 0)?;
        }
        let row_limit = self.row_limit.unwrap_or(DEFAULT_ROW_LIMIT);
        if !(1..=MAX_ROW_LIMIT).contains(&row_limit) {
            return Err(MockError::invalid(format!(
                "rowLimit: 1 to {MAX_ROW_LIMIT}"
            )));
        }
        let query = Query {
            start_ms: start,
            end_ms: end,
            interval,
            measurements,
            dimensions,
            sort,
            row_limit,
        };
        if query.candidates() > MAX_CANDIDATE_ROWS {
            return Err(MockError::invalid(format!(
                "dimensions: the query ranges over more than {MAX_CANDIDATE_ROWS} rows \
                 (periods x values of every dimension); use fewer dimensions or a shorter range"
            )));
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

fn date(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).map_or(Date::MIN, OffsetDateTime::date)
}

/// The start of each day, week (Monday) or month the range touches.
fn periods(start_ms: i64, end_ms: i64, interval: &str) -> Vec<Date> {
    let (first, last) = (date(start_ms), date(end_ms));
    let start_of = |d: Date| match interval {
        "week" => d - Duration::days(i64::from(d.weekday().number_days_from_monday())),
        "month" => d.replace_day(1).unwrap_or(d),
        _ => d,
    };
    let mut out = Vec::new();
    let mut day = first;
    // At most 61 days: the range is checked.
    while day <= last {
        let period = start_of(day);
        if out.last() != Some(&period) {
            out.push(period);
        }
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

impl Query {
    /// Rows the query ranges over before `rowLimit`, saturating.
    fn candidates(&self) -> u64 {
        let periods = periods(self.start_ms, self.end_ms, self.interval).len() as u64;
        self.dimensions
            .iter()
            .fold(periods, |n, d| n.saturating_mul(d.values.len() as u64))
    }

    /// How many rows the results hold: every candidate, at most `rowLimit`.
    pub(crate) fn total_rows(&self) -> u64 {
        self.candidates().min(self.row_limit)
    }

    /// The index of each dimension's value in combination `c` (mixed radix).
    fn indices(&self, mut c: usize) -> Vec<usize> {
        let mut indices = vec![0; self.dimensions.len()];
        for (i, d) in self.dimensions.iter().enumerate().rev() {
            let n = d.values.len().max(1);
            indices[i] = c % n;
            c /= n;
        }
        indices
    }

    /// The dimension values of combination `c`.
    fn combo(&self, c: usize) -> Vec<&str> {
        self.indices(c)
            .into_iter()
            .zip(&self.dimensions)
            .map(|(i, d)| d.values.get(i).map_or("", String::as_str))
            .collect()
    }

    fn amount(seed: &str, period: Date, combo: &[&str], kind: &str, op: &str) -> f64 {
        let mut h = blake3::Hasher::new();
        h.update(seed.as_bytes());
        h.update(period.to_string().as_bytes());
        for v in combo {
            h.update(b"/");
            h.update(v.as_bytes());
        }
        h.update(b"/");
        h.update(kind.as_bytes());
        h.update(op.as_bytes());
        let bytes = h.finalize();
        let cents =
            u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or_default()) % 50_000;
        let factor = COST_TYPES
            .iter()
            .find(|(t, _)| t == &kind)
            .map_or(0.1, |f| f.1);
        (cents as f64 * factor).round() / 100.0
    }

    /// Rows `offset..offset + size` of the results (sorted, within `rowLimit`): only those
    /// rows are built; the others are ranked by their sort key alone.
    pub(crate) fn page(&self, seed: &str, offset: usize, size: usize) -> Vec<Map<String, Value>> {
        let periods = periods(self.start_ms, self.end_ms, self.interval);
        let combos = self
            .dimensions
            .iter()
            .fold(1usize, |n, d| n.saturating_mul(d.values.len()));
        let total = periods.len().saturating_mul(combos);
        let (by, desc) = self.sort.clone().unwrap_or_else(|| {
            let (kind, op) = self.measurements[0];
            (format!("{kind}_{op}"), true)
        });
        let measurement = self
            .measurements
            .iter()
            .find(|(kind, op)| by == format!("{kind}_{op}"));
        // For a sort by a dimension: each of its values' rank in alphabetical order.
        let dimension = self
            .dimensions
            .iter()
            .position(|d| d.column == by)
            .map(|d| {
                let values = &self.dimensions[d].values;
                let mut order: Vec<usize> = (0..values.len()).collect();
                order.sort_by(|&a, &b| values[a].cmp(&values[b]));
                let mut rank = vec![0usize; values.len()];
                for (r, i) in order.into_iter().enumerate() {
                    rank[i] = r;
                }
                (d, rank)
            });
        // (key, row index): the key ranks rows; ties keep the natural order.
        let mut ranked: Vec<(f64, usize)> = (0..total)
            .map(|row| {
                let (p, c) = (row / combos.max(1), row % combos.max(1));
                let key = match (measurement, &dimension) {
                    (Some((kind, op)), _) => {
                        Self::amount(seed, periods[p], &self.combo(c), kind, op)
                    }
                    (None, Some((d, rank))) => rank[self.indices(c)[*d]] as f64,
                    (None, None) => p as f64,
                };
                (key, row)
            })
            .collect();
        ranked.sort_by(|a, b| {
            let order = a.0.total_cmp(&b.0);
            (if desc { order.reverse() } else { order }).then(a.1.cmp(&b.1))
        });
        ranked.truncate(usize::try_from(self.row_limit).unwrap_or(usize::MAX));
        let end = offset.saturating_add(size).min(ranked.len());
        ranked
            .get(offset..end)
            .unwrap_or_default()
            .iter()
            .map(|&(_, row)| {
                let (p, c) = (row / combos.max(1), row % combos.max(1));
                let combo = self.combo(c);
                let mut out = Map::new();
                for (d, v) in self.dimensions.iter().zip(&combo) {
                    out.insert(d.column.clone(), json!(v));
                }
                out.insert(self.interval.into(), json!(periods[p].to_string()));
                for (kind, op) in &self.measurements {
                    let amount = Self::amount(seed, periods[p], &combo, kind, op);
                    let value = if matches!(*kind, "usageAmount" | "normalizedUsageAmount") {
                        json!({"amount": amount, "unit": "hours"})
                    } else {
                        json!({"amount": amount})
                    };
                    out.insert(format!("{kind}_{op}"), value);
                }
                out
            })
            .collect()
    }
}
