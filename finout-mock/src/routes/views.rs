//! `/v1/view` and `/v1/cost/query-by-view`: the views a caller may see, and their costs: the
//! account's cost ledger (`crate::ledger`) limited to the view's line items, grouped by a
//! dimension or a virtual tag, summed per day.

use axum::{Json, extract::State};
use finout_auth::Principal;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    error::{Answer, Body, MockError},
    fixtures::{self, CostPoint, CostSeries},
    ledger::{self, DAY_MS, Days, Evaluator, Ledger, Measure},
    mock::Mock,
};

pub(crate) async fn views(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    Json(serde_json::json!({
        "data": mock.visible_views(&principal),
        "requestId": crate::request_id::current().as_str(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryByView {
    view_id: String,
    /// Either both instants or none (Finout: "specify dates or delete them completely").
    #[serde(default)]
    date: Option<DateRange>,
    #[serde(default)]
    cost_type: Option<String>,
    /// Dimensions to group by (keys or display names of `/v1/megabill/query-language/keys`);
    /// the mock honours one.
    #[serde(default)]
    group_by: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateRange {
    unix_time_mill_seconds_start: i64,
    unix_time_mill_seconds_end: i64,
}

/// Finout's longest range.
const MAX_RANGE_MS: i64 = 90 * DAY_MS;
/// The range when `date` is left out (Finout's docs do not say; a mock's choice): the last
/// 30 days, up to now.
const DEFAULT_RANGE_MS: i64 = 30 * DAY_MS;
/// Instants before this are taken as seconds (Finout's own example sends seconds, clients
/// send milliseconds): 1e11 ms is 1973, 1e11 s is year 5138.
const SECONDS_BELOW: i64 = 100_000_000_000;
/// The latest instant accepted: the end of year 9999, in milliseconds.
const LATEST_MS: i64 = 253_402_300_799_999;

/// An instant as given, in milliseconds: seconds are scaled, and anything before 1970 or
/// after 9999 is refused.
fn instant(value: i64, field: &str) -> Answer<i64> {
    let ms = if (0..SECONDS_BELOW).contains(&value) {
        value.checked_mul(1000)
    } else {
        Some(value)
    };
    ms.filter(|ms| (0..=LATEST_MS).contains(ms)).ok_or_else(|| {
        MockError::invalid(format!(
            "date.{field} must be a Unix time between 1970 and 9999, in milliseconds (or seconds)"
        ))
    })
}

/// The range asked for, checked: ordered, within 1970-9999, at most 90 days; without one,
/// the 30 days up to `now` (the mock's clock).
fn range(date: Option<&DateRange>, now: time::OffsetDateTime) -> Answer<(i64, i64)> {
    let (start, end) = match date {
        Some(d) => (
            instant(d.unix_time_mill_seconds_start, "unixTimeMillSecondsStart")?,
            instant(d.unix_time_mill_seconds_end, "unixTimeMillSecondsEnd")?,
        ),
        None => {
            let now = i64::try_from(now.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(LATEST_MS)
                .clamp(DEFAULT_RANGE_MS, LATEST_MS);
            (now.saturating_sub(DEFAULT_RANGE_MS), now)
        }
    };
    let span = end
        .checked_sub(start)
        .ok_or_else(|| MockError::invalid("date: the range is out of bounds"))?;
    if span < 0 {
        return Err(MockError::invalid("date: the range ends before it starts"));
    }
    if span > MAX_RANGE_MS {
        return Err(MockError::invalid("date: the range may not exceed 90 days"));
    }
    Ok((start, end))
}

/// What a view's costs are grouped by.
enum Group {
    Dimension(usize),
    /// A virtual tag, by id.
    Tag(String),
}

pub(crate) async fn query_by_view(
    State(mock): State<Mock>,
    principal: Principal,
    Body(query): Body<QueryByView>,
) -> Answer<Json<Value>> {
    let now = mock.now();
    let (start, end) = range(query.date.as_ref(), now)?;
    let measure = match query.cost_type.as_deref() {
        None => Measure::named("netAmortizedCost"),
        Some(asked) => Measure::named(asked).filter(|m| matches!(m, Measure::Cost { .. })),
    }
    .ok_or_else(|| {
        let known: Vec<&str> = fixtures::COST_TYPES.iter().map(|(n, _)| *n).collect();
        MockError::invalid(format!("costType must be one of {}", known.join(", ")))
    })?;
    let account = principal.account_id();
    let group = match query.group_by.as_deref() {
        None | Some([]) => None,
        Some([one]) => Some(group_named(&mock, account, one).ok_or_else(|| {
            MockError::invalid(format!(
                "groupBy: unknown dimension {one:?} (see /v1/megabill/query-language/keys)"
            ))
        })?),
        Some(_) => {
            return Err(MockError::invalid(
                "groupBy: the mock groups by one dimension at a time",
            ));
        }
    };
    // Another account's view, or one outside the user's data access, does not exist for
    // this caller.
    if !mock
        .visible_views(&principal)
        .iter()
        .any(|v| v.id == query.view_id)
    {
        return Err(MockError::not_found("view"));
    }
    let view = fixtures::view_definition(account, &query.view_id);
    let group = group.unwrap_or(Group::Dimension(view.group));
    let ledger = Ledger::new(account, now);
    // The range is at most 90 days: 91 days touched.
    let data = match Days::touched(start, end, MAX_DAYS) {
        None => Vec::new(),
        Some(days) => match group {
            Group::Dimension(d) => series(&ledger, days, view, measure, &Labels::Dimension(d)),
            Group::Tag(id) => {
                ledger::with_tags(&mock.inner.state, account, move |tags, budget| {
                    let mut evaluator = Evaluator::new(tags, days, budget);
                    let labels = match evaluator.tag(&id)? {
                        Some(tag) => Labels::Tag(tag),
                        None => return Err(MockError::not_found("virtual tag").into()),
                    };
                    Ok(series(&ledger, days, view, measure, &labels))
                })
                .await?
            }
        },
    };
    Ok(Json(serde_json::json!({
        "data": data,
        "request": { "viewId": query.view_id },
        "requestId": crate::request_id::current().as_str(),
    })))
}

/// The most days a range touches (90 days and a part).
const MAX_DAYS: usize = 92;

/// A dimension of the fixtures (key or display name, any case), else one of the account's
/// virtual tags (id, or name in any case).
fn group_named(mock: &Mock, account: finout_auth::AccountId, name: &str) -> Option<Group> {
    if let Some(d) = fixtures::dimension_index(name) {
        return Some(Group::Dimension(d));
    }
    mock.inner.state.tags(account, |tags| {
        tags.get(name)
            .or_else(|| tags.values().find(|t| t.name().eq_ignore_ascii_case(name)))
            .map(|t| Group::Tag(t.id.clone()))
    })
}

/// How each cell is labelled: by a dimension's value, or by a virtual tag's.
enum Labels {
    Dimension(usize),
    Tag(std::sync::Arc<ledger::TagValues>),
}

impl Labels {
    fn count(&self) -> usize {
        match self {
            // The last: the kinds without the dimension.
            Labels::Dimension(d) => fixtures::DIMENSIONS[*d].values.len() + 1,
            Labels::Tag(t) => t.values.len(),
        }
    }

    fn label(&self, cell: usize) -> usize {
        match self {
            Labels::Dimension(d) => ledger::value_index(cell % ledger::kinds(), *d),
            Labels::Tag(t) => t.label(cell) as usize,
        }
    }

    fn name(&self, i: usize) -> String {
        match self {
            Labels::Dimension(d) => ledger::label(*d, i).to_owned(),
            Labels::Tag(t) => t.values.get(i).cloned().unwrap_or_default(),
        }
    }
}

/// The view's daily costs over `days`, one series per label its line items have (in the
/// dimension's order, or the tag's values sorted), then `Total`; a point for each day up to
/// the ledger's today.
fn series(
    ledger: &Ledger,
    days: Days,
    view: fixtures::ViewDefinition,
    measure: Measure,
    labels: &Labels,
) -> Vec<CostSeries> {
    let vendor = ledger::dimension("Global", "vendor").unwrap_or(0);
    let kinds = ledger::kinds();
    let in_view: Vec<bool> = (0..kinds)
        .map(|k| {
            view.vendor
                .is_none_or(|v| ledger::value(k, vendor) == Some(v))
        })
        .collect();
    let with_costs = days.until(ledger.today());
    let mut sums = vec![vec![0i64; with_costs]; labels.count()];
    let mut present = vec![false; labels.count()];
    for i in 0..days.count {
        for kind in (0..kinds).filter(|&k| in_view[k]) {
            let label = labels.label(i * kinds + kind);
            let Some(seen) = present.get_mut(label) else {
                continue;
            };
            *seen = true;
            if let Some(item) = ledger.item(kind, days.day(i))
                && let Some(sum) = sums[label].get_mut(i)
            {
                *sum += item.amount(measure);
            }
        }
    }
    let points = |sums: &[i64]| -> Vec<CostPoint> {
        sums.iter()
            .enumerate()
            .map(|(i, &units)| CostPoint {
                time: days.day(i).saturating_mul(DAY_MS),
                cost: units as f64 / ledger::UNITS,
            })
            .collect()
    };
    let mut total = vec![0i64; with_costs];
    let mut out = Vec::new();
    for (label, sums) in sums.iter().enumerate() {
        if !present[label] {
            continue;
        }
        for (t, s) in total.iter_mut().zip(sums) {
            *t += s;
        }
        out.push(CostSeries {
            name: labels.name(label),
            data: points(sums),
        });
    }
    out.push(CostSeries {
        name: "Total".to_owned(),
        data: points(&total),
    });
    out
}
