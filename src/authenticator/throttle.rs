//! The failure throttle: at most so many failed attempts per client id in fixed windows;
//! past that, `too_many_attempts` until the window closes.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
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
    pub(crate) fn check(&self, client_id: &ClientId) -> Option<Duration> {
        let window = self.windows.get(client_id)?;
        let left = self.window.checked_sub(window.opened.elapsed())?;
        (window.failures.load(Ordering::Relaxed) >= self.limit).then_some(left)
    }

    /// Count a failed attempt for `client_id`.
    pub(crate) fn record_failure(&self, client_id: &ClientId) {
        self.windows
            .get_with_by_ref(client_id, || {
                Arc::new(FailureWindow {
                    opened: Instant::now(),
                    failures: AtomicU32::new(0),
                })
            })
            .failures
            .fetch_add(1, Ordering::Relaxed);
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
