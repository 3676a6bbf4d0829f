//! [`Quota`]: how many requests a [`RateLimitLayer`](super::RateLimitLayer) admits per period.

use std::{num::NonZeroU32, time::Duration};

/// The longest period a [`Quota`] counts over: 100 years.
pub const MAX_PERIOD: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `limit` requests per `period`: a burst of `limit` at once, then one every `period /
/// limit` (so at most `2 * limit - 1` in any one period, and `limit` per period sustained).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: NonZeroU32,
    period: Duration,
}

impl Quota {
    /// `limit` (at least 1) requests per `period` (at least a nanosecond, at most
    /// [`MAX_PERIOD`]).
    pub fn new(limit: u32, period: Duration) -> Self {
        Quota {
            limit: NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN),
            period: period.clamp(Duration::from_nanos(1), MAX_PERIOD),
        }
    }

    /// `limit` requests a second.
    pub fn per_second(limit: u32) -> Self {
        Quota::new(limit, Duration::from_secs(1))
    }

    /// `limit` requests a minute.
    pub fn per_minute(limit: u32) -> Self {
        Quota::new(limit, Duration::from_secs(60))
    }

    /// `limit` requests a day.
    pub fn per_day(limit: u32) -> Self {
        Quota::new(limit, Duration::from_secs(86_400))
    }

    /// The requests allowed per period.
    pub fn limit(&self) -> u32 {
        self.limit.get()
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The quota in "scaled" time, nanoseconds times `limit`, where everything is an exact
    /// integer: (scale = `limit`, the interval between two requests = `period`, the
    /// tolerance = `period * (limit - 1)`).
    pub(super) fn scaled(&self) -> (i128, i128, i128) {
        let (period, limit) = (self.period.as_nanos() as i128, i128::from(self.limit.get()));
        (limit, period, period * (limit - 1))
    }
}
