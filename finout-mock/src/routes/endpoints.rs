//! Endpoints (`/v1/endpoints`): an account's notification channels (email or Slack), kept in
//! the server's memory like virtual tags.

use axum::{Json, extract::State};
use finout_auth::{ErrorCode, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Mock,
    error::{Answer, Body, MockError},
    routes::tags::{author, js_date},
};

/// The most endpoints one account keeps.
pub(crate) const MAX_ENDPOINTS_PER_ACCOUNT: usize = 100;
/// The longest `name` and `configuration.to`, in bytes.
const MAX_NAME_LEN: usize = 256;
const MAX_TO_LEN: usize = 2048;

const WRITE_ENDPOINTS: &str = "fin.endpoints.write.endpoints";

pub(crate) async fn list(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    let endpoints = mock
        .inner
        .endpoints
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&principal.account_id())
        .cloned()
        .unwrap_or_default();
    Json(json!({"endpoints": endpoints, "requestId": uuid::Uuid::new_v4()}))
}

#[derive(Deserialize)]
pub(crate) struct NewEndpoint {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    configuration: Configuration,
}

#[derive(Deserialize)]
struct Configuration {
    to: String,
}

/// Create an email or Slack endpoint (Finout maps MS Teams channels itself: not creatable).
pub(crate) async fn create(
    State(mock): State<Mock>,
    principal: Principal,
    Body(new): Body<NewEndpoint>,
) -> Answer<Json<Value>> {
    if !principal.has_permission(WRITE_ENDPOINTS) {
        return Err(MockError::auth(ErrorCode::Forbidden));
    }
    let kind = new.kind.to_ascii_lowercase();
    let to = new.configuration.to.trim();
    match kind.as_str() {
        "email" if to.contains('@') && !to.contains(char::is_whitespace) => {}
        "email" => {
            return Err(MockError::invalid(
                "configuration.to must be an email address",
            ));
        }
        "slack" if to.starts_with("https://") => {}
        "slack" => {
            return Err(MockError::invalid(
                "configuration.to must be an https:// webhook",
            ));
        }
        _ => return Err(MockError::invalid("type must be email or slack")),
    }
    if new.name.trim().is_empty() || new.name.len() > MAX_NAME_LEN || to.len() > MAX_TO_LEN {
        return Err(MockError::invalid(format!(
            "name must be 1-{MAX_NAME_LEN} bytes and configuration.to at most {MAX_TO_LEN}"
        )));
    }
    let now = js_date(time::OffsetDateTime::now_utc());
    let endpoint = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "accountId": principal.account_id().to_string(),
        "type": kind,
        "name": new.name,
        "configuration": {"to": to},
        "to": to,
        "createdBy": author(&mock, &principal).await,
        "createdAt": now,
        "updatedAt": now,
    });
    let mut all = mock
        .inner
        .endpoints
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mine = all.entry(principal.account_id()).or_default();
    if mine.len() >= MAX_ENDPOINTS_PER_ACCOUNT {
        return Err(MockError::limit(format!(
            "an account keeps at most {MAX_ENDPOINTS_PER_ACCOUNT} endpoints"
        )));
    }
    mine.push(endpoint.clone());
    let mut answer = endpoint;
    answer["requestId"] = json!(uuid::Uuid::new_v4());
    Ok(Json(answer))
}
