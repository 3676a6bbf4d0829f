//! The failure throttle: at most so many failed attempts per client id in fixed windows;
//! past that, `too_many_attempts` until the window closes.
//!
//! An attempt takes its place in the window *before* argon2 runs ([`FailureThrottle::reserve`])
//! and gives it back only if its secret was right, so a burst of concurrent wrong secrets
//! for one id runs at most `limit` verifications per window, not one per request, and an
//! attempt that found no capacity (`auth_busy`) counts like a wrong secret: pumping one's own
//! ids into the verification line reaches `too_many_attempts` as guessing does.
//!
//! Windows are timed by the authenticator's [`Clock`], so tests move them without sleeping.
//! With a [`Shared`] state, the window of each client id is shared by every replica (timed
//! by the shared state's key TTLs); when it does not answer, the process's own window
//! decides.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use crate::{
    clock::Clock,
    model::ClientId,
    shared::{Shared, WindowDecision},
};

/// Counts failed attempts per client id in fixed windows.
pub(crate) struct FailureThrottle {
    limit: u32,
    window: Duration,
    clock: Arc<dyn Clock>,
    /// One window per client id with recent failures; moka forgets it once the window has
    /// passed by the system clock too (memory), the clock decides when it closed.
    windows: moka::sync::Cache<ClientId, Arc<FailureWindow>>,
    shared: Option<Shared>,
}

pub(crate) struct FailureWindow {
    /// When it opened, by the clock, in nanoseconds since the Unix epoch.
    opened: i128,
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
    /// `limit` failures per `window` by `clock`, for at most `capacity` client ids at once.
    pub(crate) fn new(limit: u32, window: Duration, capacity: u64, clock: Arc<dyn Clock>) -> Self {
        FailureThrottle {
            limit,
            window,
            clock,
            windows: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(window)
                .build(),
            shared: None,
        }
    }

    /// Share the windows with every replica through `shared`.
    pub(crate) fn shared(mut self, shared: Option<Shared>) -> Self {
        self.shared = shared;
        self
    }

    /// How much of a window opened at `opened` is left now; `None` once it closed.
    fn left(&self, opened: i128) -> Option<Duration> {
        let elapsed = u64::try_from(self.clock.now_unix_nanos().saturating_sub(opened)).ok()?;
        self.window
            .checked_sub(Duration::from_nanos(elapsed))
            .filter(|left| !left.is_zero())
    }

    /// `client_id`'s current window, a new one if the last has closed.
    fn window(&self, client_id: &ClientId) -> Arc<FailureWindow> {
        let open = || {
            Arc::new(FailureWindow {
                opened: self.clock.now_unix_nanos(),
                failures: AtomicU32::new(0),
                tripped: AtomicBool::new(false),
            })
        };
        let window = self.windows.get_with_by_ref(client_id, open);
        if self.left(window.opened).is_some() {
            return window;
        }
        let fresh = open();
        self.windows.insert(client_id.clone(), fresh.clone());
        fresh
    }

    /// `Some(retry_after)` when `client_id` has used up its failures for this window.
    #[cfg(test)]
    fn check(&self, client_id: &ClientId) -> Option<Duration> {
        let window = self.windows.get(client_id)?;
        let left = self.left(window.opened)?;
        (window.failures.load(Ordering::Relaxed) >= self.limit).then_some(left)
    }

    /// Take a place for an attempt on `client_id` in this window (the shared one, if any
    /// and it answers), counted as a failure unless [`Attempt::succeeded`] gives it back;
    /// `Err(retry_after)` when the window is full.
    pub(crate) async fn reserve(&self, client_id: &ClientId) -> Result<Attempt, Full> {
        if let Some(shared) = &self.shared {
            let key = format!("failures:{}", client_id.as_str());
            let state = shared.state();
            let decision = shared
                .call(state.reserve_failure(&key, self.limit, self.window))
                .await;
            match decision {
                Some(WindowDecision::Taken { window }) => {
                    return Ok(Attempt::Shared {
                        shared: shared.clone(),
                        key,
                        window,
                    });
                }
                Some(WindowDecision::Full { retry_after, first }) => {
                    return Err(Full { retry_after, first });
                }
                None => {}
            }
        }
        self.reserve_here(client_id)
    }

    /// [`reserve`](Self::reserve) in this process's window.
    fn reserve_here(&self, client_id: &ClientId) -> Result<Attempt, Full> {
        let window = self.window(client_id);
        let taken = window
            .failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Attempt::Here(window)),
            Err(_) => Err(Full {
                retry_after: self.left(window.opened).unwrap_or(Duration::ZERO),
                first: !window.tripped.swap(true, Ordering::AcqRel),
            }),
        }
    }

    /// Count a failed attempt for `client_id` (a test's shortcut for a reserved attempt
    /// that failed).
    #[cfg(test)]
    fn record_failure(&self, client_id: &ClientId) {
        let _ = self.reserve_here(client_id);
    }
}

/// A place taken in a failure window: a failure unless given back.
pub(crate) enum Attempt {
    /// In this process's window.
    Here(Arc<FailureWindow>),
    /// In the shared window `window` of `key`.
    Shared {
        shared: Shared,
        key: String,
        window: String,
    },
}

impl Attempt {
    /// The secret was right: give its place back (a shared one in the background).
    pub(crate) fn succeeded(self) {
        match self {
            Attempt::Here(window) => {
                window.failures.fetch_sub(1, Ordering::AcqRel);
            }
            Attempt::Shared {
                shared,
                key,
                window,
            } => shared.spawn(move |shared| async move {
                shared.state().give_back_failure(&key, &window).await
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::clock::ManualClock;

    fn throttle(limit: u32, window: Duration) -> (FailureThrottle, ManualClock) {
        let clock = ManualClock::new(datetime!(2026-01-01 0:00 UTC));
        let throttle = FailureThrottle::new(limit, window, 100, Arc::new(clock.clone()));
        (throttle, clock)
    }

    #[test]
    fn the_limit_is_reached_after_exactly_limit_failures() {
        let (throttle, clock) = throttle(3, Duration::from_secs(60));
        let id = ClientId::from("id");
        for _ in 0..3 {
            assert_eq!(throttle.check(&id), None);
            throttle.record_failure(&id);
        }
        clock.advance(time::Duration::seconds(15));
        assert_eq!(throttle.check(&id), Some(Duration::from_secs(45)));
        let refused = throttle.reserve_here(&id).err().unwrap();
        assert_eq!(
            refused,
            Full {
                retry_after: Duration::from_secs(45),
                first: true
            }
        );
        assert!(
            !throttle.reserve_here(&id).err().unwrap().first,
            "tripped once"
        );
    }

    #[test]
    fn failures_of_one_id_never_throttle_another() {
        let (throttle, _) = throttle(1, Duration::from_secs(60));
        throttle.record_failure(&ClientId::from("attacked"));
        assert!(throttle.check(&ClientId::from("attacked")).is_some());
        assert_eq!(throttle.check(&ClientId::from("other")), None);
    }

    #[test]
    fn a_place_given_back_is_no_failure_and_a_full_window_takes_no_more() {
        let (throttle, _) = throttle(2, Duration::from_secs(60));
        let id = ClientId::from("id");
        for _ in 0..5 {
            throttle.reserve_here(&id).expect("room").succeeded();
        }
        assert_eq!(throttle.check(&id), None);
        let (a, b) = (throttle.reserve_here(&id), throttle.reserve_here(&id));
        assert!(a.is_ok() && b.is_ok());
        assert!(throttle.reserve_here(&id).is_err(), "two in flight fill it");
        a.ok().unwrap().succeeded();
        assert!(throttle.reserve_here(&id).is_ok(), "room again");
        assert!(throttle.check(&id).is_some());
    }

    #[test]
    fn a_closed_window_throttles_no_more_by_the_clock() {
        let (throttle, clock) = throttle(1, Duration::from_secs(60));
        let id = ClientId::from("id");
        for _ in 0..3 {
            throttle.record_failure(&id);
            assert!(throttle.reserve_here(&id).is_err());
            clock.advance(time::Duration::seconds(59));
            assert!(
                throttle.reserve_here(&id).is_err(),
                "open for one more second"
            );
            clock.advance(time::Duration::seconds(1));
            // The next failure opens a new window.
        }
        assert_eq!(throttle.check(&id), None);
    }
}
