//! Known secrets: for each client id whose secret argon2 accepted, the keyed digest of that
//! secret and the identity of the stored hash it was accepted against, remembered for long
//! (default: until unused for 24 h; bounded in number). A token in a rotation's grace has
//! two valid hashes, so an id keeps up to two: one per hash.
//!
//! "Is this the right secret" cannot change while the stored hash is unchanged, so a known
//! (client id, secret digest, hash identity) answers it without argon2 for as long as it is
//! remembered. "Is this token still valid" (revoked, disabled, expired, roles, data access,
//! a grace over) is not answered here: the cold path asks the store every time, and a known
//! secret only spares the argon2 run. A remembered secret is dropped when the store no longer
//! has the token or holds neither of its hashes any more.

use std::time::Duration;

use super::check::Matched;
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

/// Up to two accepted secrets of one id, one per stored hash, the newest last.
#[derive(Clone, Copy, Default)]
struct Slots([Option<Known>; 2]);

impl Slots {
    fn iter(&self) -> impl Iterator<Item = &Known> {
        self.0.iter().flatten()
    }

    /// Keep only the secrets accepted against one of `hashes`; whether any was dropped.
    fn retain(&mut self, hashes: &[SecretDigest]) -> bool {
        let mut dropped = false;
        for slot in &mut self.0 {
            if slot.is_some_and(|k| !hashes.iter().any(|h| digests_equal(h, &k.hash))) {
                *slot = None;
                dropped = true;
            }
        }
        dropped
    }

    /// Remember `known`, in place of the secret for the same hash, else of the oldest.
    fn put(&mut self, known: Known) {
        let same = self
            .0
            .iter()
            .position(|s| s.is_some_and(|k| digests_equal(&k.hash, &known.hash)));
        match same {
            Some(i) => self.0[i] = Some(known),
            None => {
                self.0[0] = self.0[1].take();
                self.0[1] = Some(known);
            }
        }
    }
}

/// Secrets argon2 accepted, by client id.
pub(crate) struct KnownSecrets {
    /// Digests of stored hashes (their identity), under a key of this memory's own.
    hash_key: DigestKey,
    /// Keyed by ids of tokens whose secret argon2 accepted (never attacker-chosen).
    known: moka::sync::Cache<ClientId, Slots>,
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
            .is_some_and(|k| k.iter().any(|k| digests_equal(&k.secret, secret)))
    }

    /// Which of the token's valid hashes (`current`, and `previous` while a rotation's grace
    /// lasts) argon2 accepted a secret with this digest against, for `client_id`. Secrets
    /// remembered for other hashes are forgotten: the token was reissued or rotated.
    pub(crate) fn accepts(
        &self,
        client_id: &ClientId,
        secret: &SecretDigest,
        current: &SecretHash,
        previous: Option<&SecretHash>,
    ) -> Option<Matched> {
        let mut slots = self.known.get(client_id)?;
        let current = self.identity(current);
        let previous = previous.map(|h| self.identity(h));
        let valid = [Some(current), previous];
        let valid: Vec<SecretDigest> = valid.into_iter().flatten().collect();
        if slots.retain(&valid) {
            if slots.iter().next().is_none() {
                self.known.invalidate(client_id);
            } else {
                self.known.insert(client_id.clone(), slots);
            }
        }
        let known = slots.iter().find(|k| digests_equal(&k.secret, secret))?;
        if digests_equal(&known.hash, &current) {
            Some(Matched::Current)
        } else {
            Some(Matched::Previous)
        }
    }

    /// The digest of the secret argon2 accepted for `client_id` against `hash`, if known.
    pub(crate) fn digest_for(
        &self,
        client_id: &ClientId,
        hash: &SecretHash,
    ) -> Option<SecretDigest> {
        let hash = self.identity(hash);
        let slots = self.known.get(client_id)?;
        slots
            .iter()
            .find(|k| digests_equal(&k.hash, &hash))
            .map(|k| k.secret)
    }

    /// Remember that argon2 accepted a secret with this digest for `client_id` against `hash`.
    pub(crate) fn remember(&self, client_id: &ClientId, secret: SecretDigest, hash: &SecretHash) {
        let known = Known {
            secret,
            hash: self.identity(hash),
        };
        self.known
            .entry(client_id.clone())
            .and_upsert_with(|slots| {
                let mut slots = slots.map(|e| *e.value()).unwrap_or_default();
                slots.put(known);
                slots
            });
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
        assert_eq!(
            known.accepts(&id, &right, &hash, None),
            Some(Matched::Current)
        );
        assert!(known.is_known(&id, &right));
        assert_eq!(known.accepts(&id, &wrong, &hash, None), None);
        assert!(!known.is_known(&id, &wrong));
        assert_eq!(known.accepts(&other, &right, &hash, None), None);
        // Another stored hash: not accepted, and forgotten.
        assert_eq!(known.accepts(&id, &right, &reissued, None), None);
        assert_eq!(known.accepts(&id, &right, &hash, None), None);
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
        assert_eq!(known.accepts(&id, &[1; 32], &hash, None), None);
    }

    #[test]
    fn during_a_grace_both_secrets_are_known_and_after_it_only_the_new_one() {
        let known = KnownSecrets::new(100, DAY);
        let id = ClientId::from("id");
        let (old_hash, new_hash, newer_hash) = (
            SecretHash::from_phc("h1"),
            SecretHash::from_phc("h2"),
            SecretHash::from_phc("h3"),
        );
        let (old, new, newer) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        known.remember(&id, old, &old_hash);
        known.remember(&id, new, &new_hash);
        let grace = |secret| known.accepts(&id, secret, &new_hash, Some(&old_hash));
        assert_eq!(grace(&new), Some(Matched::Current));
        assert_eq!(grace(&old), Some(Matched::Previous));
        assert_eq!(known.digest_for(&id, &old_hash), Some(old));
        // Rotated again: the first secret is no longer valid and is forgotten.
        known.remember(&id, newer, &newer_hash);
        assert_eq!(known.accepts(&id, &old, &newer_hash, Some(&new_hash)), None);
        assert!(!known.is_known(&id, &old));
        assert_eq!(
            known.accepts(&id, &new, &newer_hash, Some(&new_hash)),
            Some(Matched::Previous)
        );
        // The grace over: only the newest.
        assert_eq!(known.accepts(&id, &new, &newer_hash, None), None);
        assert_eq!(
            known.accepts(&id, &newer, &newer_hash, None),
            Some(Matched::Current)
        );
    }
}
