//! `/v1/virtual-tags`: kept in the server's memory, per account.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use finout_auth::{AccountId, ErrorCode, Principal};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{
    Mock,
    error::{Answer, Body, MockError},
};

const WRITE_TAGS: &str = "fin.virtualtags.write.tags";

/// The most virtual tags one account keeps.
pub(crate) const MAX_TAGS_PER_ACCOUNT: usize = 500;
/// The most bytes of virtual tags (as JSON) one account keeps.
pub(crate) const MAX_TAG_BYTES_PER_ACCOUNT: usize = 16 * 1024 * 1024;

/// One account's virtual tags, and their size as JSON.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountTags {
    tags: BTreeMap<String, (Value, usize)>,
    /// Each tag's metadata (by tag id), counted in `bytes` too.
    metadata: BTreeMap<String, (Value, usize)>,
    bytes: usize,
}

impl AccountTags {
    fn values(&self) -> impl Iterator<Item = &Value> {
        self.tags.values().map(|(tag, _)| tag)
    }

    fn get(&self, id: &str) -> Option<&Value> {
        self.tags.get(id).map(|(tag, _)| tag)
    }

    /// Keep `tag` under `id` (replacing what was there) if the caps allow it.
    fn put(&mut self, id: &str, tag: Value) -> Answer<()> {
        let size = serde_json::to_vec(&tag).map_or(usize::MAX, |bytes| bytes.len());
        let replaced = self.tags.get(id).map_or(0, |(_, size)| *size);
        if !self.tags.contains_key(id) && self.tags.len() >= MAX_TAGS_PER_ACCOUNT {
            return Err(MockError::limit(format!(
                "an account keeps at most {MAX_TAGS_PER_ACCOUNT} virtual tags"
            )));
        }
        self.resize(replaced, size)?;
        self.tags.insert(id.to_owned(), (tag, size));
        Ok(())
    }

    /// Account for `replaced` bytes becoming `size`, within the account's byte cap.
    fn resize(&mut self, replaced: usize, size: usize) -> Answer<()> {
        let bytes = self.bytes - replaced;
        if bytes.saturating_add(size) > MAX_TAG_BYTES_PER_ACCOUNT {
            return Err(MockError::limit(format!(
                "an account keeps at most {MAX_TAG_BYTES_PER_ACCOUNT} bytes of virtual tags and metadata"
            )));
        }
        self.bytes = bytes + size;
        Ok(())
    }

    fn remove(&mut self, id: &str) -> Option<Value> {
        let (tag, size) = self.tags.remove(id)?;
        self.bytes -= size;
        if let Some((_, size)) = self.metadata.remove(id) {
            self.bytes -= size;
        }
        Some(tag)
    }

    /// Replace tag `id`'s metadata, within the account's byte cap.
    fn put_metadata(&mut self, id: &str, metadata: Value) -> Answer<()> {
        if !self.tags.contains_key(id) {
            return Err(MockError::not_found("virtual tag"));
        }
        let size = serde_json::to_vec(&metadata).map_or(usize::MAX, |bytes| bytes.len());
        let replaced = self.metadata.get(id).map_or(0, |(_, size)| *size);
        self.resize(replaced, size)?;
        self.metadata.insert(id.to_owned(), (metadata, size));
        Ok(())
    }
}

fn require_write(principal: &Principal) -> Answer<()> {
    if principal.has_permission(WRITE_TAGS) {
        Ok(())
    } else {
        Err(MockError::auth(ErrorCode::Forbidden))
    }
}

fn with_tags<T>(mock: &Mock, account: AccountId, f: impl FnOnce(&mut AccountTags) -> T) -> T {
    let mut tags = mock.inner.tags.lock().unwrap_or_else(|e| e.into_inner());
    f(tags.entry(account).or_default())
}

pub(crate) async fn list(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    let account = principal.account_id();
    let tags: Vec<Value> = with_tags(&mock, account, |tags| tags.values().cloned().collect());
    Json(serde_json::json!({
        "accountId": account.to_string(),
        "requestId": uuid::Uuid::new_v4(),
        "virtualTags": tags,
    }))
}

/// Who wrote a tag, as Finout records it: the user's email, or an API token's client id.
pub(crate) async fn author(mock: &Mock, principal: &Principal) -> String {
    if let Some(user) = principal.user_id() {
        if let Ok(Some(user)) = mock
            .inner
            .admin
            .store()
            .get_user(principal.account_id(), user)
            .await
        {
            return user.email;
        }
    }
    principal.client_id().to_string()
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

/// A tag as answered: its fields and the request's id, as every Finout answer carries.
fn answer(mut tag: Value) -> Json<Value> {
    if let Value::Object(fields) = &mut tag {
        fields.insert(
            "requestId".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
    }
    Json(tag)
}

/// A rule as Finout's v1 documents it: an object whose `to` is the value it assigns (a
/// string, or a MegaBill key `{"key","costCenter"}`) and whose `filters`, if any, are an
/// object (a condition, or `AND`/`OR` of conditions).
fn check_rule(rule: &Value) -> Result<(), &'static str> {
    let Value::Object(rule) = rule else {
        return Err("a rule is a JSON object");
    };
    match rule.get("to") {
        Some(Value::String(_)) => {}
        Some(Value::Object(to))
            if to.get("key").is_some_and(Value::is_string)
                && to.get("costCenter").is_some_and(Value::is_string) => {}
        _ => return Err("`to` must be a string or {\"key\", \"costCenter\"}"),
    }
    if rule.get("filters").is_some_and(|f| !f.is_object()) {
        return Err("`filters` must be an object");
    }
    Ok(())
}

/// A tag as stored: the client's `name`, `rules` and `defaultValue` (other fields are
/// kept as given), then `id`, `accountId` and the `created*`/`updated*` fields set by the
/// mock, as Finout does. `previous` is the tag being replaced, if any.
fn stamp(
    body: Value,
    id: &str,
    account: AccountId,
    author: &str,
    previous: Option<&Value>,
) -> Answer<Value> {
    let Value::Object(mut fields) = body else {
        return Err(MockError::invalid("a virtual tag is a JSON object"));
    };
    if !fields.get("name").is_some_and(Value::is_string) {
        return Err(MockError::invalid("a virtual tag needs a string `name`"));
    }
    // A client PUTting back a whole tag it read sends the old answer's request id too.
    fields.remove("requestId");
    match fields.get("rules") {
        None => {
            fields.insert("rules".into(), Value::Array(Vec::new()));
        }
        Some(Value::Array(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                check_rule(rule).map_err(|why| MockError::invalid(format!("rules[{i}]: {why}")))?;
            }
        }
        Some(_) => return Err(MockError::invalid("`rules` must be an array")),
    }
    // Finout's v1 documents `defaultValue` as a string (e.g. "Untagged"); absent is allowed,
    // `null` or any other type is not.
    if fields.get("defaultValue").is_some_and(|v| !v.is_string()) {
        return Err(MockError::invalid("`defaultValue` must be a string"));
    }
    let now = Value::String(js_date(OffsetDateTime::now_utc()));
    let author = Value::String(author.to_owned());
    let (created_by, created_at) = match previous {
        Some(p) => (p["createdBy"].clone(), p["createdAt"].clone()),
        None => (author.clone(), now.clone()),
    };
    fields.insert("id".into(), Value::String(id.to_owned()));
    fields.insert("accountId".into(), Value::String(account.to_string()));
    fields.insert("createdBy".into(), created_by);
    fields.insert("createdAt".into(), created_at);
    fields.insert("updatedBy".into(), author);
    fields.insert("updatedAt".into(), now);
    Ok(Value::Object(fields))
}

pub(crate) async fn create(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<Value>,
) -> Answer<impl IntoResponse> {
    require_write(&principal)?;
    let account = principal.account_id();
    let id = uuid::Uuid::new_v4().to_string();
    let tag = stamp(body, &id, account, &author(&mock, &principal).await, None)?;
    with_tags(&mock, account, |tags| tags.put(&id, tag.clone()))?;
    Ok((StatusCode::CREATED, answer(tag)))
}

pub(crate) async fn get(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    with_tags(&mock, principal.account_id(), |tags| tags.get(&id).cloned())
        .map(answer)
        .ok_or_else(|| MockError::not_found("virtual tag"))
}

pub(crate) async fn replace(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let account = principal.account_id();
    let author = author(&mock, &principal).await;
    with_tags(&mock, account, |tags| {
        let existing = tags
            .get(&id)
            .ok_or_else(|| MockError::not_found("virtual tag"))?;
        let tag = stamp(body, &id, account, &author, Some(existing))?;
        tags.put(&id, tag.clone())?;
        Ok(answer(tag))
    })
}

pub(crate) async fn delete(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    require_write(&principal)?;
    with_tags(&mock, principal.account_id(), |tags| tags.remove(&id))
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| MockError::not_found("virtual tag"))
}

/// Check a metadata body as Finout's v1 documents it: an object keyed by virtual-tag value
/// (no dots), each value an object of `customMetadata` (an object), `groups` and `endpoints`
/// (arrays of ids); nothing else.
fn check_metadata(body: &Value) -> Answer<()> {
    let Value::Object(values) = body else {
        return Err(MockError::invalid(
            "metadata is an object keyed by virtual-tag value",
        ));
    };
    for (value, entry) in values {
        let bad = |why: &str| Err(MockError::invalid(format!("metadata[{value:?}]: {why}")));
        if value.is_empty() || value.contains('.') {
            return bad("a virtual-tag value must be non-empty and without dots");
        }
        let Value::Object(fields) = entry else {
            return bad("must be an object");
        };
        for (field, v) in fields {
            let ok = match field.as_str() {
                "customMetadata" => v.is_object(),
                "groups" | "endpoints" => v
                    .as_array()
                    .is_some_and(|ids| ids.iter().all(Value::is_string)),
                _ => return bad(&format!("unknown field {field:?}")),
            };
            if !ok {
                return bad(&format!("{field} has the wrong type"));
            }
        }
    }
    Ok(())
}

pub(crate) async fn get_metadata(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    let metadata = with_tags(&mock, principal.account_id(), |tags| {
        tags.get(&id).map(|_| {
            tags.metadata
                .get(&id)
                .map_or(serde_json::json!({}), |(m, _)| m.clone())
        })
    })
    .ok_or_else(|| MockError::not_found("virtual tag"))?;
    Ok(Json(serde_json::json!({
        "requestId": uuid::Uuid::new_v4(),
        "metadata": metadata,
    })))
}

/// Replace a tag's metadata (Finout: "overrides the current data").
pub(crate) async fn put_metadata(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    check_metadata(&body)?;
    with_tags(&mock, principal.account_id(), |tags| {
        tags.put_metadata(&id, body.clone())
    })?;
    Ok(Json(serde_json::json!({
        "requestId": uuid::Uuid::new_v4(),
        "metadata": body,
    })))
}
