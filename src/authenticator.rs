//! The [`Authenticator`]: turns presented credentials into a [`Principal`], as in the request
//! flow of the crate docs.
//!
//! - **Hot path** ([`Authenticator::authenticate_cached`], synchronous): one cache read by
//!   client id (this thread's front of recent entries, else moka; see `front`), a keyed
//!   BLAKE3 digest of the presented secret compared in constant time with
//!   the digest of the secret argon2 accepted, and an expiry re-check. No store call, no
//!   argon2, no allocation. An attempt that already failed is refused as cheaply.
//! - **Cold path**: the token record is fetched once per client id however many requests
//!   wait for it (coalesced in a moka cache), then the secret is checked with argon2id on a
//!   dedicated low-priority thread, bounded by a semaphore; concurrent requests with the same
//!   id *and* secret share one verification, and its verdict is cached briefly, so repeating
//!   a wrong secret costs no argon2.
//!
//! # Staleness
//!
//! Every cached record carries the revocation epoch of its client id as it was *before* the
//! store was read. [`Authenticator::invalidate`] bumps that epoch (after the store changed),
//! and every use of a cached entry compares epochs, so a lookup or verification that was in
//! flight during a revoke can never re-admit the token, even if it lands in the cache late.
//! Epochs are striped (1024 stripes), so an invalidation costs other tokens in its stripe at
//! most one extra store lookup (no argon2: the verdict for the unchanged hash is reused).

use std::{
    fmt,
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tracing::Level;

use crate::{
    clock::{Clock, SystemClock},
    credentials::Credentials,
    error::{AuthError, StoreError},
    front,
    metrics::{Counters, MetricsSnapshot},
    pool::VerifierPool,
    principal::Principal,
    store::{ResolvedToken, TokenStore},
    token::{ClientId, SecretHash, SecretKey, TokenKind},
    usage::UsageRecorder,
    verify::{DigestKey, SecretDigest, SecretHasher, digests_equal},
};

const STRIPES: usize = 1024;

type FastHash = foldhash::fast::RandomState;

/// Authenticates credentials against a [`TokenStore`], with caching. Cheap to clone (one
/// `Arc`); clones share caches and counters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use finout_auth::{Authenticator, Credentials, NewToken, Role, TokenAdmin};
/// use finout_auth::store::MemoryTokenStore;
///
/// let store = Arc::new(MemoryTokenStore::new());
/// let auth = Authenticator::builder(store.clone()).build();
/// let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
///
/// let account = admin.create_account("Acme").await?;
/// let token = admin.issue_api_token(account.id, None, NewToken::new("ci", Role::ReadOnly)).await?;
///
/// let creds = Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret())?;
/// let principal = auth.authenticate(creds).await?;
/// assert_eq!(principal.account_id(), account.id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn TokenStore>,
    hasher: SecretHasher,
    digest_key: DigestKey,
    clock: Arc<dyn Clock>,
    /// Keys are ids of tokens whose secret argon2 accepted (never attacker-chosen), so a
    /// fast hasher is safe here.
    verified: moka::sync::Cache<ClientId, Arc<VerifiedEntry>, FastHash>,
    /// This cache's id in the per-thread fronts (see `front`).
    front_owner: u64,
    /// The age, in coarse clock ticks, up to which the front may serve an entry: the cache
    /// TTL less a margin for the coarse clock's resolution (0: the front never serves).
    front_ttl_ticks: u64,
    records: moka::future::Cache<ClientId, Arc<Fetched>>,
    verdicts: moka::future::Cache<(ClientId, SecretDigest), Arc<Verdict>>,
    /// Attempts known to fail, by attempt digest: answered synchronously, like the hot path.
    /// Keys are keyed digests: uniformly random to anyone without the key.
    rejected: moka::sync::Cache<SecretDigest, Refusal, FastHash>,
    /// Like `front_ttl_ticks`, for refusals: the verdict TTL less the margin.
    refusal_ttl_ticks: u64,
    epochs: Box<[AtomicU64]>,
    stripe_hasher: std::hash::RandomState,
    permits: Arc<Semaphore>,
    pool: VerifierPool,
    /// Places in line for a permit (running + waiting): beyond them, `auth_busy` at once.
    queue: Semaphore,
    verification_wait: Duration,
    dummy_verification: bool,
    failures: Option<FailureThrottle>,
    usage: Option<UsageRecorder>,
    counters: Arc<Counters>,
}

/// Counts failed attempts per client id in fixed windows.
struct FailureThrottle {
    limit: u32,
    window: Duration,
    windows: moka::sync::Cache<ClientId, Arc<FailureWindow>>,
}

struct FailureWindow {
    opened: Instant,
    failures: std::sync::atomic::AtomicU32,
}

impl FailureThrottle {
    /// `Some(retry_after)` when `client_id` has used up its failures for this window.
    fn check(&self, client_id: &ClientId) -> Option<Duration> {
        let window = self.windows.get(client_id)?;
        let left = self.window.checked_sub(window.opened.elapsed())?;
        (window.failures.load(Ordering::Relaxed) >= self.limit).then_some(left)
    }

    fn record_failure(&self, client_id: &ClientId) {
        self.windows
            .get_with_by_ref(client_id, || {
                Arc::new(FailureWindow {
                    opened: Instant::now(),
                    failures: Default::default(),
                })
            })
            .failures
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// What the store said about a client id, and the epoch it said it in.
struct Fetched {
    token: Option<ResolvedToken>,
    /// `None` when the record cannot authenticate (e.g. a personal token without its user).
    principal: Option<Principal>,
    stripe: usize,
    epoch: u64,
}

/// Where a log line's client id comes from, read only if the line is written.
trait ClientIdText {
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

/// A revocation epoch as read for one stripe.
#[derive(Clone, Copy)]
struct Epoch {
    stripe: usize,
    epoch: u64,
}

impl Fetched {
    /// The epoch it was fetched in.
    fn at(&self) -> Epoch {
        Epoch {
            stripe: self.stripe,
            epoch: self.epoch,
        }
    }
}

/// A failed attempt as cached: the epoch its token was fetched in (a later change to the
/// token makes it void) and when it was cached, by the coarse monotonic clock (the
/// per-thread front serves it only while it is younger than the verdict TTL).
#[derive(Clone, Copy)]
pub(crate) struct Refusal {
    at: Epoch,
    cached_at: coarsetime::Instant,
}

/// A token whose secret argon2 accepted.
pub(crate) struct VerifiedEntry {
    /// Its client id (the key, compared by the per-thread front).
    client_id: ClientId,
    /// The revocation epoch it was fetched in (copied here: a hit reads nothing else).
    fetched: Epoch,
    /// When it entered the cache, by the coarse monotonic clock: the per-thread front
    /// serves it only while it is younger than the cache TTL.
    cached_at: coarsetime::Instant,
    digest: SecretDigest,
    principal: Principal,
    /// The token's expiry, in nanoseconds since the Unix epoch (compared with
    /// [`Clock::now_unix_nanos`] on every hit).
    expires_at: Option<i128>,
    /// When use of this token was last reported for `last_used_at` (coarse seconds).
    last_reported: AtomicU64,
}

impl VerifiedEntry {
    pub(crate) fn client_id_bytes(&self) -> &[u8] {
        self.client_id.as_str().as_bytes()
    }
}

/// The outcome of one argon2 verification, for the hash it was made against.
struct Verdict {
    hash: SecretHash,
    ok: bool,
}

/// No verification capacity in time, or the blocking task died: either way, try later.
#[derive(Debug, Clone, Copy)]
struct VerifyFailed;

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("store", &self.inner.store)
            .field("cached_tokens", &self.inner.verified.entry_count())
            .finish_non_exhaustive()
    }
}

/// Configures an [`Authenticator`].
#[must_use]
pub struct AuthenticatorBuilder {
    store: Arc<dyn TokenStore>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    cache_capacity: u64,
    cache_ttl: Duration,
    verdict_ttl: Duration,
    max_concurrent_verifications: usize,
    max_waiting_verifications: usize,
    low_priority_verification: bool,
    dummy_verification: bool,
    verification_wait: Duration,
    failure_limit: Option<(u32, Duration)>,
    usage_interval: Option<Duration>,
}

impl fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_ttl", &self.cache_ttl)
            .field("verdict_ttl", &self.verdict_ttl)
            .field(
                "max_concurrent_verifications",
                &self.max_concurrent_verifications,
            )
            .field("max_waiting_verifications", &self.max_waiting_verifications)
            .field("low_priority_verification", &self.low_priority_verification)
            .field("dummy_verification", &self.dummy_verification)
            .field("verification_wait", &self.verification_wait)
            .field("failure_limit", &self.failure_limit)
            .field("usage_interval", &self.usage_interval)
            .finish_non_exhaustive()
    }
}

impl AuthenticatorBuilder {
    /// How many tokens each cache holds at most. Default 10,000.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// How long a verified token or a fetched record is trusted without asking the store
    /// again: the bound on staleness when an invalidation is missed. Default 60 s.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long the outcome of an argon2 verification is remembered per (client id, secret),
    /// so that repeating a wrong secret costs no argon2. Default 60 s.
    pub fn verdict_ttl(mut self, ttl: Duration) -> Self {
        self.verdict_ttl = ttl;
        self
    }

    /// How many argon2 verifications may run at once. Default: one less than the number of
    /// CPUs (at least 1), so that a flood of cold requests leaves a core for cached ones.
    pub fn max_concurrent_verifications(mut self, n: usize) -> Self {
        self.max_concurrent_verifications = n.max(1);
        self
    }

    /// Run argon2 on dedicated threads at the lowest OS priority (the default), so that a
    /// flood of verifications yields the CPU to cached requests; `false` keeps them at
    /// normal priority.
    pub fn low_priority_verification(mut self, low: bool) -> Self {
        self.low_priority_verification = low;
        self
    }

    /// Run a dummy argon2 verification for unknown client ids (the default), so that their
    /// answer takes as long as a wrong secret's and timing does not tell which ids exist.
    /// `false` answers unknown ids at once: cheaper under a flood of invented ids, at the
    /// cost of revealing which ids exist.
    pub fn dummy_verification(mut self, on: bool) -> Self {
        self.dummy_verification = on;
        self
    }

    /// How many verifications may wait for a free slot; past that, `auth_busy` at once
    /// instead of piling up. Default 64.
    pub fn max_waiting_verifications(mut self, n: usize) -> Self {
        self.max_waiting_verifications = n;
        self
    }

    /// How long a request waits for verification capacity before `auth_busy`. Default 2 s.
    pub fn verification_wait(mut self, wait: Duration) -> Self {
        self.verification_wait = wait;
        self
    }

    /// Allow at most `failures` failed attempts per client id in each `window`; further
    /// attempts answer `too_many_attempts` until the window closes. A secret already known
    /// good (cached) keeps working. Default: 20 per 60 s.
    pub fn failure_limit(mut self, failures: u32, window: Duration) -> Self {
        self.failure_limit = Some((failures.max(1), window));
        self
    }

    /// Turn the per-client-id failure throttle off.
    pub fn no_failure_limit(mut self) -> Self {
        self.failure_limit = None;
        self
    }

    /// Record each token's `last_used_at` at most once per `interval` (default 60 s), off
    /// the hot path and in batches, through [`TokenStore::record_usage`]. Needs a tokio
    /// runtime when [`build`](Self::build) is called.
    pub fn usage_interval(mut self, interval: Duration) -> Self {
        self.usage_interval = Some(interval);
        self
    }

    /// Do not record `last_used_at`.
    pub fn no_usage_recording(mut self) -> Self {
        self.usage_interval = None;
        self
    }

    /// The hasher whose caps apply to stored hashes (and whose parameters the dummy
    /// verification for unknown ids uses). Default: argon2id m=19456, t=2, p=1.
    pub fn hasher(mut self, hasher: SecretHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Where "now" comes from. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Build the authenticator.
    pub fn build(self) -> Authenticator {
        let usage = self
            .usage_interval
            .and_then(|every| UsageRecorder::start(self.store.clone(), self.clock.clone(), every));
        Authenticator {
            inner: Arc::new(Inner {
                store: self.store,
                hasher: self.hasher,
                digest_key: DigestKey::random(),
                clock: self.clock,
                verified: moka::sync::Cache::builder()
                    .max_capacity(self.cache_capacity)
                    .time_to_live(self.cache_ttl)
                    .build_with_hasher(FastHash::default()),
                front_owner: front::new_owner(),
                front_ttl_ticks: front_ticks(self.cache_ttl),
                records: moka::future::Cache::builder()
                    .max_capacity(self.cache_capacity)
                    .time_to_live(self.cache_ttl)
                    .build(),
                verdicts: moka::future::Cache::builder()
                    .max_capacity(self.cache_capacity)
                    .time_to_live(self.verdict_ttl)
                    .build(),
                rejected: moka::sync::Cache::builder()
                    .max_capacity(self.cache_capacity)
                    .time_to_live(self.verdict_ttl)
                    .build_with_hasher(FastHash::default()),
                refusal_ttl_ticks: front_ticks(self.verdict_ttl),
                epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
                stripe_hasher: std::hash::RandomState::new(),
                permits: Arc::new(Semaphore::new(self.max_concurrent_verifications)),
                pool: VerifierPool::new(
                    self.max_concurrent_verifications,
                    self.low_priority_verification,
                ),
                queue: Semaphore::new(
                    self.max_concurrent_verifications + self.max_waiting_verifications,
                ),
                verification_wait: self.verification_wait,
                dummy_verification: self.dummy_verification,
                failures: self.failure_limit.map(|(limit, window)| FailureThrottle {
                    limit,
                    window,
                    windows: moka::sync::Cache::builder()
                        .max_capacity(self.cache_capacity)
                        .time_to_live(window)
                        .build(),
                }),
                usage,
                counters: Arc::default(),
            }),
        }
    }
}

impl Authenticator {
    /// Start configuring an authenticator over `store`.
    pub fn builder(store: Arc<dyn TokenStore>) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            store,
            hasher: SecretHasher::default(),
            clock: Arc::new(SystemClock),
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(60),
            verdict_ttl: Duration::from_secs(60),
            max_concurrent_verifications: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            max_waiting_verifications: 64,
            low_priority_verification: true,
            dummy_verification: true,
            verification_wait: Duration::from_secs(2),
            failure_limit: Some((20, Duration::from_secs(60))),
            usage_interval: Some(Duration::from_secs(60)),
        }
    }

    /// An authenticator over `store` with every default.
    pub fn new(store: Arc<dyn TokenStore>) -> Self {
        Self::builder(store).build()
    }

    /// The counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.counters.snapshot()
    }

    /// The clock this authenticator reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Authenticate credentials: the hot path if the token is cached, else the cold path.
    pub async fn authenticate(&self, credentials: Credentials<'_>) -> Result<Principal, AuthError> {
        if let Some(outcome) = self.authenticate_cached(credentials) {
            return outcome;
        }
        self.authenticate_uncached(
            ClientId::from(credentials.client_id()),
            SecretKey::new(credentials.secret()),
        )
        .await
    }

    /// The hot path alone: `Some` when the cache can answer (a verified token with this exact
    /// secret: admitted, or `token_expired`); `None` when the cold path must run.
    ///
    /// Synchronous and allocation-free, so a layer can answer without boxing a future.
    pub fn authenticate_cached(
        &self,
        credentials: Credentials<'_>,
    ) -> Option<Result<Principal, AuthError>> {
        let inner = &*self.inner;
        // Timing costs two clock reads: only when someone listens.
        let started = tracing::enabled!(target: "finout_auth", Level::DEBUG).then(Instant::now);
        let secret_digest = inner.digest_key.digest(credentials.secret_bytes());
        let entry = match inner.verified_entry(credentials.client_id_bytes()) {
            Some((entry, _)) if digests_equal(&secret_digest, &entry.digest) => entry,
            found => {
                // A wrong secret for a token in use costs what an unknown id costs (a
                // shared-cache probe), so that timing does not tell which ids belong to
                // tokens in use.
                if let Some((_, true)) = found {
                    let _ = inner.verified.contains_key(credentials.client_id_bytes());
                }
                return inner.cached_rejection(credentials, &secret_digest, started);
            }
        };
        let outcome = match entry.expires_at {
            Some(at) if inner.clock.now_unix_nanos() >= at => {
                // Past its expiry a cached token admits nobody: drop it now rather than at
                // the TTL (a per-entry moka expiry would cost every hit a clock read).
                inner.verified.invalidate(credentials.client_id_bytes());
                Err(AuthError::TokenExpired)
            }
            _ => {
                if let Some(usage) = &inner.usage {
                    usage.used(entry.principal.client_id(), &entry.last_reported);
                }
                Ok(entry.principal.clone())
            }
        };
        inner.finish(Some(&credentials), outcome.as_ref(), "cache", started);
        Some(outcome)
    }

    /// The cold path: look the token up (coalesced), verify the secret with argon2id
    /// (bounded, coalesced per secret) and cache the result.
    pub async fn authenticate_uncached(
        &self,
        client_id: ClientId,
        secret: SecretKey,
    ) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let started = Instant::now();
        inner.counters.cache_miss();
        let outcome = inner.cold_throttled(&client_id, &secret).await;
        inner.finish(Some(&client_id), outcome.as_ref(), "store", Some(started));
        outcome
    }

    /// Forget everything cached about `client_id`, here and now: call it *after* the store
    /// changed (revoke, user removal, role change). In-flight lookups and verifications that
    /// started before cannot put the token back.
    pub async fn invalidate(&self, client_id: &ClientId) {
        let inner = &*self.inner;
        inner.epochs[inner.stripe_of(client_id.as_str())].fetch_add(1, Ordering::AcqRel);
        inner.verified.invalidate(client_id);
        inner.records.invalidate(client_id).await;
    }

    /// Forget every cached token and record (verdicts stay: they are bound to hashes).
    pub fn invalidate_all(&self) {
        let inner = &*self.inner;
        for epoch in inner.epochs.iter() {
            epoch.fetch_add(1, Ordering::AcqRel);
        }
        inner.verified.invalidate_all();
        inner.records.invalidate_all();
    }

    /// Count a rejection decided outside the authenticator (e.g. unparsable headers, a
    /// failed role requirement), so the counters cover every outcome.
    pub fn record_rejection(&self, error: &AuthError) {
        self.inner.finish(None, Err(error), "request", None);
    }
}

/// The age in coarse clock ticks up to which a front may serve what a cache with this TTL
/// holds: the TTL less a margin for the coarse clock's resolution (0: never).
fn front_ticks(ttl: Duration) -> u64 {
    ttl.checked_sub(front::CLOCK_MARGIN)
        .map_or(0, |ttl| coarsetime::Duration::from(ttl).as_ticks())
}

/// Whether something cached at `cached_at` is younger than `ticks`, by the coarse clock.
fn is_younger(cached_at: coarsetime::Instant, ticks: u64) -> bool {
    let now = coarsetime::Instant::now_without_cache_update();
    now.as_ticks().saturating_sub(cached_at.as_ticks()) < ticks
}

impl Inner {
    /// An attempt that already failed (same id, same secret, token unchanged since):
    /// `invalid_credentials` at once, without the store or argon2.
    fn cached_rejection(
        &self,
        credentials: Credentials<'_>,
        secret_digest: &SecretDigest,
        started: Option<Instant>,
    ) -> Option<Result<Principal, AuthError>> {
        let id = credentials.client_id_bytes();
        let seen = match front::refusal(self.front_owner, id, secret_digest) {
            Some(refusal) if is_younger(refusal.cached_at, self.refusal_ttl_ticks) => refusal,
            _ => {
                let refusal = self.rejected.get(&self.attempt_key(id, secret_digest))?;
                front::put_refusal(self.front_owner, id, secret_digest, refusal);
                refusal
            }
        };
        if !self.is_current_epoch(seen.at) {
            return None; // the token changed since: decide afresh
        }
        let outcome = Err(AuthError::InvalidCredentials);
        self.finish(Some(&credentials), outcome.as_ref(), "cache", started);
        Some(outcome)
    }

    fn remember_rejection(&self, client_id: &ClientId, digest: &SecretDigest, fetched: &Fetched) {
        let refusal = Refusal {
            at: fetched.at(),
            cached_at: coarsetime::Instant::now_without_cache_update(),
        };
        let attempt = self.attempt_key(client_id.as_str().as_bytes(), digest);
        self.rejected.insert(attempt, refusal);
    }

    /// The key a failed attempt is cached under: the secret's keyed digest masked with the
    /// id's, so that the same secret on another id is another attempt.
    fn attempt_key(&self, client_id: &[u8], secret_digest: &SecretDigest) -> SecretDigest {
        DigestKey::attempt(secret_digest, &self.digest_key.id_mask(client_id))
    }

    fn stripe_of(&self, client_id: &str) -> usize {
        (self.stripe_hasher.hash_one(client_id) as usize) % STRIPES
    }

    /// The verified entry for a client id, if there is a current one: from this thread's
    /// front when it holds one younger than the cache TTL (`true`), else from moka,
    /// refilling the front (`false`).
    fn verified_entry(&self, client_id: &[u8]) -> Option<(Arc<VerifiedEntry>, bool)> {
        if let Some(entry) = front::get(self.front_owner, client_id) {
            if is_younger(entry.cached_at, self.front_ttl_ticks)
                && self.is_current_epoch(entry.fetched)
            {
                return Some((entry, true));
            }
        }
        let entry = self.verified.get(client_id)?;
        if !self.is_current_epoch(entry.fetched) {
            return None;
        }
        front::put(self.front_owner, &entry);
        Some((entry, false))
    }

    fn is_current_epoch(&self, at: Epoch) -> bool {
        self.epochs[at.stripe].load(Ordering::Acquire) == at.epoch
    }

    fn is_current(&self, fetched: &Fetched) -> bool {
        self.is_current_epoch(fetched.at())
    }

    fn finish(
        &self,
        client_id: Option<&dyn ClientIdText>,
        outcome: Result<&Principal, &AuthError>,
        path: &'static str,
        started: Option<Instant>,
    ) {
        let from_cache = path == "cache";
        match outcome {
            Ok(_) => self.counters.admitted(from_cache),
            Err(e) => self.counters.rejected(e.code(), from_cache),
        }
        if !tracing::enabled!(target: "finout_auth", Level::DEBUG) {
            return;
        }
        let latency_us = started.map(|s| s.elapsed().as_micros() as u64);
        let client_id = client_id.map(|c| c.text());
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

    async fn cold_throttled(
        &self,
        client_id: &ClientId,
        secret: &SecretKey,
    ) -> Result<Principal, AuthError> {
        let digest = self.digest_key.digest(secret.expose_secret().as_bytes());
        let Some(throttle) = &self.failures else {
            return self.cold(client_id, secret, digest).await;
        };
        if let Some(retry_after) = throttle.check(client_id) {
            // A secret argon2 already accepted is never locked out by others' failures.
            let known_good = self
                .verdicts
                .get(&(client_id.clone(), digest))
                .await
                .is_some_and(|v| v.ok);
            if !known_good {
                return Err(AuthError::TooManyAttempts { retry_after });
            }
        }
        let outcome = self.cold(client_id, secret, digest).await;
        if matches!(outcome, Err(AuthError::InvalidCredentials)) {
            throttle.record_failure(client_id);
        }
        outcome
    }

    async fn cold(
        &self,
        client_id: &ClientId,
        secret: &SecretKey,
        digest: SecretDigest,
    ) -> Result<Principal, AuthError> {
        // A retry happens only when the token changed while we looked at it; a client id
        // invalidated on every attempt is as good as gone.
        for _ in 0..3 {
            let fetched = self.fetch(client_id).await?;
            if !self.is_current(&fetched) {
                self.records.invalidate(client_id).await;
                continue;
            }
            let (Some(token), Some(principal)) = (&fetched.token, &fetched.principal) else {
                // Unknown id (or an owner-less personal token): spend what a wrong secret
                // would, so timing does not tell which ids exist.
                if self.dummy_verification {
                    self.verdict(client_id, digest, None, secret).await?;
                }
                self.remember_rejection(client_id, &digest, &fetched);
                return Err(AuthError::InvalidCredentials);
            };
            let hash = &token.record.secret_hash;
            if !self.verdict(client_id, digest, Some(hash), secret).await? {
                self.remember_rejection(client_id, &digest, &fetched);
                return Err(AuthError::InvalidCredentials);
            }
            if !self.is_current(&fetched) {
                // Revoked or changed while argon2 ran: look again; the verdict is reused if
                // the hash did not change.
                continue;
            }
            // Expiry is checked only now, so only the holder of the secret learns it.
            if token.record.is_expired_at(self.clock.now()) {
                return Err(AuthError::TokenExpired);
            }
            let entry = Arc::new(VerifiedEntry {
                client_id: client_id.clone(),
                fetched: fetched.at(),
                cached_at: coarsetime::Instant::now_without_cache_update(),
                digest,
                principal: principal.clone(),
                expires_at: token
                    .record
                    .expires_at
                    .map(OffsetDateTime::unix_timestamp_nanos),
                last_reported: AtomicU64::new(0),
            });
            if let Some(usage) = &self.usage {
                usage.used(client_id, &entry.last_reported);
            }
            self.verified.insert(client_id.clone(), entry);
            return Ok(principal.clone());
        }
        Err(AuthError::InvalidCredentials)
    }

    /// The store's answer for `client_id`, fetched once for all concurrent callers.
    async fn fetch(&self, client_id: &ClientId) -> Result<Arc<Fetched>, AuthError> {
        let load = async {
            let stripe = self.stripe_of(client_id.as_str());
            // Read the epoch *before* the store: an invalidation after this point makes the
            // result stale even if it lands in the cache later.
            let epoch = self.epochs[stripe].load(Ordering::Acquire);
            self.counters.store_lookup();
            let token = self.store.find_token(client_id).await?;
            let principal = token.as_ref().and_then(|t| principal_for(client_id, t));
            Ok::<_, StoreError>(Arc::new(Fetched {
                token,
                principal,
                stripe,
                epoch,
            }))
        };
        self.records
            .try_get_with(client_id.clone(), load)
            .await
            .map_err(|e| {
                tracing::warn!(target: "finout_auth", client_id = %client_id, error = %e, "token store lookup failed");
                AuthError::AuthUnavailable(shared(e))
            })
    }

    /// Whether `secret` matches `hash` (`None`: no token, run a dummy verification). One
    /// argon2 run serves every concurrent caller with the same id and secret, and its outcome
    /// is remembered for the verdict TTL.
    async fn verdict(
        &self,
        client_id: &ClientId,
        digest: SecretDigest,
        hash: Option<&SecretHash>,
        secret: &SecretKey,
    ) -> Result<bool, AuthError> {
        let key = (client_id.clone(), digest);
        let unknown = SecretHash::from_phc("");
        let hash = hash.unwrap_or(&unknown);
        for _ in 0..2 {
            let verdict = self
                .verdicts
                .try_get_with(key.clone(), self.run_verification(client_id, hash, secret))
                .await
                .map_err(|_: Arc<VerifyFailed>| AuthError::AuthBusy {
                    retry_after: Duration::from_secs(1),
                })?;
            if verdict.hash == *hash {
                return Ok(verdict.ok);
            }
            // Remembered for another hash (the id was reissued): decide afresh.
            self.verdicts.invalidate(&key).await;
        }
        Ok(false)
    }

    async fn run_verification(
        &self,
        client_id: &ClientId,
        hash: &SecretHash,
        secret: &SecretKey,
    ) -> Result<Arc<Verdict>, VerifyFailed> {
        // Held until the verification is done: running and waiting verifications together
        // never exceed the line's length, so a flood cannot pile up waiting tasks.
        let _in_line = self.queue.try_acquire().map_err(|_| VerifyFailed)?;
        let permit =
            tokio::time::timeout(self.verification_wait, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| VerifyFailed)?
                .map_err(|_| VerifyFailed)?;
        let hasher = self.hasher.clone();
        let counters = self.counters.clone();
        let (secret, stored) = (secret.clone(), hash.clone());
        let verification = self
            .pool
            .run(move || {
                let _permit = permit;
                let _running = counters.secret_verification();
                if stored.as_phc().is_empty() {
                    hasher.dummy_verify(secret.expose_secret().as_bytes());
                    Ok(false)
                } else {
                    hasher.verify(secret.expose_secret().as_bytes(), &stored)
                }
            })
            .await
            .ok_or(VerifyFailed)?;
        let ok = verification.unwrap_or_else(|refused| {
            tracing::warn!(target: "finout_auth", %client_id, reason = refused.0, "stored secret hash refused");
            false
        });
        Ok(Arc::new(Verdict {
            hash: hash.clone(),
            ok,
        }))
    }
}

/// moka shares one error among all waiters; keep it as the source without stringifying.
fn shared(e: Arc<StoreError>) -> StoreError {
    #[derive(Debug)]
    struct Shared(Arc<StoreError>);
    impl fmt::Display for Shared {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.0, f)
        }
    }
    impl std::error::Error for Shared {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            std::error::Error::source(&*self.0)
        }
    }
    StoreError::backend(Shared(e))
}

/// The principal a resolved token authenticates as; `None` if the record is inconsistent.
fn principal_for(client_id: &ClientId, token: &ResolvedToken) -> Option<Principal> {
    let record = &token.record;
    if record.client_id != *client_id {
        return None;
    }
    match (record.kind, record.user_id, &token.user) {
        (TokenKind::Api, None, None) => Some(Principal::account(
            record.account_id,
            record.role.clone(),
            client_id.clone(),
        )),
        (TokenKind::Personal, Some(user_id), Some(user))
            if user.id == user_id && user.account_id == record.account_id =>
        {
            Some(Principal::for_user(
                user,
                record.role.clone(),
                client_id.clone(),
            ))
        }
        _ => None,
    }
}
