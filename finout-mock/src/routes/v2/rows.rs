//! The rows of a V2 cost-and-usage query: the account's cost ledger (`crate::ledger`) over the
//! query's range, kept by its filters and summed per period and value of each dimension.
//! Only groups that have line items are rows. Summing is cheap (at most 61 days x 31 line
//! items, whatever the dimensions); it is done once per query to rank the rows ([`rank`]),
//! and again for each page ([`page`]), which builds only its own rows.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use time::Date;

use crate::{
    ledger::{self, Ledger, Measure},
    query::{Query, Source, date, periods, start_of},
};

/// One measurement of a row: over its line items.
#[derive(Debug, Clone, Copy)]
struct Amounts {
    sum: i64,
    min: i64,
    max: i64,
    count: i64,
}

impl Amounts {
    fn add(&mut self, amount: i64) {
        if self.count == 0 {
            (self.min, self.max) = (amount, amount);
        } else {
            self.min = self.min.min(amount);
            self.max = self.max.max(amount);
        }
        self.sum += amount;
        self.count += 1;
    }

    /// The amount of operator `op`, in ten-thousandths.
    fn of(&self, op: &str) -> i64 {
        match op {
            "avg" if self.count > 0 => (self.sum as f64 / self.count as f64).round() as i64,
            "avg" => 0,
            "min" => self.min,
            "max" => self.max,
            _ => self.sum,
        }
    }
}

/// A row: its period, each dimension's value (an index of its labels) and its amounts.
struct Row {
    period: usize,
    labels: Vec<u32>,
    amounts: Vec<Amounts>,
}

/// The label of value `i` of the query's dimension `d`.
fn label(query: &Query, d: usize, i: u32) -> &str {
    let dim = &query.dimensions[d];
    match dim.source {
        Source::Fixture(f) => ledger::label(f, i as usize),
        Source::Tag(_) => dim.values.list.get(i as usize).map_or("", String::as_str),
    }
}

/// A query's periods and every row, summed from the ledger ([`sum`]).
pub(crate) struct Summed {
    periods: Vec<Date>,
    rows: Vec<Row>,
}

/// Every row, summed once for the ranking and the page a request needs.
pub(crate) fn sum(query: &Query, seed: &str) -> Summed {
    let (periods, rows) = rows(query, seed);
    Summed { periods, rows }
}

/// Every row, in a stable order (by period, then by the first line item of each group).
fn rows(query: &Query, seed: &str) -> (Vec<Date>, Vec<Row>) {
    let periods = periods(query.start_ms, query.end_ms, query.interval);
    let ledger = Ledger::at(seed.to_owned(), query.today);
    let measures: Vec<Measure> = query
        .measurements
        .iter()
        .map(|(kind, _)| Measure::named(kind).unwrap_or(Measure::Usage))
        .collect();
    let days = query.days;
    let kinds = ledger::kinds();
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<(usize, Vec<u32>), usize> = HashMap::new();
    let mut period = 0;
    for i in 0..days.until(ledger.today()) {
        let day = days.day(i);
        let start = start_of(date(day.saturating_mul(ledger::DAY_MS)), query.interval);
        while periods.get(period + 1).is_some_and(|p| *p <= start) {
            period += 1;
        }
        for kind in 0..kinds {
            let cell = i * kinds + kind;
            if query.filter.as_ref().is_some_and(|f| !f.contains(cell)) {
                continue;
            }
            let Some(item) = ledger.item(kind, day) else {
                continue;
            };
            let labels: Vec<u32> = query
                .dimensions
                .iter()
                .map(|d| match &d.source {
                    Source::Fixture(f) => ledger::value_index(kind, *f) as u32,
                    Source::Tag(cells) => cells.get(cell).copied().unwrap_or(0),
                })
                .collect();
            let at = *index
                .entry((period, labels))
                .or_insert_with_key(|(p, labels)| {
                    rows.push(Row {
                        period: *p,
                        labels: labels.clone(),
                        amounts: vec![
                            Amounts {
                                sum: 0,
                                min: 0,
                                max: 0,
                                count: 0
                            };
                            measures.len()
                        ],
                    });
                    rows.len() - 1
                });
            for (amounts, measure) in rows[at].amounts.iter_mut().zip(&measures) {
                amounts.add(item.amount(*measure));
            }
        }
    }
    (periods, rows)
}

/// How many rows the results hold: every group with line items, at most `rowLimit`.
pub(crate) fn count(query: &Query, seed: &str) -> usize {
    rows(query, seed)
        .1
        .len()
        .min(usize::try_from(query.row_limit).unwrap_or(usize::MAX))
}

/// The results' rows in order (sorted, within `rowLimit`), by row index: taken once per
/// query.
pub(crate) fn rank(query: &Query, summed: &Summed) -> Vec<u32> {
    let rows = &summed.rows;
    let (by, desc) = query.sort.clone().unwrap_or_else(|| {
        let (kind, op) = query.measurements[0];
        (format!("{kind}_{op}"), true)
    });
    let measurement = query
        .measurements
        .iter()
        .position(|(kind, op)| by == format!("{kind}_{op}"));
    let dimension = query.dimensions.iter().position(|d| d.column == by);
    let mut order: Vec<u32> = (0..rows.len())
        .filter_map(|r| u32::try_from(r).ok())
        .collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&rows[a as usize], &rows[b as usize]);
        let order = match (measurement, dimension) {
            (Some(m), _) => {
                let op = query.measurements[m].1;
                x.amounts[m].of(op).cmp(&y.amounts[m].of(op))
            }
            (None, Some(d)) => label(query, d, x.labels[d]).cmp(label(query, d, y.labels[d])),
            (None, None) => x.period.cmp(&y.period),
        };
        (if desc { order.reverse() } else { order }).then(a.cmp(&b))
    });
    order.truncate(usize::try_from(query.row_limit).unwrap_or(usize::MAX));
    order
}

/// The rows at `ranked` (a slice of [`rank`]'s answer), built.
pub(crate) fn page(query: &Query, summed: &Summed, ranked: &[u32]) -> Vec<Map<String, Value>> {
    let Summed { periods, rows } = summed;
    ranked
        .iter()
        .filter_map(|&r| rows.get(r as usize))
        .map(|row| {
            let mut out = Map::new();
            for (d, dim) in query.dimensions.iter().enumerate() {
                out.insert(dim.column.clone(), json!(label(query, d, row.labels[d])));
            }
            let period = periods
                .get(row.period)
                .map(Date::to_string)
                .unwrap_or_default();
            out.insert(query.interval.into(), json!(period));
            for ((kind, op), amounts) in query.measurements.iter().zip(&row.amounts) {
                let amount = amounts.of(op) as f64 / ledger::UNITS;
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
