//! `/v2/virtual-tags` (Finout's V2 beta): the same virtual tags as `/v1/virtual-tags`, in
//! V2's shape (`{"requestId","data": ...}`, no `accountId`, ISO-8601 timestamps), with their
//! versions (`setAsLive=false` stages one) and their metadata (`mergeValuesAndMetadata`).

use std::{collections::HashSet, sync::Arc};

use axum::{Extension, Json, extract::State, response::Response};
use finout_auth::Principal;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    Mock,
    error::{Answer, Body, MockError, Params, Path},
    routes::{
        listing::{self, TagList},
        tags::{author, require_write},
    },
    server::tenants::Connection,
    state::{
        Change,
        tags::{
            MAX_IDS, MAX_METADATA_VALUES, StoredTag, Version, client_fields, is_value_or_key,
            metadata_body,
        },
    },
};

fn iso(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn ok(data: Value) -> Json<Value> {
    Json(json!({"requestId": crate::request_id::current().as_str(), "data": data}))
}

/// A tag in V2's shape.
fn v2(tag: &StoredTag) -> Value {
    let mut fields = tag.fields.clone();
    fields.insert("id".into(), json!(tag.id));
    fields.insert("createdBy".into(), json!(tag.created_by));
    fields.insert("createdAt".into(), json!(iso(tag.created_at)));
    fields.insert("updatedBy".into(), json!(tag.updated_by));
    fields.insert("updatedAt".into(), json!(iso(tag.updated_at)));
    Value::Object(fields)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SetAsLive {
    /// Default true; false stages the version without changing what the tag answers.
    #[serde(default)]
    set_as_live: Option<bool>,
}

/// The fields of a V2 tag body: what the client sets, then what the mock sets (a client
/// sending back a tag it read).
const V2_FIELDS: [&str; 9] = [
    "name",
    "rules",
    "defaultValue",
    "versionMetadata",
    "id",
    "createdBy",
    "createdAt",
    "updatedBy",
    "updatedAt",
];

/// A V2 tag body, checked as far as it can be without the tag it replaces.
struct V2Body {
    fields: Map<String, Value>,
    description: Option<String>,
    /// Top-level fields other than V2's, in order.
    unknown: Vec<String>,
}

impl V2Body {
    /// V2's body: `name`, `rules` and `defaultValue` required (`defaultValue` a string or a
    /// MegaBill key), `versionMetadata.changeDescription` optional, no other field. Replacing
    /// a tag, what the tag has is allowed too (see [`fits`](Self::fits)).
    fn parse(body: Value) -> Answer<Self> {
        let description = match body.get("versionMetadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => match m.get("changeDescription") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) => Some(d.clone()),
                Some(_) => {
                    return Err(MockError::invalid(
                        "versionMetadata.changeDescription must be a string",
                    ));
                }
            },
            Some(_) => return Err(MockError::invalid("versionMetadata must be an object")),
        };
        let unknown = body.as_object().map_or_else(Vec::new, |b| {
            b.keys()
                .filter(|k| !V2_FIELDS.contains(&k.as_str()))
                .cloned()
                .collect()
        });
        if body.as_object().is_some_and(|b| !b.contains_key("rules")) {
            return Err(MockError::invalid("a virtual tag needs `rules`"));
        }
        let fields = client_fields(
            body,
            false,
            is_value_or_key,
            "a string or {\"key\", \"costCenter\"}",
        )?;
        Ok(V2Body {
            fields,
            description,
            unknown,
        })
    }

    /// Refuse what V2 does not allow in a tag replacing `live` (the live fields of the tag of
    /// that id; none for a new tag): a field V2 does not know, unless the tag already has it,
    /// and a missing `defaultValue`, unless the tag has none. A tag written through V1 (which
    /// keeps other fields, and allows no `defaultValue`) so reads and writes back whole here.
    fn fits(&self, live: Option<&Map<String, Value>>) -> Answer<()> {
        let has = |field: &str| live.is_some_and(|l| l.contains_key(field));
        if let Some(unknown) = self.unknown.iter().find(|k| !has(k)) {
            return Err(MockError::invalid(format!(
                "unknown field {unknown:?}: a virtual tag has {}",
                V2_FIELDS[..4].join(", ")
            )));
        }
        if !self.fields.contains_key("defaultValue") && (live.is_none() || has("defaultValue")) {
            return Err(MockError::invalid("a virtual tag needs `defaultValue`"));
        }
        Ok(())
    }
}

/// Every tag, written out one by one as the client reads (`routes::listing`).
pub(crate) async fn list(
    State(mock): State<Mock>,
    principal: Principal,
    connection: Option<Extension<Arc<Connection>>>,
) -> Response {
    // The keys in the order `serde_json` writes a map: data, requestId.
    let list = TagList {
        prefix: "{\"data\":{\"virtualTags\":[".to_owned(),
        render: |tag, _| v2(tag),
        suffix: format!(
            "]}},\"requestId\":\"{}\"}}",
            crate::request_id::current().as_str()
        ),
    };
    listing::tags(&mock, principal.account_id(), connection.as_deref(), list)
}

pub(crate) async fn get(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    mock.inner
        .state
        .tag(principal.account_id(), &id, v2)
        .map(ok)
}

/// Create a tag. Its first version is live whatever `setAsLive` says (a tag without a live
/// version would answer nothing: a mock's choice, Finout's docs do not say).
pub(crate) async fn create(
    State(mock): State<Mock>,
    principal: Principal,
    Params(_live): Params<SetAsLive>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let body = V2Body::parse(body)?;
    body.fits(None)?;
    let tag = StoredTag::new(
        body.fields,
        &author(&mock, &principal).await?,
        mock.now(),
        body.description,
    );
    let tag = mock
        .inner
        .state
        .add_tag(principal.account_id(), tag)
        .await?;
    Ok(ok(v2(&tag)))
}

/// Save a new version of a tag: live (the default) or staged.
pub(crate) async fn update(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Params(live): Params<SetAsLive>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let body = V2Body::parse(body)?;
    let author = author(&mock, &principal).await?;
    let now = mock.now();
    let live = live.set_as_live.unwrap_or(true);
    let tag = mock
        .inner
        .state
        .update_tag(principal.account_id(), &id, |tag| {
            body.fits(Some(&tag.fields))?;
            tag.save(body.fields, &author, now, live, body.description);
            Ok(())
        })
        .await?;
    Ok(ok(v2(&tag)))
}

/// Delete a tag and its versions.
pub(crate) async fn delete(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let name = mock
        .inner
        .state
        .write(principal.account_id(), |tags, _| match tags.get(&id) {
            Some(tag) => Ok((Change::DeleteTag(id.clone()), tag.name().to_owned())),
            None => Err(MockError::not_found("virtual tag")),
        })
        .await?;
    Ok(ok(json!({"id": id, "name": name})))
}

/// The most versions one page lists, and the default.
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionQuery {
    #[serde(default)]
    from: Option<i64>,
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    page_size: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    sort_direction: Option<String>,
}

fn version_summary(v: &Version) -> Value {
    json!({
        "id": v.id,
        "createdBy": v.created_by,
        "createdAt": iso(v.created_at),
        "isLive": v.is_live,
        "changeDescription": v.change_description,
    })
}

/// A tag's versions, newest first by default, filtered by `from`/`to` (epoch ms of
/// `createdAt`), paginated by an opaque cursor (the offset into the filtered list).
pub(crate) async fn versions(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Params(q): Params<VersionQuery>,
) -> Answer<Json<Value>> {
    let page = q.page_size.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(MockError::invalid(format!("pageSize must be 1-{MAX_PAGE}")));
    }
    let descending = match q.sort_direction.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(MockError::invalid("sortDirection must be asc or desc")),
    };
    let in_range = |v: &&Version| {
        let ms = v.created_at.unix_timestamp_nanos() / 1_000_000;
        q.from.is_none_or(|from| ms >= i128::from(from))
            && q.to.is_none_or(|to| ms <= i128::from(to))
    };
    let mut listed: Vec<Value> = mock.inner.state.tag(principal.account_id(), &id, |t| {
        t.versions
            .iter()
            .filter(in_range)
            .map(version_summary)
            .collect()
    })?;
    if descending {
        listed.reverse();
    }
    // The cursor is the id of the last version answered: a version saved meanwhile does not
    // shift the pages.
    let offset = match q.cursor.as_deref() {
        None => 0,
        Some(c) => {
            listed.iter().position(|v| v["id"] == c).ok_or_else(|| {
                MockError::invalid("cursor: not a version of this list (it may have been dropped)")
            })? + 1
        }
    };
    let rest = listed.get(offset..).unwrap_or_default();
    let data: Vec<Value> = rest.iter().take(page).cloned().collect();
    let has_more = rest.len() > page;
    let next = has_more
        .then(|| data.last().map(|v| v["id"].clone()))
        .flatten();
    Ok(Json(json!({
        "requestId": crate::request_id::current().as_str(),
        "pagination": {"nextCursor": next, "hasMore": has_more},
        "data": data,
    })))
}

/// One version, with what it saved (`versionData`).
pub(crate) async fn version(
    State(mock): State<Mock>,
    principal: Principal,
    Path((tag, version)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    mock.inner
        .state
        .tags(principal.account_id(), |tags| {
            let v = tags.get(&tag)?.versions.iter().find(|v| v.id == version)?;
            let mut answer = version_summary(v);
            let mut data = v.fields.clone();
            data.remove("name");
            answer["versionData"] = Value::Object(data);
            Some(answer)
        })
        .map(ok)
        .ok_or_else(|| MockError::not_found("virtual tag version"))
}

pub(crate) async fn get_metadata(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    mock.inner
        .state
        .tag(
            principal.account_id(),
            &id,
            |t| json!({"metadata": t.metadata}),
        )
        .map(ok)
}

/// Set the metadata of the values in the body: each replaces that value's metadata, or
/// with `mergeValuesAndMetadata: true` merges into it (custom metadata by key, groups and
/// endpoints as sets). Values not in the body keep theirs.
pub(crate) async fn put_metadata(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let values = metadata_body(body, true)?;
    let tag = mock
        .inner
        .state
        .update_tag(principal.account_id(), &id, |tag| {
            for (value, entry) in values {
                let Value::Object(mut entry) = entry else {
                    continue;
                };
                let merge = entry.remove("mergeValuesAndMetadata") == Some(Value::Bool(true));
                match tag.metadata.get_mut(&value) {
                    Some(Value::Object(existing)) if merge => merge_into(existing, entry)?,
                    _ => {
                        tag.metadata.insert(value, Value::Object(entry));
                    }
                }
            }
            if tag.metadata.len() > MAX_METADATA_VALUES {
                return Err(MockError::invalid(format!(
                    "metadata: at most {MAX_METADATA_VALUES} values per tag"
                )));
            }
            Ok(())
        })
        .await?;
    Ok(ok(json!({"metadata": tag.metadata, "virtualTagId": id})))
}

/// Merge `new` into `existing`: custom metadata by key, `groups` and `endpoints` as sets
/// (at most [`MAX_IDS`] each).
fn merge_into(existing: &mut Map<String, Value>, new: Map<String, Value>) -> Answer<()> {
    for (field, value) in new {
        match (existing.get_mut(&field), value) {
            (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
            (Some(Value::Array(old)), Value::Array(new)) => {
                let mut seen: HashSet<String> = old
                    .iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect();
                for id in new {
                    if id.as_str().is_some_and(|s| seen.insert(s.to_owned())) {
                        old.push(id);
                    }
                }
                if old.len() > MAX_IDS {
                    return Err(MockError::invalid(format!(
                        "metadata: {field} would hold more than {MAX_IDS} ids"
                    )));
                }
            }
            (_, value) => {
                existing.insert(field, value);
            }
        }
    }
    Ok(())
}
