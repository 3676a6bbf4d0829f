//! `/v1/view` and `/v1/cost/query-by-view`: the views a caller may see, and their costs.

use axum::{Json, extract::State};
use finout_auth::Principal;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    Mock,
    error::{Answer, Body, MockError},
    fixtures,
};

pub(crate) async fn views(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    Json(serde_json::json!({
        "data": mock.visible_views(&principal),
        "requestId": uuid::Uuid::new_v4(),
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

const DAY_MS: i64 = 86_400_000;
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

pub(crate) async fn query_by_view(
    State(mock): State<Mock>,
    principal: Principal,
    Body(query): Body<QueryByView>,
) -> Answer<Json<Value>> {
    let (start, end) = range(query.date.as_ref(), mock.now())?;
    let factor = match query.cost_type.as_deref() {
        None => 1.0,
        Some(asked) => fixtures::COST_TYPES
            .iter()
            .find(|(name, _)| *name == asked)
            .map(|(_, factor)| *factor)
            .ok_or_else(|| {
                let known: Vec<&str> = fixtures::COST_TYPES.iter().map(|(n, _)| *n).collect();
                MockError::invalid(format!("costType must be one of {}", known.join(", ")))
            })?,
    };
    let group = match query.group_by.as_deref() {
        None | Some([]) => &fixtures::DIMENSIONS[0],
        Some([one]) => fixtures::dimension(one).ok_or_else(|| {
            MockError::invalid(format!(
                "groupBy: unknown dimension {one:?} (see /v1/megabill/query-language/keys)"
            ))
        })?,
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
    Ok(Json(serde_json::json!({
        "data": fixtures::costs(&query.view_id, start, end, group, factor),
        "request": { "viewId": query.view_id },
        "requestId": uuid::Uuid::new_v4(),
    })))
}
