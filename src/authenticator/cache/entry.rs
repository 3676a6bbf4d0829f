//! What the token cache keeps: a [`VerifiedEntry`] per token whose secret argon2 accepted, a
//! [`Refusal`] per attempt that failed, each with its [`Stamp`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{
    authenticator::{check::Matched, epoch::Epoch},
    crypto::digest::{SecretDigest, digests_equal},
    model::{ClientId, PreviousSecret, Principal, SecretHash},
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

    /// Of a token read from the store at `read_at`, in `epoch`: what is decided on a record
    /// is trusted no longer than the record, however late it is decided.
    pub(crate) fn read(epoch: Epoch, read_at: coarsetime::Instant) -> Self {
        Stamp {
            epoch,
            cached_at: read_at,
        }
    }
}

impl From<Epoch> for Stamp {
    fn from(epoch: Epoch) -> Self {
        Stamp::now(epoch)
    }
}

/// The token's secrets as the store held them when an entry was made: while the store holds
/// the same, the same secrets are right (what a background refresh checks).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secrets {
    /// The current secret's hash.
    pub(crate) current: SecretHash,
    /// The secret the last rotation replaced, while its grace lasts.
    pub(crate) previous: Option<PreviousSecret>,
}

impl Secrets {
    /// The hash a secret that is `matched` was accepted against.
    pub(crate) fn hash(&self, matched: Matched) -> &SecretHash {
        match (matched, &self.previous) {
            (Matched::Previous, Some(previous)) => &previous.hash,
            _ => &self.current,
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
    /// Which of the token's secrets it is.
    pub(crate) matched: Matched,
    /// During a rotation's grace, the digest of the token's other valid secret, if argon2
    /// accepted it too: both are served from one entry.
    pub(crate) other: Option<SecretDigest>,
    /// When the replaced secret stops working, in nanoseconds since the Unix epoch (`None`:
    /// no grace); checked on every hit of the replaced secret.
    pub(crate) grace_ends: Option<i128>,
    /// The token's secrets as stored when this entry was made.
    pub(crate) secrets: Secrets,
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
    /// A token with one accepted secret, the current one of a token never rotated with a
    /// grace (see [`with_secrets`](Self::with_secrets) for the others).
    pub(crate) fn new(
        client_id: ClientId,
        stamp: impl Into<Stamp>,
        digest: SecretDigest,
        hash: SecretHash,
        principal: Principal,
        expires_at: Option<i128>,
    ) -> Self {
        VerifiedEntry {
            client_id,
            stamp: stamp.into(),
            digest,
            matched: Matched::Current,
            other: None,
            grace_ends: None,
            secrets: Secrets {
                current: hash,
                previous: None,
            },
            principal,
            expires_at,
            last_reported: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
        }
    }

    /// The token's secrets are `secrets`, the accepted one is `matched`, and the other valid
    /// one (if any) has digest `other`.
    #[must_use]
    pub(crate) fn with_secrets(
        mut self,
        secrets: Secrets,
        matched: Matched,
        other: Option<SecretDigest>,
    ) -> Self {
        self.grace_ends = secrets
            .previous
            .as_ref()
            .map(|p| p.valid_until.unix_timestamp_nanos());
        self.other = other.filter(|_| secrets.previous.is_some());
        self.matched = matched;
        self.secrets = secrets;
        self
    }

    /// Which of the token's secrets a secret with this digest is, if this entry knows it.
    #[inline]
    pub(crate) fn accepts(&self, secret: &SecretDigest) -> Option<Matched> {
        if digests_equal(secret, &self.digest) {
            return Some(self.matched);
        }
        match &self.other {
            Some(other) if digests_equal(secret, other) => Some(match self.matched {
                Matched::Current => Matched::Previous,
                Matched::Previous => Matched::Current,
            }),
            _ => None,
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
