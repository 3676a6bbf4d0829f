//! What clients write — virtual tags (with their versions and metadata) and endpoints —
//! per account. Held in memory for reads; on SQLite or PostgreSQL every write goes to the
//! mock's own table first ([`MockDatabase`]), so it survives a restart.
//!
//! Writes are serialized: a writer plans its change against the current state (checking
//! the caps), saves it to the database, and only then applies it in memory; a failed save
//! answers 503 and changes nothing.

mod db;
pub(crate) mod tags;

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
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
    /// Keep this tag (new, or replacing the tag of its id).
    PutTag(StoredTag),
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
            Change::PutTag(tag) => self.tags.entry(account).or_default().put(tag),
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
    memory: Mutex<Memory>,
    db: Option<MockDatabase>,
    writing: tokio::sync::Mutex<()>,
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
            memory: Mutex::new(memory),
            db: Some(db),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read `account`'s tags.
    pub(crate) fn tags<T>(&self, account: AccountId, f: impl FnOnce(&AccountTags) -> T) -> T {
        let memory = self.memory();
        f(memory.tags.get(&account).unwrap_or(&NO_TAGS))
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
        &self,
        account: AccountId,
        plan: impl FnOnce(&AccountTags, &[Value]) -> Answer<(Change, T)>,
    ) -> Answer<T> {
        let _writing = self.writing.lock().await;
        let (change, answer) = {
            let memory = self.memory();
            let endpoints = memory
                .endpoints
                .get(&account)
                .map_or(&[][..], Vec::as_slice);
            plan(memory.tags.get(&account).unwrap_or(&NO_TAGS), endpoints)?
        };
        if let Some(db) = &self.db {
            db.save(account, &change).await.map_err(|e| {
                tracing::warn!(target: "finout_mock", error = %e, "saving client state failed");
                MockError::auth(ErrorCode::AuthUnavailable)
            })?;
        }
        self.memory().apply(account, change);
        Ok(answer)
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
