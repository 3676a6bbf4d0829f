//! Endpoints (`/v1/endpoints`): an account's notification channels (email or Slack), kept
//! with the account's virtual tags (`state`).

use axum::{Json, extract::State};
use finout_auth::{ErrorCode, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{Answer, Body, MockError},
    mock::Mock,
    routes::tags::{author, js_date},
    state::{Change, check_endpoints},
};

/// The longest `name` and `configuration.to`, in bytes.
const MAX_NAME_LEN: usize = 256;
const MAX_TO_LEN: usize = 2048;

const WRITE_ENDPOINTS: &str = "fin.endpoints.write.endpoints";

pub(crate) async fn list(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    let endpoints = mock.inner.state.endpoints(principal.account_id());
    Json(json!({"endpoints": endpoints, "requestId": crate::request_id::current().as_str()}))
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

/// Create an email or Slack endpoint (Finout maps MS Teams channels itself: not creatable);
/// answered as `{"endpoint": {...}, "requestId"}`.
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
    let now = js_date(mock.now());
    let endpoint = json!({
        // Time-ordered, so a restart lists them in the order they were created.
        "id": uuid::Uuid::now_v7().to_string(),
        "accountId": principal.account_id().to_string(),
        "type": kind,
        "name": new.name,
        "configuration": {"to": to},
        "to": to,
        "createdBy": author(&mock, &principal).await?,
        "createdAt": now,
        "updatedAt": now,
    });
    let endpoint = mock
        .inner
        .state
        .write(principal.account_id(), |_, endpoints| {
            check_endpoints(endpoints)?;
            Ok((Change::AddEndpoint(endpoint.clone()), endpoint))
        })
        .await?;
    // `{"endpoint": {...}, "requestId"}`: Finout's page lists the fields, not whether they
    // are wrapped; the community OpenAPI description (and a client generated from it) has
    // them under `endpoint`.
    Ok(Json(
        json!({"endpoint": endpoint, "requestId": crate::request_id::current().as_str()}),
    ))
}
