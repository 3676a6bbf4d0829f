//! Deterministic fixture data: the same account always gets the same views, dimensions and
//! costs (the costs are the account's cost ledger, see the README's "The cost ledger").

use std::collections::HashSet;

use serde::Serialize;
use uuid::Uuid;

use finout_auth::{AccountId, model::DataAccess};

/// A Finout view (`{"name","id"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// The view's name.
    pub name: String,
    /// The view's id.
    pub id: String,
}

/// The fixture views: name, the vendor its costs are limited to (if any), and the key of the
/// dimension its costs are grouped by when a query names none.
const VIEWS: [(&str, Option<&str>, &str); 3] = [
    ("All cloud costs", None, "vendor"),
    ("AWS by service", Some("AWS"), "service"),
    ("Kubernetes by namespace", Some("Kubernetes"), "namespace"),
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
    dimension_index(name).map(|i| &DIMENSIONS[i])
}

/// The index in [`DIMENSIONS`] of the dimension named `name` (its key or display name, any
/// case).
pub(crate) fn dimension_index(name: &str) -> Option<usize> {
    DIMENSIONS
        .iter()
        .position(|d| d.key.eq_ignore_ascii_case(name) || d.display_name.eq_ignore_ascii_case(name))
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
    VIEWS
        .iter()
        .map(|(name, _, _)| View {
            name: (*name).to_owned(),
            id: stable_id(account, name).to_string(),
        })
        .collect()
}

/// What a view holds of the account's costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViewDefinition {
    /// The vendor its costs are limited to (`None`: all of the account's costs).
    pub(crate) vendor: Option<&'static str>,
    /// The dimension (an index of [`DIMENSIONS`]) its costs are grouped by by default.
    pub(crate) group: usize,
}

/// Each view id of `access` that is not one of `known`, with its index in `access`: the
/// one check of a user's data access against an account's views (the admin API's and a
/// seed's).
pub(crate) fn unknown_views<'a>(
    known: &HashSet<&str>,
    access: &'a DataAccess,
) -> Vec<(usize, &'a str)> {
    access
        .ids()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter(|(_, id)| !known.contains(id))
        .collect()
}

/// The definition of `account`'s view `view_id`: a fixture view's own, else (a seed's view)
/// all of the account's costs grouped by vendor.
pub(crate) fn view_definition(account: AccountId, view_id: &str) -> ViewDefinition {
    let key = |k: &str| dimension_index(k).unwrap_or(0);
    VIEWS
        .iter()
        .find(|(name, _, _)| stable_id(account, name).to_string() == view_id)
        .map_or(
            ViewDefinition {
                vendor: None,
                group: key("vendor"),
            },
            |(_, vendor, group)| ViewDefinition {
                vendor: *vendor,
                group: key(group),
            },
        )
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
