//! `GET /metrics`: Prometheus text through `metrics-exporter-prometheus`, one recorder per
//! mock (never installed as the process's global recorder, so a test process's own metrics
//! and several mocks do not mix):
//!
//! - the authenticator's counters (`finout_auth_*`, copied from its [`Metrics`] when
//!   scraped). `finout_auth_requests_total` counts answers by outcome: `ok` for every
//!   authenticated request, and every answer with one of the library's error codes, whoever
//!   gave it (the authentication layer, the concurrency or rate limit, or a handler: see
//!   `error::count_answered`). A request authenticated and then refused (a `403`, a `429`)
//!   counts under both;
//! - `finout_auth_verifications_in_flight` (argon2 runs now) and
//!   `finout_mock_requests_in_flight` (requests being answered);
//! - `finout_mock_request_duration_seconds`, a histogram by API (`v1`, `v2`, `admin`,
//!   `other`) and status;
//! - `finout_mock_rows_set_aside`: rows of the mock's table it could not read when it
//!   started (skipped, each logged at WARN);
//! - `finout_mock_query_bytes`: what the V2 cost-and-usage queries of every account hold
//!   (each account within its budget).
//!
//! Only a user holding `Admin` may read them (403 otherwise, 401 without credentials): the
//! store-lookup and cache counts tell which client ids are tokens in use.
//!
//! With the `prometheus` feature only; without it, `metrics_disabled.rs` stands in.

pub(crate) mod recorder;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use finout_auth::{ErrorCode, Principal};

use crate::{
    error::{Answer, MockError},
    mock::Mock,
};

/// Time every answer and count the requests in flight.
pub(crate) async fn observe(State(mock): State<Mock>, request: Request, next: Next) -> Response {
    mock.inner.prometheus.observe(request, next).await
}

pub(crate) async fn prometheus(
    State(mock): State<Mock>,
    principal: Principal,
) -> Answer<impl IntoResponse> {
    if !principal.is_admin_user() {
        return Err(MockError::auth_with(
            ErrorCode::Forbidden,
            "only a user holding Admin may read the metrics",
        ));
    }
    let set_aside = mock.inner.state.rows_set_aside();
    let query_bytes = mock.inner.queries.held_by_all();
    let text = mock
        .inner
        .prometheus
        .render(mock.metrics(), set_aside, query_bytes);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
