//! The cold path: look the token up (coalesced), verify the secret against its valid
//! hashes (the current one, and the replaced one while a rotation's grace lasts), cache what
//! was found; and the background refresh of a cached token.

use time::OffsetDateTime;
use tokio::time::Instant;

use super::{
    Inner,
    cache::{Secrets, VerifiedEntry},
    check::{Check, Matched},
};
use crate::{
    crypto::digest::SecretDigest,
    error::AuthError,
    model::{ClientId, Principal, SecretKey},
};

/// How often the cold path starts over when the token changed while it looked at it; a
/// client id invalidated on every attempt is as good as gone.
const TOKEN_CHANGE_RETRIES: usize = 3;

impl Inner {
    /// The cold path (the failure throttle applies inside verification: see [`verify`]),
    /// answered by its deadline.
    pub(super) async fn cold(
        &self,
        client_id: &ClientId,
        secret: &SecretKey,
    ) -> Result<Principal, AuthError> {
        let deadline = Instant::now() + self.verification_wait;
        let digest = self.cache.digest(secret.expose_secret().as_bytes());
        self.verify_and_cache(client_id, secret, digest, deadline)
            .await
    }

    /// Look the token up, verify the secret, cache what was found.
    async fn verify_and_cache(
        &self,
        client_id: &ClientId,
        secret: &SecretKey,
        digest: SecretDigest,
        deadline: Instant,
    ) -> Result<Principal, AuthError> {
        let epochs = self.cache.epochs();
        for _ in 0..TOKEN_CHANGE_RETRIES {
            // Boxed, as the check is (see `Verifier::verdict`): a held refusal keeps neither.
            let fetched = match Box::pin(self.records.fetch(client_id, epochs)).await {
                Ok(fetched) => fetched,
                // The store cannot be reached: a token verified lately is still admitted,
                // stale (its expiry checked), for a bounded window past its TTL.
                Err(AuthError::AuthUnavailable(e)) => match self.cache.stale(client_id, &digest) {
                    Some((entry, matched)) => {
                        self.metrics.counters().stale_answer();
                        return self.admit(&entry, matched);
                    }
                    None => return Err(AuthError::AuthUnavailable(e)),
                },
                Err(error) => return Err(error),
            };
            if !epochs.is_current(fetched.epoch) {
                self.records.invalidate(client_id).await;
                continue;
            }
            let (Some(token), Some(principal)) = (&fetched.token, &fetched.principal) else {
                let disabled = fetched
                    .token
                    .as_ref()
                    .is_some_and(|t| t.record.is_disabled());
                // A disabled token keeps its known secret, for when it is enabled again.
                if !disabled {
                    self.verifier.forget(client_id);
                }
                // Unknown id, disabled or owner-less token: checked, and answered, as a wrong
                // secret would be, so that nothing tells which ids exist.
                if self.verifier.uniform_refusals() {
                    self.verifier
                        .verdict(client_id, digest, Check::Unknown, secret, deadline)
                        .await?;
                }
                // A disabled token's refusal is not cached: the record (kept for the cache
                // TTL) decides, so an enable is seen within that TTL even unannounced.
                if !disabled {
                    self.cache
                        .insert_refusal(client_id, &digest, fetched.stamp());
                }
                return Err(AuthError::InvalidCredentials);
            };
            let now = self.clock.now();
            // The replaced secret counts only while its grace lasts (and its entry checks
            // the grace's end on every hit).
            let secrets = Secrets {
                current: token.record.secret_hash.clone(),
                previous: token.record.previous_secret_at(now).cloned(),
            };
            let check = Check::Stored {
                hash: &secrets.current,
                previous: secrets.previous.as_ref().map(|p| &p.hash),
                account: token.record.account_id,
            };
            let Some(matched) = self
                .verifier
                .verdict(client_id, digest, check, secret, deadline)
                .await?
            else {
                self.cache
                    .insert_refusal(client_id, &digest, fetched.stamp());
                return Err(AuthError::InvalidCredentials);
            };
            if !epochs.is_current(fetched.epoch) {
                // Revoked or changed while argon2 ran: look again; the verdict is reused if
                // the hash did not change.
                continue;
            }
            // Expiry is checked only now, so only the holder of the secret learns it.
            let now = self.clock.now();
            if token.record.is_expired_at(now) {
                return Err(AuthError::TokenExpired);
            }
            if matched == Matched::Previous
                && secrets
                    .previous
                    .as_ref()
                    .is_none_or(|p| now >= p.valid_until)
            {
                // The grace ended while argon2 ran.
                self.verifier.hold(deadline).await;
                return Err(AuthError::InvalidCredentials);
            }
            let expires_at = token
                .record
                .expires_at
                .map(OffsetDateTime::unix_timestamp_nanos);
            let other = match matched {
                Matched::Current => secrets.previous.as_ref().map(|p| &p.hash),
                Matched::Previous => Some(&secrets.current),
            }
            .and_then(|hash| self.verifier.known_digest(client_id, hash));
            let entry = VerifiedEntry::new(
                client_id.clone(),
                fetched.stamp(),
                digest,
                token.record.secret_hash.clone(),
                principal.clone(),
                expires_at,
            )
            .with_secrets(secrets, matched, other);
            if let Some(usage) = &self.usage {
                usage.used(client_id, &entry.last_reported);
            }
            self.cache.insert_verified(entry);
            return Ok(principal.clone());
        }
        self.verifier.hold(deadline).await;
        Err(AuthError::InvalidCredentials)
    }

    /// See [`Authenticator::refresh`].
    pub(super) async fn refresh(&self, entry: &VerifiedEntry) {
        let client_id = &entry.client_id;
        let epochs = self.cache.epochs();
        let Ok(fetched) = self.records.refetch(client_id, epochs).await else {
            return; // the store failed: the entry lives out its TTL, then the cold path asks
        };
        if !epochs.is_current(fetched.epoch) {
            return; // invalidated meanwhile: the cold path decides afresh
        }
        let now = self.clock.now();
        let unchanged = match (&fetched.token, &fetched.principal) {
            // The same hashes (so the same secrets are right), the same principal, not
            // expired.
            (Some(token), Some(principal))
                if token.record.secret_hash == entry.secrets.current
                    && token.record.previous_secret_at(now) == entry.secrets.previous.as_ref()
                    && *principal == entry.principal
                    && !token.record.is_expired_at(now) =>
            {
                Some(token)
            }
            _ => None,
        };
        let Some(token) = unchanged else {
            // Gone, reissued, changed, expired or owner-less, and no invalidation said so
            // (another process without a change feed): forget it everywhere, fronts
            // included; the next request goes to the cold path.
            self.cache.invalidate(client_id);
            return;
        };
        let fresh = VerifiedEntry::new(
            client_id.clone(),
            fetched.stamp(),
            entry.digest,
            entry.secrets.current.clone(),
            entry.principal.clone(),
            token
                .record
                .expires_at
                .map(OffsetDateTime::unix_timestamp_nanos),
        )
        .with_secrets(entry.secrets.clone(), entry.matched, entry.other);
        fresh.inherit_usage(entry);
        self.cache.insert_verified(fresh);
        // A token in use keeps its secret known (the memory forgets what goes unused).
        let hash = entry.secrets.hash(entry.matched);
        self.verifier.remember(client_id, entry.digest, hash);
        self.metrics.counters().refresh();
    }
}
