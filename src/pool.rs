//! The threads argon2 runs on: a small dedicated pool at the lowest OS priority, so that a
//! flood of verifications yields the CPU to everything else (cached requests first) instead
//! of competing with the async runtime's workers.

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Verification threads; they exit when the pool is dropped.
#[derive(Debug)]
pub(crate) struct VerifierPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl VerifierPool {
    /// `threads` workers, each lowered to the minimum priority when `low_priority`.
    pub(crate) fn new(threads: usize, low_priority: bool) -> Self {
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
                            Ok(job) => job(),
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

    /// Run `work` on a verification thread; `None` if it could not run (no thread, or it
    /// panicked).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
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
