//! The filters of virtual tags' rules and of V2 queries, evaluated over the cells of a
//! range: `AND`/`OR` of conditions `{costCenter, key, operator, value}`.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{
    NONE,
    cells::CellSet,
    evaluate::{Evaluator, Lookup, TooCostly},
    items::{kinds, value_index},
};
use crate::fixtures::DIMENSIONS;

/// A filter condition's operator and values.
enum Matcher<'v> {
    OneOf(HashSet<&'v str>, bool),
    Contains(Vec<&'v str>, bool),
    Exists(bool),
    Nothing,
}

impl<'v> Matcher<'v> {
    fn new(operator: &str, list: Vec<&'v str>) -> Self {
        match operator {
            "oneOf" | "is" => Matcher::OneOf(list.into_iter().collect(), false),
            "notOneOf" | "notIs" => Matcher::OneOf(list.into_iter().collect(), true),
            "contains" => Matcher::Contains(list, false),
            "notContains" => Matcher::Contains(list, true),
            "exists" => Matcher::Exists(true),
            "notExists" => Matcher::Exists(false),
            _ => Matcher::Nothing,
        }
    }

    /// Whether a cell whose value is `value` matches.
    fn matches(&self, value: Option<&str>) -> bool {
        match self {
            Matcher::OneOf(set, negated) => value.is_some_and(|v| set.contains(v)) != *negated,
            Matcher::Contains(list, negated) => {
                value.is_some_and(|v| list.iter().any(|s| v.contains(s))) != *negated
            }
            Matcher::Exists(wanted) => value.is_some() == *wanted,
            Matcher::Nothing => false,
        }
    }

    /// What matching `candidates` values takes, about.
    fn cost(&self, candidates: usize, list_bytes: u64) -> u64 {
        let candidates = candidates as u64;
        match self {
            Matcher::Contains(..) => candidates.saturating_mul(list_bytes.max(1)),
            _ => candidates,
        }
    }
}

impl Evaluator<'_> {
    /// The cells a filter matches: a condition `{costCenter, key, operator, value}`, or
    /// `AND`/`OR` of filters. An empty filter, `AND` or `OR` matches every cell; a condition
    /// without a key or operator, none.
    pub(crate) fn filter(&mut self, filter: &Value) -> Result<CellSet, TooCostly> {
        self.filter_at(filter, 0)
    }

    fn filter_at(&mut self, filter: &Value, depth: usize) -> Result<CellSet, TooCostly> {
        let n = self.cells();
        self.charge(n.div_ceil(64) as u64 + 1)?;
        let Value::Object(f) = filter else {
            return Ok(CellSet::none(n));
        };
        if depth > 64 {
            return Ok(CellSet::none(n));
        }
        for (group, all_of) in [("AND", true), ("OR", false)] {
            if let Some(list) = f.get(group) {
                let Some(list) = list.as_array() else {
                    return Ok(CellSet::none(n));
                };
                if list.is_empty() {
                    return Ok(CellSet::all(n));
                }
                let mut acc = if all_of {
                    CellSet::all(n)
                } else {
                    CellSet::none(n)
                };
                for item in list {
                    let one = self.filter_at(item, depth + 1)?;
                    if all_of {
                        acc.and(&one);
                    } else {
                        acc.or(&one);
                    }
                }
                return Ok(acc);
            }
        }
        if f.is_empty() {
            return Ok(CellSet::all(n));
        }
        self.condition(f)
    }

    fn condition(&mut self, c: &Map<String, Value>) -> Result<CellSet, TooCostly> {
        let n = self.cells();
        let (Some(key), Some(operator)) = (
            c.get("key").and_then(Value::as_str),
            c.get("operator").and_then(Value::as_str),
        ) else {
            return Ok(CellSet::none(n));
        };
        let cost_center = c.get("costCenter").and_then(Value::as_str).unwrap_or("");
        let list: Vec<&str> = match c.get("value") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        };
        let list_bytes = list
            .iter()
            .map(|s| s.len() as u64 + 1)
            .fold(0u64, u64::saturating_add);
        self.charge(list_bytes.saturating_add(n as u64))?;
        let matcher = Matcher::new(operator, list);
        let k = kinds();
        match self.lookup(cost_center, key)? {
            Lookup::Unknown => Ok(if matcher.matches(None) {
                CellSet::all(n)
            } else {
                CellSet::none(n)
            }),
            Lookup::Dimension(d) => {
                let values = DIMENSIONS[d].values;
                self.charge(matcher.cost(values.len() + 1, list_bytes))?;
                let matched: Vec<bool> = values
                    .iter()
                    .map(|v| matcher.matches(Some(v)))
                    .chain([matcher.matches(None)])
                    .collect();
                Ok(CellSet::from_fn(n, |cell| {
                    matched[value_index(cell % k, d)]
                }))
            }
            Lookup::Tag(t) => {
                self.charge(matcher.cost(t.values.len() + 1, list_bytes))?;
                let matched: Vec<bool> =
                    t.values.iter().map(|v| matcher.matches(Some(v))).collect();
                let untagged = matcher.matches(None);
                Ok(CellSet::from_fn(n, |cell| match t.cells.get(cell) {
                    None | Some(&NONE) => untagged,
                    Some(&i) => matched.get(i as usize).copied().unwrap_or(false),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{ledger::evaluate::tests::days, state::tags::AccountTags};

    #[test]
    fn a_filter_over_the_budget_stops() {
        let tags = AccountTags::default();
        let mut e = Evaluator::new(&tags, days(60), 1_000);
        let long: Vec<String> = (0..1_000).map(|i| format!("value-{i}")).collect();
        let filter =
            json!({"costCenter": "AWS", "key": "service", "operator": "contains", "value": long});
        assert!(e.filter(&filter).is_err());
    }
}
