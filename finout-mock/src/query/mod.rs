//! A V2 cost-and-usage query as checked (`routes::v2` checks the body of `generate-query`
//! into a [`Query`] and makes its rows): what its rows are made of, and what it costs — its
//! candidate rows and its work units. [`Queries`] holds every account's queries.

mod store;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use time::{Date, Duration, OffsetDateTime};

use crate::ledger::{CellSet, Days};

pub(crate) use store::Queries;

/// A checked query: what the rows are made of.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) interval: &'static str,
    pub(crate) measurements: Vec<(&'static str, &'static str)>,
    /// Each dimension: its column (`{costCenter}_{type}_{key}`, with the cost center as the
    /// client sent it: a client sending `""` reads `_billing_dimension_service`) and its
    /// values.
    pub(crate) dimensions: Vec<Dim>,
    /// Sort by (column, descending); `None`: the first measurement, descending.
    pub(crate) sort: Option<(String, bool)>,
    pub(crate) row_limit: u64,
    /// The days the range touches.
    pub(crate) days: Days,
    /// The last day with costs: the mock's today when the query was generated.
    pub(crate) today: i64,
    /// The cells (day x kind of line item) the filters keep; `None`: every cell.
    pub(crate) filter: Option<CellSet>,
}

#[derive(Debug, Clone)]
pub(crate) struct Dim {
    pub(crate) column: String,
    pub(crate) values: Arc<Values>,
    pub(crate) source: Source,
}

/// Where a dimension's value of a line item comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A fixture dimension (an index of `fixtures::DIMENSIONS`).
    Fixture(usize),
    /// A virtual tag: per cell of the range, the index of its value in the dimension's
    /// values.
    Tag(Arc<[u32]>),
}

/// The values of a dimension. A virtual tag's are shared by every query of the account that
/// names the same version of the tag ([`Queries`] interns them), never copied per query.
#[derive(Debug)]
pub(crate) struct Values {
    pub(crate) list: Vec<String>,
    /// The longest value, in bytes: what hashing a row costs per dimension at most.
    pub(crate) longest: usize,
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
pub(crate) const ROW_WORK: u64 = 64;
/// The most work units a query may take to rank: candidate rows x (`ROW_WORK` + the
/// longest value of each dimension). Past it, 400. An upper bound: the rows are sums of the
/// ledger's line items (at most 61 days x 31), so a query has at most that many rows
/// whatever its candidates, and ranking the costliest accepted query takes less than the
/// tens of milliseconds of one core SECURITY.md gives for it.
pub(crate) const MAX_WORK_UNITS: u64 = 32_000_000;

pub(crate) fn date(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).map_or(Date::MIN, OffsetDateTime::date)
}

pub(crate) fn start_of(d: Date, interval: &str) -> Date {
    match interval {
        "week" => d - Duration::days(i64::from(d.weekday().number_days_from_monday())),
        "month" => d.replace_day(1).unwrap_or(d),
        _ => d,
    }
}

/// The start of each day, week (Monday) or month the range touches.
pub(crate) fn periods(start_ms: i64, end_ms: i64, interval: &str) -> Vec<Date> {
    let (first, last) = (date(start_ms), date(end_ms));
    let mut out = Vec::new();
    let mut day = first;
    // At most 61 days: the range is checked.
    while day <= last {
        let period = start_of(day, interval);
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
    pub(crate) fn candidates(&self) -> u64 {
        let periods = periods(self.start_ms, self.end_ms, self.interval).len() as u64;
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
    pub(crate) fn row_bytes(&self) -> u64 {
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
