//! Finout's filter objects, checked before they are kept or evaluated (by
//! [`ledger`](crate::ledger)): V2's query filters (FO2), and V1's (FO1), which virtual-tag
//! rules and CostGuard take. A problem answers 400 naming the filter's JSON path.

use serde_json::Value;

use crate::error::{Answer, MockError};

/// The cost center of virtual tags in filters and dimensions.
pub(crate) const VIRTUAL_TAGS: &str = "Virtual Tags";
/// Finout's V2 cap on the conditions of a query's filter.
const MAX_FILTER_CONDITIONS: usize = 30;
const FILTER_OPERATORS: [&str; 8] = [
    "oneOf",
    "notOneOf",
    "is",
    "notIs",
    "contains",
    "notContains",
    "exists",
    "notExists",
];

/// `value` if it is one of `allowed`; else 400 naming `field` and what it may be.
pub(crate) fn one_of(value: &str, allowed: &[&'static str], field: &str) -> Answer<&'static str> {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .ok_or_else(|| {
            MockError::invalid(format!(
                "{field}: {value:?} is not one of {}",
                allowed.join(", ")
            ))
        })
}

/// Which of Finout's filter objects a filter is checked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterObject {
    /// V2's (FO2), as Cost & Usage queries take it: a condition has a string `type` and a
    /// `value` array, and a filter at most 30 conditions.
    V2Query,
    /// A virtual tag rule's (V1 and V2 alike, so that a tag written through one reads and
    /// writes back through the other), V1's filter object (FO1): a condition needs no `type`
    /// (V1's has none), its `value` is a string or an array of strings, and its other fields
    /// (`displayName`, a `type` sent anyway) are strings; an `AND`/`OR` object has no other
    /// field; `{}` is the empty filter, which takes every line item (as `{"AND": []}`). No
    /// cap on conditions (Finout documents V2's 30 for queries only).
    Rule,
}

/// Check a filter (`path` names it in a 400): `AND`/`OR` of filters, nested to any depth
/// (16 here), or a condition `{costCenter, key, operator, value}` with one of the eight
/// operators, `value` needed unless the operator is `exists` or `notExists`.
pub(crate) fn check_filter(filter: &Value, path: &str, object: FilterObject) -> Answer<()> {
    conditions(filter, path, 0, object).map(|_| ())
}

/// Count a filter's conditions, checking each (`AND`/`OR` nest to any depth).
fn conditions(filter: &Value, path: &str, depth: usize, object: FilterObject) -> Answer<usize> {
    let v1 = object == FilterObject::Rule;
    let bad = |why: String| Err(MockError::invalid(format!("{path}: {why}")));
    let Value::Object(f) = filter else {
        return bad("a filter is an object".into());
    };
    if v1 && f.is_empty() {
        return Ok(0);
    }
    if depth > 16 {
        return bad("nested too deeply".into());
    }
    for group in ["AND", "OR"] {
        if let Some(list) = f.get(group) {
            let Value::Array(list) = list else {
                return bad(format!("{group} must be an array"));
            };
            if v1 && f.len() > 1 {
                return bad(format!("an object with {group} has no other field"));
            }
            let mut n = 0usize;
            for (i, c) in list.iter().enumerate() {
                n += conditions(c, &format!("{path}.{group}[{i}]"), depth + 1, object)?;
                if !v1 && n > MAX_FILTER_CONDITIONS {
                    return bad(format!("at most {MAX_FILTER_CONDITIONS} conditions"));
                }
            }
            return Ok(n);
        }
    }
    let required: &[&str] = if v1 {
        &["costCenter", "key", "operator"]
    } else {
        &["costCenter", "key", "type", "operator"]
    };
    for field in required {
        if !f.get(*field).is_some_and(Value::is_string) {
            return bad(format!("a condition needs a string {field}"));
        }
    }
    if v1 && let Some((field, _)) = f.iter().find(|(k, v)| *k != "value" && !v.is_string()) {
        return bad(format!("{field} must be a string"));
    }
    let operator = one_of(
        f["operator"].as_str().unwrap_or(""),
        &FILTER_OPERATORS,
        &format!("{path}.operator"),
    )?;
    let needs_value = !matches!(operator, "exists" | "notExists");
    if !v1 {
        if needs_value && !f.get("value").is_some_and(Value::is_array) {
            return bad(format!("{operator} needs a value array"));
        }
        return Ok(1);
    }
    match f.get("value") {
        None if !needs_value => Ok(1),
        None => bad(format!(
            "{operator} needs a value (a string or an array of strings)"
        )),
        Some(Value::String(_)) => Ok(1),
        Some(Value::Array(values)) if values.iter().all(Value::is_string) => Ok(1),
        Some(_) => bad("value must be a string or an array of strings".into()),
    }
}

/// The keys of the virtual tags `filter`'s conditions name (cost center `Virtual Tags`, any
/// case), added to `keys`. Walks a filter not yet checked: its depth is bounded by the
/// body's.
pub(crate) fn virtual_tags<'f>(filter: &'f Value, keys: &mut Vec<&'f str>) {
    let Value::Object(f) = filter else { return };
    for group in ["AND", "OR"] {
        if let Some(Value::Array(list)) = f.get(group) {
            for item in list {
                virtual_tags(item, keys);
            }
            return;
        }
    }
    let cost_center = f.get("costCenter").and_then(Value::as_str);
    if cost_center.is_some_and(|c| c.eq_ignore_ascii_case(VIRTUAL_TAGS))
        && let Some(key) = f.get("key").and_then(Value::as_str)
    {
        keys.push(key);
    }
}
