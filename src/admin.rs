//! Issuing, listing and revoking tokens, and managing users: the "Admin Portal" side.
//!
//! [`TokenAdmin`]'s own methods are *trusted*: they check that a request is consistent (the
//! user exists, a personal token's role is within its user's roles) but not who asks. Use
//! them for bootstrapping, seeds and CLIs. [`TokenAdmin::acting_as`] gives an [`AdminSession`]
//! that also enforces Finout's rules for an authenticated caller:
//!
//! - API tokens and users are managed only by a *user* holding `Admin` (a personal token
//!   whose role and user both cover `Admin`);
//! - personal tokens are issued to the calling user only, with a role within what the
//!   caller's token and the user's current roles allow: a token never holds more than its
//!   user.
//!
//! Every change that affects authentication invalidates the caches of the authenticators
//! registered with [`TokenAdmin::with_authenticator`] before the method returns.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use finout_auth::{NewToken, Role, TokenAdmin};
//! use finout_auth::store::MemoryTokenStore;
//!
//! let admin = TokenAdmin::new(Arc::new(MemoryTokenStore::new()));
//! let account = admin.create_account("Acme").await?;
//! let alice = admin.add_user(account.id, "alice@acme.test", vec![Role::Admin]).await?;
//! let token = admin
//!     .issue_personal_token(account.id, alice.id, NewToken::new("laptop", Role::Admin))
//!     .await?;
//! // The secret is available exactly once, here.
//! assert_eq!(token.secret_key.expose_secret().len(), 36);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use time::OffsetDateTime;

use crate::{
    authenticator::Authenticator,
    clock::{Clock, SystemClock},
    error::{AdminError, StoreError},
    principal::{Account, AccountId, DataAccess, Principal, Role, User, UserId},
    store::{TokenAdminStore, TokenFilter, UserUpdate},
    token::{
        ClientId, CredentialGenerator, IssuedToken, MAX_DESCRIPTION_LEN, NewToken, TokenInfo,
        TokenKind, TokenRecord, UuidV4Generator,
    },
    verify::SecretHasher,
};

/// Issues and revokes tokens and manages users over a [`TokenAdminStore`].
#[derive(Debug, Clone)]
pub struct TokenAdmin {
    store: Arc<dyn TokenAdminStore>,
    hasher: SecretHasher,
    generator: Arc<dyn CredentialGenerator>,
    clock: Arc<dyn Clock>,
    authenticators: Vec<Authenticator>,
}

impl TokenAdmin {
    /// Manage tokens in `store`, with UUID v4 credentials and default argon2id parameters.
    pub fn new(store: Arc<dyn TokenAdminStore>) -> Self {
        TokenAdmin {
            store,
            hasher: SecretHasher::default(),
            generator: Arc::new(UuidV4Generator),
            clock: Arc::new(SystemClock),
            authenticators: Vec::new(),
        }
    }

    /// Invalidate this authenticator's cache on every change (call once per authenticator
    /// in this process). Its clock becomes this admin's clock too.
    #[must_use]
    pub fn with_authenticator(mut self, authenticator: Authenticator) -> Self {
        self.clock = authenticator.clock().clone();
        self.authenticators.push(authenticator);
        self
    }

    /// Hash new secrets with this hasher.
    #[must_use]
    pub fn with_hasher(mut self, hasher: SecretHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Make client ids and secrets with this generator.
    #[must_use]
    pub fn with_generator(mut self, generator: impl CredentialGenerator) -> Self {
        self.generator = Arc::new(generator);
        self
    }

    /// Read "now" (for `created_at` and expiry) from this clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store behind this admin.
    pub fn store(&self) -> &Arc<dyn TokenAdminStore> {
        &self.store
    }

    /// Check the caller's rights on every operation.
    pub fn acting_as<'a>(&'a self, actor: &'a Principal) -> AdminSession<'a> {
        AdminSession { admin: self, actor }
    }

    async fn invalidate(&self, client_ids: &[ClientId]) {
        for authenticator in &self.authenticators {
            for id in client_ids {
                authenticator.invalidate(id).await;
            }
        }
    }

    /// Create an account with a new random id.
    pub async fn create_account(&self, name: impl Into<String>) -> Result<Account, AdminError> {
        let account = Account {
            id: AccountId::new_v4(),
            name: name.into(),
        };
        self.store.insert_account(account.clone()).await?;
        Ok(account)
    }

    /// Add a user with a new random id and access to all of the account's data.
    pub async fn add_user(
        &self,
        account: AccountId,
        email: impl Into<String>,
        roles: Vec<Role>,
    ) -> Result<User, AdminError> {
        self.add_user_with_access(account, email, roles, DataAccess::All)
            .await
    }

    /// Add a user with a new random id and the given data access.
    pub async fn add_user_with_access(
        &self,
        account: AccountId,
        email: impl Into<String>,
        roles: Vec<Role>,
        data_access: DataAccess,
    ) -> Result<User, AdminError> {
        let email = email.into();
        if email.trim().is_empty() || email.len() > 320 {
            return Err(AdminError::Invalid("email must be 1-320 characters".into()));
        }
        check_roles(&roles)?;
        check_data_access(&data_access)?;
        let mut user = User::new(UserId::new_v4(), account, email, roles);
        user.data_access = data_access;
        self.store
            .insert_user(user.clone())
            .await
            .map_err(not_found)?;
        Ok(user)
    }

    /// Replace a user's roles; their personal tokens follow at once.
    pub async fn set_user_roles(
        &self,
        account: AccountId,
        user: UserId,
        roles: Vec<Role>,
    ) -> Result<(), AdminError> {
        self.update_user(account, user, UserUpdate::default().roles(roles))
            .await
    }

    /// Change a user's roles and/or data access, atomically; their personal tokens follow
    /// at once.
    pub async fn update_user(
        &self,
        account: AccountId,
        user: UserId,
        update: UserUpdate,
    ) -> Result<(), AdminError> {
        if let Some(roles) = &update.roles {
            check_roles(roles)?;
        }
        if let Some(access) = &update.data_access {
            check_data_access(access)?;
        }
        let tokens = self
            .store
            .update_user(account, user, update)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        self.invalidate(&tokens).await;
        Ok(())
    }

    /// Remove a user and delete all of their personal tokens, which stop working at once.
    /// Returns the deleted tokens' ids.
    pub async fn remove_user(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Vec<ClientId>, AdminError> {
        let tokens = self
            .store
            .remove_user(account, user)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        self.invalidate(&tokens).await;
        Ok(tokens)
    }

    /// Issue an API token (no authorization check; see [`AdminSession::issue_api_token`]).
    pub async fn issue_api_token(
        &self,
        account: AccountId,
        created_by: Option<UserId>,
        new: NewToken,
    ) -> Result<IssuedToken, AdminError> {
        self.issue(account, TokenKind::Api, None, created_by, new)
            .await
    }

    /// Issue a personal token for `user`, whose current roles must cover the token's role.
    pub async fn issue_personal_token(
        &self,
        account: AccountId,
        user: UserId,
        new: NewToken,
    ) -> Result<IssuedToken, AdminError> {
        self.issue(account, TokenKind::Personal, Some(user), Some(user), new)
            .await
    }

    async fn issue(
        &self,
        account: AccountId,
        kind: TokenKind,
        user: Option<UserId>,
        created_by: Option<UserId>,
        new: NewToken,
    ) -> Result<IssuedToken, AdminError> {
        if new.description.trim().is_empty() || new.description.len() > MAX_DESCRIPTION_LEN {
            return Err(AdminError::Invalid(format!(
                "description must be 1-{MAX_DESCRIPTION_LEN} bytes"
            )));
        }
        if let Some(user) = user {
            let user = self
                .store
                .get_user(account, user)
                .await?
                .ok_or(AdminError::NotFound("user"))?;
            if !user.holds(&new.role) {
                return Err(AdminError::Forbidden(
                    "a personal token's role must be within its user's roles",
                ));
            }
        }
        let now = self.clock.now();
        let expires_at = match new.expires_in {
            None => None,
            Some(d) if d.is_positive() => Some(
                now.checked_add(d)
                    .ok_or_else(|| AdminError::Invalid("expiry is too far in the future".into()))?,
            ),
            Some(_) => return Err(AdminError::Invalid("expiry must be in the future".into())),
        };
        let secret = self.generator.secret_key();
        let hasher = self.hasher.clone();
        let hash_input = secret.clone();
        let secret_hash = tokio::task::spawn_blocking(move || hasher.hash(&hash_input))
            .await
            .map_err(|e| AdminError::Hash(e.to_string()))?
            .map_err(|e| AdminError::Hash(e.to_string()))?;
        // Ids are random; a collision is astronomically rare but must not overwrite a token.
        let mut attempts = 0;
        loop {
            let record = TokenRecord::new(
                self.generator.client_id(),
                kind,
                account,
                user,
                new.description.clone(),
                new.role.clone(),
                secret_hash.clone(),
                truncate_to_micros(now),
                expires_at.map(truncate_to_micros),
                created_by,
            );
            match self.store.insert_token(record.clone()).await {
                Ok(()) => {
                    // A lookup of this id before it existed may be cached as "unknown".
                    self.invalidate(std::slice::from_ref(&record.client_id))
                        .await;
                    return Ok(IssuedToken {
                        client_id: record.client_id.clone(),
                        secret_key: secret,
                        info: record.info(),
                    });
                }
                Err(StoreError::Conflict("client id")) if attempts < 3 => attempts += 1,
                Err(e) => return Err(not_found(e)),
            }
        }
    }

    /// List an account's tokens (never a secret or hash).
    pub async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, AdminError> {
        Ok(self.store.list_tokens(account, filter).await?)
    }

    /// Revoke (delete) a token of the account; it is rejected from the next request on.
    pub async fn revoke_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<TokenRecord, AdminError> {
        let record = self
            .store
            .delete_token(account, client_id)
            .await?
            .ok_or(AdminError::NotFound("token"))?;
        self.invalidate(std::slice::from_ref(client_id)).await;
        Ok(record)
    }
}

/// Admin operations on behalf of an authenticated caller, with Finout's rules enforced.
#[derive(Debug, Clone, Copy)]
pub struct AdminSession<'a> {
    admin: &'a TokenAdmin,
    actor: &'a Principal,
}

impl AdminSession<'_> {
    fn require_admin_user(&self) -> Result<UserId, AdminError> {
        match self.actor.user_id() {
            Some(user) if self.actor.is_admin_user() => Ok(user),
            _ => Err(AdminError::Forbidden(
                "only a user holding Admin may manage API tokens and users",
            )),
        }
    }

    fn account(&self) -> AccountId {
        self.actor.account_id()
    }

    /// Issue an API token in the caller's account. Admin users only.
    pub async fn issue_api_token(&self, new: NewToken) -> Result<IssuedToken, AdminError> {
        let by = self.require_admin_user()?;
        self.admin
            .issue_api_token(self.account(), Some(by), new)
            .await
    }

    /// The account's API tokens. Admin users only.
    pub async fn list_api_tokens(&self) -> Result<Vec<TokenInfo>, AdminError> {
        self.require_admin_user()?;
        self.admin
            .list_tokens(self.account(), TokenFilter::Api)
            .await
    }

    /// Revoke one of the account's API tokens. Admin users only; `NotFound` for anything
    /// else (another account's token, a personal token, an unknown id).
    pub async fn revoke_api_token(&self, client_id: &ClientId) -> Result<(), AdminError> {
        self.require_admin_user()?;
        self.revoke_matching(client_id, |t| t.kind == TokenKind::Api)
            .await
    }

    /// Issue a personal token for the calling user. Its role must be within both the
    /// caller's token role and the user's current roles.
    pub async fn issue_personal_token(&self, new: NewToken) -> Result<IssuedToken, AdminError> {
        let Some(user) = self.actor.user_id() else {
            return Err(AdminError::Forbidden(
                "personal tokens are issued with a personal token",
            ));
        };
        if !self.actor.has_role(&new.role) {
            return Err(AdminError::Forbidden(
                "a personal token cannot hold more than its user",
            ));
        }
        self.admin
            .issue_personal_token(self.account(), user, new)
            .await
    }

    /// The calling user's personal tokens.
    pub async fn list_personal_tokens(&self) -> Result<Vec<TokenInfo>, AdminError> {
        let user = self.own_user()?;
        self.admin
            .list_tokens(self.account(), TokenFilter::PersonalOf(user))
            .await
    }

    /// Revoke one of the calling user's own personal tokens (`NotFound` for anyone else's).
    pub async fn revoke_personal_token(&self, client_id: &ClientId) -> Result<(), AdminError> {
        let user = self.own_user()?;
        self.revoke_matching(client_id, |t| t.user_id == Some(user))
            .await
    }

    fn own_user(&self) -> Result<UserId, AdminError> {
        self.actor.user_id().ok_or(AdminError::Forbidden(
            "personal tokens belong to users; this is an API token",
        ))
    }

    async fn revoke_matching(
        &self,
        client_id: &ClientId,
        allowed: impl Fn(&TokenRecord) -> bool,
    ) -> Result<(), AdminError> {
        let found = self.admin.store.find_token(client_id).await?;
        // Another account's token, or one the caller may not touch, does not exist for them.
        if !found.is_some_and(|t| t.record.account_id == self.account() && allowed(&t.record)) {
            return Err(AdminError::NotFound("token"));
        }
        self.admin.revoke_token(self.account(), client_id).await?;
        Ok(())
    }

    /// Add a user to the caller's account. Admin users only.
    pub async fn add_user(
        &self,
        email: impl Into<String>,
        roles: Vec<Role>,
    ) -> Result<User, AdminError> {
        self.add_user_with_access(email, roles, DataAccess::All)
            .await
    }

    /// Add a user with the given data access to the caller's account. Admin users only.
    pub async fn add_user_with_access(
        &self,
        email: impl Into<String>,
        roles: Vec<Role>,
        data_access: DataAccess,
    ) -> Result<User, AdminError> {
        self.require_admin_user()?;
        self.admin
            .add_user_with_access(self.account(), email, roles, data_access)
            .await
    }

    /// Remove a user (and their personal tokens). Admin users only.
    pub async fn remove_user(&self, user: UserId) -> Result<Vec<ClientId>, AdminError> {
        self.require_admin_user()?;
        self.admin.remove_user(self.account(), user).await
    }

    /// Change a user's roles. Admin users only.
    pub async fn set_user_roles(&self, user: UserId, roles: Vec<Role>) -> Result<(), AdminError> {
        self.update_user(user, UserUpdate::default().roles(roles))
            .await
    }

    /// Change a user's roles and/or data access. Admin users only.
    pub async fn update_user(&self, user: UserId, update: UserUpdate) -> Result<(), AdminError> {
        self.require_admin_user()?;
        self.admin.update_user(self.account(), user, update).await
    }
}

fn check_roles(roles: &[Role]) -> Result<(), AdminError> {
    if roles.is_empty() {
        return Err(AdminError::Invalid("a user needs at least one role".into()));
    }
    Ok(())
}

/// The most ids a user's data access may list, and the longest id.
const MAX_DATA_ACCESS_IDS: usize = 1_000;
const MAX_DATA_ACCESS_ID_LEN: usize = 256;

fn check_data_access(access: &DataAccess) -> Result<(), AdminError> {
    let ids = access.ids().unwrap_or_default();
    if ids.len() > MAX_DATA_ACCESS_IDS {
        return Err(AdminError::Invalid(format!(
            "data access lists at most {MAX_DATA_ACCESS_IDS} ids"
        )));
    }
    if ids
        .iter()
        .any(|id| id.is_empty() || id.len() > MAX_DATA_ACCESS_ID_LEN)
    {
        return Err(AdminError::Invalid(format!(
            "data access ids must be 1-{MAX_DATA_ACCESS_ID_LEN} characters"
        )));
    }
    Ok(())
}

fn not_found(e: StoreError) -> AdminError {
    match e {
        StoreError::NotFound(what) => AdminError::NotFound(what),
        other => AdminError::Store(other),
    }
}

/// Stores keep microseconds (PostgreSQL's precision); truncate so that what an issue returns
/// equals what a later listing reads back.
fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}
