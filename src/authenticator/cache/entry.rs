//! What the token cache keeps: a [`VerifiedEntry`] per token whose secret argon2 accepted, a
//! [`Refusal`] per attempt that failed, each with its [`Stamp`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{
    authenticator::epoch::Epoch,
    crypto::digest::SecretDigest,
    model::{ClientId, Principal, SecretHash},
};

/// When something was cached: the revocation epoch its token was read in (a later change to
/// the token makes it void) and the coarse monotonic time it entered the cache (the
/// per-thread fronts serve it only while it is younger than its cache's TTL).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub(crate) epoch: Epoch,
    pub(crate) cached_at: coarsetime::Instant,
}

impl Stamp {
    /// Cached now, of a token read in `epoch`.
    pub(crate) fn now(epoch: Epoch) -> Self {
        Stamp {
            epoch,
            cached_at: coarsetime::Instant::now_without_cache_update(),
        }
    }
}

/// A token whose secret argon2 accepted.
pub(crate) struct VerifiedEntry {
    /// Its client id (the key, compared by the per-thread front).
    pub(crate) client_id: ClientId,
    pub(crate) stamp: Stamp,
    /// The keyed digest of the secret argon2 accepted.
    pub(crate) digest: SecretDigest,
    /// The stored hash it was accepted against: while the store holds the same hash, the
    /// same secret is right (what a background refresh checks).
    pub(crate) hash: SecretHash,
    pub(crate) principal: Principal,
    /// The token's expiry, in nanoseconds since the Unix epoch (compared with
    /// [`Clock::now_unix_nanos`](crate::clock::Clock::now_unix_nanos) on every hit).
    pub(crate) expires_at: Option<i128>,
    /// When use of this token was last reported for `last_used_at` (coarse seconds).
    pub(crate) last_reported: AtomicU64,
    /// Set once a background refresh of this entry was started (one per entry).
    refreshing: AtomicBool,
}

impl VerifiedEntry {
    pub(crate) fn new(
        client_id: ClientId,
        epoch: Epoch,
        digest: SecretDigest,
        hash: SecretHash,
        principal: Principal,
        expires_at: Option<i128>,
    ) -> Self {
        VerifiedEntry {
            client_id,
            stamp: Stamp::now(epoch),
            digest,
            hash,
            principal,
            expires_at,
            last_reported: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
        }
    }

    /// Carry over when use of the token was last reported from the entry this one replaces.
    pub(crate) fn inherit_usage(&self, older: &VerifiedEntry) {
        self.last_reported.store(
            older.last_reported.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Claim this entry's refresh: `true` for the first caller only.
    #[inline]
    pub(crate) fn claim_refresh(&self) -> bool {
        !self.refreshing.load(Ordering::Relaxed) && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Give the claim back (the refresh could not start); a later hit may claim it again.
    pub(crate) fn release_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    pub(crate) fn client_id_bytes(&self) -> &[u8] {
        self.client_id.as_str().as_bytes()
    }
}

/// An attempt (client id, secret) that failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    pub(crate) stamp: Stamp,
}
