//! `/v2/query-language/keys` and `/values/{costCenter}/{key}` (also served under
//! `/v2/megabill/query-language/`, the path Finout's rate-limit table names): the fixtures'
//! dimensions (`fixtures::DIMENSIONS`) and the account's virtual tags (cost center `Virtual
//! Tags`, type `virtual_tag`, key the tag's id, values what its rules and default may assign:
//! their strings, every value of a MegaBill key they assign (`{"key", "costCenter"}`), and
//! the values of a virtual tag they assign, as the [ledger](crate::ledger) evaluates them).

use axum::{Json, extract::State};
use finout_auth::Principal;
use serde::Deserialize;
use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

use crate::{
    error::{Answer, MockError, Params, Path},
    filters::VIRTUAL_TAGS,
    fixtures::DIMENSIONS,
    ledger,
    mock::Mock,
    state::tags::AccountTags,
};

pub(crate) async fn keys(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    let mut keys: Vec<Value> = DIMENSIONS
        .iter()
        .map(|d| {
            json!({"costCenter": d.cost_center, "key": d.key, "displayName": d.display_name,
                   "types": d.types})
        })
        .collect();
    mock.inner.state.tags(principal.account_id(), |tags| {
        keys.extend(tags.values().map(|t| {
            json!({"costCenter": VIRTUAL_TAGS, "key": t.id, "displayName": t.name(),
                   "types": ["virtual_tag"]})
        }));
    });
    Json(json!({"requestId": crate::request_id::current().as_str(), "data": {"keys": keys}}))
}

#[derive(Deserialize)]
pub(crate) struct KeyType {
    /// Required by Finout when a key supports several types; checked when given.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

pub(crate) async fn values(
    State(mock): State<Mock>,
    principal: Principal,
    Path((cost_center, key)): Path<(String, String)>,
    Params(KeyType { kind }): Params<KeyType>,
) -> Answer<Json<Value>> {
    let (types, values): (Vec<&str>, Vec<String>) =
        if cost_center.eq_ignore_ascii_case(VIRTUAL_TAGS) {
            let values = mock
                .inner
                .state
                .tags(principal.account_id(), |tags| {
                    tags.get(&key).map(|_| may_assign(tags, &key))
                })
                .ok_or_else(|| MockError::not_found("key"))?;
            (vec!["virtual_tag"], values)
        } else {
            let d = DIMENSIONS
                .iter()
                .find(|d| d.cost_center.eq_ignore_ascii_case(&cost_center) && d.key == key)
                .ok_or_else(|| MockError::not_found("key"))?;
            (
                d.types.to_vec(),
                d.values.iter().map(|v| (*v).to_owned()).collect(),
            )
        };
    if let Some(kind) = kind
        && !types.contains(&kind.as_str())
    {
        return Err(MockError::invalid(format!(
            "type: this key supports {}",
            types.join(", ")
        )));
    }
    Ok(Json(
        json!({"requestId": crate::request_id::current().as_str(), "data": {"values": values}}),
    ))
}

/// Every value the tag `id` may assign (sorted): its rules' and default's strings, every
/// value of a MegaBill key they assign, and what a virtual tag they assign may assign. Each
/// tag is visited once (a tag reached again adds nothing, as the ledger reads it absent), so
/// the work is bounded by the account's tags, which are capped.
fn may_assign(tags: &AccountTags, id: &str) -> Vec<String> {
    let mut values = BTreeSet::new();
    let mut visited = HashSet::new();
    let mut pending = vec![id.to_owned()];
    while let Some(id) = pending.pop() {
        let Some(tag) = tags.get(&id) else { continue };
        if !visited.insert(id) {
            continue;
        }
        let rules = tag.fields.get("rules").and_then(Value::as_array);
        let targets = rules
            .into_iter()
            .flatten()
            .filter_map(|rule| rule.get("to"))
            .chain(tag.fields.get("defaultValue"));
        for to in targets {
            match to {
                Value::String(s) => {
                    values.insert(s.clone());
                }
                Value::Object(key) => {
                    let text = |field: &str| key.get(field).and_then(Value::as_str).unwrap_or("");
                    if text("costCenter").eq_ignore_ascii_case(VIRTUAL_TAGS) {
                        pending.push(text("key").to_owned());
                    } else if let Some(dim) = ledger::dimension(text("costCenter"), text("key")) {
                        values.extend(DIMENSIONS[dim].values.iter().map(|v| (*v).to_owned()));
                    }
                }
                _ => {}
            }
        }
    }
    values.into_iter().collect()
}
