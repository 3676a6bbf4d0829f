//! Virtual tags as the mock keeps them: the client's fields of the live version, who wrote
//! them and when, their versions (Finout's V2 "version history") and their metadata (per tag
//! value). One set per account, answered in V1's shape by `routes::tags` and in V2's by
//! `routes::v2::tags`.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::{
    error::{Answer, MockError},
    filters::{FilterObject, check_filter},
};

/// The most virtual tags one account keeps.
pub(crate) const MAX_TAGS_PER_ACCOUNT: usize = 500;
/// The most bytes of virtual tags (as JSON, with their versions and metadata) one account
/// keeps.
pub(crate) const MAX_TAG_BYTES_PER_ACCOUNT: usize = 16 * 1024 * 1024;
/// The most values with metadata per tag, and ids per `groups` or `endpoints` list.
pub(crate) const MAX_METADATA_VALUES: usize = 1_000;
pub(crate) const MAX_IDS: usize = 1_000;
/// The most rules per tag (Finout's V2: 1,000).
pub(crate) const MAX_RULES: usize = 1_000;
/// The most versions kept per tag (Finout: "up to 100"); past it, the oldest that is not
/// live is dropped.
pub(crate) const MAX_VERSIONS: usize = 100;

/// One version of a tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Version {
    pub(crate) id: String,
    pub(crate) created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
    pub(crate) is_live: bool,
    pub(crate) change_description: Option<String>,
    /// The client's fields of this version.
    pub(crate) fields: Map<String, Value>,
}

/// A virtual tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredTag {
    pub(crate) id: String,
    /// The client's fields of the live version: `name`, `rules`, `defaultValue` and any
    /// other it sent.
    pub(crate) fields: Map<String, Value>,
    pub(crate) created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) updated_at: OffsetDateTime,
    /// Oldest first.
    pub(crate) versions: Vec<Version>,
    /// Per tag value: `{customMetadata, groups, endpoints}`.
    #[serde(default)]
    pub(crate) metadata: Map<String, Value>,
}

impl StoredTag {
    /// A new tag whose first version is live.
    pub(crate) fn new(
        fields: Map<String, Value>,
        author: &str,
        now: OffsetDateTime,
        change_description: Option<String>,
    ) -> Self {
        let mut tag = StoredTag {
            id: uuid::Uuid::new_v4().to_string(),
            fields: Map::new(),
            created_by: author.to_owned(),
            created_at: now,
            updated_by: author.to_owned(),
            updated_at: now,
            versions: Vec::new(),
            metadata: Map::new(),
        };
        tag.save(fields, author, now, true, change_description);
        tag
    }

    /// Save `fields` as a new version, live or staged.
    pub(crate) fn save(
        &mut self,
        fields: Map<String, Value>,
        author: &str,
        now: OffsetDateTime,
        live: bool,
        change_description: Option<String>,
    ) {
        if live {
            for v in &mut self.versions {
                v.is_live = false;
            }
            self.fields = fields.clone();
            self.updated_by = author.to_owned();
            self.updated_at = now;
        }
        self.versions.push(Version {
            id: uuid::Uuid::new_v4().to_string(),
            created_by: author.to_owned(),
            created_at: now,
            is_live: live,
            change_description,
            fields,
        });
        while self.versions.len() > MAX_VERSIONS {
            match self.versions.iter().position(|v| !v.is_live) {
                Some(oldest) => self.versions.remove(oldest),
                None => break,
            };
        }
    }

    /// What the tag assigns: its rules' string `to` values and its string default, sorted.
    pub(crate) fn assigned_values(&self) -> Vec<String> {
        let mut values: Vec<String> = self
            .fields
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("to")?.as_str().map(str::to_owned))
            .chain(
                self.fields
                    .get("defaultValue")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            )
            .collect();
        values.sort();
        values.dedup();
        values
    }

    pub(crate) fn name(&self) -> &str {
        self.fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn to_json(&self) -> Answer<String> {
        serde_json::to_string(self).map_err(|e| MockError::invalid(format!("virtual tag: {e}")))
    }
}

/// One account's virtual tags, and their size as JSON. Each tag is shared, so a copy of the
/// set (a reader's snapshot, or a writer's while one is read) copies at most 500 pointers.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountTags {
    tags: BTreeMap<String, (Arc<StoredTag>, usize)>,
    bytes: usize,
}

impl AccountTags {
    pub(crate) fn values(&self) -> impl Iterator<Item = &StoredTag> {
        self.tags.values().map(|(tag, _)| &**tag)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&StoredTag> {
        self.tags.get(id).map(|(tag, _)| &**tag)
    }

    /// Every tag, shared (a list answer writes them out one by one), and the bytes they take
    /// as JSON with their versions: the most a list answer holds in memory.
    pub(crate) fn shared(&self) -> (Vec<Arc<StoredTag>>, usize) {
        let tags = self.tags.values().map(|(tag, _)| tag.clone()).collect();
        (tags, self.bytes)
    }

    /// Make `tag` (new, or replacing the tag of its id) fit the caps, dropping its oldest
    /// staged versions if it takes that (as Finout deletes the oldest automatically), and
    /// answer it as JSON; refuse it if it cannot fit.
    pub(crate) fn fit(&self, tag: &mut StoredTag) -> Answer<String> {
        let replaced = self.tags.get(&tag.id).map(|(_, size)| *size);
        if replaced.is_none() && self.tags.len() >= MAX_TAGS_PER_ACCOUNT {
            return Err(MockError::limit(format!(
                "an account keeps at most {MAX_TAGS_PER_ACCOUNT} virtual tags"
            )));
        }
        // Saturating: an account loaded from a database may already hold more than the cap
        // (written under a larger one), which leaves no room rather than wrapping around.
        let kept = self.bytes.saturating_sub(replaced.unwrap_or(0));
        let room = MAX_TAG_BYTES_PER_ACCOUNT.saturating_sub(kept);
        let too_big = || {
            MockError::limit(format!(
                "an account keeps at most {MAX_TAG_BYTES_PER_ACCOUNT} bytes of virtual tags, \
                 their versions and metadata"
            ))
        };
        let mut json = tag.to_json()?;
        if json.len() > room {
            let mut excess = json.len() - room;
            while excess > 0 {
                let oldest = tag.versions.iter().position(|v| !v.is_live);
                let Some(oldest) = oldest else {
                    return Err(too_big());
                };
                let dropped = tag.versions.remove(oldest);
                let size = serde_json::to_vec(&dropped).map_or(0, |v| v.len());
                excess = excess.saturating_sub(size);
            }
            json = tag.to_json()?;
            if json.len() > room {
                return Err(too_big());
            }
        }
        Ok(json)
    }

    /// Keep `tag` (made to fit by [`fit`](Self::fit)), `size` bytes as JSON, replacing the
    /// tag of its id, which is answered.
    pub(crate) fn put(&mut self, tag: Arc<StoredTag>, size: usize) -> Option<Arc<StoredTag>> {
        let replaced = self.tags.insert(tag.id.clone(), (tag, size));
        if let Some((_, old)) = &replaced {
            self.bytes = self.bytes.saturating_sub(*old);
        }
        self.bytes = self.bytes.saturating_add(size);
        replaced.map(|(tag, _)| tag)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<StoredTag>> {
        let (tag, size) = self.tags.remove(id)?;
        self.bytes = self.bytes.saturating_sub(size);
        Some(tag)
    }
}

/// A rule as Finout documents it: an object whose `to` is the value it assigns (a string,
/// or a MegaBill key `{"key","costCenter"}`), whose `filters`, if any, are an object (a
/// condition, or `AND`/`OR` of conditions), and whose `timeframe`, if any (V2), is
/// `{"from": ms, "to"?: ms}`.
pub(crate) fn check_rule(rule: &Value) -> Result<(), &'static str> {
    let Value::Object(rule) = rule else {
        return Err("a rule is a JSON object");
    };
    if !rule.get("to").is_some_and(is_value_or_key) {
        return Err("`to` must be a string or {\"key\", \"costCenter\"}");
    }
    if rule.get("filters").is_some_and(|f| !f.is_object()) {
        return Err("`filters` must be an object");
    }
    match rule.get("timeframe") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(t))
            if t.get("from").is_some_and(Value::is_i64)
                && t.get("to").is_none_or(|to| to.is_null() || to.is_i64()) =>
        {
            Ok(())
        }
        Some(_) => Err("`timeframe` must be {\"from\": ms, \"to\"?: ms}"),
    }
}

/// A tag value: a string, or a MegaBill key `{"key","costCenter"}`.
pub(crate) fn is_value_or_key(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Object(to) => {
            to.get("key").is_some_and(Value::is_string)
                && to.get("costCenter").is_some_and(Value::is_string)
        }
        _ => false,
    }
}

/// The client's fields of a tag body: a string `name`, `rules` each checked by
/// [`check_rule`] and its `filters` as a rule's filter object ([`FilterObject::Rule`]: what
/// is kept and answered back is a filter, never whatever was sent) (absent: none, unless
/// `required`), and `defaultValue` passing
/// `default_ok` (absent allowed unless `required`). `requestId` and the fields the mock
/// sets are dropped (a client PUTting back a whole tag it read sends them too).
pub(crate) fn client_fields(
    body: Value,
    required: bool,
    default_ok: fn(&Value) -> bool,
    default_rule: &str,
) -> Answer<Map<String, Value>> {
    let Value::Object(mut fields) = body else {
        return Err(MockError::invalid(
            "the body: a virtual tag is a JSON object",
        ));
    };
    for set_by_mock in [
        "requestId",
        "id",
        "accountId",
        "createdBy",
        "createdAt",
        "updatedBy",
        "updatedAt",
        "versionMetadata",
    ] {
        fields.remove(set_by_mock);
    }
    if !fields.get("name").is_some_and(Value::is_string) {
        return Err(MockError::invalid("a virtual tag needs a string `name`"));
    }
    match fields.get("rules") {
        None if required => return Err(MockError::invalid("a virtual tag needs `rules`")),
        None => {
            fields.insert("rules".into(), Value::Array(Vec::new()));
        }
        Some(Value::Array(rules)) if rules.len() > MAX_RULES => {
            return Err(MockError::invalid(format!("`rules`: at most {MAX_RULES}")));
        }
        Some(Value::Array(rules)) => {
            for (i, rule) in rules.iter().enumerate() {
                check_rule(rule).map_err(|why| MockError::invalid(format!("rules[{i}]: {why}")))?;
                if let Some(filter) = rule.get("filters") {
                    let path = format!("rules[{i}].filters");
                    check_filter(filter, &path, FilterObject::Rule)?;
                }
            }
        }
        Some(_) => return Err(MockError::invalid("`rules` must be an array")),
    }
    match fields.get("defaultValue") {
        None if required => Err(MockError::invalid("a virtual tag needs `defaultValue`")),
        Some(v) if !default_ok(v) => Err(MockError::invalid(format!(
            "`defaultValue` must be {default_rule}"
        ))),
        _ => Ok(fields),
    }
}

/// Check one value's metadata: an object of `customMetadata` (an object of strings),
/// `groups` and `endpoints` (arrays of ids), and, if `merge_allowed` (V2),
/// `mergeValuesAndMetadata`.
pub(crate) fn check_value_metadata(value: &str, entry: &Value, merge_allowed: bool) -> Answer<()> {
    let bad = |why: &str| Err(MockError::invalid(format!("metadata[{value:?}]: {why}")));
    if value.is_empty() || value.contains('.') {
        return bad("a virtual-tag value must be non-empty and without dots");
    }
    let Value::Object(fields) = entry else {
        return bad("must be an object");
    };
    for (field, v) in fields {
        let (ok, expected) = match field.as_str() {
            // Text values, as Finout's examples show them (`{"owner": "Dave"}`) and the
            // community OpenAPI descriptions of V1 and V2 type them.
            "customMetadata" => (
                v.as_object()
                    .is_some_and(|m| m.values().all(Value::is_string)),
                "an object of strings".to_owned(),
            ),
            "groups" | "endpoints" => (
                v.as_array()
                    .is_some_and(|ids| ids.len() <= MAX_IDS && ids.iter().all(Value::is_string)),
                format!("an array of at most {MAX_IDS} string ids"),
            ),
            "mergeValuesAndMetadata" if merge_allowed => (v.is_boolean(), "a boolean".to_owned()),
            _ => return bad(&format!("unknown field {field:?}")),
        };
        if !ok {
            return bad(&format!("{field}: expected {expected}"));
        }
    }
    Ok(())
}

/// A metadata body: an object keyed by tag value.
pub(crate) fn metadata_body(body: Value, merge_allowed: bool) -> Answer<Map<String, Value>> {
    let Value::Object(values) = body else {
        return Err(MockError::invalid(
            "metadata is an object keyed by virtual-tag value",
        ));
    };
    if values.len() > MAX_METADATA_VALUES {
        return Err(MockError::invalid(format!(
            "metadata: at most {MAX_METADATA_VALUES} values"
        )));
    }
    for (value, entry) in &values {
        check_value_metadata(value, entry, merge_allowed)?;
    }
    Ok(values)
}
