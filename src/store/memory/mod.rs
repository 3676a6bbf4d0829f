//! [`MemoryTokenStore`]: the store in process memory; its state and indexes are in `state`.

mod state;

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    batch::Batch,
    limits::{TokenLimits, UserLimits},
    traits::{
        PurgedTokens, ResolvedToken, RevokedToken, TokenAdminStore, TokenChange, TokenFilter,
        TokenStore, UserUpdate,
    },
};
use crate::{
    error::StoreError,
    model::{Account, AccountId, ClientId, TokenInfo, TokenKind, TokenRecord, User, UserId},
};
use state::State;

/// A store in process memory: for tests, examples and single-process services whose tokens
/// need not survive a restart.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use finout_auth::store::{MemoryTokenStore, TokenStore};
/// let store = MemoryTokenStore::new();
/// assert!(store.find_token(&"nope".into()).await.unwrap().is_none());
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    state: RwLock<State>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock cannot leave `State` half-updated (every write is a
    // single map operation or checked before it starts), so poisoning is safe to ignore.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn find_token(&self, client_id: &ClientId) -> Result<Option<ResolvedToken>, StoreError> {
        let state = self.read();
        let Some(record) = state.tokens.get(client_id) else {
            return Ok(None);
        };
        let user = match record.user_id {
            None => None,
            Some(id) => match state.user_in(record.account_id, id) {
                Some(user) => Some(user.clone()),
                None => return Ok(None),
            },
        };
        Ok(Some(ResolvedToken::new(record.clone(), user)))
    }

    async fn record_usage(&self, used: &[(ClientId, OffsetDateTime)]) -> Result<(), StoreError> {
        let mut state = self.write();
        for (client_id, at) in used {
            if let Some(token) = state.tokens.get_mut(client_id) {
                token.last_used_at = Some(token.last_used_at.map_or(*at, |t| t.max(*at)));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TokenAdminStore for MemoryTokenStore {
    async fn insert_account(&self, account: Account) -> Result<(), StoreError> {
        let mut state = self.write();
        if state.accounts.contains_key(&account.id) {
            return Err(StoreError::Conflict("account id"));
        }
        state.accounts.insert(account.id, account);
        Ok(())
    }

    async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.read().accounts.get(&id).cloned())
    }

    async fn insert_user(&self, user: User) -> Result<(), StoreError> {
        self.write().insert_user(user, None)
    }

    async fn insert_user_within(&self, user: User, limits: UserLimits) -> Result<(), StoreError> {
        self.write().insert_user(user, Some(limits))
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.read().user_in(account, id).cloned())
    }

    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.read().users.get(&id).cloned())
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>, StoreError> {
        let mut users: Vec<User> = self
            .read()
            .users
            .values()
            .filter(|u| u.account_id == account)
            .cloned()
            .collect();
        users.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(users)
    }

    async fn update_user(
        &self,
        account: AccountId,
        id: UserId,
        update: UserUpdate,
    ) -> Result<Option<Vec<ClientId>>, StoreError> {
        let mut state = self.write();
        let Some(user) = state.user_in(account, id) else {
            return Ok(None);
        };
        if !update.holds_for(user) {
            return Err(StoreError::Conflict("user changed meanwhile"));
        }
        if let Some(user) = state.users.get_mut(&id) {
            update.apply_to(user);
        }
        Ok(Some(state.personal_tokens_of(id)))
    }

    async fn remove_user(
        &self,
        account: AccountId,
        id: UserId,
    ) -> Result<Option<Vec<ClientId>>, StoreError> {
        let mut state = self.write();
        if state.user_in(account, id).is_none() {
            return Ok(None);
        }
        state.users.remove(&id);
        let mut removed = Vec::new();
        for client_id in state.personal_tokens_of(id) {
            removed.extend(
                state
                    .remove_tree(&client_id)
                    .into_iter()
                    .map(|t| t.client_id),
            );
        }
        Ok(Some(removed))
    }

    /// Purges to make room as [`insert_token_purging`](TokenAdminStore::insert_token_purging)
    /// does.
    async fn insert_token(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<(), StoreError> {
        self.write().insert_token(record, limits).map(drop)
    }

    async fn insert_token_purging(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<PurgedTokens, StoreError> {
        self.write().insert_token(record, limits)
    }

    async fn purge_expired(
        &self,
        expired_by: OffsetDateTime,
        max: u32,
    ) -> Result<PurgedTokens, StoreError> {
        Ok(self.write().purge_expired(expired_by, max))
    }

    async fn insert_batch(&self, batch: Batch) -> Result<(), StoreError> {
        // One lock: checked whole, then applied, so nobody sees a part of it.
        let mut state = self.write();
        state.check_batch(&batch)?;
        for account in batch.accounts {
            state.accounts.insert(account.id, account);
        }
        for user in batch.users {
            state.users.insert(user.id, user);
        }
        for record in batch.tokens {
            state.add_token(record);
        }
        Ok(())
    }

    async fn delete_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        let mut state = self.write();
        if state
            .tokens
            .get(client_id)
            .is_none_or(|t| t.account_id != account)
        {
            return Ok(None);
        }
        let mut removed = state.remove_tree(client_id).into_iter();
        Ok(removed.next().map(|record| RevokedToken {
            record,
            issued: removed.map(|t| t.client_id).collect(),
        }))
    }

    async fn update_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
        change: TokenChange,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut state = self.write();
        let Some(record) = state
            .tokens
            .get_mut(client_id)
            .filter(|t| t.account_id == account)
        else {
            return Ok(None);
        };
        change.apply_to(record);
        Ok(Some(record.clone()))
    }

    async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let state = self.read();
        let mut tokens: Vec<TokenInfo> = state
            .tokens
            .values()
            .filter(|t| t.account_id == account)
            .filter(|t| match filter {
                TokenFilter::All => true,
                TokenFilter::Api => t.kind == TokenKind::Api,
                TokenFilter::PersonalOf(user) => t.user_id == Some(user),
            })
            .map(TokenRecord::info)
            .collect();
        tokens.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(tokens)
    }
}
