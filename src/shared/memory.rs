//! [`MemoryShared`]: a [`SharedState`] in this process, for tests (several authenticators or
//! layers standing in for replicas) and for trying failure: it can be switched down.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{RateDecision, SharedError, SharedState, WindowDecision, random_id};
use crate::{
    clock::{Clock, SystemClock},
    middleware::{Quota, rate_standing, rate_tightest},
};

#[derive(Default)]
struct State {
    /// Per key, each quota's theoretical arrival time (ns since the epoch).
    rates: HashMap<String, Vec<i128>>,
    /// Per key, each slot's lease end (ns since the epoch).
    slots: HashMap<String, HashMap<String, i128>>,
    /// Per key: window id, when it closes, places taken, whether it refused already.
    windows: HashMap<String, (String, Instant, u32, bool)>,
    verified: HashMap<String, (HashSet<[u8; 32]>, Instant)>,
}

/// A [`SharedState`] held in this process (feature `testing`): clones share it. Each
/// decision takes one lock, as Redis runs one script at a time. Nothing is ever forgotten
/// but expired windows and verified secrets: for tests, not for production.
#[derive(Clone, Default)]
pub struct MemoryShared {
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryShared")
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MemoryShared {
    /// An empty state.
    pub fn new() -> Self {
        MemoryShared::default()
    }

    /// Fail every call while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }

    /// How many calls were made (failed ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Acquire)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, SharedError> {
        self.calls.fetch_add(1, Ordering::AcqRel);
        if self.down.load(Ordering::Acquire) {
            return Err(SharedError("switched down".into()));
        }
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn now_or(now: Option<i128>) -> i128 {
    now.unwrap_or_else(|| SystemClock.now_unix_nanos())
}

fn nanos(duration: Duration) -> i128 {
    duration.as_nanos() as i128
}

/// GCRA over every quota at once, in nanoseconds (the interval rounded down), as the Redis
/// script does it in microseconds.
pub(super) fn gcra(arrivals: &mut Vec<i128>, quotas: &[Quota], now: i128) -> RateDecision {
    arrivals.resize(quotas.len(), i128::MIN);
    let shape = |quota: &Quota| {
        let interval = nanos(quota.period()) / i128::from(quota.limit());
        (interval, interval * (i128::from(quota.limit()) - 1))
    };
    let mut wait = 0i128;
    let mut next = Vec::with_capacity(quotas.len());
    for (quota, &arrival) in quotas.iter().zip(arrivals.iter()) {
        let (interval, tolerance) = shape(quota);
        let tat = arrival.max(now);
        wait = wait.max(tat - now - tolerance);
        next.push(tat + interval);
    }
    let admitted = wait <= 0;
    if admitted {
        *arrivals = next;
    }
    // Where the key stands after the decision, by each quota (as the Redis script).
    let standing = rate_tightest(quotas.iter().zip(arrivals.iter()).map(|(quota, &arrival)| {
        let (interval, tolerance) = shape(quota);
        rate_standing(now + tolerance - arrival.max(now), interval, 1)
    }));
    let (quota, remaining, reset) = standing.map_or((0, u32::MAX, Duration::ZERO), |s| {
        (s.quota, s.remaining, s.reset)
    });
    RateDecision {
        admitted,
        remaining,
        retry_after: Duration::from_nanos(u64::try_from(wait.max(0)).unwrap_or(u64::MAX)),
        quota,
        reset,
    }
}

#[async_trait]
impl SharedState for MemoryShared {
    async fn rate(
        &self,
        key: &str,
        quotas: &[Quota],
        now: Option<i128>,
    ) -> Result<RateDecision, SharedError> {
        let mut state = self.lock()?;
        let arrivals = state.rates.entry(key.to_owned()).or_default();
        Ok(gcra(arrivals, quotas, now_or(now)))
    }

    async fn acquire_slot(
        &self,
        key: &str,
        slot: &str,
        max: u32,
        lease: Duration,
        now: Option<i128>,
    ) -> Result<bool, SharedError> {
        let now = now_or(now);
        let mut state = self.lock()?;
        let slots = state.slots.entry(key.to_owned()).or_default();
        slots.retain(|_, until| *until > now);
        if slots.len() >= max as usize {
            return Ok(false);
        }
        slots.insert(slot.to_owned(), now + nanos(lease));
        Ok(true)
    }

    async fn renew_slot(
        &self,
        key: &str,
        slot: &str,
        lease: Duration,
        now: Option<i128>,
    ) -> Result<(), SharedError> {
        let now = now_or(now);
        let mut state = self.lock()?;
        if let Some(until) = state.slots.get_mut(key).and_then(|s| s.get_mut(slot)) {
            *until = now + nanos(lease);
        }
        Ok(())
    }

    async fn release_slot(&self, key: &str, slot: &str) -> Result<(), SharedError> {
        let mut state = self.lock()?;
        if let Some(slots) = state.slots.get_mut(key) {
            slots.remove(slot);
            if slots.is_empty() {
                state.slots.remove(key);
            }
        }
        Ok(())
    }

    async fn reserve_failure(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<WindowDecision, SharedError> {
        let now = Instant::now();
        let mut state = self.lock()?;
        let entry = state
            .windows
            .entry(key.to_owned())
            .or_insert_with(|| (random_id(), now + window, 0, false));
        if entry.1 <= now {
            *entry = (random_id(), now + window, 0, false);
        }
        if entry.2 >= limit {
            let first = !entry.3;
            entry.3 = true;
            return Ok(WindowDecision::Full {
                retry_after: entry.1 - now,
                first,
            });
        }
        entry.2 += 1;
        Ok(WindowDecision::Taken {
            window: entry.0.clone(),
        })
    }

    async fn give_back_failure(&self, key: &str, window: &str) -> Result<(), SharedError> {
        let mut state = self.lock()?;
        if let Some(entry) = state.windows.get_mut(key)
            && entry.0 == window
        {
            entry.2 = entry.2.saturating_sub(1);
        }
        Ok(())
    }

    async fn is_verified(&self, key: &str, tag: &[u8; 32]) -> Result<bool, SharedError> {
        let state = self.lock()?;
        Ok(state
            .verified
            .get(key)
            .is_some_and(|(tags, until)| *until > Instant::now() && tags.contains(tag)))
    }

    async fn remember_verified(
        &self,
        key: &str,
        tag: &[u8; 32],
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let mut state = self.lock()?;
        let now = Instant::now();
        let entry = state
            .verified
            .entry(key.to_owned())
            .or_insert_with(|| (HashSet::new(), now));
        if entry.1 <= now {
            entry.0.clear();
        }
        entry.0.insert(*tag);
        entry.1 = now + ttl;
        Ok(())
    }

    async fn touch_verified(&self, key: &str, ttl: Duration) -> Result<(), SharedError> {
        let mut state = self.lock()?;
        let now = Instant::now();
        if let Some(entry) = state.verified.get_mut(key)
            && entry.1 > now
        {
            entry.1 = now + ttl;
        }
        Ok(())
    }

    async fn forget_verified(&self, key: &str) -> Result<(), SharedError> {
        self.lock()?.verified.remove(key);
        Ok(())
    }
}
