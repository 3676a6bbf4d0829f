//! `last_used_at`, recorded off the hot path: an admission costs one atomic load unless the
//! token's report is due; due reports go through a bounded channel to a task that writes
//! them to the store in batches, once a second. An authenticator built outside a tokio
//! runtime starts that task with the first report made inside one, so it records all the
//! same.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::{clock::Clock, error::Chain, model::ClientId, store::TokenStore};

const BATCH: usize = 512;

pub(crate) struct UsageRecorder {
    interval_secs: u64,
    /// The authenticator's clock in whole seconds, refreshed by the flush task every second.
    now_secs: Arc<AtomicU64>,
    reports: mpsc::Sender<ClientId>,
    /// The flush task, until it is started (built outside a runtime).
    pending: std::sync::Mutex<Option<Flush>>,
}

/// What the flush task needs.
struct Flush {
    queue: mpsc::Receiver<ClientId>,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
}

fn secs(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

impl UsageRecorder {
    /// The recorder, its flush task started on the current tokio runtime, or outside of one
    /// with the first report made inside one.
    pub(crate) fn start(
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> Self {
        let (reports, queue) = mpsc::channel(4 * BATCH);
        let now_secs = Arc::new(AtomicU64::new(secs(clock.now())));
        let recorder = UsageRecorder {
            interval_secs: interval.as_secs().max(1),
            now_secs,
            reports,
            pending: std::sync::Mutex::new(Some(Flush {
                queue,
                store,
                clock,
            })),
        };
        recorder.start_flush();
        recorder
    }

    /// Spawn the flush task if it is not running yet and a runtime is at hand.
    #[cold]
    fn start_flush(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Flush {
            queue,
            store,
            clock,
        }) = pending.take()
        {
            runtime.spawn(flush(queue, store, clock, self.now_secs.clone()));
        }
    }

    /// A token was admitted; report it if its last report is older than the interval.
    pub(crate) fn used(&self, client_id: &ClientId, last_reported: &AtomicU64) {
        let now = self.now_secs.load(Relaxed);
        let last = last_reported.load(Relaxed);
        if now < last.saturating_add(self.interval_secs) {
            return;
        }
        if last_reported
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
        {
            if self.flush_pending() {
                self.start_flush();
            }
            // A full queue skips this report; the next use after the interval makes another.
            let _ = self.reports.try_send(client_id.clone());
        }
    }
}

impl UsageRecorder {
    /// Whether the flush task is not running yet: one uncontended lock, on a due report only
    /// (at most once per token per interval).
    fn flush_pending(&self) -> bool {
        self.pending
            .lock()
            .map_or(true, |pending| pending.is_some())
    }
}

async fn flush(
    mut queue: mpsc::Receiver<ClientId>,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    now_secs: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = HashMap::<ClientId, OffsetDateTime>::new();
    loop {
        tokio::select! {
            report = queue.recv() => match report {
                Some(client_id) => {
                    batch.insert(client_id, clock.now());
                    if batch.len() >= BATCH {
                        write(&*store, &mut batch).await;
                    }
                }
                None => {
                    // The authenticator is gone: write what is left and stop.
                    write(&*store, &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => {
                now_secs.store(secs(clock.now()), Relaxed);
                write(&*store, &mut batch).await;
            }
        }
    }
}

async fn write(store: &dyn TokenStore, batch: &mut HashMap<ClientId, OffsetDateTime>) {
    if batch.is_empty() {
        return;
    }
    let used: Vec<_> = batch.drain().collect();
    if let Err(e) = store.record_usage(&used).await {
        // Usage is best effort: losing a batch must never affect authentication.
        tracing::warn!(target: "finout_auth", error = %Chain(&e), tokens = used.len(), "recording last_used_at failed");
    }
}
