//! The threads argon2 runs on, behind bounded admission: two lanes with bounded lines, a
//! bounded wait, and a small dedicated pool of threads.
//!
//! - **Lanes**: threads always take the [`Lane::High`] lane's next job first, and each lane
//!   has its own line. The authenticator puts checks against a stored hash (a real token's
//!   id) in the high lane and dummy verifications for unknown ids in the low one, so a flood
//!   of invented ids never delays nor crowds out the first verification of a real token.
//!   Issuing uses a pool of its own, so issuance and verification never starve each other.
//! - **Line**: a lane's queued and running jobs together never exceed its length (threads +
//!   waiting); past it, `auth_busy` at once, so a flood cannot pile up tasks.
//! - **Threads**: how many jobs run at once, optionally at the lowest OS priority (feature
//!   `thread-priority`), so that a flood of verifications yields the CPU to everything else
//!   (cached requests first) instead of competing with the async runtime's workers.
//! - **Wait**: how long a job waits for a thread before `auth_busy`; a job whose caller
//!   stopped waiting is skipped, not run.

use std::{
    collections::VecDeque,
    panic::AssertUnwindSafe,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Semaphore, oneshot};

/// No capacity in time, or the job's thread died: either way, try later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// Which line a job waits in. Threads take the next [`Lane::High`] job before any
/// [`Lane::Low`] one, and each lane has a line of its own, so a flood in the low lane can
/// neither fill the high lane's line nor run ahead of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// First served (the authenticator: a secret checked against a token's stored hash).
    High = 0,
    /// Served when the high lane is empty (the authenticator: dummy verifications).
    Low = 1,
}

/// Admission to a pool of threads.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Places in line (queued + running), one line per lane.
    lines: [Arc<Semaphore>; 2],
    wait: Duration,
    pool: VerifierPool,
}

impl Admission {
    /// `concurrent` jobs at once on as many threads named `{name}-{i}` (lowered to the
    /// minimum OS priority when `low_priority`), `waiting` more in each lane's line, each
    /// waiting at most `wait` for a thread.
    pub(crate) fn new(
        name: &str,
        concurrent: usize,
        waiting: usize,
        wait: Duration,
        low_priority: bool,
    ) -> Self {
        let concurrent = concurrent.max(1);
        let line = || Arc::new(Semaphore::new(concurrent.saturating_add(waiting)));
        Admission {
            lines: [line(), line()],
            wait,
            pool: VerifierPool::new(name, concurrent, low_priority),
        }
    }

    /// Run `work` on a verification thread once admitted to `lane`.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        // Moved into the job and released when its work is done, before its caller gets the
        // answer (or when it is skipped or dropped): queued and running jobs of a lane
        // together never exceed its line's length.
        let in_line = self.lines[lane as usize]
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy)?;
        let (started_tx, started) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        let thread_free = self.pool.submit(
            lane,
            Job {
                run: Box::new(move || {
                    // Its caller stopped waiting: skip the work.
                    if started_tx.send(()).is_err() {
                        return;
                    }
                    let answer = work();
                    drop(in_line);
                    let _ = done_tx.send(answer);
                }),
            },
        );
        // The wait bounds waiting for capacity: a job that found a thread free starts as
        // soon as that thread wakes, however long the OS takes to schedule it.
        let started = if thread_free {
            started.await.map_err(|_| Busy)
        } else {
            // Waited too long (the job is skipped when its turn comes), or it was dropped.
            tokio::time::timeout(self.wait, started)
                .await
                .map_err(|_| Busy)
                .and_then(|r| r.map_err(|_| Busy))
        };
        started?;
        done.await.map_err(|_| Busy)
    }
}

impl Admission {
    /// How many jobs are running now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.pool.shared.running.load(Ordering::Relaxed)
    }
}

/// A queued job; its closure holds its place in line until its work is done or it is
/// dropped.
struct Job {
    run: Box<dyn FnOnce() + Send + 'static>,
}

/// Jobs waiting for a thread, by lane.
#[derive(Default)]
struct Queue {
    lanes: [VecDeque<Job>; 2],
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Jobs running now (counted when taken from the queue, under its lock).
    running: AtomicUsize,
    /// How many threads serve the queue.
    threads: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Jobs never run under the lock, so it is never poisoned by one; recover anyway.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next job, stored-hash lane first; `None` once the pool is gone.
    fn next(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            let [stored, dummy] = &mut queue.lanes;
            if let Some(job) = stored.pop_front().or_else(|| dummy.pop_front()) {
                self.running.fetch_add(1, Ordering::Relaxed);
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue = self
                .ready
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Verification threads; they exit when the pool is dropped.
struct VerifierPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VerifierPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierPool").finish_non_exhaustive()
    }
}

impl VerifierPool {
    /// `threads` workers, each lowered to the minimum priority when `low_priority` (with the
    /// `thread-priority` feature; without it they keep the normal priority).
    fn new(name: &str, threads: usize, low_priority: bool) -> Self {
        #[cfg(not(feature = "thread-priority"))]
        if low_priority {
            tracing::warn!(
                target: "finout_auth",
                pool = name,
                "low-priority verification needs the `thread-priority` feature: argon2 threads keep the normal priority"
            );
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            running: AtomicUsize::new(0),
            threads: threads.max(1),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    #[cfg(feature = "thread-priority")]
                    if low_priority {
                        lower_priority();
                    }
                    super::hasher::keep_scratch_on_this_thread();
                    while let Some(job) = shared.next() {
                        // A panicking job loses its answer (its caller gets `Busy`) and,
                        // unwinding, gives back its place in line; the thread lives on.
                        let Job { run } = job;
                        if std::panic::catch_unwind(AssertUnwindSafe(run)).is_err() {
                            tracing::error!(target: "finout_auth", "an argon2 job panicked");
                        }
                        shared.running.fetch_sub(1, Ordering::Relaxed);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(target: "finout_auth", error = %e, "cannot start an argon2 thread");
            }
        }
        VerifierPool { shared }
    }

    /// Queue a job in its lane for the next free thread; whether a thread is free for it
    /// (fewer jobs running or queued ahead of it than threads).
    fn submit(&self, lane: Lane, job: Job) -> bool {
        let mut queue = self.shared.lock();
        let [high, low] = &queue.lanes;
        let queued_ahead = match lane {
            Lane::High => high.len(),
            Lane::Low => high.len() + low.len(),
        };
        let ahead = queued_ahead + self.shared.running.load(Ordering::Relaxed);
        queue.lanes[lane as usize].push_back(job);
        drop(queue);
        self.shared.ready.notify_one();
        ahead < self.shared.threads
    }
}

impl Drop for VerifierPool {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        // Queued jobs are dropped: their callers get `Busy`.
        queue.lanes = Default::default();
        drop(queue);
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
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering::SeqCst},
        mpsc,
    };

    use super::*;

    /// A job that holds its verification thread until `release` is dropped or sent to, and
    /// says when it started.
    fn blocking() -> (
        mpsc::Sender<()>,
        mpsc::Receiver<()>,
        impl FnOnce() + Send + 'static,
    ) {
        let (release, wait) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        (release, started, move || {
            let _ = started_tx.send(());
            let _ = wait.recv();
        })
    }

    /// Wait (at most 5 s) until `line` has `n` free places: a job's place comes back just
    /// after its caller got the answer.
    async fn places_back(line: &Semaphore, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while line.available_permits() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "places never came back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Occupy the only thread of `admission` until the returned sender is dropped.
    async fn occupy(
        admission: &Arc<Admission>,
    ) -> (mpsc::Sender<()>, tokio::task::JoinHandle<Result<(), Busy>>) {
        let (release, started, job) = blocking();
        let running = tokio::spawn({
            let admission = admission.clone();
            async move { admission.run(Lane::High, job).await }
        });
        tokio::task::spawn_blocking(move || started.recv())
            .await
            .unwrap()
            .unwrap();
        (release, running)
    }

    #[tokio::test]
    async fn work_runs_on_a_verification_thread() {
        let admission = Admission::new("finout-auth-verify", 1, 0, Duration::from_secs(1), false);
        let name = admission
            .run(Lane::Low, || {
                std::thread::current().name().map(str::to_owned)
            })
            .await;
        assert_eq!(name, Ok(Some("finout-auth-verify-0".to_owned())));
    }

    #[tokio::test]
    async fn a_full_line_is_busy_at_once() {
        let admission = Arc::new(Admission::new(
            "finout-auth-verify",
            1,
            0,
            Duration::from_secs(60),
            false,
        ));
        let (release, running) = occupy(&admission).await;
        let started = std::time::Instant::now();
        assert_eq!(admission.run(Lane::High, || ()).await, Err(Busy));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not after a wait"
        );
        drop(release);
        assert_eq!(running.await.unwrap(), Ok(()));
        assert_eq!(
            admission.run(Lane::High, || 7).await,
            Ok(7),
            "the line is free again"
        );
    }

    #[tokio::test]
    async fn a_full_dummy_line_leaves_the_stored_line_free() {
        let admission = Arc::new(Admission::new(
            "finout-auth-verify",
            1,
            2,
            Duration::from_secs(60),
            false,
        ));
        let (release, running) = occupy(&admission).await;
        // Fill the dummy lane's line (1 + 2 places) behind the running job.
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let admission = admission.clone();
                tokio::spawn(async move { admission.run(Lane::Low, || "dummy").await })
            })
            .collect();
        while admission.lines[Lane::Low as usize].available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(admission.run(Lane::Low, || "dummy").await, Err(Busy));
        // A real token's verification still finds a place, and runs first.
        let order = Arc::new(Mutex::new(Vec::new()));
        let stored = tokio::spawn({
            let (admission, order) = (admission.clone(), order.clone());
            async move {
                admission
                    .run(Lane::High, move || order.lock().unwrap().push("stored"))
                    .await
            }
        });
        while admission.pool.shared.lock().lanes[Lane::High as usize].is_empty() {
            tokio::task::yield_now().await;
        }
        drop(release);
        assert_eq!(running.await.unwrap(), Ok(()));
        assert_eq!(stored.await.unwrap(), Ok(()));
        let after_stored = order.lock().unwrap().len();
        for job in queued {
            assert_eq!(job.await.unwrap(), Ok("dummy"));
        }
        assert_eq!(
            after_stored, 1,
            "the stored job ran before any queued dummy"
        );
    }

    #[tokio::test]
    async fn waiting_longer_than_the_wait_is_busy_and_the_job_is_skipped() {
        let admission = Arc::new(Admission::new(
            "finout-auth-verify",
            1,
            1,
            Duration::from_millis(50),
            false,
        ));
        let (release, running) = occupy(&admission).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        assert_eq!(
            admission
                .run(Lane::High, move || counted.fetch_add(1, SeqCst))
                .await,
            Err(Busy),
            "no thread within 50 ms"
        );
        drop(release);
        assert_eq!(running.await.unwrap(), Ok(()));
        // The thread skips the abandoned job, which gives its place in line back.
        let line = &admission.lines[Lane::High as usize];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while line.available_permits() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "its place never came back"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(admission.run(Lane::High, || ()).await, Ok(()));
        assert_eq!(ran.load(SeqCst), 0, "the abandoned job never ran");
    }

    #[tokio::test]
    async fn no_more_run_at_once_than_the_threads() {
        let admission = Arc::new(Admission::new(
            "finout-auth-verify",
            2,
            8,
            Duration::from_secs(10),
            false,
        ));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..16)
            .map(|i| {
                let (admission, running, most) = (admission.clone(), running.clone(), most.clone());
                let lane = if i % 2 == 0 { Lane::High } else { Lane::Low };
                tokio::spawn(async move {
                    admission
                        .run(lane, move || {
                            let now = running.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(now, SeqCst);
                            std::thread::sleep(Duration::from_millis(5));
                            running.fetch_sub(1, SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for job in jobs {
            assert_eq!(job.await.unwrap(), Ok(()));
        }
        assert_eq!(most.load(SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_job_keeps_its_thread_and_frees_its_place() {
        let admission = Admission::new(
            "finout-auth-verify",
            1,
            0,
            Duration::from_millis(200),
            false,
        );
        for _ in 0..3 {
            let panicked = admission
                .run(Lane::High, || -> u8 { panic!("argon2 blew up") })
                .await;
            assert_eq!(panicked, Err(Busy));
            places_back(&admission.lines[Lane::High as usize], 1).await;
        }
        // The only thread still serves.
        assert_eq!(admission.run(Lane::High, || 7).await, Ok(7));
    }
}
