//! How each outcome is reported: counted in the metrics and, when someone listens at DEBUG,
//! logged with its client id, source and latency. Never a secret.

use std::time::Instant;

use tracing::Level;

use crate::{
    credentials::Credentials,
    error::AuthError,
    metrics::Metrics,
    model::{ClientId, Principal},
};

/// Who answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The token cache (the hot path): no store call, no argon2.
    Cache,
    /// The cold path: the store, and argon2 unless a verdict was remembered.
    Store,
    /// The request itself, before the authenticator (e.g. unparsable headers).
    Request,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Store => "store",
            Source::Request => "request",
        }
    }
}

/// Where a log line's client id comes from, read only if the line is written.
pub(crate) trait ClientIdText {
    fn text(&self) -> &str;
}

impl ClientIdText for ClientId {
    fn text(&self) -> &str {
        self.as_str()
    }
}

impl ClientIdText for Credentials<'_> {
    fn text(&self) -> &str {
        self.client_id()
    }
}

/// When a request started, if anyone will read its latency (timing costs two clock reads).
#[inline]
pub(crate) fn start() -> Option<Instant> {
    tracing::enabled!(target: "finout_auth", Level::DEBUG).then(Instant::now)
}

/// Count an outcome and log it.
pub(crate) fn report(
    metrics: &Metrics,
    client_id: Option<&dyn ClientIdText>,
    outcome: Result<&Principal, &AuthError>,
    source: Source,
    started: Option<Instant>,
) {
    let counters = metrics.counters();
    let from_cache = source == Source::Cache;
    match outcome {
        Ok(_) => counters.admitted(from_cache),
        Err(e) => counters.rejected(e.code(), from_cache),
    }
    if !tracing::enabled!(target: "finout_auth", Level::DEBUG) {
        return;
    }
    let latency_us = started.map(|s| s.elapsed().as_micros() as u64);
    let client_id = client_id.map(|c| c.text());
    let path = source.as_str();
    match outcome {
        Ok(p) => tracing::debug!(
            target: "finout_auth",
            outcome = "ok",
            client_id,
            account_id = %p.account_id(),
            path,
            latency_us,
            "authenticated"
        ),
        Err(e) => tracing::debug!(
            target: "finout_auth",
            outcome = e.code().as_str(),
            client_id,
            path,
            latency_us,
            error = %e,
            "rejected"
        ),
    }
}
