//! State that every replica of a service shares: rate limits, in-flight slots, failure
//! windows and verified secrets, so that N replicas enforce one set of limits (not N) and a
//! restarted or new replica admits a secret any replica verified without running argon2.
//!
//! Without it, each process keeps its own (the default): nothing here is on the path of a
//! request unless a layer or an authenticator is given a [`Shared`].
//!
//! - [`SharedState`] is the engine: [`RedisShared`] (feature `redis`) keeps it in Redis, one
//!   Lua script per decision, so each decision is atomic across replicas; implement the
//!   trait for another store.
//! - [`Shared`] wraps an engine with what makes it safe to depend on: a deadline on every
//!   call, and a circuit breaker. A call that fails or misses its deadline is answered by
//!   the process's own state instead (the limit then holds per replica, as without sharing);
//!   after [`DEFAULT_BREAKER_FAILURES`] failures in a row the engine is not called for
//!   [`DEFAULT_BREAKER_PAUSE`], then one call probes it. The fall back is logged once when
//!   the breaker opens and once when it closes; nothing answers 5xx because the engine is
//!   down.
//!
//! # What each limit does when the engine is down
//!
//! | State | Shared | Engine unreachable |
//! |---|---|---|
//! | [`RateLimitLayer`](crate::middleware::RateLimitLayer) | one GCRA per key for all replicas, all quotas decided in one script | the process's own GCRA (its counts start from where this process last left them) |
//! | [`TokenConcurrencyLimitLayer`](crate::middleware::TokenConcurrencyLimitLayer) | one set of leased slots per token; a lease expires unless renewed, so a crashed replica's slots come back | the process's own slots |
//! | failure windows ([`failure_limit`](crate::AuthenticatorBuilder::failure_limit)) | one window per client id | the process's own window |
//! | verified secrets ([`verified_secrets`](crate::AuthenticatorBuilder::verified_secrets)) | a secret verified by any replica is admitted by another after a store lookup, no argon2 | argon2, as for a secret not yet verified |
//!
//! # What is kept where, for many replicas
//!
//! | what | where | shared by |
//! |---|---|---|
//! | tokens, users, accounts | the token store (PostgreSQL) | every replica |
//! | revocations and changes | the store's change feed (`LISTEN`/`NOTIFY`) | every replica, at once |
//! | verified tokens, refusals, verdicts | each process's caches (moka) | nobody: a cache |
//! | limits, failure windows | [`Shared`] (Redis) | every replica |
//! | verified secrets | each process's memory, and [`Shared`] with [`VerifiedSecrets`] | every replica, and a restarted one |
//!
//! **When PostgreSQL is down**: cached tokens keep working; past `cache_ttl`, tokens verified
//! before still do for
//! [`stale_if_unavailable`](crate::AuthenticatorBuilder::stale_if_unavailable) (5 minutes);
//! other tokens answer 503 `auth_unavailable`; the change feed reconnects by itself and then
//! clears the caches. **When Redis is down**: each limit holds per process (the table below),
//! verified secrets fall back to argon2, nothing answers 5xx for it.
//!
//! **Connections**: each replica holds its pool (at most
//! [`DEFAULT_MAX_CONNECTIONS`](crate::store::DEFAULT_MAX_CONNECTIONS), 8, with the `postgres`
//! feature) plus one for the change feed, so `replicas × (pool + 1)` must fit the server's
//! `max_connections` less its reserved ones: 10 × 9 = 90 of a default server's 97. Behind a
//! pooler in transaction mode, which cannot carry `LISTEN`, give the feed the direct URL
//! (`PostgresTokenStore::listen_at`). Redis takes one multiplexed connection per
//! [`RedisShared`] (share one per process).
//!
//! # Order of the limits
//!
//! Put the in-flight limit *outside* the rate limit (the request meets it first): a slot is
//! given back when the request is refused, a rate quota is not. The other order would spend
//! a request of the quota on a request then refused for want of a slot.
//!
//! # Time
//!
//! Rate limits and in-flight leases in Redis are timed by the Redis server's clock (one
//! clock for every replica), unless the layer was given a clock of its own (a test's
//! [`ManualClock`](crate::clock::ManualClock)). Failure windows expire by Redis' key TTL.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;

mod breaker;
#[cfg(feature = "redis")]
mod redis;
mod verified;

pub use breaker::{DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_PAUSE};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisShared;
pub use verified::{VerifiedSecretKey, VerifiedSecrets};

use crate::middleware::Quota;

/// How long a call to the engine may take by default before the process's own state
/// answers instead.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(100);

/// How long an in-flight slot's lease lasts by default without renewal. A request renews
/// its lease every third of that while it is in flight.
pub const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(30);

/// The engine failed (unreachable, timed out, answered something unexpected).
#[derive(Debug, Clone, thiserror::Error)]
#[error("shared state unavailable: {0}")]
pub struct SharedError(pub String);

/// A rate limit's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request was admitted (and counted).
    pub admitted: bool,
    /// How many more requests would be admitted right now, by the tightest quota.
    pub remaining: u32,
    /// When the next request will be admitted (zero if it would be now).
    pub retry_after: Duration,
    /// The index of the quota reported in rate-limit header fields: the least remaining
    /// (`remaining` is its), of several the one with the longest `reset`.
    pub quota: usize,
    /// Until that quota's remaining grows by one (with nothing remaining, until the next
    /// request will be admitted).
    pub reset: Duration,
}

/// A failure window's decision on an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowDecision {
    /// A place was taken; `window` names the window it was taken in (to give it back).
    Taken {
        /// The window's identity.
        window: String,
    },
    /// The window is full.
    Full {
        /// How long it stays full.
        retry_after: Duration,
        /// Whether this is the window's first refusal.
        first: bool,
    },
}

/// The engine of [`Shared`]: each method is one atomic decision across replicas. Keys are
/// already namespaced by [`Shared`]; an implementation may prefix them further.
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Admit one request for `key` if every quota allows it (GCRA, as
    /// [`RateLimitLayer`](crate::middleware::RateLimitLayer) describes), counting it in all
    /// of them, or none if one refuses. `now`: nanoseconds since the Unix epoch, or `None`
    /// for the engine's own clock.
    async fn rate(
        &self,
        key: &str,
        quotas: &[Quota],
        now: Option<i128>,
    ) -> Result<RateDecision, SharedError>;

    /// Take one of `max` slots of `key` under a lease of `lease` (its id is `slot`), unless
    /// `max` unexpired leases are held. `now` as for [`rate`](Self::rate).
    async fn acquire_slot(
        &self,
        key: &str,
        slot: &str,
        max: u32,
        lease: Duration,
        now: Option<i128>,
    ) -> Result<bool, SharedError>;

    /// Extend a held lease to `lease` from now.
    async fn renew_slot(
        &self,
        key: &str,
        slot: &str,
        lease: Duration,
        now: Option<i128>,
    ) -> Result<(), SharedError>;

    /// Give a slot back.
    async fn release_slot(&self, key: &str, slot: &str) -> Result<(), SharedError>;

    /// Take a place in `key`'s current failure window of `window` (a new window opens when
    /// the last has closed), unless `limit` places are taken.
    async fn reserve_failure(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<WindowDecision, SharedError>;

    /// Give back a place taken in `window` (if it is still `key`'s current window).
    async fn give_back_failure(&self, key: &str, window: &str) -> Result<(), SharedError>;

    /// Whether `tag` is among `key`'s verified secrets.
    async fn is_verified(&self, key: &str, tag: &[u8; 32]) -> Result<bool, SharedError>;

    /// Add `tag` to `key`'s verified secrets, all of which are then kept for `ttl`.
    async fn remember_verified(
        &self,
        key: &str,
        tag: &[u8; 32],
        ttl: Duration,
    ) -> Result<(), SharedError>;

    /// Keep `key`'s verified secrets (if any) for `ttl` from now.
    async fn touch_verified(&self, key: &str, ttl: Duration) -> Result<(), SharedError>;

    /// Forget `key`'s verified secrets.
    async fn forget_verified(&self, key: &str) -> Result<(), SharedError>;
}

/// A [`SharedState`] made safe to depend on: a deadline on every call and a circuit
/// breaker (see the [module docs](self)). Clones share the engine and the breaker.
#[derive(Clone)]
pub struct Shared {
    state: Arc<dyn SharedState>,
    deadline: Duration,
    breaker: Arc<breaker::Breaker>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("deadline", &self.deadline)
            .field("available", &self.breaker.closed())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Share through `state`, with the default deadline and breaker.
    pub fn new(state: impl SharedState) -> Self {
        Shared {
            state: Arc::new(state),
            deadline: DEFAULT_DEADLINE,
            breaker: Arc::new(breaker::Breaker::new(
                DEFAULT_BREAKER_FAILURES,
                DEFAULT_BREAKER_PAUSE,
            )),
        }
    }

    /// Let each call take at most `deadline` (default [`DEFAULT_DEADLINE`]).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Stop calling the engine for `pause` after `failures` failures in a row (defaults
    /// [`DEFAULT_BREAKER_FAILURES`], [`DEFAULT_BREAKER_PAUSE`]). Starts a new breaker.
    pub fn breaker(mut self, failures: u32, pause: Duration) -> Self {
        self.breaker = Arc::new(breaker::Breaker::new(failures, pause));
        self
    }

    /// Whether the engine is being called (the breaker is not open).
    pub fn is_available(&self) -> bool {
        self.breaker.closed()
    }

    /// The engine.
    pub(crate) fn state(&self) -> &dyn SharedState {
        &*self.state
    }

    /// Run one call to the engine under the deadline and the breaker; `None` when it failed
    /// or was not made (the caller falls back to its own state).
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, SharedError>>,
    ) -> Option<T> {
        let probe = self.breaker.admit()?;
        let outcome = match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(SharedError(format!("no answer within {:?}", self.deadline))),
        };
        match outcome {
            Ok(value) => {
                self.breaker.succeeded(probe);
                Some(value)
            }
            Err(error) => {
                self.breaker.failed(probe, &error);
                None
            }
        }
    }

    /// Run `call` on the engine in the background (a give-back or a release: the answer
    /// does not wait for it), under the deadline and the breaker.
    pub(crate) fn spawn<F>(&self, call: impl FnOnce(Shared) -> F + Send + 'static)
    where
        F: Future<Output = Result<(), SharedError>> + Send + 'static,
    {
        let shared = self.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let call = call(shared.clone());
                shared.call(call).await;
            });
        }
    }
}

/// A random id (for a lease or a window), 128 bits in hex.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(any(test, feature = "testing"))]
mod memory;
#[cfg(any(test, feature = "testing"))]
pub use memory::MemoryShared;

#[cfg(test)]
mod tests;
