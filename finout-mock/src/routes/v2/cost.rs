//! Finout's asynchronous cost-and-usage query (V2): `generate-query` answers a `queryId`;
//! `status` says `queued`, then `running`, then `completed` once the mock's query delay has
//! passed (`Mock::query_delay`, on the mock's clock); `results` pages the rows by cursor
//! and answers 202 before completion. Results are kept 24 hours (then `expired`, 410); a
//! query is forgotten a further 24 hours later (404). An account keeps at most
//! `MAX_QUERIES_PER_ACCOUNT` queries and `MAX_QUERY_BYTES_PER_ACCOUNT` bytes of them
//! (`crate::query::Queries`); past either the oldest is forgotten. A query's rows are
//! ranked once, when its results are first asked for (on the blocking pool if costly), and
//! each page is built from that ranking; the rows themselves are never stored.

use std::sync::Arc;

use axum::{Json, extract::State, http::StatusCode};
use finout_auth::Principal;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::{rows, spec::Spec};
use crate::{
    error::{Answer, Body, MockError, Params, Path},
    ledger,
    mock::Mock,
};

/// How long results are kept after completing.
const KEPT: Duration = Duration::hours(24);
/// Queries costing more work units than this are ranked on the blocking pool, not on the
/// async workers.
const INLINE_WORK_UNITS: u64 = 1_000_000;
/// The most bytes a results page is built to, about: past it, the page holds fewer rows
/// than asked (`nextCursor` goes on from there).
pub(crate) const MAX_PAGE_BYTES: u64 = 4 * 1024 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 10_000;

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
    crate::routes::require_all_data(&principal)?;
    let account = principal.account_id();
    let now = mock.now();
    let today = ledger::day_of(now);
    let queries = mock.inner.queries.clone();
    let intern = move |id: &str, values: Vec<String>| queries.intern(account, id, values);
    let query = ledger::with_tags(&mock.inner.state, account, move |tags, budget| {
        spec.check(today, tags, budget, &intern)
    })
    .await?;
    let queries = &mock.inner.queries;
    // Queries created before this are expired since a day: forgotten.
    let forget_before = now
        .checked_sub(delay(&mock))
        .and_then(|t| t.checked_sub(KEPT + KEPT));
    let id = queries.insert(account, query, now, forget_before);
    Ok(Json(
        json!({"requestId": crate::request_id::current().as_str(), "data": {"queryId": id}}),
    ))
}

pub(crate) async fn query_status(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    crate::routes::require_all_data(&principal)?;
    let account = principal.account_id();
    let (created, query, ranked) = mock
        .inner
        .queries
        .find(account, &id)
        .ok_or_else(|| MockError::not_found("query"))?;
    let data = match status(created, delay(&mock), mock.now()) {
        Status::Queued => json!({"status": "queued"}),
        Status::Running => json!({"status": "running"}),
        Status::Completed { at, expires } => json!({
            "status": "completed",
            "completedAt": iso(at),
            "expiredAt": iso(expires),
            "totalRows": ranked.map_or_else(
                || rows::count(&query, &account.to_string()),
                |ranked| ranked.len(),
            ),
        }),
        Status::Expired => json!({"status": "expired"}),
    };
    Ok(Json(
        json!({"requestId": crate::request_id::current().as_str(), "data": data}),
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
    crate::routes::require_all_data(&principal)?;
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
    let (created, query, ranked) = mock
        .inner
        .queries
        .find(account, &id)
        .ok_or_else(|| MockError::not_found("query"))?;
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
            // A page holds at most `MAX_PAGE_BYTES` of rows, about.
            let fit = usize::try_from(MAX_PAGE_BYTES / query.row_bytes().max(1)).unwrap_or(1);
            let size = size.min(fit.max(1));
            let seed = account.to_string();
            let costly = query.work_units() > INLINE_WORK_UNITS;
            let build = move || {
                let fresh = ranked.is_none();
                // Summed at most once: for the ranking (the first page only) and the page.
                let summed = std::cell::OnceCell::new();
                let summed = || summed.get_or_init(|| rows::sum(&query, &seed));
                let ranked: Arc<[u32]> =
                    ranked.unwrap_or_else(|| rows::rank(&query, summed()).into());
                let total = ranked.len();
                let rows = if offset > total {
                    None
                } else {
                    let end = offset.saturating_add(size).min(total);
                    Some(rows::page(
                        &query,
                        summed(),
                        ranked.get(offset..end).unwrap_or_default(),
                    ))
                };
                (fresh.then_some(ranked), rows, total)
            };
            let (fresh, rows, total) = if costly {
                tokio::task::spawn_blocking(build).await.map_err(|e| {
                    tracing::error!(target: "finout_mock", error = %e, "ranking a query failed");
                    MockError::auth(finout_auth::ErrorCode::AuthUnavailable)
                })?
            } else {
                build()
            };
            if let Some(ranked) = fresh {
                mock.inner.queries.keep_ranking(account, &id, ranked);
            }
            let rows = rows.ok_or_else(|| MockError::invalid("cursor: past the last row"))?;
            let end = offset.saturating_add(rows.len());
            let has_more = end < total;
            let mut pagination = json!({"hasMore": has_more, "totalRows": total});
            if has_more {
                pagination["nextCursor"] = json!(end.to_string());
            }
            Ok(Json(json!({
                "requestId": crate::request_id::current().as_str(),
                "pagination": pagination,
                "data": rows,
            })))
        }
    }
}
