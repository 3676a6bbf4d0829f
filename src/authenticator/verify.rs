//! Secret verification for the cold path: a secret [`KnownSecrets`] remembers for the stored
//! hash passes without argon2; otherwise one argon2 run per (client id, secret) however many
//! requests present it at once, admitted through [`Admission`] (stored-hash lane or dummy
//! lane). An accepted secret is remembered as known; every verdict is also remembered for
//! the verdict TTL, so that repeating a wrong secret costs no argon2.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{
    known::KnownSecrets,
    report,
    throttle::{FailureThrottle, Full},
};
use crate::{
    crypto::{
        SecretHasher,
        digest::{Fingerprints, SecretDigest},
        pool::{Admission, Busy, Lane},
    },
    error::AuthError,
    metrics::Metrics,
    model::{ClientId, SecretHash, SecretKey},
};

/// How often a verdict made for another hash (the id was reissued meanwhile) is set aside
/// before the secret counts as wrong.
const HASH_CHANGE_RETRIES: usize = 2;

/// When `auth_busy` tells the client to retry.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What an argon2 verification is assumed to take until one was timed (the default
/// parameters on a current core).
const INITIAL_VERIFICATION_TIME: Duration = Duration::from_millis(15);

/// What a secret is checked against.
#[derive(Clone, Copy)]
pub(crate) enum Check<'a> {
    /// The token's stored hash.
    Stored(&'a SecretHash),
    /// Nothing (unknown id): spend what a real check would, so that timing does not tell
    /// which ids exist.
    Dummy,
}

impl Check<'_> {
    fn hash(self) -> Option<SecretHash> {
        match self {
            Check::Stored(hash) => Some(hash.clone()),
            Check::Dummy => None,
        }
    }
}

/// Why a verification did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The client id's failure window is full for this long still.
    Throttled(Full),
    /// No capacity in time.
    Busy,
}

/// The outcome of one argon2 verification, for the hash it was made against.
struct Verdict {
    against: Option<SecretHash>,
    ok: bool,
}

/// Runs and remembers verifications.
pub(crate) struct Verifier {
    hasher: SecretHasher,
    admission: Admission,
    verdicts: moka::future::Cache<(ClientId, SecretDigest), Arc<Verdict>>,
    known: KnownSecrets,
    throttle: Option<FailureThrottle>,
    metrics: Metrics,
    fingerprints: Arc<Fingerprints>,
    /// The second `auth_busy` was last logged in.
    busy_logged: Arc<AtomicU64>,
    /// A moving average of how long one argon2 run takes, in nanoseconds: how long an
    /// unknown id refused for want of capacity waits before its answer.
    run_nanos: Arc<AtomicU64>,
}

impl Verifier {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        hasher: SecretHasher,
        admission: Admission,
        capacity: u64,
        verdict_ttl: Duration,
        known: KnownSecrets,
        throttle: Option<FailureThrottle>,
        metrics: Metrics,
        fingerprints: Arc<Fingerprints>,
    ) -> Self {
        Verifier {
            hasher,
            admission,
            verdicts: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(verdict_ttl)
                .build(),
            known,
            throttle,
            metrics,
            fingerprints,
            busy_logged: Arc::default(),
            run_nanos: Arc::new(AtomicU64::new(INITIAL_VERIFICATION_TIME.as_nanos() as u64)),
        }
    }

    /// Remember (again) that this secret is right for `client_id` while it has `hash`.
    pub(crate) fn remember(&self, client_id: &ClientId, digest: SecretDigest, hash: &SecretHash) {
        self.known.remember(client_id, digest, hash);
    }

    /// The token is gone from the store: forget its secret.
    pub(crate) fn forget(&self, client_id: &ClientId) {
        self.known.forget(client_id);
    }

    /// Whether `secret` passes `check`. A secret known for the stored hash passes at once,
    /// never throttled; otherwise one argon2 run serves every concurrent caller with the
    /// same id and secret, and its outcome is remembered for the verdict TTL (and, if
    /// accepted, as known). That run first takes a place in the id's failure window (full:
    /// `too_many_attempts`), kept only if the secret is wrong. No capacity in time is
    /// `auth_busy` for a real token, and for an unknown id the answer a dummy run would give,
    /// as late as it would give it.
    pub(crate) async fn verdict(
        &self,
        client_id: &ClientId,
        digest: SecretDigest,
        check: Check<'_>,
        secret: &SecretKey,
    ) -> Result<bool, AuthError> {
        if let Check::Stored(hash) = check {
            if self.known.accepts(client_id, &digest, hash) {
                self.metrics.counters().revalidation();
                return Ok(true);
            }
        }
        let key = (client_id.clone(), digest);
        let against = check.hash();
        for _ in 0..HASH_CHANGE_RETRIES {
            let verdict = match self
                .verdicts
                .try_get_with(key.clone(), self.run(client_id, against.clone(), secret))
                .await
            {
                Ok(verdict) => verdict,
                Err(refused) => {
                    return match (*refused, &against) {
                        (Refused::Throttled(full), against) => {
                            if full.first {
                                report::throttle_tripped(
                                    &self.fingerprints,
                                    client_id,
                                    against.is_some(),
                                    full.retry_after,
                                );
                            }
                            Err(AuthError::TooManyAttempts {
                                retry_after: full.retry_after,
                            })
                        }
                        (Refused::Busy, None) => {
                            // An unknown id while the dummy lane is full: answer what a dummy
                            // run would, as late as it would, so that `auth_busy` never tells
                            // an unknown id from a real one.
                            let typical = self.run_nanos.load(Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_nanos(typical)).await;
                            Ok(false)
                        }
                        (Refused::Busy, Some(_)) => {
                            report::busy(client_id, &self.busy_logged);
                            Err(AuthError::AuthBusy {
                                retry_after: BUSY_RETRY_AFTER,
                            })
                        }
                    };
                }
            };
            if verdict.against == against {
                if let (true, Some(hash)) = (verdict.ok, &against) {
                    self.known.remember(client_id, digest, hash);
                }
                return Ok(verdict.ok);
            }
            // Remembered for another hash (the id was reissued): decide afresh.
            self.verdicts.invalidate(&key).await;
        }
        Ok(false)
    }

    /// One argon2 run of `secret` against `against` (`None`: a dummy run), once the failure
    /// throttle gave it a place.
    async fn run(
        &self,
        client_id: &ClientId,
        against: Option<SecretHash>,
        secret: &SecretKey,
    ) -> Result<Arc<Verdict>, Refused> {
        let attempt = match &self.throttle {
            Some(throttle) => Some(throttle.reserve(client_id).map_err(Refused::Throttled)?),
            None => None,
        };
        let verdict = self.run_admitted(client_id, against, secret).await;
        // Only a wrong secret keeps its place in the window.
        if !matches!(&verdict, Ok(v) if !v.ok) {
            if let Some(attempt) = attempt {
                attempt.succeeded();
            }
        }
        verdict.map_err(|Busy| Refused::Busy)
    }

    async fn run_admitted(
        &self,
        client_id: &ClientId,
        against: Option<SecretHash>,
        secret: &SecretKey,
    ) -> Result<Arc<Verdict>, Busy> {
        let hasher = self.hasher.clone();
        let metrics = self.metrics.clone();
        let (secret, stored) = (secret.clone(), against.clone());
        let lane = if against.is_some() {
            Lane::High
        } else {
            Lane::Low
        };
        let run_nanos = self.run_nanos.clone();
        let verification = self
            .admission
            .run(lane, move || {
                let _running = metrics.counters().secret_verification(lane == Lane::Low);
                let started = std::time::Instant::now();
                let secret = secret.expose_secret().as_bytes();
                let verdict = match &stored {
                    Some(hash) => hasher.verify(secret, hash),
                    None => {
                        hasher.dummy_verify(secret);
                        Ok(false)
                    }
                };
                let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let average = run_nanos.load(Ordering::Relaxed);
                run_nanos.store(average - average / 8 + took / 8, Ordering::Relaxed);
                verdict
            })
            .await?;
        let ok = verification.unwrap_or_else(|refused| {
            let client_fingerprint = self.fingerprints.of(client_id.as_str().as_bytes());
            tracing::warn!(target: "finout_auth", %client_fingerprint, reason = refused.0, "stored secret hash refused");
            false
        });
        Ok(Arc::new(Verdict { against, ok }))
    }
}
