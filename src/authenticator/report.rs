//! How each outcome is reported: counted in the metrics and, when someone listens at DEBUG,
//! logged with its client id (verified) or the client id's fingerprint (not verified), source
//! and latency. Never a secret, never an unverified header value.

use std::time::Instant;

use tracing::Level;

use crate::{
    credentials::Credentials,
    crypto::digest::Fingerprints,
    error::{AuthError, Chain, StoreError},
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

/// A client id as a request presented it: logged verbatim once its secret was verified,
/// before that only as a fingerprint (see [`Fingerprints`]).
pub(crate) trait Presented {
    fn bytes(&self) -> &[u8];
}

impl Presented for ClientId {
    fn bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }
}

impl Presented for Credentials<'_> {
    fn bytes(&self) -> &[u8] {
        self.client_id_bytes()
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
    fingerprints: &Fingerprints,
    client_id: Option<&dyn Presented>,
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
    let path = source.as_str();
    match outcome {
        Ok(p) => tracing::debug!(
            target: "finout_auth",
            outcome = "ok",
            client_id = p.client_id().as_str(),
            account_id = %p.account_id(),
            path,
            latency_us,
            "authenticated"
        ),
        // Only the holder of the right secret learns that a token expired: its id is verified.
        Err(e @ AuthError::TokenExpired) => tracing::debug!(
            target: "finout_auth",
            outcome = e.code().as_str(),
            client_id = client_id.and_then(|c| std::str::from_utf8(c.bytes()).ok()),
            path,
            latency_us,
            "rejected"
        ),
        Err(e) => tracing::debug!(
            target: "finout_auth",
            outcome = e.code().as_str(),
            client_fingerprint = client_id.map(|c| fingerprints.of(c.bytes()).to_string()),
            path,
            latency_us,
            error = %e,
            "rejected"
        ),
    }
}

/// Log a failed store lookup, with its whole cause, at WARN: the id only as a fingerprint
/// (nothing about it was verified).
pub(crate) fn store_failed(fingerprints: &Fingerprints, client_id: &ClientId, error: &StoreError) {
    tracing::warn!(
        target: "finout_auth",
        client_fingerprint = %fingerprints.of(client_id.as_str().as_bytes()),
        error = %Chain(error),
        "token store lookup failed"
    );
}

/// The failure throttle tripped for `client_id` (its first refusal in a window): at WARN with
/// the client id when it is a real token's (someone is guessing its secret), at DEBUG with a
/// fingerprint when no token has that id (routine scanning; nothing about it is verified).
pub(crate) fn throttle_tripped(
    fingerprints: &Fingerprints,
    client_id: &ClientId,
    real_token: bool,
    retry_after: std::time::Duration,
) {
    if real_token {
        tracing::warn!(
            target: "finout_auth",
            client_id = client_id.as_str(),
            retry_after_s = retry_after.as_secs(),
            "failure throttle tripped: too many wrong secrets for a token"
        );
    } else {
        tracing::debug!(
            target: "finout_auth",
            client_fingerprint = %fingerprints.of(client_id.as_str().as_bytes()),
            retry_after_s = retry_after.as_secs(),
            "failure throttle tripped for an unknown client id"
        );
    }
}

/// A check found no capacity (`auth_busy`): at WARN, at most once a second (`last` holds the
/// second of the last line), so a flood cannot flood the logs; the client id when it is a
/// real token's, else its fingerprint.
pub(crate) fn busy(
    fingerprints: &Fingerprints,
    client_id: &ClientId,
    real_token: bool,
    last: &std::sync::atomic::AtomicU64,
) {
    use std::sync::atomic::Ordering;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if last.swap(now, Ordering::Relaxed) != now {
        if real_token {
            tracing::warn!(
                target: "finout_auth",
                client_id = client_id.as_str(),
                "no argon2 capacity: answering auth_busy (logged at most once a second)"
            );
        } else {
            tracing::warn!(
                target: "finout_auth",
                client_fingerprint = %fingerprints.of(client_id.as_str().as_bytes()),
                "no argon2 capacity: answering auth_busy (logged at most once a second)"
            );
        }
    }
}
