//! Secret verification for the cold path, and the answer's timing.
//!
//! A secret [`KnownSecrets`] remembers for the stored hash passes at once, without argon2.
//! Otherwise one *check* runs per (client id, secret), however many requests present it at
//! once: it takes a place in the id's failure window ([`FailureThrottle`]) and one of the
//! id's pending checks ([`PendingChecks`]), then
//!
//! - for a real token, runs argon2 against its stored hash in the fair line of
//!   [`Admission`], under its account and client id, to be done by the request's deadline;
//! - for an unknown id, runs nothing, and is refused `auth_busy` exactly when a real token's
//!   check of an account with nothing in the line would be ([`Admission::new_account_done_within`]).
//!
//! **Uniform refusals** (the default): every refusal of a cold request, `invalid_credentials`
//! or `auth_busy`, is answered at one fixed deadline after the request arrived
//! (`verification_wait`), and a check that was refused holds its pending place until then,
//! for real and unknown ids alike. Neither the queue an id waits in nor the argon2 run it
//! does or does not get shows in when, or how often, it is answered. Only an accepted
//! secret is answered as soon as it is known (only its holder sees that), and a full failure
//! window answers `too_many_attempts` at once (the same for every id).
//!
//! With [`VerifiedSecrets`], every cold check of a known or unknown id asks the shared state
//! once before anything else (an unknown id's question can match nothing), so that the
//! round trip is the same for both.
//!
//! Every verdict is remembered for the verdict TTL, so that repeating a wrong secret costs no
//! argon2; an accepted secret is remembered as known, and with
//! [`VerifiedSecrets`] also in the shared state, where any replica (or this one after a
//! restart) finds it before running argon2.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    check::{Against, Check, Matched},
    known::KnownSecrets,
    pending::{Pending, PendingChecks},
    report,
    throttle::{FailureThrottle, Full},
};
use crate::{
    crypto::{
        RefusedHash, SecretHasher,
        digest::{Fingerprints, SecretDigest},
        pool::{Admission, Busy, Share},
    },
    error::AuthError,
    metrics::Metrics,
    model::{ClientId, SecretHash, SecretKey},
    shared::VerifiedSecrets,
};

/// How often a verdict made for another hash (the id was reissued meanwhile) is set aside
/// before the secret counts as wrong.
const HASH_CHANGE_RETRIES: usize = 2;

/// When `auth_busy` tells the client to retry.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a check did not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The client id's failure window is full for this long still.
    Throttled(Full),
    /// No capacity in time.
    Busy,
}

/// The outcome of one check, for the hashes it was made against (`None`: an unknown id).
struct Verdict {
    against: Against,
    matched: Option<Matched>,
}

/// How the verifier is configured.
pub(crate) struct VerifierSettings {
    pub(crate) hasher: SecretHasher,
    pub(crate) admission: Admission,
    pub(crate) capacity: u64,
    pub(crate) verdict_ttl: Duration,
    pub(crate) known: KnownSecrets,
    pub(crate) verified: Option<VerifiedSecrets>,
    pub(crate) throttle: Option<FailureThrottle>,
    pub(crate) pending_per_client: usize,
    pub(crate) uniform_refusals: bool,
    pub(crate) metrics: Metrics,
    pub(crate) fingerprints: Arc<Fingerprints>,
}

/// Runs and remembers checks.
pub(crate) struct Verifier {
    hasher: SecretHasher,
    admission: Admission,
    verdicts: moka::future::Cache<(ClientId, SecretDigest), Arc<Verdict>>,
    known: KnownSecrets,
    verified: Option<VerifiedSecrets>,
    throttle: Option<FailureThrottle>,
    pending: PendingChecks,
    uniform_refusals: bool,
    metrics: Metrics,
    fingerprints: Arc<Fingerprints>,
    /// The second `auth_busy` was last logged in.
    busy_logged: Arc<std::sync::atomic::AtomicU64>,
}

impl Verifier {
    pub(crate) fn new(settings: VerifierSettings) -> Self {
        Verifier {
            hasher: settings.hasher,
            admission: settings.admission,
            verdicts: moka::future::Cache::builder()
                .max_capacity(settings.capacity)
                .time_to_live(settings.verdict_ttl)
                .build(),
            known: settings.known,
            verified: settings.verified,
            throttle: settings.throttle,
            pending: PendingChecks::new(settings.pending_per_client),
            uniform_refusals: settings.uniform_refusals,
            metrics: settings.metrics,
            fingerprints: settings.fingerprints,
            busy_logged: Arc::default(),
        }
    }

    /// Whether refusals are answered at the deadline (see the module docs).
    pub(crate) fn uniform_refusals(&self) -> bool {
        self.uniform_refusals
    }

    /// Remember (again) that this secret is right for `client_id` while it has `hash`.
    pub(crate) fn remember(&self, client_id: &ClientId, digest: SecretDigest, hash: &SecretHash) {
        self.known.remember(client_id, digest, hash);
        if let Some(verified) = &self.verified {
            verified.touch(client_id);
        }
    }

    /// The digest of the secret argon2 accepted for `client_id` against `hash`, if known
    /// here.
    pub(crate) fn known_digest(
        &self,
        client_id: &ClientId,
        hash: &SecretHash,
    ) -> Option<SecretDigest> {
        self.known.digest_for(client_id, hash)
    }

    /// The token is gone from the store: forget its secret here.
    pub(crate) fn forget(&self, client_id: &ClientId) {
        self.known.forget(client_id);
    }

    /// The token was revoked or changed (an invalidation): forget its secret in the shared
    /// state. This process's memory keeps it: a token changed but not revoked is still
    /// admitted without argon2 here, and a revoked one is refused by the store lookup.
    pub(crate) fn forget_shared(&self, client_id: &ClientId) {
        if let Some(verified) = &self.verified {
            verified.forget(client_id);
        }
    }

    /// Wait until `deadline` if refusals are uniform.
    pub(crate) async fn hold(&self, deadline: Instant) {
        if self.uniform_refusals {
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Which of the token's secrets `secret` is (`None`: none), for a request whose answer is
    /// due by `deadline`. A secret known for a stored hash passes at once, never throttled; otherwise one check
    /// serves every concurrent caller with the same id and secret (see the module docs), and
    /// its outcome is remembered for the verdict TTL (and, if accepted, as known). A wrong
    /// secret, an unknown id and `auth_busy` are answered at `deadline` when refusals are
    /// uniform; `too_many_attempts` at once.
    pub(crate) async fn verdict(
        &self,
        client_id: &ClientId,
        digest: SecretDigest,
        check: Check<'_>,
        secret: &SecretKey,
        deadline: Instant,
    ) -> Result<Option<Matched>, AuthError> {
        if let Check::Stored { hash, previous, .. } = check {
            if let Some(matched) = self.known.accepts(client_id, &digest, hash, previous) {
                self.metrics.counters().revalidation();
                return Ok(Some(matched));
            }
            if let Some(verified) = &self.verified {
                let candidates = [(hash, Matched::Current)]
                    .into_iter()
                    .chain(previous.map(|p| (p, Matched::Previous)));
                for (hash, matched) in candidates {
                    if verified
                        .accepts(client_id, hash, secret.expose_secret().as_bytes())
                        .await
                    {
                        self.known.remember(client_id, digest, hash);
                        self.metrics.counters().revalidation();
                        return Ok(Some(matched));
                    }
                }
            }
        } else if let Some(verified) = &self.verified {
            // An unknown id asks the shared state the same question (against a hash no token
            // has, so nothing matches): a full failure window answers `too_many_attempts` at
            // once, and one round trip more for real ids would tell them apart.
            let none = SecretHash::from_phc("");
            let _ = verified
                .accepts(client_id, &none, secret.expose_secret().as_bytes())
                .await;
        }
        let key = (client_id.clone(), digest);
        let against = check.against();
        for _ in 0..HASH_CHANGE_RETRIES {
            // Boxed: a refusal waits out its deadline after this, and a request held that
            // long should hold only a small future, not this one's frames.
            let outcome = Box::pin(
                self.verdicts
                    .try_get_with(key.clone(), self.check(client_id, check, secret, deadline)),
            )
            .await;
            match outcome {
                Ok(verdict) if verdict.against == against => {
                    if let (Some(matched), Check::Stored { hash, previous, .. }) =
                        (verdict.matched, check)
                    {
                        let hash = match matched {
                            Matched::Current => hash,
                            Matched::Previous => previous.unwrap_or(hash),
                        };
                        self.known.remember(client_id, digest, hash);
                        return Ok(Some(matched));
                    }
                    self.hold(deadline).await;
                    return Ok(None);
                }
                // Remembered for another hash (the id was reissued): decide afresh.
                Ok(_) => self.verdicts.invalidate(&key).await,
                Err(refused) => {
                    let real = against.is_some();
                    return self.refused(client_id, real, *refused, deadline).await;
                }
            }
        }
        self.hold(deadline).await;
        Ok(None)
    }

    async fn refused(
        &self,
        client_id: &ClientId,
        real_token: bool,
        refused: Refused,
        deadline: Instant,
    ) -> Result<Option<Matched>, AuthError> {
        match refused {
            Refused::Throttled(full) => {
                if full.first {
                    report::throttle_tripped(
                        &self.fingerprints,
                        client_id,
                        real_token,
                        full.retry_after,
                    );
                }
                Err(AuthError::TooManyAttempts {
                    retry_after: full.retry_after,
                })
            }
            Refused::Busy => {
                self.hold(deadline).await;
                report::busy(&self.fingerprints, client_id, real_token, &self.busy_logged);
                Err(AuthError::AuthBusy {
                    retry_after: BUSY_RETRY_AFTER,
                })
            }
        }
    }

    /// One check of `secret` against `check`, once the failure throttle gave it a place:
    /// kept as a failure unless the secret is right (a check refused for want of capacity
    /// counts too). A check that does not accept the secret keeps its pending place until
    /// `deadline`; the caller waits for the deadline itself.
    async fn check(
        &self,
        client_id: &ClientId,
        check: Check<'_>,
        secret: &SecretKey,
        deadline: Instant,
    ) -> Result<Arc<Verdict>, Refused> {
        let attempt = match &self.throttle {
            Some(throttle) => Some(
                throttle
                    .reserve(client_id)
                    .await
                    .map_err(Refused::Throttled)?,
            ),
            None => None,
        };
        let verdict = match self.pending.take(client_id) {
            None => Err(Busy),
            Some(place) => {
                let verdict = match check {
                    Check::Stored { account, .. } => {
                        let share = Share {
                            account,
                            client: client_id.clone(),
                        };
                        let run = self.run(client_id, share, check.against(), secret, deadline);
                        tokio::time::timeout_at(deadline, run)
                            .await
                            .unwrap_or(Err(Busy))
                    }
                    Check::Unknown => self.unknown(deadline),
                };
                if let (Ok(v), Some(verified), Check::Stored { hash, previous, .. }) =
                    (&verdict, &self.verified, check)
                    && let Some(matched) = v.matched
                {
                    let hash = match matched {
                        Matched::Current => hash,
                        Matched::Previous => previous.unwrap_or(hash),
                    };
                    verified.remember(client_id, hash, secret.expose_secret().as_bytes());
                }
                if matches!(&verdict, Ok(v) if v.matched.is_some()) {
                    drop(place);
                } else {
                    self.release_at(place, deadline);
                }
                verdict
            }
        };
        if let (Ok(v), Some(attempt)) = (&verdict, attempt)
            && v.matched.is_some()
        {
            attempt.succeeded();
        }
        verdict.map_err(|Busy| Refused::Busy)
    }

    /// Give a refused check's pending place back at `deadline` (when its answer goes out)
    /// if refusals are uniform, else now. A timer task holds it, not the request: a request
    /// waiting for its deadline then holds only its own small future.
    fn release_at(&self, place: Pending, deadline: Instant) {
        if !self.uniform_refusals {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep_until(deadline).await;
                    drop(place);
                });
            }
            Err(_) => drop(place),
        }
    }

    /// An unknown id's verdict: refused, or `Busy` when a real token's check of an account
    /// with nothing in the line would not be done by `deadline`.
    fn unknown(&self, deadline: Instant) -> Result<Arc<Verdict>, Busy> {
        self.metrics.counters().unknown_id();
        match self.admission.new_account_done_within() {
            Some(within) if Instant::now() + within <= deadline => Ok(Arc::new(Verdict {
                against: None,
                matched: None,
            })),
            _ => Err(Busy),
        }
    }

    /// argon2 against the stored hashes in `share`'s place in the fair line: the current
    /// one, then (in a rotation's grace, if the current one refused) the replaced one, in
    /// one turn.
    async fn run(
        &self,
        client_id: &ClientId,
        share: Share,
        against: Against,
        secret: &SecretKey,
        deadline: Instant,
    ) -> Result<Arc<Verdict>, Busy> {
        let Some((current, previous)) = against.clone() else {
            return Ok(Arc::new(Verdict {
                against,
                matched: None,
            }));
        };
        let hasher = self.hasher.clone();
        let metrics = self.metrics.clone();
        let secret = secret.clone();
        let verifications = self
            .admission
            .run_by(share, deadline, move || {
                let _running = metrics.counters().secret_verification();
                let secret = secret.expose_secret().as_bytes();
                let first = hasher.verify(secret, &current);
                if matches!(first, Ok(true)) {
                    return (first, None);
                }
                let second = previous.map(|previous| hasher.verify(secret, &previous));
                (first, second)
            })
            .await?;
        let ok = |verification: Result<bool, RefusedHash>| {
            verification.unwrap_or_else(|refused| {
                let client_fingerprint = self.fingerprints.of(client_id.as_str().as_bytes());
                tracing::warn!(target: "finout_auth", %client_fingerprint, reason = refused.0, "stored secret hash refused");
                false
            })
        };
        let (first, second) = verifications;
        let matched = if ok(first) {
            Some(Matched::Current)
        } else if second.is_some_and(ok) {
            Some(Matched::Previous)
        } else {
            None
        };
        Ok(Arc::new(Verdict { against, matched }))
    }
}
