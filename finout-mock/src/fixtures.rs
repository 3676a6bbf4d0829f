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
const SERVICES: [&str; 4] = ["EC2", "S3", "RDS", "EKS"];

/// A UUID derived from the account and a name: the same inputs, the same id.
fn stable_id(account: AccountId, name: &str) -> Uuid {
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

/// Daily costs of a view between two instants (ms), per service plus a `Total` series: a
/// pure function of (view id, service, day), so every call answers the same.
pub fn costs(view_id: &str, start_ms: i64, end_ms: i64) -> Vec<CostSeries> {
    let first_day = start_ms.div_euclid(DAY_MS);
    let last_day = end_ms.div_euclid(DAY_MS);
    let days: Vec<i64> = (first_day..=last_day).collect();
    let cost = |service: &str, day: i64| {
        let h = blake3::hash(format!("{view_id}/{service}/{day}").as_bytes());
        let cents = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default()) % 50_000;
        cents as f64 / 100.0
    };
    let mut series: Vec<CostSeries> = SERVICES
        .iter()
        .map(|service| CostSeries {
            name: (*service).to_owned(),
            data: days
                .iter()
                .map(|&day| CostPoint {
                    time: day * DAY_MS,
                    cost: cost(service, day),
                })
                .collect(),
        })
        .collect();
    let total = CostSeries {
        name: "Total".to_owned(),
        data: days
            .iter()
            .enumerate()
            .map(|(i, &day)| CostPoint {
                time: day * DAY_MS,
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
}
