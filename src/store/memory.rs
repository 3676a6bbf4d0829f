use std::{
    collections::{HashMap, HashSet},
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    batch::Batch,
    traits::{
        ResolvedToken, RevokedToken, TokenAdminStore, TokenFilter, TokenLimits, TokenStore,
        UserUpdate,
    },
};
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
    /// Indexes kept by `add_token` and `remove_token`: tokens per account, personal tokens
    /// per user, tokens issued per issuing token.
    per_account: HashMap<AccountId, usize>,
    per_user: HashMap<UserId, HashSet<ClientId>>,
    issued: HashMap<ClientId, HashSet<ClientId>>,
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
        self.per_user
            .get(&user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn add_token(&mut self, record: TokenRecord) {
        *self.per_account.entry(record.account_id).or_default() += 1;
        if let Some(user) = record.user_id {
            self.per_user
                .entry(user)
                .or_default()
                .insert(record.client_id.clone());
        }
        if let Some(parent) = &record.issued_by {
            self.issued
                .entry(parent.clone())
                .or_default()
                .insert(record.client_id.clone());
        }
        self.tokens.insert(record.client_id.clone(), record);
    }

    /// Whether `batch` can be stored whole: each element checked as its single insert checks
    /// it, against the store and the batch's earlier elements. Writes nothing.
    fn check_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut accounts = HashSet::new();
        for account in &batch.accounts {
            if self.accounts.contains_key(&account.id) || !accounts.insert(account.id) {
                return Err(StoreError::Conflict("account id"));
            }
        }
        let account_exists = |id| self.accounts.contains_key(&id) || accounts.contains(&id);
        let mut users: HashMap<UserId, &User> = HashMap::new();
        for user in &batch.users {
            if !account_exists(user.account_id) {
                return Err(StoreError::NotFound("account"));
            }
            if self.users.contains_key(&user.id) || users.contains_key(&user.id) {
                return Err(StoreError::Conflict("user id"));
            }
            if self
                .users
                .values()
                .chain(users.values().copied())
                .any(|u| u.account_id == user.account_id && u.email == user.email)
            {
                return Err(StoreError::Conflict("user email"));
            }
            users.insert(user.id, user);
        }
        let mut tokens: HashMap<&ClientId, AccountId> = HashMap::new();
        for record in &batch.tokens {
            if !account_exists(record.account_id) {
                return Err(StoreError::NotFound("account"));
            }
            match (record.kind, record.user_id) {
                (TokenKind::Api, None) => {}
                (TokenKind::Personal, Some(user))
                    if self.user_in(record.account_id, user).is_some()
                        || users
                            .get(&user)
                            .is_some_and(|u| u.account_id == record.account_id) => {}
                (TokenKind::Personal, Some(_)) => return Err(StoreError::NotFound("user")),
                _ => {
                    return Err(StoreError::Conflict(
                        "a personal token needs exactly its user",
                    ));
                }
            }
            if let Some(parent) = &record.issued_by {
                let issuer = self
                    .tokens
                    .get(parent)
                    .map(|p| p.account_id)
                    .or_else(|| tokens.get(parent).copied());
                if issuer != Some(record.account_id) {
                    return Err(StoreError::NotFound("issuing token"));
                }
            }
            if self.tokens.contains_key(&record.client_id)
                || tokens
                    .insert(&record.client_id, record.account_id)
                    .is_some()
            {
                return Err(StoreError::Conflict("client id"));
            }
        }
        Ok(())
    }

    /// Remove a token and every token it issued, directly or not: the removed records, the
    /// root first.
    fn remove_tree(&mut self, root: &ClientId) -> Vec<TokenRecord> {
        let mut removed = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(id) = pending.pop() {
            let Some(record) = self.tokens.remove(&id) else {
                continue;
            };
            if let Some(n) = self.per_account.get_mut(&record.account_id) {
                *n = n.saturating_sub(1);
            }
            if let Some(user) = record.user_id {
                if let Some(ids) = self.per_user.get_mut(&user) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.per_user.remove(&user);
                    }
                }
            }
            if let Some(parent) = &record.issued_by {
                if let Some(ids) = self.issued.get_mut(parent) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.issued.remove(parent);
                    }
                }
            }
            if let Some(children) = self.issued.remove(&id) {
                pending.extend(children);
            }
            removed.push(record);
        }
        removed
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

    async fn insert_token(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<(), StoreError> {
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
        if let Some(parent) = &record.issued_by {
            if state
                .tokens
                .get(parent)
                .is_none_or(|p| p.account_id != record.account_id)
            {
                return Err(StoreError::NotFound("issuing token"));
            }
        }
        if state.tokens.contains_key(&record.client_id) {
            return Err(StoreError::Conflict("client id"));
        }
        let in_account = state.per_account.get(&record.account_id).copied();
        if in_account.unwrap_or(0) >= limits.per_account as usize {
            return Err(StoreError::LimitReached("tokens per account"));
        }
        if let Some(user) = record.user_id {
            if state.per_user.get(&user).map_or(0, HashSet::len) >= limits.per_user as usize {
                return Err(StoreError::LimitReached("personal tokens per user"));
            }
        }
        state.add_token(record);
        Ok(())
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
