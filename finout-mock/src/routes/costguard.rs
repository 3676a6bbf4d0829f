//! CostGuard (`/v1/cost-guard/scans`, `/v1/cost-guard/scans-recommendations`): three scans
//! per account (Finout's example's), whose resources are parts of the [ledger](crate::ledger)'s
//! line items, so that a scan's figures agree with the costs every other API answers.
//!
//! Each scan last ran at the start of the mock's today and analysed the [`ANALYSIS_DAYS`]
//! days before it. A resource is a share of one kind of line item (`EC2 - Rightsizing`: each
//! AWS EC2 kind, whole; `VM - Rightsizing` and `Cloud SQL - Idle`: parts of the GCP kind);
//! its cost is that share of the item's net amortized cost over the analysis days, its
//! waste a stable part of its cost, its yearly savings the waste scaled to 365 days. Its
//! metadata are the item's dimensions (`vendor`, and AWS's `service`, `region`, `account`).
//! `filters` keep the resources whose item matches on an analysis day, as a V2 query's do
//! (virtual tags included); `groupBy` `{"costCenter", "key"}` groups them by that key's value
//! (`N/A` where the item has none), else all are in one group, `All`. Amounts are summed in
//! cents, so groups and totals add up exactly.

use axum::{Json, extract::State};
use finout_auth::{AccountId, Principal};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    error::{Answer, Body, MockError},
    filters::{FilterObject, check_filter},
    fixtures::{self, DIMENSIONS},
    ledger::{self, DAY_MS, Days, Evaluator, Ledger, Measure, Stop},
    mock::Mock,
};

/// How many days before its last run a scan analysed.
pub(crate) const ANALYSIS_DAYS: i64 = 3;

/// A fixture scan: its name, type, cost center, and the line items its resources are made
/// of.
struct Scan {
    name: &'static str,
    kind: &'static str,
    cost_center: &'static str,
    /// Resources: (the vendor's kinds with this service, or the vendor's one kind), and per
    /// kind how many resources, each this percentage of the item.
    service: Option<&'static str>,
    per_kind: u32,
    percent: i64,
}

const SCANS: [Scan; 3] = [
    Scan {
        name: "VM - Rightsizing",
        kind: "rightsizing",
        cost_center: "GCP",
        service: None,
        per_kind: 4,
        percent: 15,
    },
    Scan {
        name: "Cloud SQL - Idle",
        kind: "idle",
        cost_center: "GCP",
        service: None,
        per_kind: 2,
        percent: 10,
    },
    Scan {
        name: "EC2 - Rightsizing",
        kind: "rightsizing",
        cost_center: "AWS",
        service: Some("EC2"),
        per_kind: 1,
        percent: 100,
    },
];

/// A stable number in `0..modulo` for these words.
fn stable(words: &str, modulo: u64) -> u64 {
    let hash = blake3::hash(words.as_bytes());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or_default()) % modulo.max(1)
}

/// The start of the mock's today, when every scan last ran, in epoch milliseconds.
fn last_run(mock: &Mock) -> (i64, i64) {
    let today = ledger::day_of(mock.now());
    (today, today.saturating_mul(DAY_MS))
}

fn scans_of(account: AccountId, last_run_ms: i64) -> Vec<Value> {
    SCANS
        .iter()
        .map(|scan| {
            json!({
                "scanId": fixtures::stable_id(account, scan.name).to_string(),
                "scanName": scan.name,
                "scanLastRunTime": last_run_ms,
                "scanMetadata": {"type": scan.kind, "costCenter": scan.cost_center,
                                 "analysisDays": ANALYSIS_DAYS},
            })
        })
        .collect()
}

pub(crate) async fn scans(State(mock): State<Mock>, principal: Principal) -> Answer<Json<Value>> {
    super::require_all_data(&principal)?;
    let (_, last_run_ms) = last_run(&mock);
    Ok(Json(json!({
        "requestId": crate::request_id::current().as_str(),
        "scans": scans_of(principal.account_id(), last_run_ms),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recommendations {
    scan_id: String,
    /// V1's filter object (checked as a virtual-tag rule's), applied to the resources' line
    /// items.
    #[serde(default)]
    filters: Option<Map<String, Value>>,
    /// `{"costCenter", "key", ...}`: resources are grouped by the value of `key`.
    #[serde(default)]
    group_by: Option<Map<String, Value>>,
}

/// One resource of a scan, its amounts in cents.
struct Resource {
    id: String,
    kind: usize,
    cost: i64,
    waste: i64,
    savings: i64,
}

impl Resource {
    fn metadata(&self) -> Map<String, Value> {
        DIMENSIONS
            .iter()
            .enumerate()
            .filter_map(|(d, dim)| Some((dim.key.to_owned(), json!(ledger::value(self.kind, d)?))))
            .collect()
    }
}

/// The kinds of line item whose vendor is `vendor` (and service `service`, if given).
fn kinds_of(vendor: &str, service: Option<&str>) -> Vec<usize> {
    let dim = |key: &str| ledger::dimension("", key);
    let (Some(vendor_dim), Some(service_dim)) = (dim("vendor"), dim("service")) else {
        return Vec::new();
    };
    (0..ledger::kinds())
        .filter(|&k| {
            ledger::value(k, vendor_dim) == Some(vendor)
                && service.is_none_or(|s| ledger::value(k, service_dim) == Some(s))
        })
        .collect()
}

/// The resources of `scan` for the analysis days before `today`.
fn resources(scan: &Scan, account: AccountId, scan_id: &str, today: i64) -> Vec<Resource> {
    let ledger = Ledger::at(account.to_string(), today);
    let net = Measure::named("netAmortizedCost").unwrap_or(Measure::Usage);
    let slug = scan.name.to_lowercase().replace([' ', '-'], "");
    let mut out = Vec::new();
    for kind in kinds_of(scan.cost_center, scan.service) {
        // The item's net amortized cost over the analysis days, in ten-thousandths.
        let item_cost: i64 = (1..=ANALYSIS_DAYS)
            .filter_map(|back| ledger.item(kind, today - back))
            .map(|item| item.amount(net))
            .sum();
        for i in 0..scan.per_kind {
            let id = format!("{slug}-{}", out.len());
            let cost = item_cost * scan.percent / 100 / 100;
            let share = 10 + i64::try_from(stable(&format!("{scan_id}/{id}/{i}"), 51)).unwrap_or(0);
            let waste = cost * share / 100;
            let savings = waste * 365 / ANALYSIS_DAYS;
            out.push(Resource {
                id,
                kind,
                cost,
                waste,
                savings,
            });
        }
    }
    out
}

fn dollars(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

pub(crate) async fn recommendations(
    State(mock): State<Mock>,
    principal: Principal,
    Body(query): Body<Recommendations>,
) -> Answer<Json<Value>> {
    super::require_all_data(&principal)?;
    let account = principal.account_id();
    let (today, last_run_ms) = last_run(&mock);
    let scan = SCANS
        .iter()
        .find(|s| fixtures::stable_id(account, s.name).to_string() == query.scan_id)
        .ok_or_else(|| MockError::not_found("scan"))?;
    let group_key = match &query.group_by {
        None => None,
        Some(group) => Some(
            group
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| MockError::invalid("groupBy.key: expected a string"))?
                .to_owned(),
        ),
    };
    let mut resources = resources(scan, account, &query.scan_id, today);
    if let Some(filters) = query.filters {
        let filter = Value::Object(filters);
        check_filter(&filter, "filters", FilterObject::Rule)?;
        let days = Days {
            first: today - ANALYSIS_DAYS,
            count: ANALYSIS_DAYS as usize,
        };
        let matched = ledger::with_tags(&mock.inner.state, account, move |tags, budget| {
            let mut evaluator = Evaluator::new(tags, days, budget);
            evaluator.filter(&filter).map_err(Stop::from)
        })
        .await?;
        let k = ledger::kinds();
        resources.retain(|r| (0..days.count).any(|day| matched.contains(day * k + r.kind)));
    }
    let mut groups: Vec<(String, Vec<&Resource>)> = Vec::new();
    for resource in &resources {
        let group = match &group_key {
            None => "All".to_owned(),
            Some(key) => ledger::dimension("", key)
                .and_then(|d| ledger::value(resource.kind, d))
                .unwrap_or(ledger::NO_VALUE)
                .to_owned(),
        };
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(resource),
            None => groups.push((group, vec![resource])),
        }
    }
    let data: Vec<Value> = groups
        .iter()
        .map(|(group, members)| {
            let resources: Vec<Value> = members
                .iter()
                .map(|r| {
                    json!({
                        "resourceId": r.id,
                        "resourceMetadata": r.metadata(),
                        "resourceTotalWaste": dollars(r.waste),
                        "resourceYearlyPotentialSavings": dollars(r.savings),
                    })
                })
                .collect();
            json!({
                "group": group,
                "groupYearlyPotentialSavings": dollars(members.iter().map(|r| r.savings).sum()),
                "resources": resources,
            })
        })
        .collect();
    let total = |f: fn(&Resource) -> i64| dollars(resources.iter().map(f).sum());
    Ok(Json(json!({
        "requestId": crate::request_id::current().as_str(),
        "scanId": query.scan_id,
        "scanName": scan.name,
        "scanLastRunTime": last_run_ms,
        "scanTotalCost": total(|r| r.cost),
        "scanTotalWaste": total(|r| r.waste),
        "scanYearlyPotentialSavings": total(|r| r.savings),
        "data": data,
    })))
}
