//! Known secrets: for each client id whose secret argon2 accepted, the keyed digest of that
//! secret and the identity of the stored hash it was accepted against, remembered for long
//! (default: until unused for 24 h; bounded in number).
//!
//! "Is this the right secret" cannot change while the stored hash is unchanged, so a known
//! (client id, secret digest, hash identity) answers it without argon2 for as long as it is
//! remembered. "Is this token still valid" (revoked, expired, roles, data access) is not
//! answered here: the cold path asks the store every time, and a known secret only spares
//! the argon2 run. An entry is dropped when the store no longer has the token or holds
//! another hash for it.

use std::time::Duration;

use crate::{
    crypto::digest::{DigestKey, SecretDigest, digests_equal},
    model::{ClientId, SecretHash},
};

/// What is remembered of one accepted secret.
#[derive(Clone, Copy)]
struct Known {
    secret: SecretDigest,
    hash: SecretDigest,
}

/// Secrets argon2 accepted, by client id.
pub(crate) struct KnownSecrets {
    /// Digests of stored hashes (their identity), under a key of this memory's own.
    hash_key: DigestKey,
    /// Keyed by ids of tokens whose secret argon2 accepted (never attacker-chosen).
    known: moka::sync::Cache<ClientId, Known>,
}

impl KnownSecrets {
    /// At most `capacity` ids, each remembered until unused for `idle` (a re-validation or a
    /// refresh is a use).
    pub(crate) fn new(capacity: u64, idle: Duration) -> Self {
        KnownSecrets {
            hash_key: DigestKey::random(),
            known: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    fn identity(&self, hash: &SecretHash) -> SecretDigest {
        self.hash_key.digest(hash.as_phc().as_bytes())
    }

    /// Whether argon2 accepted a secret with this digest for `client_id`, whatever the hash.
    #[cfg(test)]
    fn is_known(&self, client_id: &ClientId, secret: &SecretDigest) -> bool {
        self.known
            .get(client_id)
            .is_some_and(|k| digests_equal(&k.secret, secret))
    }

    /// Whether argon2 accepted a secret with this digest for `client_id` against exactly
    /// `hash`. A remembered secret for another hash is forgotten: the token was reissued.
    pub(crate) fn accepts(
        &self,
        client_id: &ClientId,
        secret: &SecretDigest,
        hash: &SecretHash,
    ) -> bool {
        let Some(known) = self.known.get(client_id) else {
            return false;
        };
        if !digests_equal(&known.hash, &self.identity(hash)) {
            self.known.invalidate(client_id);
            return false;
        }
        digests_equal(&known.secret, secret)
    }

    /// Remember that argon2 accepted a secret with this digest for `client_id` against `hash`.
    pub(crate) fn remember(&self, client_id: &ClientId, secret: SecretDigest, hash: &SecretHash) {
        let hash = self.identity(hash);
        self.known.insert(client_id.clone(), Known { secret, hash });
    }

    /// Forget `client_id` (its token is gone).
    pub(crate) fn forget(&self, client_id: &ClientId) {
        self.known.invalidate(client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_known_secret_is_accepted_only_for_its_id_digest_and_hash() {
        let known = KnownSecrets::new(100, DAY);
        let (id, other) = (ClientId::from("id"), ClientId::from("other"));
        let (hash, reissued) = (SecretHash::from_phc("h1"), SecretHash::from_phc("h2"));
        let (right, wrong) = ([1u8; 32], [2u8; 32]);
        known.remember(&id, right, &hash);
        assert!(known.accepts(&id, &right, &hash));
        assert!(known.is_known(&id, &right));
        assert!(!known.accepts(&id, &wrong, &hash));
        assert!(!known.is_known(&id, &wrong));
        assert!(!known.accepts(&other, &right, &hash));
        // Another stored hash: not accepted, and forgotten.
        assert!(!known.accepts(&id, &right, &reissued));
        assert!(!known.accepts(&id, &right, &hash));
        assert!(!known.is_known(&id, &right));
    }

    #[test]
    fn forgotten_and_outlived_secrets_are_not_known() {
        let known = KnownSecrets::new(100, Duration::from_millis(50));
        let (id, hash) = (ClientId::from("id"), SecretHash::from_phc("h"));
        known.remember(&id, [1; 32], &hash);
        known.forget(&id);
        assert!(!known.is_known(&id, &[1; 32]));
        known.remember(&id, [1; 32], &hash);
        std::thread::sleep(Duration::from_millis(80));
        assert!(!known.accepts(&id, &[1; 32], &hash));
    }
}
