//! The token cache: what the hot path answers from, and its freshness rule.
//!
//! Two moka caches are the caches of record: verified tokens by client id (the keyed digest
//! of the secret argon2 accepted, the principal, the expiry), and refused attempts by a keyed
//! digest of (client id, secret). Each has a per-thread front (see `front`). Whatever either
//! returns is served only if its token's revocation epoch is still current (see `epoch`);
//! moka's TTL and the front's age check bound how long it is trusted otherwise.
//!
//! A third moka cache keeps each verified token for a while past its TTL (`stale`): what the
//! cold path may still answer when the store cannot be reached, and only then.

mod entry;
mod front;

use std::{sync::Arc, time::Duration};

use entry::Refusal;
pub(crate) use entry::Stamp;
pub(crate) use entry::{Secrets, VerifiedEntry};
use front::Front;

use super::{check::Matched, epoch::Epochs};
use crate::{
    crypto::digest::{DigestKey, SecretDigest},
    model::ClientId,
};

/// Keys of the verified cache are ids of tokens whose secret argon2 accepted (never
/// attacker-chosen), and keys of the refusal cache are keyed digests (uniformly random to
/// anyone without the key): a fast hasher is safe for both.
type FastHash = foldhash::fast::RandomState;

/// What the cache says about presented credentials.
pub(crate) enum Lookup {
    /// A current verified token, and the secret is one argon2 accepted (which one); `true`
    /// when the entry is old enough to be refreshed from the store.
    Verified(Arc<VerifiedEntry>, Matched, bool),
    /// The same id and secret failed before, and the token has not changed since.
    Refused,
    /// The cache cannot tell: the cold path must.
    Miss,
}

/// Where a verified entry was found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    /// This thread's front: no shared cache was read.
    Front,
    /// The shared cache.
    Shared,
}

/// Verified tokens and refused attempts, with their fronts and revocation epochs.
pub(crate) struct TokenCache {
    digest_key: DigestKey,
    verified: moka::sync::Cache<ClientId, Arc<VerifiedEntry>, FastHash>,
    refused: moka::sync::Cache<SecretDigest, Refusal, FastHash>,
    /// Verified tokens kept past their TTL, for a store outage (none if the window is zero).
    stale: Option<moka::sync::Cache<ClientId, Arc<VerifiedEntry>, FastHash>>,
    front: Front,
    epochs: Epochs,
    /// How much longer a record is trusted than a refusal decided on it (the cache TTL less
    /// the refusal TTL).
    record_slack: coarsetime::Duration,
}

impl TokenCache {
    /// At most `capacity` entries of each kind; verified tokens trusted for `ttl` (and kept
    /// for `stale` more, for a store outage), refusals for `refusal_ttl`.
    pub(crate) fn new(
        capacity: u64,
        ttl: Duration,
        refusal_ttl: Duration,
        stale: Duration,
    ) -> Self {
        TokenCache {
            digest_key: DigestKey::random(),
            verified: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
            refused: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(refusal_ttl)
                .build_with_hasher(FastHash::default()),
            stale: (!stale.is_zero()).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(ttl.saturating_add(stale))
                    .build_with_hasher(FastHash::default())
            }),
            front: Front::new(ttl, refusal_ttl),
            epochs: Epochs::new(),
            record_slack: ttl.saturating_sub(refusal_ttl).into(),
        }
    }

    /// The keyed digest of a secret, as the cache keeps it.
    #[inline]
    pub(crate) fn digest(&self, secret: &[u8]) -> SecretDigest {
        self.digest_key.digest(secret)
    }

    /// The revocation epochs every cached thing is checked against.
    pub(crate) fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    /// What the cache knows of `client_id` presented with a secret of this digest.
    ///
    /// A wrong secret for a token in use costs what an unknown id costs (a probe of the
    /// shared cache), so that timing does not tell which ids belong to tokens in use.
    #[inline]
    pub(crate) fn lookup(&self, client_id: &[u8], secret: &SecretDigest) -> Lookup {
        if let Some((entry, found, due)) = self.verified(client_id) {
            if let Some(matched) = entry.accepts(secret) {
                return Lookup::Verified(entry, matched, due);
            }
            if found == Found::Front {
                let _ = self.verified.contains_key(client_id);
            }
        }
        if self.is_refused(client_id, secret) {
            Lookup::Refused
        } else {
            Lookup::Miss
        }
    }

    /// The current verified entry for a client id, with whether it is due for a refresh:
    /// from this thread's front when it holds a young enough one, else from moka, refilling
    /// the front.
    #[inline]
    fn verified(&self, client_id: &[u8]) -> Option<(Arc<VerifiedEntry>, Found, bool)> {
        if let Some((entry, due)) = self.front.get(client_id)
            && self.epochs.is_current(entry.stamp.epoch)
        {
            return Some((entry, Found::Front, due));
        }
        let entry = self.verified.get(client_id)?;
        if !self.epochs.is_current(entry.stamp.epoch) {
            return None;
        }
        let due = self.front.serve(&entry)?;
        self.front.put(&entry);
        Some((entry, Found::Shared, due))
    }

    /// Whether this attempt failed before and its token has not changed since.
    #[inline]
    fn is_refused(&self, client_id: &[u8], secret: &SecretDigest) -> bool {
        let refusal = match self.front.refusal(client_id, secret) {
            Some(refusal) => refusal,
            None => {
                let Some(refusal) = self
                    .refused
                    .get(&self.attempt_key(client_id, secret))
                    .filter(|r| self.front.is_fresh_refusal(r))
                else {
                    return false;
                };
                self.front.put_refusal(client_id, secret, refusal);
                refusal
            }
        };
        // Otherwise the token changed since: decide afresh.
        self.epochs.is_current(refusal.stamp.epoch)
    }

    /// Cache a token whose secret argon2 accepted.
    pub(crate) fn insert_verified(&self, entry: VerifiedEntry) {
        let entry = Arc::new(entry);
        if let Some(stale) = &self.stale {
            stale.insert(entry.client_id.clone(), entry.clone());
        }
        self.verified.insert(entry.client_id.clone(), entry);
    }

    /// A verified token kept past its TTL, if `client_id` with a secret of this digest is
    /// one and nothing invalidated it since: for the cold path while the store cannot be
    /// reached.
    pub(crate) fn stale(
        &self,
        client_id: &ClientId,
        secret: &SecretDigest,
    ) -> Option<(Arc<VerifiedEntry>, Matched)> {
        let entry = self.stale.as_ref()?.get(client_id)?;
        let matched = entry.accepts(secret)?;
        self.epochs
            .is_current(entry.stamp.epoch)
            .then_some((entry, matched))
    }

    /// Remember that `client_id` with a secret of this digest failed, for a token read in
    /// `stamp`'s epoch and time (a refusal is trusted for the refusal TTL, and never longer
    /// than the record it was decided on).
    pub(crate) fn insert_refusal(
        &self,
        client_id: &ClientId,
        secret: &SecretDigest,
        stamp: impl Into<Stamp>,
    ) {
        let attempt = self.attempt_key(client_id.as_str().as_bytes(), secret);
        let mut stamp = stamp.into();
        // Served for the refusal TTL from now, but never past the record's own TTL.
        let now = coarsetime::Instant::now_without_cache_update();
        // Checked: a slack near `u64::MAX` ticks (a TTL of centuries) means "now".
        stamp.cached_at = stamp
            .cached_at
            .checked_add(self.record_slack)
            .map_or(now, |until| until.min(now));
        self.refused.insert(attempt, Refusal { stamp });
    }

    /// Drop a verified token now (e.g. past its expiry) rather than at its TTL.
    pub(crate) fn remove_verified(&self, client_id: &[u8]) {
        self.verified.invalidate(client_id);
        if let Some(stale) = &self.stale {
            stale.invalidate(client_id);
        }
    }

    /// Forget `client_id`: nothing cached of it until now is served again.
    pub(crate) fn invalidate(&self, client_id: &ClientId) {
        self.epochs.bump(client_id.as_str().as_bytes());
        self.verified.invalidate(client_id);
        if let Some(stale) = &self.stale {
            stale.invalidate(client_id);
        }
    }

    /// Forget every token.
    pub(crate) fn invalidate_all(&self) {
        self.epochs.bump_all();
        self.verified.invalidate_all();
        if let Some(stale) = &self.stale {
            stale.invalidate_all();
        }
    }

    /// How many verified tokens are cached (approximately: moka counts lazily).
    pub(crate) fn verified_count(&self) -> u64 {
        self.verified.entry_count()
    }

    /// The key a failed attempt is cached under: the secret's keyed digest masked with the
    /// id's, so that the same secret on another id is another attempt.
    fn attempt_key(&self, client_id: &[u8], secret: &SecretDigest) -> SecretDigest {
        DigestKey::attempt(secret, &self.digest_key.id_mask(client_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Principal, Role};

    const HOUR: Duration = Duration::from_secs(3600);

    fn verified(cache: &TokenCache, id: &str, secret: &[u8]) {
        let principal = Principal::account(AccountId::new_v4(), Role::Basic, ClientId::from(id));
        let epoch = cache.epochs().current(id.as_bytes());
        cache.insert_verified(VerifiedEntry::new(
            ClientId::from(id),
            epoch,
            cache.digest(secret),
            crate::model::SecretHash::from_phc("h"),
            principal,
            None,
        ));
    }

    fn lookup(cache: &TokenCache, id: &str, secret: &[u8]) -> &'static str {
        match cache.lookup(id.as_bytes(), &cache.digest(secret)) {
            Lookup::Verified(..) => "verified",
            Lookup::Refused => "refused",
            Lookup::Miss => "miss",
        }
    }

    #[test]
    fn only_the_secret_argon2_accepted_is_verified() {
        let cache = TokenCache::new(100, HOUR, HOUR, Duration::ZERO);
        verified(&cache, "id", b"right");
        assert_eq!(lookup(&cache, "id", b"right"), "verified"); // from moka
        assert_eq!(lookup(&cache, "id", b"right"), "verified"); // from the front
        assert_eq!(lookup(&cache, "id", b"wrong"), "miss");
        assert_eq!(lookup(&cache, "other", b"right"), "miss");
    }

    #[test]
    fn the_refusal_cache_is_keyed_by_the_keyed_digest_of_id_and_secret() {
        let cache = TokenCache::new(100, HOUR, HOUR, Duration::ZERO);
        let id = ClientId::from("id");
        let secret = cache.digest(b"wrong");
        cache.insert_refusal(&id, &secret, cache.epochs().current(b"id"));
        assert_eq!(lookup(&cache, "id", b"wrong"), "refused");
        assert_eq!(lookup(&cache, "id", b"other"), "miss", "another secret");
        assert_eq!(lookup(&cache, "ie", b"wrong"), "miss", "another id");
        // What moka keeps is neither the secret, nor its digest, nor an unkeyed hash.
        let key = cache.attempt_key(b"id", &secret);
        assert!(cache.refused.contains_key(&key));
        assert_ne!(key, secret);
        assert!(!cache.refused.contains_key(&secret));
        assert!(
            !cache
                .refused
                .contains_key(blake3::hash(b"wrong").as_bytes())
        );
        // Another process (another key) derives other keys from the same attempt.
        let elsewhere = TokenCache::new(100, HOUR, HOUR, Duration::ZERO);
        assert_ne!(
            elsewhere.attempt_key(b"id", &elsewhere.digest(b"wrong")),
            key
        );
    }

    #[test]
    fn an_invalidated_token_is_neither_verified_nor_refused_from_cache() {
        let cache = TokenCache::new(100, HOUR, HOUR, Duration::ZERO);
        verified(&cache, "id", b"right");
        let wrong = cache.digest(b"wrong");
        cache.insert_refusal(&ClientId::from("id"), &wrong, cache.epochs().current(b"id"));
        // Both fronts hold them now.
        assert_eq!(lookup(&cache, "id", b"right"), "verified");
        assert_eq!(lookup(&cache, "id", b"wrong"), "refused");
        cache.invalidate(&ClientId::from("id"));
        assert_eq!(lookup(&cache, "id", b"right"), "miss");
        assert_eq!(lookup(&cache, "id", b"wrong"), "miss");
    }

    #[test]
    fn an_entry_read_before_an_invalidation_is_never_served() {
        let cache = TokenCache::new(100, HOUR, HOUR, Duration::ZERO);
        // A lookup reads the epoch, then the token is revoked, then the lookup caches.
        let epoch = cache.epochs().current(b"id");
        cache.invalidate(&ClientId::from("id"));
        let principal = Principal::account(AccountId::new_v4(), Role::Basic, "id".into());
        let digest = cache.digest(b"right");
        cache.insert_verified(VerifiedEntry::new(
            "id".into(),
            epoch,
            digest,
            crate::model::SecretHash::from_phc("h"),
            principal,
            None,
        ));
        assert_eq!(lookup(&cache, "id", b"right"), "miss");
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_never_served() {
        // Front TTL = 120 ms less the 50 ms clock margin.
        let cache = TokenCache::new(100, Duration::from_millis(120), HOUR, Duration::ZERO);
        verified(&cache, "id", b"right");
        assert_eq!(lookup(&cache, "id", b"right"), "verified");
        assert_eq!(lookup(&cache, "id", b"right"), "verified");
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(lookup(&cache, "id", b"right"), "miss");
    }
}
