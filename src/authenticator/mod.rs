//! The [`Authenticator`]: turns presented credentials into a [`Principal`], as in the request
//! flow of the crate docs.
//!
//! - **Hot path** ([`Authenticator::authenticate_cached`], synchronous): the secret's keyed
//!   digest, one [`cache`] lookup (a verified token with that digest, an attempt that failed
//!   before, or a miss), and an expiry re-check. No store call, no argon2, no allocation.
//! - **Cold path**: the token record is fetched once per client id however many requests
//!   wait for it ([`lookup`]), and the secret is checked: a secret [`known`] good for the
//!   stored hash passes without argon2 (a *re-validation*: one store lookup); otherwise one
//!   check per (client id, secret) ([`verify`]): a place in the id's failure window
//!   ([`throttle`]) and in its [`pending`] checks, then argon2id in the fair line of
//!   [`crate::crypto::pool`] (accounts take turns, then their client ids) for a real token,
//!   nothing for an unknown id. Every refusal is answered at the request's deadline
//!   (`verification_wait` after it arrived), so that neither timing nor `auth_busy` tells
//!   which ids exist. The outcome goes into the cache; a wrong secret's verdict is
//!   remembered, so repeating it costs no argon2.
//! - **Refresh**: a cached token used after three quarters of its TTL is re-read from the
//!   store in the background (no argon2), so a token in use never waits for the store.
//!
//! Everything cached is checked against its token's revocation [`epoch`]: by the [`cache`] on
//! every hit, by the cold path before and after argon2. Outcomes are counted and logged by
//! [`report`]; `last_used_at` is recorded off the hot path by [`usage`].

pub(crate) mod builder;
mod cache;
mod check;
mod cold;
mod epoch;
mod known;
mod lookup;
mod pending;
mod report;
mod throttle;
mod usage;
mod verify;
pub(crate) mod wiring;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use cache::{Lookup, TokenCache, VerifiedEntry};
use check::Matched;
use lookup::Records;
use report::{Source, report, store_failed};
use usage::UsageRecorder;
use verify::Verifier;

use crate::{
    clock::Clock,
    credentials::Credentials,
    crypto::digest::Fingerprints,
    error::AuthError,
    metrics::{Metrics, MetricsSnapshot},
    model::{ClientId, Principal, SecretKey},
    store::Invalidate,
};

/// How many background refreshes may run at once; a token due when all are busy is
/// refreshed on a later request (or re-validated on the cold path once its entry expires).
const CONCURRENT_REFRESHES: usize = 64;

/// Authenticates credentials against a [`TokenStore`](crate::store::TokenStore), with
/// caching. Cheap to clone (one `Arc`); clones share caches and counters.
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
    cache: TokenCache,
    records: Records,
    verifier: Verifier,
    clock: Arc<dyn Clock>,
    /// How long after its arrival a cold request is answered at the latest (see
    /// [`AuthenticatorBuilder::verification_wait`](crate::AuthenticatorBuilder::verification_wait)).
    verification_wait: Duration,
    usage: Option<UsageRecorder>,
    metrics: Metrics,
    fingerprints: Arc<Fingerprints>,
    refreshes: Arc<Semaphore>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("store", self.inner.records.store())
            .field("cached_tokens", &self.inner.cache.verified_count())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// The handle this authenticator counts into, and so do the layers after its `AuthLayer`
    /// given none of their own (found through the request's [`Principal`]); a layer outside
    /// every `AuthLayer` counts only into a handle passed to its `.metrics(..)`, e.g. this one.
    pub fn metrics_handle(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The clock this authenticator reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Authenticate credentials: the hot path if the cache can answer, else the cold path.
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
    /// secret: admitted, or `token_expired`; an attempt that already failed:
    /// `invalid_credentials`); `None` when the cold path must run.
    ///
    /// Synchronous and allocation-free, so a layer can answer without boxing a future.
    pub fn authenticate_cached(
        &self,
        credentials: Credentials<'_>,
    ) -> Option<Result<Principal, AuthError>> {
        let inner = &*self.inner;
        let started = report::start();
        let secret = inner.cache.digest(credentials.secret_bytes());
        let outcome = match inner.cache.lookup(credentials.client_id_bytes(), &secret) {
            Lookup::Verified(entry, matched, refresh_due) => {
                let outcome = inner.admit(&entry, matched);
                if refresh_due
                    && outcome.is_ok()
                    && inner.refreshes.available_permits() > 0
                    && entry.claim_refresh()
                {
                    self.refresh(entry);
                }
                outcome
            }
            Lookup::Refused => Err(AuthError::InvalidCredentials),
            Lookup::Miss => return None,
        };
        let outcome_ref = outcome.as_ref();
        report(
            &inner.metrics,
            &inner.fingerprints,
            Some(&credentials),
            outcome_ref,
            Source::Cache,
            started,
        );
        Some(outcome)
    }

    /// The cold path: throttle, look the token up (coalesced), verify the secret with
    /// argon2id (bounded, coalesced per secret) and cache the outcome.
    pub async fn authenticate_uncached(
        &self,
        client_id: ClientId,
        secret: SecretKey,
    ) -> Result<Principal, AuthError> {
        let inner = &*self.inner;
        let started = std::time::Instant::now();
        inner.metrics.counters().cache_miss();
        let cold = inner.metrics.counters().cold();
        let outcome = inner.cold(&client_id, &secret).await;
        cold.finished(match &outcome {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        });
        let outcome_ref = outcome.as_ref();
        if let Err(AuthError::AuthUnavailable(e)) = &outcome {
            store_failed(&inner.fingerprints, &client_id, e);
        }
        report(
            &inner.metrics,
            &inner.fingerprints,
            Some(&client_id),
            outcome_ref,
            Source::Store,
            Some(started),
        );
        outcome
    }

    /// Re-read a cached token from the store in the background and cache it afresh (no
    /// argon2: its secret is known for the stored hash), or drop it if the store no longer
    /// admits it. Bounded by [`CONCURRENT_REFRESHES`]; outside a tokio runtime, nothing.
    #[cold]
    fn refresh(&self, entry: Arc<VerifiedEntry>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            entry.release_refresh();
            return;
        };
        let Ok(permit) = self.inner.refreshes.clone().try_acquire_owned() else {
            entry.release_refresh();
            return;
        };
        let inner = self.inner.clone();
        runtime.spawn(async move {
            let _permit = permit;
            inner.refresh(&entry).await;
        });
    }

    /// Count and log a rejection decided before the authenticator (unparsable headers), so
    /// that the counters cover every outcome.
    pub(crate) fn record_rejection(&self, error: &AuthError) {
        let inner = &*self.inner;
        report(
            &inner.metrics,
            &inner.fingerprints,
            None,
            Err(error),
            Source::Request,
            None,
        );
    }

    /// Forget everything cached about `client_id`, here and now: call it *after* the store
    /// changed (revoke, user removal, role change). In-flight lookups and verifications that
    /// started before cannot put the token back.
    pub async fn invalidate(&self, client_id: &ClientId) {
        self.inner.cache.invalidate(client_id);
        self.inner.verifier.forget_shared(client_id);
        self.inner.records.invalidate(client_id).await;
    }

    /// Forget every cached token and record (verdicts stay: they are bound to hashes).
    pub fn invalidate_all(&self) {
        self.inner.cache.invalidate_all();
        self.inner.records.invalidate_all();
    }
}

#[async_trait]
impl Invalidate for Authenticator {
    async fn invalidate(&self, client_id: &ClientId) {
        Authenticator::invalidate(self, client_id).await;
    }

    async fn invalidate_many(&self, client_ids: &[ClientId]) {
        // Every cached entry stale at once (no await in between), then the records.
        for client_id in client_ids {
            self.inner.cache.invalidate(client_id);
        }
        for client_id in client_ids {
            self.inner.verifier.forget_shared(client_id);
        }
        for client_id in client_ids {
            self.inner.records.invalidate(client_id).await;
        }
    }

    fn invalidate_all(&self) {
        Authenticator::invalidate_all(self);
    }

    fn expiry_clock(&self) -> Option<Arc<dyn Clock>> {
        Some(self.inner.clock.clone())
    }
}

impl Inner {
    /// A verified token's answer for its `matched` secret: its principal, `token_expired`
    /// once past its expiry, or `invalid_credentials` for a replaced secret once its grace
    /// is over (both checked on every hit).
    #[inline]
    fn admit(&self, entry: &VerifiedEntry, matched: Matched) -> Result<Principal, AuthError> {
        let grace_ends = match matched {
            Matched::Current => None,
            Matched::Previous => Some(entry.grace_ends.unwrap_or(i128::MIN)),
        };
        if entry.expires_at.is_some() || grace_ends.is_some() {
            let now = self.clock.now_unix_nanos();
            if entry.expires_at.is_some_and(|at| now >= at) {
                // Past its expiry a cached token admits nobody: drop it now rather than at
                // the TTL (a per-entry moka expiry would cost every hit a clock read).
                self.cache.remove_verified(entry.client_id_bytes());
                return Err(AuthError::TokenExpired);
            }
            if grace_ends.is_some_and(|end| now >= end) {
                // The replaced secret's grace is over: the entry goes, the current secret
                // is re-validated (no argon2) on its next request.
                self.cache.remove_verified(entry.client_id_bytes());
                return Err(AuthError::InvalidCredentials);
            }
        }
        if let Some(usage) = &self.usage {
            usage.used(&entry.client_id, &entry.last_reported);
        }
        Ok(entry.principal.clone())
    }
}
