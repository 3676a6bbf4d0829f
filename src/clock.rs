//! Where "now" comes from: [`SystemClock`] in production, [`ManualClock`] in tests, so that
//! expiry can be tested without sleeping.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use time::{Duration, OffsetDateTime};

/// A source of the current UTC time.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> OffsetDateTime;

    /// The current time as nanoseconds since the Unix epoch: what a cached request compares
    /// with its token's expiry. The default converts [`now`](Self::now); a clock that can
    /// tell it without building a calendar date (as [`SystemClock`] does) should.
    fn now_unix_nanos(&self) -> i128 {
        self.now().unix_timestamp_nanos()
    }
}

/// A shared clock is a clock.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }

    fn now_unix_nanos(&self) -> i128 {
        (**self).now_unix_nanos()
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn now_unix_nanos(&self) -> i128 {
        // As `OffsetDateTime::now_utc` reads it, without the calendar arithmetic.
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(since) => since.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        }
    }
}

/// A clock that only moves when told to; clones share one time.
///
/// ```
/// use finout_auth::clock::{Clock, ManualClock};
/// use time::{Duration, macros::datetime};
///
/// let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
/// clock.advance(Duration::minutes(5));
/// assert_eq!(clock.now(), datetime!(2026-01-01 0:05 UTC));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock(Arc::new(Mutex::new(at)))
    }

    /// Move the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Move the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_tells_the_same_time_both_ways() {
        let before = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let fast = SystemClock.now_unix_nanos();
        let after = SystemClock.now().unix_timestamp_nanos();
        assert!(
            before <= fast && fast <= after,
            "{before} <= {fast} <= {after}"
        );
    }

    #[test]
    fn a_manual_clock_converts_its_own_time() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH + Duration::seconds(90));
        assert_eq!(clock.now_unix_nanos(), 90_000_000_000);
        clock.advance(Duration::nanoseconds(-91_000_000_000));
        assert_eq!(clock.now_unix_nanos(), -1_000_000_000);
    }
}
