//! Finout's asynchronous cost-and-usage query (V2): `generate-query` answers a `queryId`;
//! `status` says `queued`, then `running`, then `completed` once the mock's query delay has
//! passed (`Mock::query_delay`, on the mock's clock); `results` pages the rows by cursor
//! and answers 202 before completion. Results are kept 24 hours (then `expired`, 410); a
//! query is forgotten a further 24 hours later (404). An account keeps at most
//! [`MAX_QUERIES_PER_ACCOUNT`] queries (Finout's daily limit for generating them).

use std::{collections::HashMap, sync::Mutex};

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use finout_auth::{AccountId, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::spec::{Query, Spec};
use crate::{
    Mock,
    error::{Answer, Body, MockError, Params},
};

/// How long results are kept after completing.
const KEPT: Duration = Duration::hours(24);
/// The most queries an account keeps (completed or not).
pub(crate) const MAX_QUERIES_PER_ACCOUNT: usize = 10_000;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 10_000;

#[derive(Debug)]
struct Stored {
    query: Query,
    created: OffsetDateTime,
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
    let done = created + delay;
    if now < created + delay / 2 {
        Status::Queued
    } else if now < done {
        Status::Running
    } else if now < done + KEPT {
        Status::Completed {
            at: done,
            expires: done + KEPT,
        }
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
    let query = spec.check()?;
    let now = mock.now();
    let forget_before = now - delay(&mock) - KEPT - KEPT;
    let id = uuid::Uuid::new_v4().to_string();
    {
        let mut all = mock
            .inner
            .queries
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mine = all.entry(principal.account_id()).or_default();
        mine.retain(|_, q| q.created >= forget_before);
        if mine.len() >= MAX_QUERIES_PER_ACCOUNT {
            return Err(MockError::limit(format!(
                "an account keeps at most {MAX_QUERIES_PER_ACCOUNT} queries"
            )));
        }
        mine.insert(
            id.clone(),
            Stored {
                query,
                created: now,
            },
        );
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
            "totalRows": query.rows(&account.to_string()).len(),
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
            let rows = query.rows(&account.to_string());
            if offset > rows.len() {
                return Err(MockError::invalid("cursor: past the last row"));
            }
            let end = offset.saturating_add(size).min(rows.len());
            let has_more = end < rows.len();
            let mut pagination = json!({"hasMore": has_more, "totalRows": rows.len()});
            if has_more {
                pagination["nextCursor"] = json!(end.to_string());
            }
            Ok(Json(json!({
                "requestId": uuid::Uuid::new_v4(),
                "pagination": pagination,
                "data": rows[offset..end],
            })))
        }
    }
}
