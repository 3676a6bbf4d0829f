//! The body of `POST /v2/data/cost-usage/generate-query`, checked as Finout documents it
//! into a [`Query`] (`crate::query`: what it costs; `rows` makes its rows). Checking also
//! takes the query's snapshot of the account: its virtual tags and filters evaluated over
//! the range's cells (`crate::ledger`), and the mock's today.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::{
    error::{Answer, MockError},
    filters::{FilterObject, VIRTUAL_TAGS, check_filter, one_of, virtual_tags},
    fixtures,
    ledger::{DAY_MS, Days, Evaluator, Stop},
    query::{Dim, MAX_CANDIDATE_ROWS, MAX_WORK_UNITS, Query, ROW_WORK, Source, Values},
    state::tags::AccountTags,
};

/// Finout's V2 range limit: 60 days.
const MAX_RANGE_MS: i64 = 60 * DAY_MS;
/// 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;
const MAX_MEASUREMENTS: usize = 5;
const MAX_DIMENSIONS: usize = 20;
/// Finout's cap on the distinct virtual tags a query names, in dimensions and filters
/// together (the community description of V2).
const MAX_VIRTUAL_TAGS: usize = 3;
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

fn descending(direction: &str, field: &str) -> Answer<bool> {
    Ok(one_of(direction, &["ascending", "descending"], field)? == "descending")
}

impl Spec {
    /// Check every field; the first problem answers 400 naming it. Virtual tags (cost
    /// center `Virtual Tags`, key the tag's id) and filters are evaluated over the range
    /// with `tags`, the account's, within `budget` work units; `intern` answers the values
    /// of a tag as the query holds them (shared with other queries, see
    /// `crate::query::Queries`). Nothing after `today` has costs.
    pub(crate) fn check(
        &self,
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
        // Counted before any is evaluated.
        let mut named_tags: Vec<&str> = self
            .dimensions
            .iter()
            .filter(|d| d.cost_center.eq_ignore_ascii_case(VIRTUAL_TAGS))
            .map(|d| d.key.as_str())
            .collect();
        if let Some(filters) = &self.filters {
            virtual_tags(filters, &mut named_tags);
        }
        named_tags.sort_unstable();
        named_tags.dedup();
        if named_tags.len() > MAX_VIRTUAL_TAGS {
            return Err(MockError::invalid(format!(
                "dimensions: at most {MAX_VIRTUAL_TAGS} virtual tags across dimensions and \
                 filters, {} named",
                named_tags.len()
            ))
            .into());
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
