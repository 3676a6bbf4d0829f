//! One write lock per account, so that an account's writes (a whole tag, up to 16 MiB with
//! its versions, serialized and saved) never queue another account's.
//!
//! A map of account → lock that holds only the accounts with a writer holding or awaiting
//! their lock: an entry counts its users and the last one removes it, so the map is bounded
//! by the writes in flight (each a request the server is answering), not by the accounts
//! ever seen. Chosen over a fixed set of striped locks, under which two accounts hashed to
//! one stripe would again wait on each other's writes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use finout_auth::AccountId;
use tokio::sync::OwnedMutexGuard;

/// An account's lock and how many writers hold or await it.
type Entry = (Arc<tokio::sync::Mutex<()>>, usize);

#[derive(Debug, Default)]
pub(super) struct AccountLocks {
    entries: Mutex<HashMap<AccountId, Entry>>,
}

/// An account's write lock, held until dropped.
#[derive(Debug)]
pub(super) struct AccountGuard {
    // Fields drop in order: the lock is released before the entry may be removed, so a
    // writer arriving after the removal (on a new entry) never overlaps this one.
    _guard: OwnedMutexGuard<()>,
    _user: User,
}

/// A writer holding or awaiting an account's lock, counted in its entry while it lives
/// (also when it is dropped while waiting: a cancelled request).
#[derive(Debug)]
struct User {
    locks: Arc<AccountLocks>,
    account: AccountId,
}

impl Drop for User {
    fn drop(&mut self) {
        let mut entries = self.locks.entries();
        if let Some((_, users)) = entries.get_mut(&self.account) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                entries.remove(&self.account);
            }
        }
    }
}

impl AccountLocks {
    fn entries(&self) -> MutexGuard<'_, HashMap<AccountId, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait for `account`'s write lock (first come, first served).
    pub(super) async fn lock(self: &Arc<Self>, account: AccountId) -> AccountGuard {
        let lock = {
            let mut entries = self.entries();
            let (lock, users) = entries.entry(account).or_default();
            *users += 1;
            Arc::clone(lock)
        };
        let user = User {
            locks: Arc::clone(self),
            account,
        };
        AccountGuard {
            _guard: lock.lock_owned().await,
            _user: user,
        }
    }

    /// How many accounts have an entry.
    #[cfg(all(test, feature = "sqlite", feature = "postgres"))]
    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }

    /// How many writers hold or await `account`'s lock.
    #[cfg(all(test, feature = "sqlite", feature = "postgres"))]
    pub(super) fn users(&self, account: AccountId) -> usize {
        self.entries().get(&account).map_or(0, |(_, users)| *users)
    }

    /// Whether a writer holds `account`'s lock.
    #[cfg(all(test, feature = "sqlite", feature = "postgres"))]
    pub(super) fn is_held(&self, account: AccountId) -> bool {
        self.entries()
            .get(&account)
            .is_some_and(|(lock, _)| lock.try_lock().is_err())
    }
}
