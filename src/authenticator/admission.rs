//! Admission to argon2: a bounded line, a permit per running verification, a bounded wait,
//! and the threads argon2 runs on.
//!
//! - **Line**: running and waiting verifications together never exceed its length; past it,
//!   `auth_busy` at once, so a flood cannot pile up waiting tasks.
//! - **Permits**: how many run at once.
//! - **Wait**: how long a verification waits for a permit before `auth_busy`.
//! - **Pool**: a small dedicated pool of threads at the lowest OS priority, so that a flood
//!   of verifications yields the CPU to everything else (cached requests first) instead of
//!   competing with the async runtime's workers.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use tokio::sync::{Semaphore, oneshot};

/// No verification capacity in time, or the verification thread died: either way, try later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// Admission to the verification threads.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Places in line (running + waiting).
    line: Semaphore,
    permits: Arc<Semaphore>,
    wait: Duration,
    pool: VerifierPool,
}

impl Admission {
    /// `concurrent` verifications at once on as many threads (lowered to the minimum OS
    /// priority when `low_priority`), `waiting` more in line, each waiting at most `wait`.
    pub(crate) fn new(
        concurrent: usize,
        waiting: usize,
        wait: Duration,
        low_priority: bool,
    ) -> Self {
        let concurrent = concurrent.max(1);
        Admission {
            line: Semaphore::new(concurrent.saturating_add(waiting)),
            permits: Arc::new(Semaphore::new(concurrent)),
            wait,
            pool: VerifierPool::new(concurrent, low_priority),
        }
    }

    /// Run `work` on a verification thread once admitted.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        // Held until the work is done: running and waiting verifications together never
        // exceed the line's length.
        let _in_line = self.line.try_acquire().map_err(|_| Busy)?;
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        self.pool
            .run(move || {
                let _permit = permit;
                work()
            })
            .await
            .ok_or(Busy)
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Verification threads; they exit when the pool is dropped.
#[derive(Debug)]
struct VerifierPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl VerifierPool {
    /// `threads` workers, each lowered to the minimum priority when `low_priority`.
    fn new(threads: usize, low_priority: bool) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("finout-auth-verify-{i}"))
                .spawn(move || {
                    if low_priority {
                        lower_priority();
                    }
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            // A panicking job loses its answer (its caller gets `Busy`) and,
                            // unwinding, drops its permit; the thread lives on.
                            Ok(job) => {
                                if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                                    tracing::error!(target: "finout_auth", "a verification panicked");
                                }
                            }
                            Err(_) => return, // the pool is gone
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(target: "finout_auth", error = %e, "cannot start a verification thread");
            }
        }
        VerifierPool {
            jobs: Mutex::new(jobs),
        }
    }

    /// Run `work` on a verification thread; `None` if it could not run (no thread) or
    /// panicked.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.send(job),
            Err(poisoned) => poisoned.into_inner().send(job),
        };
        sent.ok()?;
        rx.await.ok()
    }
}

fn lower_priority() {
    use thread_priority::{ThreadPriority, set_current_thread_priority};
    if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(target: "finout_auth", error = ?e, "cannot lower the verification thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A job that holds its verification thread until `release` is dropped or sent to.
    fn blocking() -> (mpsc::Sender<()>, impl FnOnce() + Send + 'static) {
        let (release, wait) = mpsc::channel::<()>();
        (release, move || {
            let _ = wait.recv();
        })
    }

    #[tokio::test]
    async fn work_runs_on_a_verification_thread() {
        let admission = Admission::new(1, 0, Duration::from_secs(1), false);
        let name = admission
            .run(|| std::thread::current().name().map(str::to_owned))
            .await;
        assert_eq!(name, Ok(Some("finout-auth-verify-0".to_owned())));
    }

    #[tokio::test]
    async fn a_full_line_is_busy_at_once() {
        let admission = Arc::new(Admission::new(1, 0, Duration::from_secs(60), false));
        let (release, job) = blocking();
        let running = tokio::spawn({
            let admission = admission.clone();
            async move { admission.run(job).await }
        });
        while admission.line.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        assert_eq!(admission.run(|| ()).await, Err(Busy));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not after a wait"
        );
        drop(release);
        assert_eq!(running.await.unwrap(), Ok(()));
        assert_eq!(admission.run(|| 7).await, Ok(7), "the line is free again");
    }

    #[tokio::test]
    async fn waiting_longer_than_the_wait_is_busy() {
        let admission = Arc::new(Admission::new(1, 1, Duration::from_millis(50), false));
        let (release, job) = blocking();
        let running = tokio::spawn({
            let admission = admission.clone();
            async move { admission.run(job).await }
        });
        while admission.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            admission.run(|| ()).await,
            Err(Busy),
            "no permit within 50 ms"
        );
        drop(release);
        assert_eq!(running.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn no_more_run_at_once_than_the_permits() {
        let admission = Arc::new(Admission::new(2, 8, Duration::from_secs(10), false));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (admission, running, most) = (admission.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    admission
                        .run(move || {
                            use std::sync::atomic::Ordering::SeqCst;
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
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }

    #[tokio::test]
    async fn a_panicking_job_keeps_its_thread_and_frees_its_permit() {
        let admission = Admission::new(1, 0, Duration::from_millis(200), false);
        for _ in 0..3 {
            let panicked = admission.run(|| -> u8 { panic!("argon2 blew up") }).await;
            assert_eq!(panicked, Err(Busy));
            assert_eq!(admission.permits.available_permits(), 1, "permit back");
            assert_eq!(admission.line.available_permits(), 1, "place in line back");
        }
        // The only thread still serves.
        assert_eq!(admission.run(|| 7).await, Ok(7));
    }
}
