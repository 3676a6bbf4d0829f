//! Finout's asynchronous cost-and-usage query (V2): `generate-query` answers a `queryId`;
//! `status` says `queued`, then `running`, then `completed` once the mock's query delay has
//! passed (`Mock::query_delay`, on the mock's clock); `results` pages the rows by cursor
//! and answers 202 before completion. Results are kept 24 hours (then `expired`, 410); a
//! query is forgotten a further 24 hours later (404). An account keeps at most
//! [`MAX_QUERIES_PER_ACCOUNT`] queries; past it the oldest is forgotten. Results pages are
//! built on demand from the query (never stored).

use std::{collections::HashMap, sync::Mutex};

use axum::{Json, extract::State, http::StatusCode};
use finout_auth::{AccountId, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::spec::{Query, Spec};
use crate::{
    Mock,
    error::{Answer, Body, MockError, Params, Path},
    state::tags::StoredTag,
};

/// How long results are kept after completing.
const KEPT: Duration = Duration::hours(24);
/// The most queries an account keeps (three days of Finout's daily limit); past it, the
/// oldest is forgotten.
pub(crate) const MAX_QUERIES_PER_ACCOUNT: usize = 30_000;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 10_000;

#[derive(Debug)]
struct Stored {
    query: Query,
    created: OffsetDateTime,
    /// Order of creation within the account (several may share an instant).
    seq: u64,
}

/// Every account's queries.
#[derive(Debug, Default)]
pub(crate) struct Queries(Mutex<HashMap<AccountId, HashMap<String, Stored>>>);

enum Status {
    Queued,
    Running,
    Completed {
        at: OffsetDateTime,
        expires: OffsetDateTime,
    },
    Expired,
}

fn status(created: OffsetDateTime, delay: Duration, now: OffsetDateTime) -> Status {
    // A delay past the calendar's end never completes.
    let (Some(half), Some(done)) = (created.checked_add(delay / 2), created.checked_add(delay))
    else {
        return Status::Running;
    };
    let expires = done.checked_add(KEPT);
    if now < half {
        Status::Queued
    } else if now < done {
        Status::Running
    } else if let Some(expires) = expires.filter(|e| now < *e) {
        Status::Completed { at: done, expires }
    } else {
        Status::Expired
    }
}

fn iso(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn delay(mock: &Mock) -> Duration {
    Duration::try_from(mock.inner.query_delay).unwrap_or(Duration::MAX)
}

pub(crate) async fn generate(
    State(mock): State<Mock>,
    principal: Principal,
    Body(spec): Body<Spec>,
) -> Answer<Json<Value>> {
    let account = principal.account_id();
    let query = spec.check(|id| {
        mock.inner
            .state
            .tags(account, |tags| tags.get(id).map(StoredTag::assigned_values))
    })?;
    let now = mock.now();
    // Queries created before this are expired since a day: forgotten.
    let forget_before = now
        .checked_sub(delay(&mock))
        .and_then(|t| t.checked_sub(KEPT + KEPT));
    let id = uuid::Uuid::new_v4().to_string();
    {
        let mut all = mock
            .inner
            .queries
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = all.entry(principal.account_id()).or_default();
        if let Some(before) = forget_before {
            mine.retain(|_, q| q.created >= before);
        }
        if mine.len() >= MAX_QUERIES_PER_ACCOUNT {
            let oldest = mine
                .iter()
                .min_by_key(|(_, q)| (q.created, q.seq))
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                mine.remove(&oldest);
            }
        }
        let seq = mine.values().map(|q| q.seq).max().map_or(0, |s| s + 1);
        let stored = Stored {
            query,
            created: now,
            seq,
        };
        mine.insert(id.clone(), stored);
    }
    Ok(Json(
        json!({"requestId": uuid::Uuid::new_v4(), "data": {"queryId": id}}),
    ))
}

/// The query's creation time and, if asked, the query; 404 for an unknown id.
fn find(mock: &Mock, account: AccountId, id: &str) -> Answer<(OffsetDateTime, Query)> {
    let all = mock
        .inner
        .queries
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    all.get(&account)
        .and_then(|mine| mine.get(id))
        .map(|q| (q.created, q.query.clone()))
        .ok_or_else(|| MockError::not_found("query"))
}

pub(crate) async fn query_status(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    let account = principal.account_id();
    let (created, query) = find(&mock, account, &id)?;
    let data = match status(created, delay(&mock), mock.now()) {
        Status::Queued => json!({"status": "queued"}),
        Status::Running => json!({"status": "running"}),
        Status::Completed { at, expires } => json!({
            "status": "completed",
            "completedAt": iso(at),
            "expiredAt": iso(expires),
            "totalRows": query.total_rows(),
        }),
        Status::Expired => json!({"status": "expired"}),
    };
    Ok(Json(
        json!({"requestId": uuid::Uuid::new_v4(), "data": data}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    #[serde(default)]
    page_size: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

pub(crate) async fn results(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Params(page): Params<Page>,
) -> Answer<Json<Value>> {
    let size = page.page_size.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&size) {
        return Err(MockError::invalid(format!("pageSize must be 1-{MAX_PAGE}")));
    }
    let offset = match page.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| MockError::invalid("cursor: not a cursor this API returned"))?,
    };
    let account = principal.account_id();
    let (created, query) = find(&mock, account, &id)?;
    match status(created, delay(&mock), mock.now()) {
        Status::Queued => Err(MockError::v2(
            StatusCode::ACCEPTED,
            "QUERY_QUEUED",
            "the query is queued; poll its status",
        )),
        Status::Running => Err(MockError::v2(
            StatusCode::ACCEPTED,
            "QUERY_RUNNING",
            "the query is running; poll its status",
        )),
        Status::Expired => Err(MockError::v2(
            StatusCode::GONE,
            "RESULTS_EXPIRED",
            "results are kept 24 hours; generate the query again",
        )),
        Status::Completed { .. } => {
            let total = usize::try_from(query.total_rows()).unwrap_or(usize::MAX);
            if offset > total {
                return Err(MockError::invalid("cursor: past the last row"));
            }
            let rows = query.page(&account.to_string(), offset, size);
            let end = offset.saturating_add(rows.len());
            let has_more = end < total;
            let mut pagination = json!({"hasMore": has_more, "totalRows": total});
            if has_more {
                pagination["nextCursor"] = json!(end.to_string());
            }
            Ok(Json(json!({
                "requestId": uuid::Uuid::new_v4(),
                "pagination": pagination,
                "data": rows,
            })))
        }
    }
}
