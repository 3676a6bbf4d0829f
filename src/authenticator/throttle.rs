//! The failure throttle: at most so many failed attempts per client id in fixed windows;
//! past that, `too_many_attempts` until the window closes.
//!
//! An attempt takes its place in the window *before* argon2 runs ([`FailureThrottle::reserve`])
//! and gives it back if it did not fail, so a burst of concurrent wrong secrets for one id
//! runs at most `limit` verifications per window, not one per request.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use crate::model::ClientId;

/// Counts failed attempts per client id in fixed windows.
pub(crate) struct FailureThrottle {
    limit: u32,
    window: Duration,
    /// One window per client id with recent failures, for as long as the window lasts.
    windows: moka::sync::Cache<ClientId, Arc<FailureWindow>>,
}

struct FailureWindow {
    opened: Instant,
    failures: AtomicU32,
    /// Whether an attempt was already refused in this window (the throttle "tripped").
    tripped: AtomicBool,
}

/// A refusal: how long the window stays full, and whether it is the window's first (the
/// moment the throttle trips, worth a log line; later ones are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full {
    pub(crate) retry_after: Duration,
    pub(crate) first: bool,
}

impl FailureThrottle {
    /// `limit` failures per `window`, for at most `capacity` client ids at once.
    pub(crate) fn new(limit: u32, window: Duration, capacity: u64) -> Self {
        FailureThrottle {
            limit,
            window,
            windows: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
        }
    }

    /// `Some(retry_after)` when `client_id` has used up its failures for this window.
    #[cfg(test)]
    fn check(&self, client_id: &ClientId) -> Option<Duration> {
        let window = self.windows.get(client_id)?;
        let left = self.window.checked_sub(window.opened.elapsed())?;
        (window.failures.load(Ordering::Relaxed) >= self.limit).then_some(left)
    }

    /// Take a place for an attempt on `client_id` in this window, counted as a failure
    /// unless [`Attempt::succeeded`] gives it back; `Err(retry_after)` when the window is
    /// full.
    pub(crate) fn reserve(&self, client_id: &ClientId) -> Result<Attempt, Full> {
        let window = self.windows.get_with_by_ref(client_id, || {
            Arc::new(FailureWindow {
                opened: Instant::now(),
                failures: AtomicU32::new(0),
                tripped: AtomicBool::new(false),
            })
        });
        let taken = window
            .failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Attempt(window)),
            Err(_) => Err(Full {
                retry_after: self
                    .window
                    .checked_sub(window.opened.elapsed())
                    .unwrap_or(Duration::ZERO),
                first: !window.tripped.swap(true, Ordering::AcqRel),
            }),
        }
    }

    /// Count a failed attempt for `client_id` (a test's shortcut for a reserved attempt
    /// that failed).
    #[cfg(test)]
    fn record_failure(&self, client_id: &ClientId) {
        let _ = self.reserve(client_id);
    }
}

/// A place taken in a failure window: a failure unless given back.
pub(crate) struct Attempt(Arc<FailureWindow>);

impl Attempt {
    /// The attempt did not fail (right secret, or no verdict): give its place back.
    pub(crate) fn succeeded(self) {
        self.0.failures.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_reached_after_exactly_limit_failures() {
        let throttle = FailureThrottle::new(3, Duration::from_secs(60), 100);
        let id = ClientId::from("id");
        for _ in 0..3 {
            assert_eq!(throttle.check(&id), None);
            throttle.record_failure(&id);
        }
        let retry_after = throttle.check(&id).expect("throttled");
        assert!(retry_after <= Duration::from_secs(60) && retry_after > Duration::from_secs(50));
    }

    #[test]
    fn failures_of_one_id_never_throttle_another() {
        let throttle = FailureThrottle::new(1, Duration::from_secs(60), 100);
        throttle.record_failure(&ClientId::from("attacked"));
        assert!(throttle.check(&ClientId::from("attacked")).is_some());
        assert_eq!(throttle.check(&ClientId::from("other")), None);
    }

    #[test]
    fn a_place_given_back_is_no_failure_and_a_full_window_takes_no_more() {
        let throttle = FailureThrottle::new(2, Duration::from_secs(60), 100);
        let id = ClientId::from("id");
        for _ in 0..5 {
            throttle.reserve(&id).expect("room").succeeded();
        }
        assert_eq!(throttle.check(&id), None);
        let (a, b) = (throttle.reserve(&id), throttle.reserve(&id));
        assert!(a.is_ok() && b.is_ok());
        assert!(throttle.reserve(&id).is_err(), "two in flight fill it");
        a.ok().unwrap().succeeded();
        assert!(throttle.reserve(&id).is_ok(), "room again");
        assert!(throttle.check(&id).is_some());
    }

    #[test]
    fn a_closed_window_throttles_no_more() {
        let throttle = FailureThrottle::new(1, Duration::from_millis(30), 100);
        let id = ClientId::from("id");
        throttle.record_failure(&id);
        assert!(throttle.check(&id).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(throttle.check(&id), None);
        // The next failure opens a new window.
        throttle.record_failure(&id);
        assert!(throttle.check(&id).is_some());
    }
}
