//! Per-thread fronts for the verified-token cache and the failed-attempt cache: the tokens
//! a thread admitted lately and the attempts it refused lately, found without touching the
//! shared moka caches.
//!
//! moka stays the cache of record (capacity, TTL, eviction policy, invalidation). The front
//! only keeps, per thread, `Arc`s of entries moka handed out, and the authenticator checks
//! what it finds as it checks a moka hit, and more: the revocation epoch, and the entry's
//! age against the cache TTL (by the coarse monotonic clock, which costs a few nanoseconds
//! where a precise clock read costs ~30 here). A stale or colliding slot costs one moka
//! read, which refills it.
//!
//! Why: a moka read records the access for its eviction policy (a channel send, clock
//! reads, periodic maintenance) and was the largest single cost of a cached request. The
//! front is direct-mapped, [`SLOTS`] entries per thread, so its memory is bounded by the
//! number of threads (about 1 KiB of slots for tokens and 8 KiB for refusals per thread
//! that authenticates).
//!
//! Refusals (attempts that failed, kept by moka for the verdict TTL under a keyed digest
//! of id and secret) have a front of their own, keyed by the client id and the secret's
//! keyed digest, which the hot path has already computed: a hit skips the id's keyed
//! digest as well as the moka read. It is checked the same way: the token's revocation
//! epoch, and the age against the verdict TTL.

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    authenticator::{Refusal, VerifiedEntry},
    verify::{SecretDigest, digests_equal},
};

/// Entries per thread (a power of two).
const SLOTS: usize = 64;

/// How much earlier than the cache TTL the front stops serving an entry: more than the
/// coarse monotonic clock's resolution (a scheduler tick: 1-4 ms on Linux, ~16 ms on
/// Windows), so the front never serves an entry moka would already have expired.
pub(crate) const CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_millis(50);

struct Slot {
    /// Which authenticator's cache the entry came from (one process may have many).
    owner: u64,
    entry: Arc<VerifiedEntry>,
}

/// The longest client id a refusal slot holds inline (a UUID is 36 bytes); attempts on
/// longer ids are always looked up in the shared cache.
const REFUSAL_ID_MAX: usize = 40;

/// A failed attempt: the client id and the keyed digest of the secret tried with it.
struct RefusalSlot {
    owner: u64,
    id_len: u8,
    id: [u8; REFUSAL_ID_MAX],
    secret_digest: SecretDigest,
    refusal: Refusal,
}

thread_local! {
    static SLOTS_OF_THIS_THREAD: RefCell<[Option<Slot>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
    static REFUSALS_OF_THIS_THREAD: RefCell<[Option<RefusalSlot>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// A process-unique id for one authenticator's cache (addresses can be reused).
pub(crate) fn new_owner() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn slot_of(client_id: &[u8]) -> usize {
    // The last eight bytes (the random end of a UUID) and the length, multiplicatively
    // hashed to the top bits. Only verified client ids are stored, so a collision costs a
    // moka read, nothing more.
    let mut tail = [0u8; 8];
    let end = &client_id[client_id.len().saturating_sub(8)..];
    tail[..end.len()].copy_from_slice(end);
    let x = u64::from_le_bytes(tail) ^ client_id.len() as u64;
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize
}

/// This thread's entry of `owner`'s cache for `client_id`, if it holds one.
pub(crate) fn get(owner: u64, client_id: &[u8]) -> Option<Arc<VerifiedEntry>> {
    let index = slot_of(client_id);
    SLOTS_OF_THIS_THREAD
        .try_with(|slots| {
            let slots = slots.try_borrow().ok()?;
            let slot = slots[index].as_ref()?;
            (slot.owner == owner && slot.entry.client_id_bytes() == client_id)
                .then(|| slot.entry.clone())
        })
        .ok()
        .flatten()
}

/// Remember `entry` of `owner`'s cache on this thread, replacing whatever shared its slot.
pub(crate) fn put(owner: u64, entry: &Arc<VerifiedEntry>) {
    let index = slot_of(entry.client_id_bytes());
    let _ = SLOTS_OF_THIS_THREAD.try_with(|slots| {
        let old = match slots.try_borrow_mut() {
            Ok(mut slots) => slots[index].replace(Slot {
                owner,
                entry: entry.clone(),
            }),
            Err(_) => None,
        };
        // Dropped after the borrow ends: dropping an entry runs no code of ours, but keep
        // the borrow as short as possible anyway.
        drop(old);
    });
}

fn refusal_slot_of(client_id: &[u8], secret_digest: &SecretDigest) -> usize {
    // The secret's keyed digest is uniformly random to anyone without the key, so nobody
    // can aim many attempts at one slot; the id's slot is mixed in so that one secret tried
    // on many ids spreads out too.
    let mut head = [0u8; 8];
    head.copy_from_slice(&secret_digest[..8]);
    ((u64::from_le_bytes(head) as usize) ^ slot_of(client_id)) & (SLOTS - 1)
}

/// This thread's copy of `owner`'s cached refusal of `secret_digest` for `client_id`.
pub(crate) fn refusal(
    owner: u64,
    client_id: &[u8],
    secret_digest: &SecretDigest,
) -> Option<Refusal> {
    let index = refusal_slot_of(client_id, secret_digest);
    REFUSALS_OF_THIS_THREAD
        .try_with(|slots| {
            let slots = slots.try_borrow().ok()?;
            let slot = slots[index].as_ref()?;
            let id = slot.id.get(..usize::from(slot.id_len))?;
            (slot.owner == owner
                && id == client_id
                && digests_equal(&slot.secret_digest, secret_digest))
            .then_some(slot.refusal)
        })
        .ok()
        .flatten()
}

/// Remember `owner`'s cached refusal of `secret_digest` for `client_id` on this thread,
/// replacing whatever shared its slot. Ids longer than a slot holds are not remembered.
pub(crate) fn put_refusal(
    owner: u64,
    client_id: &[u8],
    secret_digest: &SecretDigest,
    refusal: Refusal,
) {
    if client_id.len() > REFUSAL_ID_MAX {
        return;
    }
    let mut id = [0u8; REFUSAL_ID_MAX];
    id[..client_id.len()].copy_from_slice(client_id);
    let index = refusal_slot_of(client_id, secret_digest);
    let _ = REFUSALS_OF_THIS_THREAD.try_with(|slots| {
        if let Ok(mut slots) = slots.try_borrow_mut() {
            slots[index] = Some(RefusalSlot {
                owner,
                id_len: client_id.len() as u8,
                id,
                secret_digest: *secret_digest,
                refusal,
            });
        }
    });
}
