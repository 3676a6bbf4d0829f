//! `/v1/view` and `/v1/cost/query-by-view`: the views a caller may see, and their costs.

use axum::{Json, extract::State};
use finout_auth::Principal;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    Mock,
    error::{Answer, Body, MockError},
    fixtures,
};

pub(crate) async fn views(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    Json(serde_json::json!({
        "data": mock.visible_views(&principal),
        "requestId": uuid::Uuid::new_v4(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryByView {
    view_id: String,
    date: DateRange,
    #[serde(default)]
    #[allow(dead_code)]
    cost_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateRange {
    unix_time_mill_seconds_start: i64,
    unix_time_mill_seconds_end: i64,
}

const MAX_RANGE_MS: i64 = 90 * 86_400_000;

pub(crate) async fn query_by_view(
    State(mock): State<Mock>,
    principal: Principal,
    Body(query): Body<QueryByView>,
) -> Answer<Json<Value>> {
    let (start, end) = (
        query.date.unix_time_mill_seconds_start,
        query.date.unix_time_mill_seconds_end,
    );
    if end < start {
        return Err(MockError::invalid("the range ends before it starts"));
    }
    if end - start > MAX_RANGE_MS {
        return Err(MockError::invalid("the range may not exceed 90 days"));
    }
    // Another account's view, or one outside the user's data access, does not exist for
    // this caller.
    if !mock
        .visible_views(&principal)
        .iter()
        .any(|v| v.id == query.view_id)
    {
        return Err(MockError::not_found("view"));
    }
    Ok(Json(serde_json::json!({
        "data": fixtures::costs(&query.view_id, start, end),
        "request": { "viewId": query.view_id },
        "requestId": uuid::Uuid::new_v4(),
    })))
}
