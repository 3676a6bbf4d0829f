//! Per-thread fronts for the verified-token cache and the failed-attempt cache: the tokens
//! a thread admitted lately and the attempts it refused lately, found without touching the
//! shared moka caches.
//!
//! moka stays the cache of record (capacity, TTL, eviction policy, invalidation). The front
//! only keeps, per thread, copies of entries moka handed out, and returns only those younger
//! than their cache's TTL (by the coarse monotonic clock, which costs a few nanoseconds where
//! a precise clock read costs several times that); the cache checks the revocation epoch of
//! what it returns, as for a moka hit. A stale or colliding slot costs one moka read, which
//! refills it.
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
//! digest as well as the moka read.

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::entry::{Refusal, VerifiedEntry};
use crate::crypto::digest::{SecretDigest, digests_equal};

/// Entries per thread (a power of two).
const SLOTS: usize = 64;

/// How much earlier than the cache TTL the front stops serving an entry: more than the
/// coarse monotonic clock's resolution (a scheduler tick: 1-4 ms on Linux, ~16 ms on
/// Windows), so the front never serves an entry moka would already have expired.
pub(crate) const CLOCK_MARGIN: Duration = Duration::from_millis(50);

/// The longest client id a refusal slot holds inline (a UUID is 36 bytes); attempts on
/// longer ids are always looked up in the shared cache.
const REFUSAL_ID_MAX: usize = 40;

struct Slot {
    /// Which cache the entry came from (one process may have many).
    owner: u64,
    entry: Arc<VerifiedEntry>,
}

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

/// One cache's view of the per-thread fronts: its owner id and the ages up to which each
/// front may serve what it holds.
pub(crate) struct Front {
    /// A process-unique id for the cache (addresses can be reused).
    owner: u64,
    /// The age, in coarse clock ticks, up to which a verified entry is served: the cache
    /// TTL less [`CLOCK_MARGIN`] (0: the front never serves).
    entry_ticks: u64,
    /// The age, in coarse clock ticks, from which a verified entry is due for a refresh.
    refresh_ticks: u64,
    /// Likewise for refusals, from the verdict TTL.
    refusal_ticks: u64,
}

impl Front {
    /// A front for a cache whose verified entries live `entry_ttl`, refusals `refusal_ttl`.
    pub(crate) fn new(entry_ttl: Duration, refusal_ttl: Duration) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Front {
            owner: NEXT.fetch_add(1, Ordering::Relaxed),
            entry_ticks: ticks(entry_ttl),
            refresh_ticks: refresh_ticks(entry_ttl),
            refusal_ticks: ticks(refusal_ttl),
        }
    }

    /// This thread's entry for `client_id`, if it holds one young enough to serve, and
    /// whether it is old enough to be refreshed.
    #[inline]
    pub(crate) fn get(&self, client_id: &[u8]) -> Option<(Arc<VerifiedEntry>, bool)> {
        let index = slot_of(client_id);
        SLOTS_OF_THIS_THREAD
            .try_with(|slots| {
                let slots = slots.try_borrow().ok()?;
                let slot = slots[index].as_ref()?;
                if slot.owner != self.owner || slot.entry.client_id_bytes() != client_id {
                    return None;
                }
                let age = age_of(slot.entry.stamp.cached_at);
                (age < self.entry_ticks).then(|| (slot.entry.clone(), age >= self.refresh_ticks))
            })
            .ok()
            .flatten()
    }

    /// Whether an entry (found in the shared cache) is young enough to be served (moka
    /// counts its TTL from the insert, this from when its record was read), and if so
    /// whether it is due for a refresh: one reading of the clock.
    #[inline]
    pub(crate) fn serve(&self, entry: &VerifiedEntry) -> Option<bool> {
        let age = age_of(entry.stamp.cached_at);
        (age < self.entry_ticks).then_some(age >= self.refresh_ticks)
    }

    /// Whether a refusal (found in the shared cache) is young enough to be served.
    #[inline]
    pub(crate) fn is_fresh_refusal(&self, refusal: &Refusal) -> bool {
        is_younger(refusal.stamp.cached_at, self.refusal_ticks)
    }

    /// Whether an entry (found in the shared cache) is old enough to be refreshed.
    #[cfg(test)]
    pub(crate) fn refresh_due(&self, entry: &VerifiedEntry) -> bool {
        age_of(entry.stamp.cached_at) >= self.refresh_ticks
    }

    /// Remember `entry` on this thread, replacing whatever shared its slot.
    pub(crate) fn put(&self, entry: &Arc<VerifiedEntry>) {
        let index = slot_of(entry.client_id_bytes());
        let _ = SLOTS_OF_THIS_THREAD.try_with(|slots| {
            let old = match slots.try_borrow_mut() {
                Ok(mut slots) => slots[index].replace(Slot {
                    owner: self.owner,
                    entry: entry.clone(),
                }),
                Err(_) => None,
            };
            // Dropped after the borrow ends: dropping an entry runs no code of ours, but keep
            // the borrow as short as possible anyway.
            drop(old);
        });
    }

    /// This thread's refusal of `secret_digest` for `client_id`, if it holds one young
    /// enough to serve.
    #[inline]
    pub(crate) fn refusal(
        &self,
        client_id: &[u8],
        secret_digest: &SecretDigest,
    ) -> Option<Refusal> {
        let index = refusal_slot_of(client_id, secret_digest);
        REFUSALS_OF_THIS_THREAD
            .try_with(|slots| {
                let slots = slots.try_borrow().ok()?;
                let slot = slots[index].as_ref()?;
                let id = slot.id.get(..usize::from(slot.id_len))?;
                (slot.owner == self.owner
                    && id == client_id
                    && digests_equal(&slot.secret_digest, secret_digest)
                    && is_younger(slot.refusal.stamp.cached_at, self.refusal_ticks))
                .then_some(slot.refusal)
            })
            .ok()
            .flatten()
    }

    /// Remember a refusal of `secret_digest` for `client_id` on this thread, replacing
    /// whatever shared its slot. Ids longer than a slot holds are not remembered.
    pub(crate) fn put_refusal(
        &self,
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
                    owner: self.owner,
                    id_len: client_id.len() as u8,
                    id,
                    secret_digest: *secret_digest,
                    refusal,
                });
            }
        });
    }
}

/// The age in coarse clock ticks up to which a front may serve what a cache with this TTL
/// holds: the TTL less the margin for the coarse clock's resolution (0: never).
fn ticks(ttl: Duration) -> u64 {
    ttl.checked_sub(CLOCK_MARGIN)
        .map_or(0, |ttl| coarsetime::Duration::from(ttl).as_ticks())
}

/// The age in coarse clock ticks from which a verified entry is refreshed in the background:
/// three quarters of the age up to which it is served, so a token in use is re-read from the
/// store before its entry expires and never waits for the store.
fn refresh_ticks(ttl: Duration) -> u64 {
    ticks(ttl) / 4 * 3
}

/// The age of something cached at `cached_at`, in coarse clock ticks.
#[inline]
fn age_of(cached_at: coarsetime::Instant) -> u64 {
    let now = coarsetime::Instant::now_without_cache_update();
    now.as_ticks().saturating_sub(cached_at.as_ticks())
}

/// Whether something cached at `cached_at` is younger than `ticks`, by the coarse clock.
#[inline]
fn is_younger(cached_at: coarsetime::Instant, ticks: u64) -> bool {
    age_of(cached_at) < ticks
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

fn refusal_slot_of(client_id: &[u8], secret_digest: &SecretDigest) -> usize {
    // The secret's keyed digest is uniformly random to anyone without the key, so nobody
    // can aim many attempts at one slot; the id's slot is mixed in so that one secret tried
    // on many ids spreads out too.
    let mut head = [0u8; 8];
    head.copy_from_slice(&secret_digest[..8]);
    ((u64::from_le_bytes(head) as usize) ^ slot_of(client_id)) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::{super::entry::Stamp, *};
    use crate::{
        authenticator::epoch::Epochs,
        crypto::digest::DigestKey,
        model::{AccountId, ClientId, Principal, Role},
    };

    const HOUR: Duration = Duration::from_secs(3600);

    fn entry(id: &str) -> Arc<VerifiedEntry> {
        let epoch = Epochs::new().current(id.as_bytes());
        let principal = Principal::account(AccountId::new_v4(), Role::Basic, ClientId::from(id));
        Arc::new(VerifiedEntry::new(
            ClientId::from(id),
            epoch,
            [7; 32],
            crate::model::SecretHash::from_phc("h"),
            principal,
            None,
        ))
    }

    fn aged(entry: &Arc<VerifiedEntry>, by: Duration) -> Arc<VerifiedEntry> {
        let mut old = VerifiedEntry::new(
            entry.client_id.clone(),
            entry.stamp.epoch,
            entry.digest,
            entry.secrets.current.clone(),
            entry.principal.clone(),
            None,
        );
        old.stamp.cached_at = old
            .stamp
            .cached_at
            .checked_sub(coarsetime::Duration::from(by))
            .expect("the monotonic clock is older than that");
        Arc::new(old)
    }

    #[test]
    fn an_entry_is_served_to_its_own_cache_and_id_only() {
        let (front, other) = (Front::new(HOUR, HOUR), Front::new(HOUR, HOUR));
        let e = entry("2b5e6c1a-0000-4000-8000-000000000001");
        front.put(&e);
        let (got, due) = front.get(e.client_id_bytes()).expect("served");
        assert!(Arc::ptr_eq(&got, &e));
        assert!(!due, "a fresh entry is not due for a refresh");
        assert!(other.get(e.client_id_bytes()).is_none(), "another cache's");
        assert!(front.get(b"2b5e6c1a-0000-4000-8000-000000000002").is_none());
    }

    #[test]
    fn a_colliding_slot_costs_a_lookup_never_a_wrong_answer() {
        // The same length and last eight bytes: the same slot.
        let (a, b) = ("a-collide-12345678", "b-collide-12345678");
        assert_eq!(slot_of(a.as_bytes()), slot_of(b.as_bytes()));
        let front = Front::new(HOUR, HOUR);
        let (ea, eb) = (entry(a), entry(b));
        front.put(&ea);
        assert!(
            front.get(b.as_bytes()).is_none(),
            "b must not get a's entry"
        );
        front.put(&eb);
        assert!(front.get(a.as_bytes()).is_none(), "a was evicted: a miss");
        assert!(Arc::ptr_eq(&front.get(b.as_bytes()).unwrap().0, &eb));
    }

    #[test]
    fn an_entry_older_than_the_ttl_is_never_served() {
        let front = Front::new(Duration::from_secs(60), HOUR);
        let fresh = entry("2b5e6c1a-0000-4000-8000-0000000000aa");
        front.put(&aged(&fresh, Duration::from_secs(61)));
        assert!(front.get(fresh.client_id_bytes()).is_none(), "past the TTL");
        // Within the clock margin of the TTL is past it too.
        front.put(&aged(&fresh, Duration::from_secs(60) - CLOCK_MARGIN / 2));
        assert!(
            front.get(fresh.client_id_bytes()).is_none(),
            "within the margin"
        );
        front.put(&aged(&fresh, Duration::from_secs(30)));
        let (_, due) = front
            .get(fresh.client_id_bytes())
            .expect("half way: served");
        assert!(!due, "half way: not due for a refresh");
        // Past three quarters of what it may serve: served, and due for a refresh.
        front.put(&aged(&fresh, Duration::from_secs(50)));
        let (old, due) = front.get(fresh.client_id_bytes()).expect("served");
        assert!(due && front.refresh_due(&old));
        // A TTL within the margin: the front never serves.
        let never = Front::new(CLOCK_MARGIN, HOUR);
        never.put(&fresh);
        assert!(never.get(fresh.client_id_bytes()).is_none());
    }

    #[test]
    fn a_refusal_answers_its_own_id_and_secret_while_young() {
        let front = Front::new(HOUR, Duration::from_secs(60));
        let key = DigestKey::random();
        let (id, s, t) = (b"refused-id".as_slice(), key.digest(b"s"), key.digest(b"t"));
        let young = Refusal {
            stamp: Stamp::now(Epochs::new().current(id)),
        };
        front.put_refusal(id, &s, young);
        assert!(front.refusal(id, &s).is_some());
        assert!(front.refusal(id, &t).is_none(), "another secret");
        assert!(front.refusal(b"refused-ie", &s).is_none(), "another id");
        let mut old = young;
        old.stamp.cached_at = old
            .stamp
            .cached_at
            .checked_sub(coarsetime::Duration::from_secs(61))
            .expect("the monotonic clock is older than that");
        front.put_refusal(id, &s, old);
        assert!(front.refusal(id, &s).is_none(), "past the verdict TTL");
    }

    #[test]
    fn a_colliding_refusal_slot_costs_a_lookup_never_a_wrong_answer() {
        let front = Front::new(HOUR, HOUR);
        let refusal = Refusal {
            stamp: Stamp::now(Epochs::new().current(b"x")),
        };
        // Two ids of one slot with the same digest, and two digests alike in their first
        // eight bytes: all four attempts share one refusal slot.
        let (a, b) = (
            b"a-collide-12345678".as_slice(),
            b"b-collide-12345678".as_slice(),
        );
        let s = [1u8; 32];
        let mut t = s;
        t[31] ^= 1;
        assert_eq!(refusal_slot_of(a, &s), refusal_slot_of(b, &s));
        assert_eq!(refusal_slot_of(a, &s), refusal_slot_of(a, &t));
        front.put_refusal(a, &s, refusal);
        assert!(front.refusal(b, &s).is_none(), "another id");
        assert!(front.refusal(a, &t).is_none(), "another secret");
        assert!(front.refusal(a, &s).is_some());
        front.put_refusal(a, &t, refusal);
        assert!(
            front.refusal(a, &s).is_none(),
            "evicted: a miss, then a shared-cache read"
        );
    }

    #[test]
    fn ids_too_long_for_a_refusal_slot_are_not_kept() {
        let front = Front::new(HOUR, HOUR);
        let id = [b'x'; REFUSAL_ID_MAX + 1];
        let digest = DigestKey::random().digest(b"s");
        let refusal = Refusal {
            stamp: Stamp::now(Epochs::new().current(&id)),
        };
        front.put_refusal(&id, &digest, refusal);
        assert!(front.refusal(&id, &digest).is_none());
    }
}
