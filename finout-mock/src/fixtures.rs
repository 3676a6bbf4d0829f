//! Deterministic fixture data: the same account always gets the same views and costs.

use serde::Serialize;
use uuid::Uuid;

use finout_auth::AccountId;

/// A Finout view (`{"name","id"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// The view's name.
    pub name: String,
    /// The view's id.
    pub id: String,
}

const VIEW_NAMES: [&str; 3] = [
    "All cloud costs",
    "AWS by service",
    "Kubernetes by namespace",
];
/// A dimension the fixtures know: what `/v1/megabill/query-language/keys` lists, what
/// `/values/{costCenter}/{key}` answers, and what `query-by-view` accepts in `groupBy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimension {
    /// The cost center (`AWS`, `Kubernetes`, `Global`).
    pub cost_center: &'static str,
    /// The key.
    pub key: &'static str,
    /// Its display name.
    pub display_name: &'static str,
    /// The values costs are split by.
    pub values: &'static [&'static str],
    /// The key types (Finout's V2 query language) the key supports.
    pub types: &'static [&'static str],
}

/// Every dimension of the fixtures; the first is how a view's costs are grouped by default.
pub const DIMENSIONS: [Dimension; 6] = [
    Dimension {
        cost_center: "AWS",
        key: "service",
        display_name: "Service",
        values: &["EC2", "S3", "RDS", "EKS"],
        types: &["billing_dimension"],
    },
    Dimension {
        cost_center: "AWS",
        key: "region",
        display_name: "Region",
        values: &["us-east-1", "eu-west-1", "ap-southeast-2"],
        types: &["billing_dimension"],
    },
    Dimension {
        cost_center: "AWS",
        key: "account",
        display_name: "Account",
        values: &["production", "staging"],
        types: &["billing_dimension"],
    },
    Dimension {
        cost_center: "Kubernetes",
        key: "namespace",
        display_name: "Namespace",
        values: &["payments", "search", "platform"],
        types: &["kubernetes_resource"],
    },
    Dimension {
        cost_center: "Kubernetes",
        key: "cluster",
        display_name: "Cluster",
        values: &["prod-eu", "prod-us"],
        types: &["kubernetes_resource"],
    },
    Dimension {
        cost_center: "Global",
        key: "vendor",
        display_name: "Vendor",
        values: &["AWS", "GCP", "Kubernetes"],
        types: &["billing_dimension"],
    },
];

/// The dimension named `name` (its key or display name, any case).
pub fn dimension(name: &str) -> Option<&'static Dimension> {
    DIMENSIONS
        .iter()
        .find(|d| d.key.eq_ignore_ascii_case(name) || d.display_name.eq_ignore_ascii_case(name))
}

/// Finout's cost types, and the factor each applies to the fixtures' list costs (a mock's
/// choice: deterministic, and different enough to tell apart).
pub const COST_TYPES: [(&str, f64); 8] = [
    ("netAmortizedCost", 1.0),
    ("blendedCost", 1.04),
    ("unblendedCost", 1.06),
    ("amortizedCost", 1.02),
    ("netUnblendedCost", 0.98),
    ("listCost", 1.2),
    ("fairShareCost", 0.97),
    ("netFairShareCost", 0.95),
];

/// A UUID derived from the account and a name: the same inputs, the same id.
pub(crate) fn stable_id(account: AccountId, name: &str) -> Uuid {
    let hash = blake3::hash(format!("{}/{name}", account.0).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_bytes()[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The default views of an account: stable ids derived from the account id.
pub fn default_views(account: AccountId) -> Vec<View> {
    VIEW_NAMES
        .iter()
        .map(|name| View {
            name: (*name).to_owned(),
            id: stable_id(account, name).to_string(),
        })
        .collect()
}

/// One point of a cost series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostPoint {
    /// Start of the day, in Unix milliseconds.
    pub time: i64,
    /// The cost that day, in dollars.
    pub cost: f64,
}

/// A named cost series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostSeries {
    /// The series' name (a service, or `Total`).
    pub name: String,
    /// One point per day.
    pub data: Vec<CostPoint>,
}

const DAY_MS: i64 = 86_400_000;

/// The most days one answer covers (a 90-day range touches at most 91 days).
const MAX_DAYS: i64 = 92;

/// Daily costs of a view between two instants (ms), one series per value of `group` plus a
/// `Total` series, scaled by `factor` (see [`COST_TYPES`]): a pure function of (view id,
/// value, day), so every call answers the same. Empty when the range is reversed or longer
/// than `MAX_DAYS` (callers validate ranges; this never overflows nor allocates without
/// bound whatever it is given).
pub fn costs(
    view_id: &str,
    start_ms: i64,
    end_ms: i64,
    group: &Dimension,
    factor: f64,
) -> Vec<CostSeries> {
    let first_day = start_ms.div_euclid(DAY_MS);
    let last_day = end_ms.div_euclid(DAY_MS);
    let days: Vec<(i64, i64)> = match last_day.checked_sub(first_day) {
        Some(n) if (0..MAX_DAYS).contains(&n) => (first_day..=last_day)
            .filter_map(|day| Some((day, day.checked_mul(DAY_MS)?)))
            .collect(),
        _ => Vec::new(),
    };
    let cost = |value: &str, day: i64| {
        let h = blake3::hash(format!("{view_id}/{}/{value}/{day}", group.key).as_bytes());
        let cents = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default()) % 50_000;
        (cents as f64 * factor).round() / 100.0
    };
    let mut series: Vec<CostSeries> = group
        .values
        .iter()
        .map(|value| CostSeries {
            name: (*value).to_owned(),
            data: days
                .iter()
                .map(|&(day, time)| CostPoint {
                    time,
                    cost: cost(value, day),
                })
                .collect(),
        })
        .collect();
    let total = CostSeries {
        name: "Total".to_owned(),
        data: days
            .iter()
            .enumerate()
            .map(|(i, &(_, time))| CostPoint {
                time,
                cost: (series.iter().map(|s| s.data[i].cost).sum::<f64>() * 100.0).round() / 100.0,
            })
            .collect(),
    };
    series.push(total);
    series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_accounts_views_are_the_ones_the_readme_shows() {
        let account: AccountId = "f1a70c4e-0000-4000-8000-000000000001".parse().unwrap();
        let views = default_views(account);
        assert_eq!(views[0].id, "8f99c32e-b56d-498b-8f33-66f28aab2d5b");
        assert_eq!(views, default_views(account), "stable");
        assert_ne!(views[0].id, default_views(AccountId::new_v4())[0].id);
    }

    #[test]
    fn costs_are_total_on_any_range() {
        let group = &DIMENSIONS[0];
        for (start, end) in [
            (i64::MIN, 0),
            (i64::MIN, i64::MIN + 1),
            (i64::MAX - 1, i64::MAX),
            (0, i64::MAX),
            (10 * DAY_MS, 0),
        ] {
            let series = costs("v", start, end, group, 1.0);
            assert!(series.iter().all(|s| s.data.len() <= 2), "{start}..{end}");
        }
        let day = costs("v", 0, DAY_MS - 1, group, 1.0);
        assert_eq!(day.len(), group.values.len() + 1);
        assert_eq!(day[0].data.len(), 1);
    }
}
