//! `/v1/virtual-tags`: the account's virtual tags (`state::tags`) in V1's shape: the tag's
//! fields at the top level with `accountId`, timestamps as JavaScript `Date` strings.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use finout_auth::{AccountId, ErrorCode, Principal};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{
    error::{Answer, Body, MockError, Path},
    mock::Mock,
    routes::listing::{self, TagList},
    server::tenants::Connection,
    state::{
        Change,
        tags::{StoredTag, client_fields, is_value_or_key, metadata_body},
    },
};

pub(crate) const WRITE_TAGS: &str = "fin.virtualtags.write.tags";

pub(crate) fn require_write(principal: &Principal) -> Answer<()> {
    if principal.has_permission(WRITE_TAGS) {
        Ok(())
    } else {
        Err(MockError::auth(ErrorCode::Forbidden))
    }
}

/// Who wrote a document (`createdBy`, `updatedBy`), as Finout records it: an email. A
/// personal token's user's; for an API token, that of the user who created it (its
/// lineage), or [`api_token_email`] when no user did (a seed, the CLI) or that user is gone.
pub(crate) async fn author(mock: &Mock, principal: &Principal) -> Answer<String> {
    let store = mock.inner.admin.store();
    let account = principal.account_id();
    let user = match principal.user_id() {
        Some(user) => Some(user),
        None => store
            .find_token(principal.client_id())
            .await
            .map_err(unavailable)?
            .and_then(|found| found.record.created_by),
    };
    if let Some(user) = user
        && let Some(user) = store.get_user(account, user).await.map_err(unavailable)?
    {
        return Ok(user.email);
    }
    Ok(api_token_email(account))
}

/// The stand-in author of an API token no user created: `api-token@<account>.finout-mock.local`
/// (a valid address, so that clients validating `createdBy` as an email accept it).
pub(crate) fn api_token_email(account: AccountId) -> String {
    format!("api-token@{account}.finout-mock.local")
}

fn unavailable(e: finout_auth::StoreError) -> MockError {
    tracing::warn!(target: "finout_mock", error = %e, "cannot read who wrote a document");
    MockError::auth(ErrorCode::AuthUnavailable)
}

/// Finout's timestamp format for virtual tags (a JavaScript `Date` string, in UTC).
pub(crate) fn js_date(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day] [year] [hour]:[minute]:[second] GMT+0000 (Greenwich Mean Time)"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// A tag in V1's shape: its fields, `id`, `accountId`, who wrote it and when.
fn v1(tag: &StoredTag, account: &str) -> Map<String, Value> {
    let mut fields = tag.fields.clone();
    fields.insert("id".into(), Value::String(tag.id.clone()));
    fields.insert("accountId".into(), Value::String(account.to_owned()));
    fields.insert("createdBy".into(), Value::String(tag.created_by.clone()));
    fields.insert("createdAt".into(), Value::String(js_date(tag.created_at)));
    fields.insert("updatedBy".into(), Value::String(tag.updated_by.clone()));
    fields.insert("updatedAt".into(), Value::String(js_date(tag.updated_at)));
    fields
}

/// A tag as answered: V1's shape and the request's id, as every Finout answer carries.
fn answer(tag: &StoredTag, principal: &Principal) -> Json<Value> {
    let mut fields = v1(tag, &principal.account_id().to_string());
    fields.insert(
        "requestId".into(),
        Value::String(crate::request_id::current().to_string()),
    );
    Json(Value::Object(fields))
}

/// Every tag, written out one by one as the client reads (`routes::listing`).
pub(crate) async fn list(
    State(mock): State<Mock>,
    principal: Principal,
    connection: Option<Extension<Arc<Connection>>>,
) -> Response {
    let account = principal.account_id();
    // The keys in the order `serde_json` writes a map: accountId, requestId, virtualTags.
    let prefix = format!(
        "{{\"accountId\":\"{account}\",\"requestId\":\"{}\",\"virtualTags\":[",
        crate::request_id::current()
    );
    let render = |tag: &StoredTag, account: &str| Value::Object(v1(tag, account));
    let list = TagList {
        prefix,
        render,
        suffix: "]}".into(),
    };
    listing::tags(&mock, account, connection.as_deref(), list)
}

/// Finout's v1 documents `defaultValue` as a string (e.g. "Untagged"); a MegaBill key
/// `{"key","costCenter"}` (what V2 also allows, so a tag written there reads and writes back
/// here) is accepted too. Absent is allowed, `null` or any other type is not.
fn v1_fields(body: Value) -> Answer<Map<String, Value>> {
    client_fields(
        body,
        false,
        is_value_or_key,
        "a string or {\"key\", \"costCenter\"}",
    )
}

pub(crate) async fn create(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<Value>,
) -> Answer<impl IntoResponse> {
    require_write(&principal)?;
    let fields = v1_fields(body)?;
    let tag = StoredTag::new(fields, &author(&mock, &principal).await?, mock.now(), None);
    let tag = mock
        .inner
        .state
        .add_tag(principal.account_id(), tag)
        .await?;
    Ok((StatusCode::CREATED, answer(&tag, &principal)))
}

pub(crate) async fn get(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    mock.inner
        .state
        .tag(principal.account_id(), &id, |t| answer(t, &principal))
}

/// Replace a tag's fields (a new live version), as every write in Finout does.
pub(crate) async fn replace(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let fields = v1_fields(body)?;
    let author = author(&mock, &principal).await?;
    let now = mock.now();
    let tag = mock
        .inner
        .state
        .update_tag(principal.account_id(), &id, |tag| {
            tag.save(fields, &author, now, true, None);
            Ok(())
        })
        .await?;
    Ok(answer(&tag, &principal))
}

pub(crate) async fn delete(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    require_write(&principal)?;
    mock.inner
        .state
        .write(principal.account_id(), |tags, _| match tags.get(&id) {
            Some(_) => Ok((Change::DeleteTag(id.clone()), StatusCode::NO_CONTENT)),
            None => Err(MockError::not_found("virtual tag")),
        })
        .await
}

pub(crate) async fn get_metadata(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    let metadata = mock
        .inner
        .state
        .tag(principal.account_id(), &id, |t| t.metadata.clone())?;
    Ok(Json(serde_json::json!({
        "requestId": crate::request_id::current().as_str(),
        "metadata": metadata,
    })))
}

/// Replace a tag's metadata (Finout's v1: "overrides the current data").
pub(crate) async fn put_metadata(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let metadata = metadata_body(body, false)?;
    let tag = mock
        .inner
        .state
        .update_tag(principal.account_id(), &id, |tag| {
            tag.metadata = metadata;
            Ok(())
        })
        .await?;
    Ok(Json(serde_json::json!({
        "requestId": crate::request_id::current().as_str(),
        "metadata": tag.metadata,
    })))
}
