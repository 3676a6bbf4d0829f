//! Secret verification for the cold path: a secret [`KnownSecrets`] remembers for the stored
//! hash passes without argon2; otherwise one argon2 run per (client id, secret) however many
//! requests present it at once, admitted through [`Admission`] (stored-hash lane or dummy
//! lane). An accepted secret is remembered as known; every verdict is also remembered for
//! the verdict TTL, so that repeating a wrong secret costs no argon2.

use std::{sync::Arc, time::Duration};

use super::{
    admission::{Admission, Busy, Lane},
    known::KnownSecrets,
};
use crate::{
    crypto::{
        SecretHasher,
        digest::{Fingerprints, SecretDigest},
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
    metrics: Metrics,
    fingerprints: Arc<Fingerprints>,
}

impl Verifier {
    pub(crate) fn new(
        hasher: SecretHasher,
        admission: Admission,
        capacity: u64,
        verdict_ttl: Duration,
        known: KnownSecrets,
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
            metrics,
            fingerprints,
        }
    }

    /// Whether argon2 accepted this secret for `client_id` (and it is still remembered).
    pub(crate) fn known_good(&self, client_id: &ClientId, digest: &SecretDigest) -> bool {
        self.known.is_known(client_id, digest)
    }

    /// Whether argon2 accepted this secret for `client_id` against exactly `hash`: the
    /// background refresh's question, answered from memory only.
    pub(crate) fn known_for(
        &self,
        client_id: &ClientId,
        digest: &SecretDigest,
        hash: &SecretHash,
    ) -> bool {
        self.known.accepts(client_id, digest, hash)
    }

    /// The token is gone from the store: forget its secret.
    pub(crate) fn forget(&self, client_id: &ClientId) {
        self.known.forget(client_id);
    }

    /// Whether `secret` passes `check`. A secret known for the stored hash passes at once;
    /// otherwise one argon2 run serves every concurrent caller with the same id and secret,
    /// and its outcome is remembered for the verdict TTL (and, if accepted, as known). No
    /// capacity in time is `auth_busy`.
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
            let verdict = self
                .verdicts
                .try_get_with(key.clone(), self.run(client_id, against.clone(), secret))
                .await
                .map_err(|_: Arc<Busy>| AuthError::AuthBusy {
                    retry_after: BUSY_RETRY_AFTER,
                })?;
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

    /// One argon2 run of `secret` against `against` (`None`: a dummy run).
    async fn run(
        &self,
        client_id: &ClientId,
        against: Option<SecretHash>,
        secret: &SecretKey,
    ) -> Result<Arc<Verdict>, Busy> {
        let hasher = self.hasher.clone();
        let metrics = self.metrics.clone();
        let (secret, stored) = (secret.clone(), against.clone());
        let lane = if against.is_some() {
            Lane::Stored
        } else {
            Lane::Dummy
        };
        let verification = self
            .admission
            .run(lane, move || {
                let _running = metrics.counters().secret_verification(lane == Lane::Dummy);
                let secret = secret.expose_secret().as_bytes();
                match &stored {
                    Some(hash) => hasher.verify(secret, hash),
                    None => {
                        hasher.dummy_verify(secret);
                        Ok(false)
                    }
                }
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
