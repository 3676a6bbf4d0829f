//! The line items: the kinds of cost an account has, each day's amounts of each kind
//! ([`Ledger`]), and the days a range touches ([`Days`]).

use std::sync::LazyLock;

use finout_auth::AccountId;
use time::OffsetDateTime;

use super::{DAY_MS, NO_VALUE};
use crate::fixtures::{COST_TYPES, DIMENSIONS};

/// A kind of line item: the index of its value in each dimension's values, if it has one.
#[derive(Debug, Clone, Copy)]
struct Kind {
    values: [Option<u8>; DIMENSIONS.len()],
    /// Its daily net amortized cost is below this many cents.
    scale: u64,
}

static KINDS: LazyLock<Vec<Kind>> = LazyLock::new(|| {
    let dim = |key: &str| crate::fixtures::dimension_index(key).unwrap_or(0);
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
    t.unix_timestamp().div_euclid(DAY_MS / 1_000)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
