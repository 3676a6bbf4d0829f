//! `GET /metrics`: the authenticator's counters as Prometheus text. `finout_auth_requests_total`
//! counts answers by outcome: `ok` for every authenticated request, and every answer with one
//! of the library's error codes, whoever gave it (the authentication layer, the concurrency
//! limit, or a handler: see `error::count_answered`). A request authenticated and then
//! refused (a `403`, a `429`) counts under both.
//!
//! Only a user holding `Admin` may read them (403 otherwise, 401 without credentials): the
//! store-lookup and cache counts tell which client ids are tokens in use.

use std::fmt::Write as _;

use axum::{extract::State, http::header, response::IntoResponse};
use finout_auth::{ErrorCode, Principal};

use crate::{
    Mock,
    error::{Answer, MockError},
};

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
    let m = mock.metrics().snapshot();
    let mut text = String::new();
    let _ = writeln!(text, "# TYPE finout_auth_requests_total counter");
    let _ = writeln!(
        text,
        "finout_auth_requests_total{{outcome=\"ok\"}} {}",
        m.authenticated
    );
    for (code, n) in m.rejections {
        let _ = writeln!(
            text,
            "finout_auth_requests_total{{outcome=\"{}\"}} {n}",
            code.as_str()
        );
    }
    for (name, value) in [
        (
            "finout_auth_secret_verifications_total",
            m.secret_verifications,
        ),
        ("finout_auth_cache_hits_total", m.cache_hits),
        ("finout_auth_cache_misses_total", m.cache_misses),
        ("finout_auth_store_lookups_total", m.store_lookups),
    ] {
        let _ = writeln!(text, "# TYPE {name} counter\n{name} {value}");
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
