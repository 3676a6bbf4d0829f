//! The circuit breaker in front of a [`SharedState`](super::SharedState): closed, it lets
//! every call through; after `failures` failures in a row it opens for `pause`, during which
//! no call is made; then one call at a time probes the engine, and the first success closes
//! it again. Opening and closing are logged once each.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::SharedError;

/// Failures in a row after which the engine is not called for a while.
pub const DEFAULT_BREAKER_FAILURES: u32 = 3;

/// How long the engine is not called once the breaker opened.
pub const DEFAULT_BREAKER_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Breaker {
    failures: u32,
    pause: Duration,
    /// Failures in a row.
    in_a_row: AtomicU32,
    /// Until when no call is made (`None`: closed).
    open_until: Mutex<Option<Instant>>,
    /// Whether a probe is out (while open and past the pause).
    probing: AtomicBool,
    /// Whether the breaker is open (for logs and `closed`, without the lock).
    open: AtomicBool,
}

/// Whether a call that was let through is the one probe of an open breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Probe(bool);

impl Breaker {
    pub(super) fn new(failures: u32, pause: Duration) -> Self {
        Breaker {
            failures: failures.max(1),
            pause,
            in_a_row: AtomicU32::new(0),
            open_until: Mutex::new(None),
            probing: AtomicBool::new(false),
            open: AtomicBool::new(false),
        }
    }

    pub(super) fn closed(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    /// Whether a call may be made now.
    pub(super) fn admit(&self) -> Option<Probe> {
        if self.closed() {
            return Some(Probe(false));
        }
        let until = *self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        if until.is_some_and(|until| Instant::now() < until) {
            return None;
        }
        // Past the pause: one probe at a time.
        (!self.probing.swap(true, Ordering::AcqRel)).then_some(Probe(true))
    }

    pub(super) fn succeeded(&self, probe: Probe) {
        self.in_a_row.store(0, Ordering::Release);
        if probe.0 || !self.closed() {
            let mut until = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
            if until.take().is_some() {
                tracing::info!(target: "finout_auth", "shared state reachable again: limits are shared again");
            }
            self.open.store(false, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(super) fn failed(&self, probe: Probe, error: &SharedError) {
        let in_a_row = self
            .in_a_row
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if !probe.0 && in_a_row < self.failures {
            return;
        }
        let mut until = self.open_until.lock().unwrap_or_else(|e| e.into_inner());
        if until.is_none() {
            tracing::warn!(
                target: "finout_auth",
                %error,
                pause = ?self.pause,
                "shared state unavailable: rate limits, in-flight slots and failure windows hold per process, and secrets not verified here run argon2, until it answers again"
            );
        }
        let now = Instant::now();
        // A pause too long to add is as good as forever: a day, probed after it.
        *until = Some(
            now.checked_add(self.pause)
                .unwrap_or(now + Duration::from_secs(86_400)),
        );
        self.open.store(true, Ordering::Release);
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error() -> SharedError {
        SharedError("down".into())
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_failures_in_a_row_and_one_probe_closes_it() {
        let breaker = Breaker::new(3, Duration::from_secs(1));
        for _ in 0..2 {
            let probe = breaker.admit().expect("closed");
            breaker.failed(probe, &error());
        }
        // A success in between resets the count.
        breaker.succeeded(breaker.admit().unwrap());
        for _ in 0..2 {
            breaker.failed(breaker.admit().unwrap(), &error());
        }
        assert!(breaker.closed(), "two in a row: still closed");
        breaker.failed(breaker.admit().unwrap(), &error());
        assert!(!breaker.closed());
        assert_eq!(breaker.admit(), None, "open: no call");
        tokio::time::advance(Duration::from_millis(1001)).await;
        let probe = breaker.admit().expect("a probe past the pause");
        assert_eq!(probe, Probe(true));
        assert_eq!(breaker.admit(), None, "one probe at a time");
        breaker.succeeded(probe);
        assert!(breaker.closed());
        assert_eq!(breaker.admit(), Some(Probe(false)));
    }

    #[tokio::test]
    async fn a_pause_too_long_to_add_opens_it_without_a_panic() {
        let breaker = Breaker::new(1, Duration::MAX);
        breaker.failed(breaker.admit().unwrap(), &error());
        assert_eq!(breaker.admit(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_for_another_pause() {
        let breaker = Breaker::new(1, Duration::from_secs(1));
        breaker.failed(breaker.admit().unwrap(), &error());
        tokio::time::advance(Duration::from_millis(1001)).await;
        breaker.failed(breaker.admit().unwrap(), &error());
        assert_eq!(breaker.admit(), None);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(breaker.admit().is_some());
    }
}
