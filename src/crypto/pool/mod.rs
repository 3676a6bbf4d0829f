//! The threads argon2 runs on, behind bounded, fair admission: one [`FairLine`](fair) of
//! bounded places shared out per account and per client id, a bounded wait, and a small
//! dedicated pool of threads.
//!
//! - **Fair line**: accounts take turns, and within an account its client ids do (see
//!   [`fair`]); queued and running jobs together never exceed the line's length (threads +
//!   waiting), and when it is full a job of an account holding fewer places takes the place
//!   of the newest queued job of the account holding the most. One account can use an idle
//!   pool whole, but never keeps another account's first job waiting behind more than one
//!   of its own. Issuing uses a pool of its own, so issuance and verification never starve
//!   each other.
//! - **Threads**: how many jobs run at once, optionally at the lowest OS priority (feature
//!   `thread-priority`), so that a flood of verifications yields the CPU to everything else
//!   (cached requests first) instead of competing with the async runtime's workers.
//! - **Wait**: a job not started by its deadline is skipped, and its caller gets [`Busy`].
//! - **Estimate**: [`Admission::new_account_done_within`] tells how long a job of an
//!   account with nothing queued would take to be done if it came now, from the line and the
//!   measured run time: what the authenticator answers an unknown client id by, so that an
//!   unknown id meets the same admission as a real id of an idle account.

mod fair;

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::oneshot, time::Instant};

use fair::FairLine;
pub(crate) use fair::Share;

use crate::model::AccountId;

/// No capacity in time, the job's place was taken by a fairer claim, or its thread died:
/// either way, try later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// What a job is assumed to take until one was timed (argon2 at the default parameters on
/// a current core).
const INITIAL_RUN_TIME: Duration = Duration::from_millis(15);

/// Admission to a pool of threads.
#[derive(Debug)]
pub(crate) struct Admission {
    wait: Duration,
    pool: VerifierPool,
}

impl Admission {
    /// `threads` jobs at once on as many threads named `{name}-{i}` (lowered to the minimum
    /// OS priority when `low_priority`), `waiting` more queued in the fair line, each
    /// waiting at most `wait` for a thread unless [`run_by`](Self::run_by) says otherwise.
    pub(crate) fn new(
        name: &str,
        threads: usize,
        waiting: usize,
        wait: Duration,
        low_priority: bool,
    ) -> Self {
        let threads = threads.max(1);
        Admission {
            wait,
            pool: VerifierPool::new(name, threads, threads.saturating_add(waiting), low_priority),
        }
    }

    /// Run `work` for `share` on a pool thread, once admitted, starting within the wait.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        share: Share,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        self.run_by(share, Instant::now() + self.wait, work).await
    }

    /// Run `work` for `share` on a pool thread if it can be done by `deadline`: `Busy` if
    /// the line refuses it, if its account has nothing in the line and
    /// [`new_account_done_within`](Self::new_account_done_within) says it would be done too
    /// late, if its place is taken by a fairer claim, or if it has not started by then (it
    /// is then skipped, not run).
    pub(crate) async fn run_by<T: Send + 'static>(
        &self,
        share: Share,
        deadline: Instant,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (started_tx, started) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        let job: Job = Box::new(move || {
            // Its caller stopped waiting: skip the work.
            if started_tx.send(()).is_err() {
                return None;
            }
            let answer = work();
            Some(Box::new(move || {
                let _ = done_tx.send(answer);
            }) as Deliver)
        });
        self.pool.submit(&share, job, deadline)?;
        // Dropped unrun (displaced, or the pool is gone), or not started in time.
        tokio::time::timeout_at(deadline, started)
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        done.await.map_err(|_| Busy)
    }

    /// How long a job of an account with nothing queued or running would take to be done,
    /// were it submitted now: the jobs that would start before it (see
    /// [`fair`]) and its own, at the measured run time per job and thread; `None` when the
    /// line would refuse it.
    pub(crate) fn new_account_done_within(&self) -> Option<Duration> {
        self.pool
            .shared
            .new_account_done_within(&self.pool.shared.lock())
    }

    /// How many jobs are running now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.pool.shared.lock().fair.running()
    }
}

/// A queued job: dropping it unrun refuses its caller. Answers how to deliver its answer,
/// or `None` when it skipped its work (its caller stopped waiting), so that only real runs
/// are timed and a job's place is free before its caller hears back.
type Job = Box<dyn FnOnce() -> Option<Deliver> + Send + 'static>;

/// Hands a job's answer to its caller.
type Deliver = Box<dyn FnOnce() + Send + 'static>;

struct Shared {
    line: Mutex<Line>,
    ready: Condvar,
    /// How many threads serve the line.
    threads: usize,
    /// A moving average of one job's run time, in nanoseconds.
    run_nanos: AtomicU64,
}

struct Line {
    fair: FairLine<Job>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Line> {
        // Jobs never run under the lock, so it is never poisoned by one; recover anyway.
        self.line
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next job in fair order; `None` once the pool is gone.
    fn next(&self) -> Option<(AccountId, Job)> {
        let mut line = self.lock();
        loop {
            if let Some(next) = line.fair.pop() {
                return Some(next);
            }
            if line.closed {
                return None;
            }
            line = self
                .ready
                .wait(line)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// A job of `account` is done; `took` its run time if it ran its work.
    fn finished(&self, account: &AccountId, took: Option<Duration>) {
        self.lock().fair.finished(account);
        if let Some(took) = took {
            let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            let average = self.run_nanos.load(Ordering::Relaxed);
            self.run_nanos
                .store(average - average / 8 + took / 8, Ordering::Relaxed);
        }
    }

    /// See [`Admission::new_account_done_within`]; under the line's lock.
    fn new_account_done_within(&self, line: &Line) -> Option<Duration> {
        let ahead = line.fair.ahead_of_a_new_account()?;
        let rounds = u32::try_from(ahead / self.threads + 1).unwrap_or(u32::MAX);
        let run = Duration::from_nanos(self.run_nanos.load(Ordering::Relaxed));
        Some(run.saturating_mul(rounds))
    }
}

/// Threads serving the line; they exit when the pool is dropped.
struct VerifierPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VerifierPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierPool")
            .field("threads", &self.shared.threads)
            .finish_non_exhaustive()
    }
}

impl VerifierPool {
    /// `threads` workers serving a line of `places`, each lowered to the minimum priority
    /// when `low_priority` (with the `thread-priority` feature; without it they keep the
    /// normal priority).
    fn new(name: &str, threads: usize, places: usize, low_priority: bool) -> Self {
        #[cfg(not(feature = "thread-priority"))]
        if low_priority {
            tracing::warn!(
                target: "finout_auth",
                pool = name,
                "low-priority verification needs the `thread-priority` feature: argon2 threads keep the normal priority"
            );
        }
        let shared = Arc::new(Shared {
            line: Mutex::new(Line {
                fair: FairLine::new(places),
                closed: false,
            }),
            ready: Condvar::new(),
            threads,
            run_nanos: AtomicU64::new(INITIAL_RUN_TIME.as_nanos() as u64),
        });
        for i in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    #[cfg(feature = "thread-priority")]
                    if low_priority {
                        lower_priority();
                    }
                    super::hasher::keep_scratch_on_this_thread();
                    while let Some((account, run)) = shared.next() {
                        let started = std::time::Instant::now();
                        // A panicking job loses its answer (its caller gets `Busy`); the
                        // thread lives on and its place is given back.
                        let deliver = match std::panic::catch_unwind(AssertUnwindSafe(run)) {
                            Ok(deliver) => deliver,
                            Err(_) => {
                                tracing::error!(target: "finout_auth", "an argon2 job panicked");
                                None
                            }
                        };
                        let took = deliver.as_ref().map(|_| started.elapsed());
                        shared.finished(&account, took);
                        if let Some(deliver) = deliver {
                            deliver();
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(target: "finout_auth", error = %e, "cannot start an argon2 thread");
            }
        }
        VerifierPool { shared }
    }

    /// Queue a job for `share` to be done by `deadline`; `Busy` when the line refuses it, or
    /// when its account has nothing in the line and a new account's job would be done too
    /// late (the same estimate an unknown client id is answered by). A job it displaces is
    /// dropped outside the lock (its caller is refused).
    fn submit(&self, share: &Share, job: Job, deadline: Instant) -> Result<(), Busy> {
        let mut line = self.shared.lock();
        if line.closed {
            return Err(Busy);
        }
        if !line.fair.holds_places(&share.account) {
            let within = self.shared.new_account_done_within(&line).ok_or(Busy)?;
            if Instant::now() + within > deadline {
                return Err(Busy);
            }
        }
        let displaced = line.fair.push(share, job).map_err(|_| Busy)?;
        drop(line);
        drop(displaced);
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl Drop for VerifierPool {
    fn drop(&mut self) {
        let mut line = self.shared.lock();
        line.closed = true;
        // Queued jobs are dropped: their callers get `Busy`.
        line.fair.clear();
        drop(line);
        self.shared.ready.notify_all();
    }
}

#[cfg(feature = "thread-priority")]
fn lower_priority() {
    use thread_priority::{ThreadPriority, set_current_thread_priority};
    if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(target: "finout_auth", error = ?e, "cannot lower the verification thread's priority");
    }
}

#[cfg(test)]
mod tests;
