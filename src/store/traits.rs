//! The store traits ([`TokenStore`], [`TokenAdminStore`], [`Invalidate`]) and the types they
//! exchange.

use std::{fmt::Debug, sync::Arc};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    batch::Batch,
    limits::{TokenLimits, UserLimits},
};
use crate::{
    clock::Clock,
    error::StoreError,
    model::{
        Account, AccountId, ClientId, DataAccess, PreviousSecret, Role, SecretHash, TokenInfo,
        TokenRecord, User, UserId,
    },
};

/// A token as found by its client id, with its owner's *current* state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedToken {
    /// The stored token.
    pub record: TokenRecord,
    /// For a personal token, its user as they are now (current roles); `None` for API
    /// tokens. A personal token whose user is gone must not be returned at all.
    pub user: Option<User>,
}

impl ResolvedToken {
    /// Pair a record with its owner.
    pub fn new(record: TokenRecord, user: Option<User>) -> Self {
        ResolvedToken { record, user }
    }
}

/// The read side: resolve a client id.
#[async_trait]
pub trait TokenStore: Debug + Send + Sync + 'static {
    /// The token with this client id, with (for a personal token) its user's current roles;
    /// `None` when there is no such token. Errors mean "could not tell", and make the
    /// authenticator fail closed with `auth_unavailable`.
    async fn find_token(&self, client_id: &ClientId) -> Result<Option<ResolvedToken>, StoreError>;

    /// Record when tokens were last used. The authenticator calls it off the hot path, in
    /// batches, at most once per token per usage interval. Unknown ids are ignored. The
    /// default does nothing (a store that does not track usage).
    async fn record_usage(&self, used: &[(ClientId, OffsetDateTime)]) -> Result<(), StoreError> {
        let _ = used;
        Ok(())
    }
}

/// A cache of what a store said about tokens, which must forget it when the store changes:
/// call [`invalidate`](Invalidate::invalidate) *after* the change is stored.
///
/// The [`Authenticator`](crate::Authenticator) implements it; [`TokenAdmin`](crate::TokenAdmin)
/// calls it on every change it makes, and the PostgreSQL change feed on every change any
/// replica makes.
#[async_trait]
pub trait Invalidate: Debug + Send + Sync + 'static {
    /// Forget everything cached about `client_id`.
    async fn invalidate(&self, client_id: &ClientId);

    /// Forget everything cached about each of `client_ids` (a token and the tokens it
    /// issued, a user's tokens). The default invalidates them one by one; a cache that can
    /// make them all stale at once first should.
    async fn invalidate_many(&self, client_ids: &[ClientId]) {
        for client_id in client_ids {
            self.invalidate(client_id).await;
        }
    }

    /// Forget everything cached about every token (e.g. after missed notifications).
    fn invalidate_all(&self);

    /// The clock this cache judges expiry by, if it has one of its own: a
    /// [`TokenAdmin`](crate::TokenAdmin) that invalidates it issues tokens by the same clock,
    /// so that "expires in 5 minutes" means the same to both.
    fn expiry_clock(&self) -> Option<Arc<dyn Clock>> {
        None
    }
}

/// What [`TokenAdminStore::update_user`] changes; fields left `None` stay as they are.
///
/// ```
/// use finout_auth::{Role, model::DataAccess, store::UserUpdate};
/// let update = UserUpdate::default()
///     .roles(vec![Role::ReadOnly])
///     .data_access(DataAccess::only(["v-eng"]));
/// assert!(update.roles.is_some() && update.data_access.is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserUpdate {
    /// New roles.
    pub roles: Option<Vec<Role>>,
    /// New data access.
    pub data_access: Option<DataAccess>,
    /// Apply only if the user's roles are still these (compare-and-set); else `Conflict`.
    pub if_roles: Option<Vec<Role>>,
    /// Apply only if the user's data access is still this; else `Conflict`.
    pub if_data_access: Option<DataAccess>,
}

impl UserUpdate {
    /// Also replace the roles.
    #[must_use]
    pub fn roles(mut self, roles: Vec<Role>) -> Self {
        self.roles = Some(roles);
        self
    }

    /// Also replace the data access.
    #[must_use]
    pub fn data_access(mut self, access: DataAccess) -> Self {
        self.data_access = Some(access);
        self
    }

    /// Apply only if the user's roles and data access are still `user`'s (compare-and-set),
    /// so that a decision made on `user` cannot land on a user changed since.
    #[must_use]
    pub fn if_unchanged_from(mut self, user: &User) -> Self {
        self.if_roles = Some(user.roles.clone());
        self.if_data_access = Some(user.data_access.clone());
        self
    }

    /// Whether the update's conditions hold for `user` as it is.
    pub fn holds_for(&self, user: &User) -> bool {
        self.if_roles.as_ref().is_none_or(|r| *r == user.roles)
            && self
                .if_data_access
                .as_ref()
                .is_none_or(|d| *d == user.data_access)
    }

    /// Apply to a user.
    pub fn apply_to(&self, user: &mut User) {
        if let Some(roles) = &self.roles {
            user.roles.clone_from(roles);
        }
        if let Some(access) = &self.data_access {
            user.data_access.clone_from(access);
        }
    }
}

/// What [`TokenAdminStore::delete_token`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokedToken {
    /// The token asked for.
    pub record: TokenRecord,
    /// The tokens it issued, directly or not, deleted with it.
    pub issued: Vec<ClientId>,
}

/// What a purge deleted ([`TokenAdminStore::purge_expired`], and
/// [`TokenAdminStore::insert_token_purging`] to make room).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgedTokens {
    /// The expired tokens purged.
    pub expired: Vec<ClientId>,
    /// The tokens they issued, directly or not, deleted with them (as a revoke deletes them).
    pub issued: Vec<ClientId>,
}

impl PurgedTokens {
    /// Every deleted token: the caches to invalidate.
    pub fn all(&self) -> impl Iterator<Item = &ClientId> {
        self.expired.iter().chain(&self.issued)
    }

    /// Whether nothing was deleted.
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.issued.is_empty()
    }
}

/// What [`TokenAdminStore::update_token`] changes in a token, keeping its client id, role,
/// expiry, lineage and listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenChange {
    /// Replace the secret's hash with `hash`. The replaced secret stays valid until
    /// `previous_valid_until` (`None`: not at all); a secret replaced before and still in its
    /// grace is no longer valid, so that at most two secrets ever are.
    Rotate {
        /// The new secret's hash.
        hash: SecretHash,
        /// When the replaced secret stops working; `None` = at once.
        previous_valid_until: Option<OffsetDateTime>,
    },
    /// Refuse the token from now on; a token already disabled keeps its first time.
    Disable {
        /// When it was disabled.
        at: OffsetDateTime,
    },
    /// Admit the token again.
    Enable,
}

impl TokenChange {
    /// Apply to a record (what every store does, atomically, under its own lock).
    pub fn apply_to(&self, record: &mut TokenRecord) {
        match self {
            TokenChange::Rotate {
                hash,
                previous_valid_until,
            } => {
                let replaced = std::mem::replace(&mut record.secret_hash, hash.clone());
                record.previous_secret = previous_valid_until.map(|valid_until| PreviousSecret {
                    hash: replaced,
                    valid_until,
                });
            }
            TokenChange::Disable { at } => {
                record.disabled_at.get_or_insert(*at);
            }
            TokenChange::Enable => record.disabled_at = None,
        }
    }
}

/// Which tokens a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFilter {
    /// Every token of the account.
    All,
    /// The account's API tokens.
    Api,
    /// One user's personal tokens.
    PersonalOf(UserId),
}

/// The write side: accounts, users and tokens.
///
/// Methods that change who may authenticate return the client ids they affected, so the
/// caller can invalidate caches.
#[async_trait]
pub trait TokenAdminStore: TokenStore {
    /// Add an account. `Conflict` if the id exists.
    async fn insert_account(&self, account: Account) -> Result<(), StoreError>;

    /// An account by id.
    async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// Add a user. `NotFound` without the account; `Conflict` if the id or the email (within
    /// the account) is taken.
    async fn insert_user(&self, user: User) -> Result<(), StoreError>;

    /// Add a user unless the account already has `limits.per_account` users
    /// (`LimitReached("users per account")`); otherwise as [`insert_user`](Self::insert_user).
    ///
    /// A store should count and insert in one transaction (the memory, SQLite and PostgreSQL
    /// stores do). The default counts with [`list_users`](Self::list_users) and then inserts:
    /// not atomic, so concurrent adds can pass the cap by as many as run at once.
    async fn insert_user_within(&self, user: User, limits: UserLimits) -> Result<(), StoreError> {
        let users = self.list_users(user.account_id).await?.len();
        if users >= limits.per_account as usize {
            return Err(StoreError::LimitReached("users per account"));
        }
        self.insert_user(user).await
    }

    /// A user of an account.
    async fn get_user(&self, account: AccountId, id: UserId) -> Result<Option<User>, StoreError>;

    /// A user by id, whatever their account (user ids are unique across accounts): for
    /// operators checking a set-up against the store, never for answering a request.
    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// All users of an account.
    async fn list_users(&self, account: AccountId) -> Result<Vec<User>, StoreError>;

    /// Change a user's roles and/or data access, atomically, if its conditions
    /// ([`UserUpdate::holds_for`]) hold, else `Conflict`. Returns the user's personal tokens
    /// (whose effective access changed), or `None` if there is no such user in the account.
    async fn update_user(
        &self,
        account: AccountId,
        id: UserId,
        update: UserUpdate,
    ) -> Result<Option<Vec<ClientId>>, StoreError>;

    /// Remove a user and, atomically, delete all of their personal tokens and every token
    /// those issued (directly or not). Returns the deleted tokens' ids, or `None` if there is
    /// no such user in the account.
    async fn remove_user(
        &self,
        account: AccountId,
        id: UserId,
    ) -> Result<Option<Vec<ClientId>>, StoreError>;

    /// Store a new token. `Conflict` if the client id exists; `NotFound` if the account, (for
    /// a personal token) the user, or the issuing token (`issued_by`, in the same account)
    /// does not; `LimitReached` if the account already holds `limits.per_account` live tokens
    /// or the user `limits.per_user` live personal tokens. Live means not expired at the new
    /// token's `created_at` (its issue time): expired tokens are kept for a while, listed as
    /// expired, but never count toward these caps.
    ///
    /// Atomic with respect to [`delete_token`](Self::delete_token) and
    /// [`remove_user`](Self::remove_user): a token whose issuer or user is deleted
    /// concurrently is either deleted with it (and reported) or refused.
    async fn insert_token(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<(), StoreError>;

    /// Store a new token as [`insert_token`](Self::insert_token) does and, in the same
    /// transaction, keep the expired tokens retained for listing bounded: if the user's
    /// personal tokens (for a personal token) or the account's tokens, live and expired,
    /// already number [`TokenLimits::retained_user`] / [`TokenLimits::retained_account`],
    /// their longest-expired tokens are purged first (each with what it issued, as
    /// [`delete_token`](Self::delete_token) deletes them, and announced like a revoke) until
    /// the new one fits. Returns what was purged. Nothing is purged if the insert is refused.
    ///
    /// The default inserts with [`insert_token`](Self::insert_token) and purges nothing: a
    /// store without it keeps expired tokens until [`purge_expired`](Self::purge_expired).
    async fn insert_token_purging(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<PurgedTokens, StoreError> {
        self.insert_token(record, limits).await?;
        Ok(PurgedTokens::default())
    }

    /// Delete up to `max` tokens that expired at or before `expired_by`, the longest expired
    /// first, each with every token it issued (as [`delete_token`](Self::delete_token)
    /// deletes them, and announced to other replicas as a revoke is). Returns what was
    /// deleted; fewer than `max` in [`PurgedTokens::expired`] means none is left. Each
    /// account's share is deleted atomically.
    ///
    /// The default purges nothing (a store that keeps expired tokens until they are revoked).
    async fn purge_expired(
        &self,
        expired_by: OffsetDateTime,
        max: u32,
    ) -> Result<PurgedTokens, StoreError> {
        let _ = (expired_by, max);
        Ok(PurgedTokens::default())
    }

    /// Store a whole [`Batch`] atomically: every account, user and token in it, or, on any
    /// error, nothing. Each element is checked as [`insert_account`](Self::insert_account),
    /// [`insert_user`](Self::insert_user) and [`insert_token`](Self::insert_token) check it
    /// (`Conflict` for an id or email taken, in the store or earlier in the batch; `NotFound`
    /// for an account, user or issuing token in neither), except the token caps: a batch is a
    /// set-up, not issuing. Nothing is skipped: an element that exists already is a
    /// `Conflict`, however identical.
    async fn insert_batch(&self, batch: Batch) -> Result<(), StoreError>;

    /// Delete a token of an account and every token it issued (directly or not), returning
    /// them; `None` if it was not there (idempotent).
    async fn delete_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<Option<RevokedToken>, StoreError>;

    /// Change a token of the account ([`TokenChange`]: rotate its secret, disable or enable
    /// it), atomically, and announce the change to other replicas as a revoke is. Returns
    /// the token as changed, or `None` if the account has no such token.
    async fn update_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
        change: TokenChange,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// List an account's tokens (never a hash), oldest first. Expired tokens not yet purged
    /// are listed too (their `expires_at` tells).
    async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, StoreError>;
}
