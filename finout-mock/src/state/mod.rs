//! What clients write — virtual tags (with their versions and metadata) and endpoints —
//! per account. Held in memory for reads; on SQLite or PostgreSQL every write goes to the
//! mock's own table first ([`MockDatabase`]), so it survives a restart.
//!
//! Writes are serialized: a writer plans its change against the current state (checking
//! the caps) while readers go on, then saves it to the database and applies it in memory
//! in a task of its own, so a caller that goes away (a client disconnecting) cannot leave
//! the database and memory apart; a failed save answers 503 and changes nothing.
//!
//! One mock per database: a mock reads the table once, when it starts. Several mocks on one
//! PostgreSQL database share tokens (the change feed) but not what clients write.

mod db;
pub(crate) mod tags;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use finout_auth::{AccountId, ErrorCode};
use serde_json::Value;

pub use db::MockDatabase;
use tags::{AccountTags, StoredTag};

use crate::error::{Answer, MockError};

/// The most endpoints one account keeps.
pub(crate) const MAX_ENDPOINTS_PER_ACCOUNT: usize = 100;

/// One write.
#[derive(Debug)]
pub(crate) enum Change {
    /// Keep this tag (new, or replacing the tag of its id), whose JSON is this.
    PutTag(StoredTag, String),
    /// Delete the tag of this id.
    DeleteTag(String),
    /// Add this endpoint (an object with an `id`).
    AddEndpoint(Value),
}

#[derive(Debug, Default)]
struct Memory {
    tags: HashMap<AccountId, AccountTags>,
    endpoints: HashMap<AccountId, Vec<Value>>,
}

impl Memory {
    fn apply(&mut self, account: AccountId, change: Change) {
        match change {
            Change::PutTag(tag, json) => self.tags.entry(account).or_default().put(tag, json.len()),
            Change::DeleteTag(id) => {
                if let Some(tags) = self.tags.get_mut(&account) {
                    tags.remove(&id);
                }
            }
            Change::AddEndpoint(endpoint) => {
                self.endpoints.entry(account).or_default().push(endpoint);
            }
        }
    }
}

/// The client-written state of every account.
#[derive(Debug, Default)]
pub(crate) struct State {
    memory: RwLock<Memory>,
    db: Option<MockDatabase>,
    writing: Arc<tokio::sync::Mutex<()>>,
}

static NO_TAGS: std::sync::LazyLock<AccountTags> = std::sync::LazyLock::new(AccountTags::default);

impl State {
    /// The state kept in `db`, loaded.
    pub(crate) async fn load(db: MockDatabase) -> Result<Self, sqlx::Error> {
        let mut memory = Memory::default();
        for (account, change) in db.load().await? {
            memory.apply(account, change);
        }
        Ok(State {
            memory: RwLock::new(memory),
            db: Some(db),
            writing: Arc::default(),
        })
    }

    fn memory(&self) -> RwLockReadGuard<'_, Memory> {
        self.memory.read().unwrap_or_else(|e| e.into_inner())
    }

    fn memory_mut(&self) -> RwLockWriteGuard<'_, Memory> {
        self.memory.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Read `account`'s tags.
    pub(crate) fn tags<T>(&self, account: AccountId, f: impl FnOnce(&AccountTags) -> T) -> T {
        let memory = self.memory();
        f(memory.tags.get(&account).unwrap_or(&NO_TAGS))
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
        self.memory()
            .endpoints
            .get(&account)
            .cloned()
            .unwrap_or_default()
    }

    /// Plan a change against `account`'s tags and endpoints (`plan` checks the caps), save
    /// it, apply it; answer what `plan` returned.
    pub(crate) async fn write<T>(
        self: &Arc<Self>,
        account: AccountId,
        plan: impl FnOnce(&AccountTags, &[Value]) -> Answer<(Change, T)>,
    ) -> Answer<T> {
        let writing = self.writing.clone().lock_owned().await;
        let (change, answer) = {
            let memory = self.memory();
            let endpoints = memory
                .endpoints
                .get(&account)
                .map_or(&[][..], Vec::as_slice);
            plan(memory.tags.get(&account).unwrap_or(&NO_TAGS), endpoints)?
        };
        let state = Arc::clone(self);
        let saved = tokio::spawn(async move {
            let _writing = writing;
            if let Some(db) = &state.db {
                db.save(account, &change).await?;
            }
            state.memory_mut().apply(account, change);
            Ok::<_, sqlx::Error>(())
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
    ) -> Answer<StoredTag> {
        self.write(account, |tags, _| {
            let json = tags.fit(&mut tag)?;
            Ok((Change::PutTag(tag.clone(), json), tag))
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
    ) -> Answer<StoredTag> {
        self.write(account, |tags, _| {
            let mut tag = tags
                .get(id)
                .cloned()
                .ok_or_else(|| MockError::not_found("virtual tag"))?;
            change(&mut tag)?;
            let json = tags.fit(&mut tag)?;
            Ok((Change::PutTag(tag.clone(), json), tag))
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
