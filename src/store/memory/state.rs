//! The memory store's state and its indexes: what one write lock guards.

use std::collections::{BTreeSet, HashMap, HashSet};

use time::OffsetDateTime;

use crate::{
    error::StoreError,
    model::{Account, AccountId, ClientId, TokenKind, TokenRecord, User, UserId},
    store::{
        batch::Batch,
        limits::{TokenLimits, UserLimits},
        traits::PurgedTokens,
    },
};

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) accounts: HashMap<AccountId, Account>,
    pub(super) users: HashMap<UserId, User>,
    pub(super) tokens: HashMap<ClientId, TokenRecord>,
    /// Indexes kept by `add_token` and `remove_tree`: tokens per account, personal tokens
    /// per user, tokens issued per issuing token, and tokens that expire by expiry.
    per_account: HashMap<AccountId, HashSet<ClientId>>,
    per_user: HashMap<UserId, HashSet<ClientId>>,
    issued: HashMap<ClientId, HashSet<ClientId>>,
    expiring: BTreeSet<(OffsetDateTime, ClientId)>,
}

impl State {
    pub(super) fn user_in(&self, account: AccountId, id: UserId) -> Option<&User> {
        self.users.get(&id).filter(|u| u.account_id == account)
    }

    pub(super) fn personal_tokens_of(&self, user: UserId) -> Vec<ClientId> {
        self.per_user
            .get(&user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn add_token(&mut self, record: TokenRecord) {
        self.per_account
            .entry(record.account_id)
            .or_default()
            .insert(record.client_id.clone());
        if let Some(at) = record.expires_at {
            self.expiring.insert((at, record.client_id.clone()));
        }
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
    pub(super) fn check_batch(&self, batch: &Batch) -> Result<(), StoreError> {
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
    pub(super) fn remove_tree(&mut self, root: &ClientId) -> Vec<TokenRecord> {
        let mut removed = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(id) = pending.pop() {
            let Some(record) = self.tokens.remove(&id) else {
                continue;
            };
            if let Some(ids) = self.per_account.get_mut(&record.account_id) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.per_account.remove(&record.account_id);
                }
            }
            if let Some(at) = record.expires_at {
                self.expiring.remove(&(at, id.clone()));
            }
            if let Some(user) = record.user_id
                && let Some(ids) = self.per_user.get_mut(&user)
            {
                ids.remove(&id);
                if ids.is_empty() {
                    self.per_user.remove(&user);
                }
            }
            if let Some(parent) = &record.issued_by
                && let Some(ids) = self.issued.get_mut(parent)
            {
                ids.remove(&id);
                if ids.is_empty() {
                    self.issued.remove(parent);
                }
            }
            if let Some(children) = self.issued.remove(&id) {
                pending.extend(children);
            }
            removed.push(record);
        }
        removed
    }

    /// Add a user under `limits`, as the trait's `insert_user_within` describes.
    pub(super) fn insert_user(
        &mut self,
        user: User,
        limits: Option<UserLimits>,
    ) -> Result<(), StoreError> {
        if !self.accounts.contains_key(&user.account_id) {
            return Err(StoreError::NotFound("account"));
        }
        if self.users.contains_key(&user.id) {
            return Err(StoreError::Conflict("user id"));
        }
        let mut in_account = 0usize;
        for u in self
            .users
            .values()
            .filter(|u| u.account_id == user.account_id)
        {
            if u.email == user.email {
                return Err(StoreError::Conflict("user email"));
            }
            in_account += 1;
        }
        if limits.is_some_and(|l| in_account >= l.per_account as usize) {
            return Err(StoreError::LimitReached("users per account"));
        }
        self.users.insert(user.id, user);
        Ok(())
    }

    /// Insert a token under `limits`, purging the longest-expired tokens past the retention
    /// caps first, as the trait's `insert_token_purging` describes.
    pub(super) fn insert_token(
        &mut self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<PurgedTokens, StoreError> {
        if !self.accounts.contains_key(&record.account_id) {
            return Err(StoreError::NotFound("account"));
        }
        match (record.kind, record.user_id) {
            (TokenKind::Api, None) => {}
            (TokenKind::Personal, Some(user))
                if self.user_in(record.account_id, user).is_some() => {}
            (TokenKind::Personal, Some(_)) => return Err(StoreError::NotFound("user")),
            _ => {
                return Err(StoreError::Conflict(
                    "a personal token needs exactly its user",
                ));
            }
        }
        if let Some(parent) = &record.issued_by
            && self
                .tokens
                .get(parent)
                .is_none_or(|p| p.account_id != record.account_id)
        {
            return Err(StoreError::NotFound("issuing token"));
        }
        if self.tokens.contains_key(&record.client_id) {
            return Err(StoreError::Conflict("client id"));
        }
        // Each check scans an account's (or user's) tokens only when their number, expired
        // ones included, reaches the cap: below it, nothing can be over (an insert stays
        // O(1) however many tokens an account holds).
        let now = record.created_at;
        let in_account = self.per_account.get(&record.account_id);
        if self.live(in_account, now, limits.per_account) >= limits.per_account as usize {
            return Err(StoreError::LimitReached("tokens per account"));
        }
        let mine = record.user_id.and_then(|user| self.per_user.get(&user));
        if self.live(mine, now, limits.per_user) >= limits.per_user as usize {
            return Err(StoreError::LimitReached("personal tokens per user"));
        }
        let mut purged = PurgedTokens::default();
        if let Some(user) = record.user_id {
            let cap = limits.retained_user();
            if let Some(ids) = self
                .per_user
                .get(&user)
                .filter(|ids| ids.len() >= cap as usize)
            {
                let ids = ids.clone();
                self.make_room(&ids, cap, now, &mut purged);
            }
        }
        let cap = limits.retained_account();
        if let Some(ids) = self
            .per_account
            .get(&record.account_id)
            .filter(|ids| ids.len() >= cap as usize)
        {
            let ids = ids.clone();
            self.make_room(&ids, cap, now, &mut purged);
        }
        self.add_token(record);
        Ok(purged)
    }

    /// How many of `ids` are live at `now`, counted only if they could reach `cap` (else
    /// their number, which is below it).
    fn live(&self, ids: Option<&HashSet<ClientId>>, now: OffsetDateTime, cap: u32) -> usize {
        ids.map_or(0, |ids| {
            if ids.len() < cap as usize {
                return ids.len();
            }
            ids.iter()
                .filter_map(|id| self.tokens.get(id))
                .filter(|t| !t.is_expired_at(now))
                .count()
        })
    }

    /// Purge the longest-expired of `ids` (at `now`) until fewer than `cap` of them remain.
    fn make_room(
        &mut self,
        ids: &HashSet<ClientId>,
        cap: u32,
        now: OffsetDateTime,
        purged: &mut PurgedTokens,
    ) {
        let held = ids
            .iter()
            .filter(|id| self.tokens.contains_key(*id))
            .count();
        let excess = (held + 1).saturating_sub(cap as usize);
        if excess == 0 {
            return;
        }
        let mut expired: Vec<(OffsetDateTime, &ClientId)> = ids
            .iter()
            .filter_map(|id| self.tokens.get(id))
            .filter(|t| t.is_expired_at(now))
            .filter_map(|t| t.expires_at.map(|at| (at, &t.client_id)))
            .collect();
        expired.sort_unstable();
        let oldest: Vec<ClientId> = expired
            .into_iter()
            .take(excess)
            .map(|(_, id)| id.clone())
            .collect();
        for id in oldest {
            self.purge_tree(&id, purged);
        }
    }

    /// Purge up to `max` tokens expired by `expired_by`, the longest expired first.
    pub(super) fn purge_expired(&mut self, expired_by: OffsetDateTime, max: u32) -> PurgedTokens {
        let mut purged = PurgedTokens::default();
        // One at a time: a tree may take later candidates with it.
        while purged.expired.len() < max as usize {
            let Some((at, id)) = self.expiring.first().cloned() else {
                break;
            };
            if at > expired_by {
                break;
            }
            self.purge_tree(&id, &mut purged);
        }
        purged
    }

    /// Remove `root` (if still there) with what it issued, recorded in `purged`.
    fn purge_tree(&mut self, root: &ClientId, purged: &mut PurgedTokens) {
        let mut removed = self.remove_tree(root).into_iter();
        if let Some(record) = removed.next() {
            purged.expired.push(record.client_id);
            purged.issued.extend(removed.map(|t| t.client_id));
        }
    }
}
