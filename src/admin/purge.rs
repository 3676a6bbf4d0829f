//! Expired tokens: how long they stay listed (the retention), purging them once it has
//! passed, and a loop that does so periodically (as tower-sessions' expired-session
//! deletion task does).

use std::time::Duration;

use super::{TokenAdmin, error::AdminError};
use crate::{error::Chain, model::ClientId};

/// How many expired tokens one store call purges: a pass repeats it, so that no single
/// transaction holds an account's lock for long.
const PURGE_BATCH: u32 = 500;

/// How many batches one pass purges at most (1,000,000 tokens); the rest waits for the next.
const MAX_BATCHES_PER_PASS: usize = 2_000;

/// The shortest period [`TokenAdmin::continuously_purge_expired`] accepts.
const MIN_PURGE_PERIOD: Duration = Duration::from_millis(1);

impl TokenAdmin {
    /// How long an expired token stays listed (as expired) before a purge deletes it: 30 days.
    pub const DEFAULT_EXPIRED_RETENTION: Duration = Duration::from_secs(30 * 86_400);

    /// Keep expired tokens listed for `retention` after they expire (default
    /// [`DEFAULT_EXPIRED_RETENTION`](Self::DEFAULT_EXPIRED_RETENTION), 30 days), then let
    /// [`purge_expired`](Self::purge_expired) delete them.
    #[must_use]
    pub fn with_expired_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Delete the tokens expired for longer than the retention, the longest expired first,
    /// each with every token it issued (as a revoke deletes them); the registered caches
    /// forget them at once, and other replicas through the store's change feed. Returns how
    /// many tokens were deleted.
    ///
    /// Runs in batches of 500 tokens, at most 2,000 batches per call (the rest is left for
    /// the next call). A store that does not implement
    /// [`TokenAdminStore::purge_expired`](crate::store::TokenAdminStore::purge_expired)
    /// purges nothing.
    pub async fn purge_expired(&self) -> Result<usize, AdminError> {
        let retention = time::Duration::try_from(self.retention).unwrap_or(time::Duration::MAX);
        let Some(cutoff) = self.clock.now().checked_sub(retention) else {
            return Ok(0); // nothing can have expired that long ago
        };
        let mut deleted = 0;
        for _ in 0..MAX_BATCHES_PER_PASS {
            let purged = self.store.purge_expired(cutoff, PURGE_BATCH).await?;
            let ids: Vec<ClientId> = purged.all().cloned().collect();
            self.invalidate(&ids).await;
            deleted += ids.len();
            if purged.expired.len() < PURGE_BATCH as usize {
                break;
            }
        }
        Ok(deleted)
    }

    /// Call [`purge_expired`](Self::purge_expired) now and then every `period`, forever:
    /// spawn it as a task (`tokio::spawn(admin.clone().continuously_purge_expired(period))`)
    /// and abort the task to stop it. A failed purge is logged (WARN, target `finout_auth`)
    /// and tried again at the next period, unlike tower-sessions' task, which ends on the
    /// first error: a store briefly down must not stop purging for good.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::{sync::Arc, time::Duration};
    /// use finout_auth::{TokenAdmin, store::MemoryTokenStore};
    ///
    /// let admin = TokenAdmin::new(Arc::new(MemoryTokenStore::new()));
    /// let purging = tokio::spawn(admin.clone().continuously_purge_expired(Duration::from_secs(3600)));
    /// // ... serve ...
    /// purging.abort();
    /// # }
    /// ```
    pub async fn continuously_purge_expired(self, period: Duration) {
        let mut every = tokio::time::interval(period.max(MIN_PURGE_PERIOD));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.purge_expired().await {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(target: "finout_auth", deleted, "purged expired tokens");
                }
                Err(e) => {
                    tracing::warn!(target: "finout_auth", error = %Chain(&e), "purging expired tokens failed; retrying next period");
                }
            }
        }
    }
}
