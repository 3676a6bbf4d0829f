//! `/v1/megabill/query-language/keys`: the dimensions the fixtures know.

use axum::Json;
use finout_auth::Principal;
use serde_json::Value;

pub(crate) async fn keys(principal: Principal) -> Json<Value> {
    let keys: Vec<Value> = [
        ("AWS", "service", "Service"),
        ("AWS", "region", "Region"),
        ("AWS", "account", "Account"),
        ("Kubernetes", "namespace", "Namespace"),
        ("Kubernetes", "cluster", "Cluster"),
    ]
    .iter()
    .map(|(cost_center, key, display)| {
        serde_json::json!({"costCenter": cost_center, "key": key, "displayName": display})
    })
    .collect();
    Json(serde_json::json!({
        "keys": keys,
        "requestId": uuid::Uuid::new_v4(),
        "accountId": principal.account_id().to_string(),
    }))
}
