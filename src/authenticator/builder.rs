//! [`AuthenticatorBuilder`]: every setting of an [`Authenticator`], with its default.

use std::{fmt, sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use super::{
    Authenticator, CONCURRENT_REFRESHES, Inner,
    cache::TokenCache,
    known::KnownSecrets,
    lookup::Records,
    throttle::FailureThrottle,
    usage::UsageRecorder,
    verify::{Verifier, VerifierSettings},
};
use crate::{
    clock::{Clock, SystemClock},
    crypto::{SecretHasher, digest::Fingerprints, pool::Admission},
    metrics::Metrics,
    shared::{Shared, VerifiedSecrets},
    store::TokenStore,
};

impl Authenticator {
    /// Start configuring an authenticator over `store`.
    pub fn builder(store: Arc<dyn TokenStore>) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            store,
            hasher: SecretHasher::default(),
            clock: Arc::new(SystemClock),
            metrics: Metrics::default(),
            cache_capacity: 125_000,
            cache_ttl: Duration::from_secs(60),
            verdict_ttl: Duration::from_secs(60),
            stale_if_unavailable: Duration::from_secs(300),
            known_secret_capacity: 125_000,
            known_secret_ttl: Duration::from_secs(24 * 3600),
            max_concurrent_verifications: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            max_waiting_verifications: 64,
            max_pending_checks_per_client: 2,
            low_priority_verification: cfg!(feature = "thread-priority"),
            uniform_refusals: true,
            verification_wait: Duration::from_secs(1),
            failure_limit: Some((20, Duration::from_secs(60))),
            usage_interval: Some(Duration::from_secs(60)),
            shared: None,
            verified_secrets: None,
        }
    }

    /// An authenticator over `store` with every default.
    pub fn new(store: Arc<dyn TokenStore>) -> Self {
        Self::builder(store).build()
    }
}

/// Configures an [`Authenticator`].
#[must_use]
pub struct AuthenticatorBuilder {
    store: Arc<dyn TokenStore>,
    hasher: SecretHasher,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    cache_capacity: u64,
    cache_ttl: Duration,
    verdict_ttl: Duration,
    stale_if_unavailable: Duration,
    known_secret_capacity: u64,
    known_secret_ttl: Duration,
    max_concurrent_verifications: usize,
    max_waiting_verifications: usize,
    max_pending_checks_per_client: usize,
    low_priority_verification: bool,
    uniform_refusals: bool,
    verification_wait: Duration,
    failure_limit: Option<(u32, Duration)>,
    usage_interval: Option<Duration>,
    shared: Option<Shared>,
    verified_secrets: Option<VerifiedSecrets>,
}

impl fmt::Debug for AuthenticatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorBuilder")
            .field("cache_capacity", &self.cache_capacity)
            .field("cache_ttl", &self.cache_ttl)
            .field("verdict_ttl", &self.verdict_ttl)
            .field("stale_if_unavailable", &self.stale_if_unavailable)
            .field("known_secret_capacity", &self.known_secret_capacity)
            .field("known_secret_ttl", &self.known_secret_ttl)
            .field(
                "max_concurrent_verifications",
                &self.max_concurrent_verifications,
            )
            .field("max_waiting_verifications", &self.max_waiting_verifications)
            .field(
                "max_pending_checks_per_client",
                &self.max_pending_checks_per_client,
            )
            .field("low_priority_verification", &self.low_priority_verification)
            .field("uniform_refusals", &self.uniform_refusals)
            .field("verification_wait", &self.verification_wait)
            .field("failure_limit", &self.failure_limit)
            .field("usage_interval", &self.usage_interval)
            .field("shared", &self.shared)
            .field("verified_secrets", &self.verified_secrets)
            .finish_non_exhaustive()
    }
}

impl AuthenticatorBuilder {
    /// How many tokens each cache holds at most. Default 125,000: 100,000 active tokens with
    /// room to spare (about 1.3 KiB of memory each, all caches together, measured by
    /// `tools scale`).
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// How long a verified token or a fetched record is trusted without asking the store
    /// again: the bound on staleness when an invalidation is missed. Default 60 s. A token
    /// in use is re-read from the store in the background after three quarters of it, and a
    /// token whose entry expired is re-validated with one store lookup: neither runs argon2
    /// while its secret is known (see [`known_secret_ttl`](Self::known_secret_ttl)).
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

    /// How many client ids' accepted secrets are remembered (as a keyed digest of the secret
    /// and the identity of the stored hash it was accepted against), so that re-validating a
    /// token costs a store lookup and no argon2. About 200 bytes each. Default 125,000; past
    /// it, the least used are forgotten (their next cold request runs argon2 again).
    pub fn known_secret_capacity(mut self, entries: u64) -> Self {
        self.known_secret_capacity = entries;
        self
    }

    /// How long an accepted secret is remembered while unused (a re-validation, a background
    /// refresh or a throttle check uses it). Default 24 h. Forgotten sooner when the store no
    /// longer has the token or holds another hash for it. Revocation does not depend on it:
    /// every re-validation asks the store.
    pub fn known_secret_ttl(mut self, ttl: Duration) -> Self {
        self.known_secret_ttl = ttl;
        self
    }

    /// How many argon2 verifications may run at once. Default: one less than the number of
    /// CPUs (at least 1), so that a flood of cold requests leaves a core for cached ones.
    pub fn max_concurrent_verifications(mut self, n: usize) -> Self {
        self.max_concurrent_verifications = n.max(1);
        self
    }

    /// Run argon2 on dedicated threads at the lowest OS priority, so that a flood of
    /// verifications yields the CPU to cached requests; `false` keeps them at normal
    /// priority. Needs the `thread-priority` feature (off by default), with which it is the
    /// default; without the feature, `true` only logs a warning.
    pub fn low_priority_verification(mut self, low: bool) -> Self {
        self.low_priority_verification = low;
        self
    }

    /// Answer every refusal of a cold request (`invalid_credentials` for an unknown id or a
    /// wrong secret, `auth_busy`) exactly [`verification_wait`](Self::verification_wait)
    /// after the request arrived, and check unknown ids against the same admission as real
    /// ones (the default), so that neither timing nor `auth_busy` tells which client ids
    /// exist, however loaded the verification line. Unknown ids run no argon2 either way.
    /// `false` answers each refusal as soon as it is decided (an unknown id at once): for
    /// test suites and services that do not mind revealing which ids exist.
    pub fn uniform_refusals(mut self, on: bool) -> Self {
        self.uniform_refusals = on;
        self
    }

    /// The former name of [`uniform_refusals`](Self::uniform_refusals) (unknown ids no
    /// longer run a dummy argon2 verification: they wait out the refusal deadline instead).
    #[deprecated(since = "0.2.0", note = "use `uniform_refusals`")]
    pub fn dummy_verification(self, on: bool) -> Self {
        self.uniform_refusals(on)
    }

    /// How many verifications may wait in the fair line besides the running ones; past that,
    /// a verification of an account holding fewer places than another takes the newest
    /// queued place of the account holding the most, else it is refused (`auth_busy`).
    /// Default 64.
    pub fn max_waiting_verifications(mut self, n: usize) -> Self {
        self.max_waiting_verifications = n;
        self
    }

    /// How many distinct secrets of one client id may be checked at once, counting a refused
    /// check until its answer's deadline; more answer `auth_busy`. The same for ids that
    /// exist and ids that do not, so that whoever knows a client id can spend at most this
    /// many places of its account's share. Default 2 (a token's secret and, during a
    /// rotation, its successor). Concurrent requests with the same secret share one check.
    pub fn max_pending_checks_per_client(mut self, n: usize) -> Self {
        self.max_pending_checks_per_client = n.max(1);
        self
    }

    /// The deadline of a cold request: its verification is done by then or it answers
    /// `auth_busy`, and, with [`uniform_refusals`](Self::uniform_refusals), every refusal
    /// (wrong secret, unknown id, `auth_busy`) is answered exactly then, so a typo in a
    /// secret costs its sender this long. An accepted secret is answered as soon as it is
    /// verified; `too_many_attempts` at once. Default 1 s: room for about
    /// `max_concurrent_verifications` × 60 argon2 runs at the default parameters, i.e. that
    /// many accounts verifying a first secret at the same moment.
    pub fn verification_wait(mut self, wait: Duration) -> Self {
        self.verification_wait = wait;
        self
    }

    /// Allow at most `failures` failed attempts per client id in each `window`; further
    /// attempts answer `too_many_attempts` until the window closes. A secret known good (see
    /// [`known_secret_ttl`](Self::known_secret_ttl)) is never counted nor refused. Default:
    /// 20 per 60 s.
    pub fn failure_limit(mut self, failures: u32, window: Duration) -> Self {
        self.failure_limit = Some((failures.max(1), window));
        self
    }

    /// While the store cannot be reached, keep admitting a token verified before, for at most
    /// `window` past its [`cache_ttl`](Self::cache_ttl) (counted from the last time the
    /// store confirmed it; its expiry is still checked). A token not verified within that
    /// time answers `auth_unavailable`, as does every token once the store answers again and
    /// refuses it. Default 5 minutes (at most a year); zero turns it off. See SECURITY.md
    /// for what a revocation sent just before an outage can miss.
    pub fn stale_if_unavailable(mut self, window: Duration) -> Self {
        self.stale_if_unavailable = window.min(Duration::from_secs(365 * 86_400));
        self
    }

    /// Share the failure windows with every replica through `shared` (see
    /// [`shared`](crate::shared)): N replicas then allow `failures` per window in all, not N
    /// times that, and a restart hands out no fresh allowance.
    pub fn shared(mut self, shared: Shared) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Keep the secrets argon2 accepted in the shared state (see [`VerifiedSecrets`]): a
    /// restarted or new replica admits a secret any replica verified after a store lookup,
    /// without argon2. Off by default.
    pub fn verified_secrets(mut self, verified: VerifiedSecrets) -> Self {
        self.verified_secrets = Some(verified);
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

    /// The hasher whose caps apply to stored hashes. Default: argon2id m=19456, t=2, p=1
    /// (a stored hash's own parameters are used to verify it, within the caps).
    pub fn hasher(mut self, hasher: SecretHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Count into this handle (with the rejections of the layers after its
    /// [`AuthLayer`](crate::AuthLayer)), e.g. one shared with other authenticators. Default:
    /// a handle of its own ([`Authenticator::metrics_handle`]).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where "now" comes from. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The hasher new secrets are hashed with ([`hasher`](Self::hasher)), for an admin that
    /// issues for this authenticator.
    pub fn secret_hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// Build the authenticator.
    pub fn build(self) -> Authenticator {
        let usage = self
            .usage_interval
            .map(|every| UsageRecorder::start(self.store.clone(), self.clock.clone(), every));
        let fingerprints = Arc::new(Fingerprints::random());
        let admission = Admission::new(
            "finout-auth-verify",
            self.max_concurrent_verifications,
            self.max_waiting_verifications,
            self.verification_wait,
            self.low_priority_verification,
        );
        Authenticator {
            inner: Arc::new(Inner {
                // A refusal is decided on a record read from the store: it is trusted no
                // longer than the record (a rotation seen late must not refuse the new
                // secret past the cache TTL); the verdict behind it is kept longer, bound
                // to the hashes it was made against.
                cache: TokenCache::new(
                    self.cache_capacity,
                    self.cache_ttl,
                    self.verdict_ttl.min(self.cache_ttl),
                    self.stale_if_unavailable,
                ),
                records: Records::new(
                    self.store,
                    self.cache_capacity,
                    self.cache_ttl,
                    self.metrics.clone(),
                ),
                verifier: Verifier::new(VerifierSettings {
                    hasher: self.hasher,
                    admission,
                    capacity: self.cache_capacity,
                    verdict_ttl: self.verdict_ttl,
                    known: KnownSecrets::new(self.known_secret_capacity, self.known_secret_ttl),
                    verified: self.verified_secrets,
                    throttle: self.failure_limit.map(|(limit, window)| {
                        FailureThrottle::new(limit, window, self.cache_capacity, self.clock.clone())
                            .shared(self.shared.clone())
                    }),
                    pending_per_client: self.max_pending_checks_per_client,
                    uniform_refusals: self.uniform_refusals,
                    metrics: self.metrics.clone(),
                    fingerprints: fingerprints.clone(),
                }),
                clock: self.clock,
                verification_wait: self.verification_wait,
                usage,
                metrics: self.metrics,
                fingerprints,
                refreshes: Arc::new(Semaphore::new(CONCURRENT_REFRESHES)),
            }),
        }
    }
}
