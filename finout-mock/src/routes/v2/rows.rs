//! The rows of a V2 cost-and-usage query: a pure function of the account and the query.
//! Ranking every candidate row is the costly part (one hash per row); it is done once per
//! query ([`rank`]) and each page is cut from that ranking ([`page`]), building only its own
//! rows.

use serde_json::{Map, Value, json};
use time::{Date, Duration, OffsetDateTime};

use super::spec::Query;
use crate::fixtures::COST_TYPES;

fn date(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).map_or(Date::MIN, OffsetDateTime::date)
}

/// The start of each day, week (Monday) or month the range touches.
pub(super) fn periods(start_ms: i64, end_ms: i64, interval: &str) -> Vec<Date> {
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

/// The rows' shared parts: periods and the number of value combinations.
struct Grid {
    periods: Vec<Date>,
    /// Each period's first hashed bytes: the seed and the period.
    prefixes: Vec<Vec<u8>>,
    combos: usize,
}

impl Grid {
    fn new(query: &Query, seed: &str) -> Self {
        let periods = periods(query.start_ms, query.end_ms, query.interval);
        let prefixes = periods
            .iter()
            .map(|p| [seed.as_bytes(), p.to_string().as_bytes()].concat())
            .collect();
        let combos = query
            .dimensions
            .iter()
            .fold(1usize, |n, d| n.saturating_mul(d.values.list.len()))
            .max(1);
        Grid {
            periods,
            prefixes,
            combos,
        }
    }

    fn total(&self) -> usize {
        self.periods.len().saturating_mul(self.combos)
    }

    /// The amount of `kind`/`op` in row `row`: a hash of the seed, the period, the row's
    /// values and the measurement, written into `buffer` (reused from row to row) and hashed
    /// at once, which is faster for short rows than a hasher fed piece by piece.
    fn amount(
        &self,
        query: &Query,
        row: usize,
        (kind, op): (&str, &str),
        buffer: &mut Vec<u8>,
    ) -> f64 {
        let (p, c) = (row / self.combos, row % self.combos);
        buffer.clear();
        buffer.extend_from_slice(&self.prefixes[p]);
        for_each_value(query, c, |_, v| {
            buffer.push(b'/');
            buffer.extend_from_slice(v.as_bytes());
        });
        buffer.push(b'/');
        buffer.extend_from_slice(kind.as_bytes());
        buffer.extend_from_slice(op.as_bytes());
        let bytes = blake3::hash(buffer);
        let cents =
            u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or_default()) % 50_000;
        let factor = COST_TYPES
            .iter()
            .find(|(t, _)| t == &kind)
            .map_or(0.1, |f| f.1);
        (cents as f64 * factor).round() / 100.0
    }
}

/// Call `f` with each dimension's index and value in combination `c` (mixed radix, the last
/// dimension fastest), in dimension order.
fn for_each_value<'q>(query: &'q Query, c: usize, mut f: impl FnMut(usize, &'q str)) {
    let mut divisor = query
        .dimensions
        .iter()
        .fold(1usize, |n, d| n.saturating_mul(d.values.list.len().max(1)));
    for (i, d) in query.dimensions.iter().enumerate() {
        let n = d.values.list.len().max(1);
        divisor /= n;
        let index = (c / divisor.max(1)) % n;
        f(i, d.values.list.get(index).map_or("", String::as_str));
    }
}

/// The index of dimension `d`'s value in combination `c`.
fn value_index(query: &Query, c: usize, d: usize) -> usize {
    let mut index = 0;
    let mut divisor = query
        .dimensions
        .iter()
        .fold(1usize, |n, d| n.saturating_mul(d.values.list.len().max(1)));
    for (i, dim) in query.dimensions.iter().enumerate() {
        let n = dim.values.list.len().max(1);
        divisor /= n;
        if i == d {
            index = (c / divisor.max(1)) % n;
        }
    }
    index
}

/// The results' rows in order (sorted, within `rowLimit`), by row index: the one costly
/// step, taken once per query.
pub(crate) fn rank(query: &Query, seed: &str) -> Vec<u32> {
    let grid = Grid::new(query, seed);
    let (by, desc) = query.sort.clone().unwrap_or_else(|| {
        let (kind, op) = query.measurements[0];
        (format!("{kind}_{op}"), true)
    });
    let measurement = query
        .measurements
        .iter()
        .find(|(kind, op)| by == format!("{kind}_{op}"));
    // For a sort by a dimension: each of its values' rank in alphabetical order.
    let dimension = query
        .dimensions
        .iter()
        .position(|d| d.column == by)
        .map(|d| {
            let values = &query.dimensions[d].values.list;
            let mut order: Vec<usize> = (0..values.len()).collect();
            order.sort_by(|&a, &b| values[a].cmp(&values[b]));
            let mut rank = vec![0usize; values.len()];
            for (r, i) in order.into_iter().enumerate() {
                rank[i] = r;
            }
            (d, rank)
        });
    // At most `MAX_CANDIDATE_ROWS` rows: an index fits in a u32.
    let total = grid.total().min(u32::MAX as usize);
    // (key, row index): the key ranks rows; ties keep the natural order.
    let mut buffer = Vec::new();
    let mut ranked: Vec<(f64, u32)> = (0..total)
        .map(|row| {
            let key = match (measurement, &dimension) {
                (Some((kind, op)), _) => grid.amount(query, row, (kind, op), &mut buffer),
                (None, Some((d, rank))) => rank
                    .get(value_index(query, row % grid.combos, *d))
                    .copied()
                    .unwrap_or(0) as f64,
                (None, None) => (row / grid.combos) as f64,
            };
            (key, row as u32)
        })
        .collect();
    ranked.sort_by(|a, b| {
        let order = a.0.total_cmp(&b.0);
        (if desc { order.reverse() } else { order }).then(a.1.cmp(&b.1))
    });
    ranked.truncate(usize::try_from(query.row_limit).unwrap_or(usize::MAX));
    ranked.into_iter().map(|(_, row)| row).collect()
}

/// The rows at `ranked` (a slice of [`rank`]'s answer), built.
pub(crate) fn page(query: &Query, seed: &str, ranked: &[u32]) -> Vec<Map<String, Value>> {
    let grid = Grid::new(query, seed);
    let mut buffer = Vec::new();
    ranked
        .iter()
        .map(|&row| {
            let row = row as usize;
            let (p, c) = (row / grid.combos, row % grid.combos);
            let mut out = Map::new();
            for_each_value(query, c, |d, v| {
                out.insert(query.dimensions[d].column.clone(), json!(v));
            });
            out.insert(query.interval.into(), json!(grid.periods[p].to_string()));
            for (kind, op) in &query.measurements {
                let amount = grid.amount(query, row, (kind, op), &mut buffer);
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
