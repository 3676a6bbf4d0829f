//! CostGuard (`/v1/cost-guard/scans`, `/v1/cost-guard/scans-recommendations`): three fixed
//! scans per account and their resources, deterministic per account.

use axum::Json;
use finout_auth::Principal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    error::{Answer, Body, MockError},
    fixtures,
};

/// When every fixture scan last ran (2024-04-07, as in Finout's example).
const LAST_RUN_MS: i64 = 1_712_448_000_000;

/// The fixture scans: name, type, cost center, analysis days.
const SCANS: [(&str, &str, &str, u32); 3] = [
    ("VM - Rightsizing", "rightsizing", "GCP", 3),
    ("Cloud SQL - Idle", "idle", "GCP", 3),
    ("EC2 - Rightsizing", "rightsizing", "AWS", 3),
];

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];

/// A stable number in `0..modulo` for these words.
fn stable(words: &str, modulo: u64) -> u64 {
    let hash = blake3::hash(words.as_bytes());
    u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or_default()) % modulo.max(1)
}

fn scans_of(principal: &Principal) -> Vec<Value> {
    let account = principal.account_id();
    SCANS
        .iter()
        .map(|(name, kind, cost_center, days)| {
            json!({
                "scanId": fixtures::stable_id(account, name).to_string(),
                "scanName": name,
                "scanLastRunTime": LAST_RUN_MS,
                "scanMetadata": {"type": kind, "costCenter": cost_center, "analysisDays": days},
            })
        })
        .collect()
}

pub(crate) async fn scans(principal: Principal) -> Answer<Json<Value>> {
    super::require_all_data(&principal)?;
    Ok(Json(json!({
        "requestId": crate::request_id::current().as_str(),
        "scans": scans_of(&principal),
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recommendations {
    scan_id: String,
    /// A filter object: checked to be one, not applied (the mock's resources are few).
    #[serde(default)]
    #[allow(dead_code)]
    filters: Option<Map<String, Value>>,
    /// `{"costCenter", "key", ...}`: resources are grouped by the value of `key` in their
    /// metadata (`region` or `account`), else all in one group.
    #[serde(default)]
    group_by: Option<Map<String, Value>>,
}

pub(crate) async fn recommendations(
    principal: Principal,
    Body(query): Body<Recommendations>,
) -> Answer<Json<Value>> {
    super::require_all_data(&principal)?;
    let scan = scans_of(&principal)
        .into_iter()
        .find(|s| s["scanId"] == query.scan_id.as_str())
        .ok_or_else(|| MockError::not_found("scan"))?;
    let group_key =
        match &query.group_by {
            None => None,
            Some(group) => Some(group.get("key").and_then(Value::as_str).ok_or_else(|| {
                MockError::invalid("groupBy must be an object with a string `key`")
            })?),
        };
    let name = scan["scanName"].as_str().unwrap_or_default().to_owned();
    let resources: Vec<Value> = (0..6u64)
        .map(|i| {
            let id = format!("{}-{i}", name.to_lowercase().replace([' ', '-'], ""));
            let waste = stable(&format!("{}/{id}/waste", query.scan_id), 20_000) as f64 / 100.0;
            json!({
                "resourceId": id,
                "resourceMetadata": {
                    "region": REGIONS[(i % 3) as usize],
                    "account": if i % 2 == 0 { "production" } else { "staging" },
                },
                "resourceTotalWaste": waste,
                "resourceYearlyPotentialSavings": (waste * 365.0 / 3.0 * 100.0).round() / 100.0,
            })
        })
        .collect();
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for resource in resources {
        let group = group_key
            .and_then(|k| resource["resourceMetadata"][k].as_str())
            .unwrap_or("All")
            .to_owned();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(resource),
            None => groups.push((group, vec![resource])),
        }
    }
    let sum = |items: &[Value], field: &str| {
        (items.iter().filter_map(|r| r[field].as_f64()).sum::<f64>() * 100.0).round() / 100.0
    };
    let mut total_waste = 0.0;
    let mut total_savings = 0.0;
    let data: Vec<Value> = groups
        .iter()
        .map(|(group, members)| {
            total_waste += sum(members, "resourceTotalWaste");
            total_savings += sum(members, "resourceYearlyPotentialSavings");
            json!({
                "group": group,
                "groupYearlyPotentialSavings": sum(members, "resourceYearlyPotentialSavings"),
                "resources": members,
            })
        })
        .collect();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Ok(Json(json!({
        "requestId": crate::request_id::current().as_str(),
        "scanId": query.scan_id,
        "scanName": name,
        "scanLastRunTime": LAST_RUN_MS,
        "scanTotalCost": round(total_waste * 3.0),
        "scanTotalWaste": round(total_waste),
        "scanYearlyPotentialSavings": round(total_savings),
        "data": data,
    })))
}
