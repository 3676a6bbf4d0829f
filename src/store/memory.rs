use std::{
    collections::HashMap,
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::traits::{ResolvedToken, TokenAdminStore, TokenFilter, TokenStore, UserUpdate};
use crate::{
    error::StoreError,
    model::{Account, AccountId, ClientId, TokenInfo, TokenKind, TokenRecord, User, UserId},
};

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

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<AccountId, Account>,
    users: HashMap<UserId, User>,
    tokens: HashMap<ClientId, TokenRecord>,
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

impl State {
    fn user_in(&self, account: AccountId, id: UserId) -> Option<&User> {
        self.users.get(&id).filter(|u| u.account_id == account)
    }

    fn personal_tokens_of(&self, user: UserId) -> Vec<ClientId> {
        self.tokens
            .values()
            .filter(|t| t.user_id == Some(user))
            .map(|t| t.client_id.clone())
            .collect()
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
        let mut state = self.write();
        if !state.accounts.contains_key(&user.account_id) {
            return Err(StoreError::NotFound("account"));
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("user id"));
        }
        if state
            .users
            .values()
            .any(|u| u.account_id == user.account_id && u.email == user.email)
        {
            return Err(StoreError::Conflict("user email"));
        }
        state.users.insert(user.id, user);
        Ok(())
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.read().user_in(account, id).cloned())
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
        if state.user_in(account, id).is_none() {
            return Ok(None);
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
        let removed = state.personal_tokens_of(id);
        for client_id in &removed {
            state.tokens.remove(client_id);
        }
        Ok(Some(removed))
    }

    async fn insert_token(&self, record: TokenRecord) -> Result<(), StoreError> {
        let mut state = self.write();
        if !state.accounts.contains_key(&record.account_id) {
            return Err(StoreError::NotFound("account"));
        }
        match (record.kind, record.user_id) {
            (TokenKind::Api, None) => {}
            (TokenKind::Personal, Some(user))
                if state.user_in(record.account_id, user).is_some() => {}
            (TokenKind::Personal, Some(_)) => return Err(StoreError::NotFound("user")),
            _ => {
                return Err(StoreError::Conflict(
                    "a personal token needs exactly its user",
                ));
            }
        }
        if state.tokens.contains_key(&record.client_id) {
            return Err(StoreError::Conflict("client id"));
        }
        state.tokens.insert(record.client_id.clone(), record);
        Ok(())
    }

    async fn delete_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut state = self.write();
        if state
            .tokens
            .get(client_id)
            .is_some_and(|t| t.account_id == account)
        {
            Ok(state.tokens.remove(client_id))
        } else {
            Ok(None)
        }
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
