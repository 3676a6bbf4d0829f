//! What clients write — virtual tags (with their versions and metadata) and endpoints —
//! per account. Held in memory for reads; on SQLite or PostgreSQL every write goes to the
//! mock's own table first ([`MockDatabase`]), so it survives a restart.
//!
//! Writes are serialized per account ([`locks`]): a writer takes its account's lock, plans
//! its change against the account's tags (checking the caps, and serializing the tag) while
//! readers and other accounts' writers go on, then saves it to the database and applies it
//! in memory in a task of its own, so a caller that goes away (a client disconnecting)
//! cannot leave the database and memory apart; a failed save answers 503 and changes
//! nothing. The in-memory lock is held only to take a snapshot (pointers to the account's
//! tags) or to apply a change, never across an await or a serialization.
//!
//! One mock per database: a mock reads the table once, when it starts. Several mocks on one
//! PostgreSQL database share tokens (the change feed) but not what clients write.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod db;
mod locks;
pub(crate) mod tags;
#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use finout_auth::{AccountId, ErrorCode};
use serde_json::Value;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use db::MockDatabase;
/// Why a save failed.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
type SaveError = sqlx::Error;
#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
use no_db::{MockDatabase, SaveError};

/// Without the `sqlite` and `postgres` features: memory only, no database to save to.
#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
mod no_db {
    use finout_auth::AccountId;

    use super::Change;

    /// No database: uninhabited.
    #[derive(Debug)]
    pub(crate) enum MockDatabase {}

    pub(crate) type SaveError = std::convert::Infallible;

    impl MockDatabase {
        pub(crate) async fn save(
            &self,
            _account: AccountId,
            _change: &Change,
        ) -> Result<(), SaveError> {
            match *self {}
        }
    }
}
use tags::{AccountTags, StoredTag};

use crate::error::{Answer, MockError};

/// The most endpoints one account keeps.
pub(crate) const MAX_ENDPOINTS_PER_ACCOUNT: usize = 100;

/// One write.
#[derive(Debug)]
pub(crate) enum Change {
    /// Keep this tag (new, or replacing the tag of its id), whose JSON is this.
    PutTag(Arc<StoredTag>, String),
    /// Delete the tag of this id.
    DeleteTag(String),
    /// Add this endpoint (an object with an `id`).
    AddEndpoint(Value),
}

/// Every account's tags and endpoints, each behind a pointer: a reader or a planning
/// writer copies the pointer under the lock and reads outside it.
#[derive(Debug, Default)]
struct Memory {
    tags: HashMap<AccountId, Arc<AccountTags>>,
    endpoints: HashMap<AccountId, Arc<Vec<Value>>>,
}

impl Memory {
    /// Apply `change`; answer the tag it replaced or removed, to be dropped once the lock is
    /// released (freeing a large tag takes a while).
    fn apply(&mut self, account: AccountId, change: Change) -> Option<Arc<StoredTag>> {
        match change {
            Change::PutTag(tag, json) => {
                Arc::make_mut(self.tags.entry(account).or_default()).put(tag, json.len())
            }
            Change::DeleteTag(id) => self
                .tags
                .get_mut(&account)
                .and_then(|tags| Arc::make_mut(tags).remove(&id)),
            Change::AddEndpoint(endpoint) => {
                Arc::make_mut(self.endpoints.entry(account).or_default()).push(endpoint);
                None
            }
        }
    }
}

/// The client-written state of every account.
#[derive(Debug, Default)]
pub(crate) struct State {
    memory: RwLock<Memory>,
    db: Option<MockDatabase>,
    locks: Arc<locks::AccountLocks>,
    /// Rows of the database that could not be read at start.
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    set_aside: u64,
}

static NO_TAGS: std::sync::LazyLock<AccountTags> = std::sync::LazyLock::new(AccountTags::default);

impl State {
    /// The state kept in `db`, loaded (rows that cannot be read set aside).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) async fn load(db: MockDatabase) -> Result<Self, sqlx::Error> {
        let loaded = db.load().await?;
        let mut memory = Memory::default();
        for (account, change) in loaded.changes {
            memory.apply(account, change);
        }
        Ok(State {
            memory: RwLock::new(memory),
            db: Some(db),
            locks: Arc::default(),
            set_aside: loaded.set_aside,
        })
    }

    /// How many rows of the database could not be read at start (and were skipped).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    pub(crate) fn rows_set_aside(&self) -> u64 {
        self.set_aside
    }

    fn memory(&self) -> RwLockReadGuard<'_, Memory> {
        self.memory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn memory_mut(&self) -> RwLockWriteGuard<'_, Memory> {
        self.memory.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `account`'s tags and endpoints as they are now: two pointers copied under the lock.
    fn snapshot(&self, account: AccountId) -> (Option<Arc<AccountTags>>, Option<Arc<Vec<Value>>>) {
        let memory = self.memory();
        (
            memory.tags.get(&account).cloned(),
            memory.endpoints.get(&account).cloned(),
        )
    }

    /// `account`'s tags as they are now, shared (none: an empty set).
    pub(crate) fn tags_now(&self, account: AccountId) -> Arc<AccountTags> {
        self.snapshot(account).0.unwrap_or_default()
    }

    /// Read `account`'s tags (outside the lock).
    pub(crate) fn tags<T>(&self, account: AccountId, f: impl FnOnce(&AccountTags) -> T) -> T {
        let (tags, _) = self.snapshot(account);
        f(tags.as_deref().unwrap_or(&NO_TAGS))
    }

    /// `account`'s tag `id`, seen through `f`; 404 `not_found` if it has none of that id.
    pub(crate) fn tag<T>(
        &self,
        account: AccountId,
        id: &str,
        f: impl FnOnce(&StoredTag) -> T,
    ) -> Answer<T> {
        self.tags(account, |tags| tags.get(id).map(f))
            .ok_or_else(|| MockError::not_found("virtual tag"))
    }

    /// `account`'s endpoints.
    pub(crate) fn endpoints(&self, account: AccountId) -> Vec<Value> {
        let (_, endpoints) = self.snapshot(account);
        endpoints.map(|e| e.to_vec()).unwrap_or_default()
    }

    /// Plan a change against `account`'s tags and endpoints (`plan` checks the caps and
    /// serializes), save it, apply it; answer what `plan` returned. Only writers of the
    /// same account wait for each other.
    pub(crate) async fn write<T>(
        self: &Arc<Self>,
        account: AccountId,
        plan: impl FnOnce(&AccountTags, &[Value]) -> Answer<(Change, T)>,
    ) -> Answer<T> {
        let writing = self.locks.lock(account).await;
        // Under the account's lock no other writer changes what the snapshot points to.
        let (change, answer) = {
            let (tags, endpoints) = self.snapshot(account);
            let endpoints = endpoints.as_deref().map_or(&[][..], Vec::as_slice);
            plan(tags.as_deref().unwrap_or(&NO_TAGS), endpoints)?
            // The snapshot is dropped here, before the change is applied: applying it then
            // copies nothing (unless a reader holds one).
        };
        let state = Arc::clone(self);
        let saved = tokio::spawn(async move {
            let _writing = writing;
            if let Some(db) = &state.db {
                db.save(account, &change).await?;
            }
            let replaced = state.memory_mut().apply(account, change);
            drop(replaced);
            Ok::<_, SaveError>(())
        })
        .await;
        match saved {
            Ok(Ok(())) => Ok(answer),
            Ok(Err(e)) => {
                tracing::warn!(target: "finout_mock", error = %e, "saving client state failed");
                Err(MockError::auth(ErrorCode::AuthUnavailable))
            }
            Err(e) => {
                tracing::error!(target: "finout_mock", error = %e, "saving client state panicked");
                Err(MockError::auth(ErrorCode::AuthUnavailable))
            }
        }
    }

    /// Keep a new tag (made to fit the caps); answer it as kept.
    pub(crate) async fn add_tag(
        self: &Arc<Self>,
        account: AccountId,
        mut tag: StoredTag,
    ) -> Answer<Arc<StoredTag>> {
        self.write(account, |tags, _| {
            let json = tags.fit(&mut tag)?;
            let tag = Arc::new(tag);
            Ok((Change::PutTag(Arc::clone(&tag), json), tag))
        })
        .await
    }

    /// Change the tag `id` with `change` (404 if there is none), make it fit the caps and
    /// keep it; answer it as kept.
    pub(crate) async fn update_tag(
        self: &Arc<Self>,
        account: AccountId,
        id: &str,
        change: impl FnOnce(&mut StoredTag) -> Answer<()>,
    ) -> Answer<Arc<StoredTag>> {
        self.write(account, |tags, _| {
            let mut tag = tags
                .get(id)
                .cloned()
                .ok_or_else(|| MockError::not_found("virtual tag"))?;
            change(&mut tag)?;
            let json = tags.fit(&mut tag)?;
            let tag = Arc::new(tag);
            Ok((Change::PutTag(Arc::clone(&tag), json), tag))
        })
        .await
    }
}

/// Refuse one more endpoint past the cap.
pub(crate) fn check_endpoints(endpoints: &[Value]) -> Answer<()> {
    if endpoints.len() >= MAX_ENDPOINTS_PER_ACCOUNT {
        return Err(MockError::limit(format!(
            "an account keeps at most {MAX_ENDPOINTS_PER_ACCOUNT} endpoints"
        )));
    }
    Ok(())
}
