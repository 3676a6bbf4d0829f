//! Revocation epochs: the staleness rule for everything the authenticator caches.
//!
//! Every cached thing carries the epoch of its client id as it was *before* the store was
//! read. An invalidation bumps that epoch (after the store changed), and every use of a
//! cached thing compares epochs, so a lookup or verification that was in flight during a
//! revoke can never re-admit the token, even if it lands in a cache late. Epochs are striped
//! ([`STRIPES`] counters), so an invalidation costs the other tokens of its stripe at most
//! one extra store lookup (no argon2: the verdict for their unchanged hash is reused).

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
};

/// How many epoch counters the client ids are spread over.
const STRIPES: usize = 1024;

/// The revocation epochs of every client id.
pub(crate) struct Epochs {
    stripes: Box<[AtomicU64]>,
    /// Seeded per process, so nobody can aim ids at one stripe.
    hasher: RandomState,
}

/// A client id's revocation epoch, as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epoch {
    stripe: usize,
    epoch: u64,
}

impl Epochs {
    pub(crate) fn new() -> Self {
        Epochs {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    fn stripe_of(&self, client_id: &[u8]) -> usize {
        (self.hasher.hash_one(client_id) as usize) % STRIPES
    }

    /// `client_id`'s epoch now: read it *before* asking the store, so that an invalidation
    /// after this point makes the answer stale even if it lands in a cache later.
    pub(crate) fn current(&self, client_id: &[u8]) -> Epoch {
        let stripe = self.stripe_of(client_id);
        Epoch {
            stripe,
            epoch: self.stripes[stripe].load(Ordering::Acquire),
        }
    }

    /// Whether nothing was invalidated since `at` was read.
    #[inline]
    pub(crate) fn is_current(&self, at: Epoch) -> bool {
        self.stripes[at.stripe].load(Ordering::Acquire) == at.epoch
    }

    /// Make everything read of `client_id` until now stale.
    pub(crate) fn bump(&self, client_id: &[u8]) {
        self.stripes[self.stripe_of(client_id)].fetch_add(1, Ordering::AcqRel);
    }

    /// Make everything read until now stale.
    pub(crate) fn bump_all(&self) {
        for stripe in self.stripes.iter() {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_read_before_a_bump_is_stale_after_it() {
        let epochs = Epochs::new();
        let before = epochs.current(b"id");
        assert!(epochs.is_current(before));
        epochs.bump(b"id");
        assert!(!epochs.is_current(before));
        assert!(epochs.is_current(epochs.current(b"id")));
    }

    #[test]
    fn bump_all_makes_every_epoch_stale() {
        let epochs = Epochs::new();
        let read: Vec<Epoch> = (0..100u32)
            .map(|i| epochs.current(&i.to_le_bytes()))
            .collect();
        epochs.bump_all();
        assert!(read.iter().all(|e| !epochs.is_current(*e)));
    }
}
