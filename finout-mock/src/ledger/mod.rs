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

mod cells;
mod evaluate;
mod filter;
mod items;

use crate::filters::VIRTUAL_TAGS;

pub(crate) use cells::{CellSet, TagValues};
pub(crate) use evaluate::{Evaluator, Stop, with_tags};
pub(crate) use items::{
    Days, Ledger, Measure, day_of, dimension, kinds, label, value, value_index,
};

pub(crate) const DAY_MS: i64 = 86_400_000;
/// Amounts are kept in ten-thousandths of a dollar (or of an hour).
pub(crate) const UNITS: f64 = 10_000.0;
/// How a dimension a line item does not have is answered.
pub(crate) const NO_VALUE: &str = "N/A";
/// How costs that no rule of a virtual tag (and no default) assigns are answered.
pub(crate) const UNTAGGED: &str = "Untagged";
/// What evaluating virtual tags for one request may take on an async worker, in work units
/// (about one a byte compared or a cell visited); past it the evaluation starts again on the
/// blocking pool.
const INLINE_EVALUATION_WORK: u64 = 1_000_000;
/// The most work units evaluating virtual tags for one request may take; past it, 400.
pub(crate) const MAX_EVALUATION_WORK: u64 = 32_000_000;
/// A cell no rule assigns a value.
const NONE: u32 = u32::MAX;
