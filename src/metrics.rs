//! Counters of every answer: [`Metrics`], a cloneable handle that the
//! [`Authenticator`](crate::Authenticator) (and so the [`AuthLayer`](crate::AuthLayer))
//! records into, and so do the layers after it
//! ([`RequireLayer`](crate::middleware::RequireLayer),
//! [`TokenConcurrencyLimitLayer`](crate::middleware::TokenConcurrencyLimitLayer),
//! [`RateLimitLayer`](crate::middleware::RateLimitLayer)), finding it through the request,
//! unless one was given a handle of its own: every rejection is counted once, by whoever
//! answered it. Readable as a [`MetricsSnapshot`] and, with the `metrics` feature, reported
//! through the `metrics` facade as:
//!
//! | name | labels |
//! | --- | --- |
//! | `finout_auth_requests_total` | `outcome` = `ok` or an error code |
//! | `finout_auth_cache_hits_total` | |
//! | `finout_auth_cache_misses_total` | |
//! | `finout_auth_store_lookups_total` | |
//! | `finout_auth_secret_verifications_total` | (argon2 runs) |
//! | `finout_auth_unknown_ids_total` | (checks of client ids no token has: no argon2) |
//! | `finout_auth_revalidations_total` | (known secrets re-admitted after a store lookup, no argon2) |
//! | `finout_auth_refreshes_total` | (cached tokens refreshed from the store in the background) |
//! | `finout_auth_stale_answers_total` | (tokens admitted stale while the store could not be reached) |

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::error::ErrorCode;

/// A handle on one set of counters; clones count into the same ones. Every
/// [`Authenticator`](crate::Authenticator) has one; a layer given one with `.metrics(..)`
/// counts its rejections there instead of into its authenticator's.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::convert::Infallible;
/// use finout_auth::{AccountId, ClientId, ErrorCode, Principal, Role, metrics::Metrics, middleware::RequireLayer};
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let metrics = Metrics::new();
/// let service = ServiceBuilder::new()
///     .layer(RequireLayer::role(Role::Admin).metrics(metrics.clone()))
///     .service(service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) }));
/// let mut request = Request::new(String::new());
/// request.extensions_mut().insert(Principal::account(AccountId::new_v4(), Role::ReadOnly, ClientId::from("id")));
/// service.oneshot(request).await.unwrap();
/// assert_eq!(metrics.snapshot().rejections_of(ErrorCode::Forbidden), 1);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    counters: Arc<Counters>,
}

impl Metrics {
    /// A fresh set of counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters so far.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.counters.snapshot()
    }

    /// Count a rejection answered outside the layers of this crate (e.g. a handler's own
    /// `403 forbidden`).
    pub fn record_rejection(&self, code: ErrorCode) {
        self.counters.rejected(code, false);
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    // The hot path touches one counter per request: admissions from cache and other
    // admissions are counted apart and added up in the snapshot.
    admitted_from_cache: AtomicU64,
    admitted_otherwise: AtomicU64,
    rejected_from_cache: AtomicU64,
    cache_misses: AtomicU64,
    store_lookups: AtomicU64,
    secret_verifications: AtomicU64,
    unknown_ids: AtomicU64,
    revalidations: AtomicU64,
    refreshes: AtomicU64,
    stale_answers: AtomicU64,
    verifications_in_flight: AtomicU64,
    rejections: [AtomicU64; ErrorCode::ALL.len()],
}

impl Counters {
    /// A request admitted; `from_cache` when the hot path answered.
    pub(crate) fn admitted(&self, from_cache: bool) {
        if from_cache {
            self.admitted_from_cache.fetch_add(1, Relaxed);
        } else {
            self.admitted_otherwise.fetch_add(1, Relaxed);
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("finout_auth_requests_total", "outcome" => "ok").increment(1);
            if from_cache {
                metrics::counter!("finout_auth_cache_hits_total").increment(1);
            }
        }
    }

    /// A request rejected with `code`; `from_cache` when the hot path answered.
    pub(crate) fn rejected(&self, code: ErrorCode, from_cache: bool) {
        self.rejections[code.index()].fetch_add(1, Relaxed);
        if from_cache {
            self.rejected_from_cache.fetch_add(1, Relaxed);
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("finout_auth_requests_total", "outcome" => code.as_str())
                .increment(1);
            if from_cache {
                metrics::counter!("finout_auth_cache_hits_total").increment(1);
            }
        }
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("finout_auth_cache_misses_total").increment(1);
    }

    pub(crate) fn store_lookup(&self) {
        self.store_lookups.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("finout_auth_store_lookups_total").increment(1);
    }

    /// Count an argon2 run; it is "in flight" until the guard drops.
    pub(crate) fn secret_verification(&self) -> InFlight<'_> {
        self.secret_verifications.fetch_add(1, Relaxed);
        self.verifications_in_flight.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("finout_auth_secret_verifications_total").increment(1);
            metrics::gauge!(VERIFICATIONS_IN_FLIGHT).increment(1.0);
        }
        InFlight(&self.verifications_in_flight)
    }

    /// Count a check of a client id no token has (no argon2 runs for it).
    pub(crate) fn unknown_id(&self) {
        self.unknown_ids.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("finout_auth_unknown_ids_total").increment(1);
    }

    /// A cold request (store, maybe argon2) begins; it is in flight until the guard drops,
    /// which records how long it took with its outcome (`metrics` feature).
    pub(crate) fn cold(&self) -> Cold {
        #[cfg(feature = "metrics")]
        metrics::gauge!(COLD_IN_FLIGHT).increment(1.0);
        Cold {
            started: std::time::Instant::now(),
            outcome: "abandoned",
        }
    }

    /// A known secret passed without argon2 after a store lookup.
    pub(crate) fn revalidation(&self) {
        self.revalidations.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("finout_auth_revalidations_total").increment(1);
    }

    /// A token was admitted stale: the store could not be reached.
    pub(crate) fn stale_answer(&self) {
        self.stale_answers.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("finout_auth_stale_answers_total").increment(1);
    }

    /// A cached token was refreshed from the store in the background.
    pub(crate) fn refresh(&self) {
        self.refreshes.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("finout_auth_refreshes_total").increment(1);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            authenticated: self.admitted_from_cache.load(Relaxed)
                + self.admitted_otherwise.load(Relaxed),
            cache_hits: self.admitted_from_cache.load(Relaxed)
                + self.rejected_from_cache.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
            store_lookups: self.store_lookups.load(Relaxed),
            secret_verifications: self.secret_verifications.load(Relaxed),
            unknown_ids: self.unknown_ids.load(Relaxed),
            revalidations: self.revalidations.load(Relaxed),
            refreshes: self.refreshes.load(Relaxed),
            stale_answers: self.stale_answers.load(Relaxed),
            verifications_in_flight: self.verifications_in_flight.load(Relaxed),
            rejections: ErrorCode::ALL.map(|c| (c, self.rejections[c.index()].load(Relaxed))),
        }
    }
}

pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
        #[cfg(feature = "metrics")]
        metrics::gauge!(VERIFICATIONS_IN_FLIGHT).decrement(1.0);
    }
}

/// A cold request in flight (see [`Counters::cold`]).
pub(crate) struct Cold {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    started: std::time::Instant,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    outcome: &'static str,
}

impl Cold {
    /// How it ended: `ok` or an error code.
    pub(crate) fn finished(mut self, outcome: &'static str) {
        self.outcome = outcome;
    }
}

impl Drop for Cold {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        {
            metrics::gauge!(COLD_IN_FLIGHT).decrement(1.0);
            metrics::histogram!(COLD_SECONDS, "outcome" => self.outcome)
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(feature = "metrics")]
const VERIFICATIONS_IN_FLIGHT: &str = "finout_auth_verifications_in_flight";
#[cfg(feature = "metrics")]
const COLD_IN_FLIGHT: &str = "finout_auth_cold_in_flight";
#[cfg(feature = "metrics")]
const COLD_SECONDS: &str = "finout_auth_cold_path_seconds";

/// Describe every metric the crate reports through the `metrics` facade (the `# HELP`
/// lines of a Prometheus exporter): call it once, after installing your recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "finout_auth_requests_total",
        "Answers by outcome: ok, or the error code."
    );
    describe_counter!(
        "finout_auth_cache_hits_total",
        "Requests answered from the cache."
    );
    describe_counter!(
        "finout_auth_cache_misses_total",
        "Requests that took the cold path."
    );
    describe_counter!(
        "finout_auth_store_lookups_total",
        "Calls to the token store."
    );
    describe_counter!(
        "finout_auth_secret_verifications_total",
        "argon2 verifications run."
    );
    describe_counter!(
        "finout_auth_unknown_ids_total",
        "Checks of client ids no token has (refused without argon2)."
    );
    describe_counter!(
        "finout_auth_revalidations_total",
        "Cold requests admitted by a known secret, without argon2."
    );
    describe_counter!(
        "finout_auth_refreshes_total",
        "Cached tokens refreshed from the store before their TTL."
    );
    describe_counter!(
        "finout_auth_stale_answers_total",
        "Tokens admitted stale while the store could not be reached."
    );
    describe_gauge!(VERIFICATIONS_IN_FLIGHT, "argon2 verifications running now.");
    describe_gauge!(
        COLD_IN_FLIGHT,
        "Cold requests (store, maybe argon2) being answered now."
    );
    describe_histogram!(
        COLD_SECONDS,
        Unit::Seconds,
        "Time of a cold authentication, by outcome."
    );
}

/// A point-in-time copy of the counters (all monotonic since start).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Requests authenticated.
    pub authenticated: u64,
    /// Requests answered from cache (a verified token, or an attempt that already failed):
    /// no store call, no argon2.
    pub cache_hits: u64,
    /// Requests that needed the cold path.
    pub cache_misses: u64,
    /// Calls to the token store.
    pub store_lookups: u64,
    /// argon2 verifications run.
    pub secret_verifications: u64,
    /// Checks of client ids no token has: refused without argon2 (at the refusal deadline,
    /// see [`AuthenticatorBuilder::verification_wait`](crate::AuthenticatorBuilder::verification_wait)).
    pub unknown_ids: u64,
    /// Cold requests whose secret was known for the stored hash: admitted after a store
    /// lookup, without argon2.
    pub revalidations: u64,
    /// Cached tokens refreshed from the store in the background, before their TTL.
    pub refreshes: u64,
    /// Tokens admitted stale, verified before and past their TTL, because the store could
    /// not be reached (see
    /// [`AuthenticatorBuilder::stale_if_unavailable`](crate::AuthenticatorBuilder::stale_if_unavailable)).
    pub stale_answers: u64,
    /// argon2 verifications running right now (never above the configured concurrency).
    pub verifications_in_flight: u64,
    /// Rejections, by code.
    pub rejections: [(ErrorCode, u64); ErrorCode::ALL.len()],
}

impl MetricsSnapshot {
    /// Rejections with `code`.
    pub fn rejections_of(&self, code: ErrorCode) -> u64 {
        self.rejections[code.index()].1
    }
}
