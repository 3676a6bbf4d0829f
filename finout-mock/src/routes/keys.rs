//! `/v1/megabill/query-language/keys` and `/values/{costCenter}/{key}`: the dimensions the
//! fixtures know (`fixtures::DIMENSIONS`), which `query-by-view` also accepts in `groupBy`.

use axum::Json;
use finout_auth::Principal;
use serde_json::Value;

use crate::{
    error::{Answer, MockError, Path},
    fixtures::DIMENSIONS,
};

pub(crate) async fn keys(principal: Principal) -> Json<Value> {
    let keys: Vec<Value> = DIMENSIONS
        .iter()
        .map(|d| {
            serde_json::json!({"costCenter": d.cost_center, "key": d.key, "displayName": d.display_name})
        })
        .collect();
    Json(serde_json::json!({
        "keys": keys,
        "requestId": crate::request_id::current().as_str(),
        "accountId": principal.account_id().to_string(),
    }))
}

/// The values of one key. Finout's docs show no example answer: the mock answers in the
/// envelope of `keys` (`values`, `requestId`, `accountId`).
pub(crate) async fn values(
    principal: Principal,
    Path((cost_center, key)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    let dimension = DIMENSIONS
        .iter()
        .find(|d| d.cost_center.eq_ignore_ascii_case(&cost_center) && d.key == key)
        .ok_or_else(|| MockError::not_found("key"))?;
    Ok(Json(serde_json::json!({
        "values": dimension.values,
        "requestId": crate::request_id::current().as_str(),
        "accountId": principal.account_id().to_string(),
    })))
}
