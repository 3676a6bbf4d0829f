//! Issuing, listing and revoking tokens, and managing users: the "Admin Portal" side.
//!
//! [`TokenAdmin`]'s own methods are *trusted*: they check that a request is consistent (the
//! user exists, a personal token's role is within its user's roles) but not who asks. Use
//! them for bootstrapping, seeds and CLIs. [`TokenAdmin::acting_as`] gives an
//! [`AdminSession`](crate::AdminSession) that also enforces Finout's rules for an
//! authenticated caller:
//!
//! - API tokens and users are managed only by a *user* holding `Admin` (a personal token
//!   whose role and user both cover `Admin`);
//! - personal tokens are issued to the calling user only, with a role within what the
//!   caller's token and the user's current roles allow: a token never holds more than its
//!   user;
//! - a token issued by a token-authenticated request records its issuer (`issued_by`),
//!   never outlives it (its expiry is capped at the issuer's), and is deleted with it:
//!   revoking a token, or removing its user, deletes every token it issued, directly or not;
//! - a user holding `Admin` sees all data (a restriction on one is refused), and nobody
//!   widens their own roles or data access.
//!
//! Issuing is bounded: new secrets are hashed on a small pool of its own (default one thread,
//! 16 waiting, 2 s wait: past it `auth_busy`), so a burst of issues neither starves
//! verification nor grows memory (argon2 takes ~19 MiB per running hash), and
//! [`TokenLimits`] caps the tokens per user and per account.
//!
//! Every change that affects authentication invalidates the caches registered with
//! [`TokenAdmin::with_authenticator`] (any [`Invalidate`]) before the method returns.
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

pub(crate) mod error;
mod issue;
pub(crate) mod session;
pub(crate) mod validate;

use std::{sync::Arc, time::Duration};

use error::AdminError;

use crate::{
    clock::{Clock, SystemClock},
    crypto::{CredentialGenerator, SecretHasher, UuidV4Generator, pool::Admission},
    error::StoreError,
    model::{
        Account, AccountId, ClientId, DataAccess, IssuedToken, NewToken, Role, TokenInfo,
        TokenKind, TokenRecord, User, UserId,
    },
    store::{Batch, Invalidate, TokenAdminStore, TokenFilter, TokenLimits, UserUpdate},
};
use validate::{
    InvalidRequest, check_admin_data_access, check_data_access, check_roles, normalize_email,
};

/// How often a user update is decided afresh when the user changed while it was decided.
const USER_CHANGE_ATTEMPTS: usize = 3;

/// What a store answers when a conditional user update finds the user changed.
const USER_CHANGED: &str = "user changed meanwhile";

/// Issues and revokes tokens and manages users over a [`TokenAdminStore`].
#[derive(Debug, Clone)]
pub struct TokenAdmin {
    store: Arc<dyn TokenAdminStore>,
    hasher: SecretHasher,
    generator: Arc<dyn CredentialGenerator>,
    clock: Arc<dyn Clock>,
    caches: Vec<Arc<dyn Invalidate>>,
    limits: TokenLimits,
    hashing: Arc<Admission>,
}

/// The hashing pool a new admin starts with: one thread, 16 waiting, 2 s wait.
fn hashing_pool(threads: usize, waiting: usize, wait: Duration) -> Arc<Admission> {
    Arc::new(Admission::new(
        "finout-auth-issue",
        threads,
        waiting,
        wait,
        false,
    ))
}

impl TokenAdmin {
    /// Manage tokens in `store`, with UUID v4 credentials, default argon2id parameters and
    /// default [`TokenLimits`]. Starts the hashing thread: new secrets are hashed on a small
    /// pool of their own (one thread, 16 waiting, at most 2 s each, else `auth_busy`).
    pub fn new(store: Arc<dyn TokenAdminStore>) -> Self {
        TokenAdmin {
            store,
            hasher: SecretHasher::default(),
            generator: Arc::new(UuidV4Generator),
            clock: Arc::new(SystemClock),
            caches: Vec::new(),
            limits: TokenLimits::default(),
            hashing: hashing_pool(1, 16, Duration::from_secs(2)),
        }
    }

    /// Cap the tokens per user and per account (default [`TokenLimits::default`]).
    #[must_use]
    pub fn with_token_limits(mut self, limits: TokenLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Hash new secrets on `threads` threads, with `waiting` more issues in line, each
    /// waiting at most `wait` for a thread; past either, `auth_busy`. Default 1, 16, 2 s.
    /// Peak memory for hashing is `threads` times the hasher's memory cost.
    #[must_use]
    pub fn with_issuance_pool(mut self, threads: usize, waiting: usize, wait: Duration) -> Self {
        self.hashing = hashing_pool(threads, waiting, wait);
        self
    }

    /// Invalidate this cache (typically an [`Authenticator`](crate::Authenticator)) on every
    /// change; call once per authenticator in this process. Its clock, if it has one, becomes
    /// this admin's clock too.
    #[must_use]
    pub fn with_authenticator(mut self, cache: impl Invalidate) -> Self {
        if let Some(clock) = cache.expiry_clock() {
            self.clock = clock;
        }
        self.caches.push(Arc::new(cache));
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

    async fn invalidate(&self, client_ids: &[ClientId]) {
        for cache in &self.caches {
            cache.invalidate_many(client_ids).await;
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
        let email = Self::check_new_user(&email.into(), &roles, &data_access)?;
        let mut user = User::new(UserId::new_v4(), account, email, roles);
        user.data_access = data_access;
        self.store
            .insert_user(user.clone())
            .await
            .map_err(not_found)?;
        Ok(user)
    }

    /// A user's email as it is stored and compared: trimmed and lowercased, and refused
    /// ([`InvalidRequest::Email`]) unless a plain ASCII address `local@domain.tld`. Two
    /// emails name the same user of an account when their normalized forms are equal.
    ///
    /// ```
    /// use finout_auth::TokenAdmin;
    /// assert_eq!(TokenAdmin::normalize_email(" Ops@Acme.TEST ").unwrap(), "ops@acme.test");
    /// assert!(TokenAdmin::normalize_email("").is_err());
    /// ```
    pub fn normalize_email(email: &str) -> Result<String, InvalidRequest> {
        normalize_email(email)
    }

    /// The checks [`add_user_with_access`](Self::add_user_with_access) makes of a new user,
    /// without storing anything: a plain address (see [`InvalidRequest::Email`]), at least
    /// one role, a well-formed data access, and all data for a user holding `Admin`. Answers
    /// the email as it is stored and compared (trimmed, lowercased), so that a set-up checked
    /// ahead (a seed file) finds the duplicates the store would.
    pub fn check_new_user(
        email: &str,
        roles: &[Role],
        data_access: &DataAccess,
    ) -> Result<String, InvalidRequest> {
        let email = Self::normalize_email(email)?;
        check_roles(roles)?;
        check_data_access(data_access)?;
        check_admin_data_access(roles, data_access)?;
        Ok(email)
    }

    /// Store a [`Batch`] of accounts, users and tokens all at once or not at all (see
    /// [`TokenAdminStore::insert_batch`]), then forget what caches hold about its client ids.
    /// Trusted, like the other methods here: its elements are stored as given, so check them
    /// first (users with [`check_new_user`](Self::check_new_user), a personal token's role
    /// with [`User::holds`]); the token caps do not apply.
    pub async fn insert_batch(&self, batch: Batch) -> Result<(), AdminError> {
        let client_ids: Vec<ClientId> = batch.tokens.iter().map(|t| t.client_id.clone()).collect();
        self.store.insert_batch(batch).await.map_err(not_found)?;
        // A lookup of these ids before they existed may be cached as "unknown".
        self.invalidate(&client_ids).await;
        Ok(())
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
    /// at once. Refused if the user would hold `Admin` with restricted data access.
    pub async fn update_user(
        &self,
        account: AccountId,
        user: UserId,
        update: UserUpdate,
    ) -> Result<(), AdminError> {
        self.update_user_checked(account, user, update, |_| Ok(()))
            .await
    }

    /// [`update_user`](Self::update_user), with `check` run on the user as they are. The
    /// rules are checked against the user as read, and the update applies only if the user
    /// is still so (compare-and-set, retried a few times if it changed meanwhile): two
    /// concurrent updates can never combine into what neither was allowed to do.
    pub(crate) async fn update_user_checked(
        &self,
        account: AccountId,
        user: UserId,
        update: UserUpdate,
        check: impl Fn(&User) -> Result<(), AdminError>,
    ) -> Result<(), AdminError> {
        if let Some(roles) = &update.roles {
            check_roles(roles)?;
        }
        if let Some(access) = &update.data_access {
            check_data_access(access)?;
        }
        for _ in 0..USER_CHANGE_ATTEMPTS {
            let current = self
                .store
                .get_user(account, user)
                .await?
                .ok_or(AdminError::NotFound("user"))?;
            if !update.holds_for(&current) {
                return Err(AdminError::Store(StoreError::Conflict(USER_CHANGED)));
            }
            check(&current)?;
            let mut after = current.clone();
            update.apply_to(&mut after);
            check_admin_data_access(&after.roles, &after.data_access)?;
            let conditional = update.clone().if_unchanged_from(&current);
            match self.store.update_user(account, user, conditional).await {
                Ok(Some(tokens)) => {
                    self.invalidate(&tokens).await;
                    return Ok(());
                }
                Ok(None) => return Err(AdminError::NotFound("user")),
                Err(StoreError::Conflict(USER_CHANGED)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AdminError::Store(StoreError::Conflict(USER_CHANGED)))
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

    /// Issue an API token (no authorization check; see
    /// [`AdminSession::issue_api_token`](crate::AdminSession::issue_api_token)).
    pub async fn issue_api_token(
        &self,
        account: AccountId,
        created_by: Option<UserId>,
        new: NewToken,
    ) -> Result<IssuedToken, AdminError> {
        self.issue(account, TokenKind::Api, None, created_by, None, new)
            .await
    }

    /// Issue a personal token for `user`, whose current roles must cover the token's role.
    pub async fn issue_personal_token(
        &self,
        account: AccountId,
        user: UserId,
        new: NewToken,
    ) -> Result<IssuedToken, AdminError> {
        self.issue(
            account,
            TokenKind::Personal,
            Some(user),
            Some(user),
            None,
            new,
        )
        .await
    }

    /// List an account's tokens (never a secret or hash).
    pub async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, AdminError> {
        Ok(self.store.list_tokens(account, filter).await?)
    }

    /// Revoke (delete) a token of the account, and every token it issued (directly or not);
    /// they are rejected from the next request on. Returns the revoked token.
    pub async fn revoke_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<TokenRecord, AdminError> {
        let revoked = self
            .store
            .delete_token(account, client_id)
            .await?
            .ok_or(AdminError::NotFound("token"))?;
        let mut gone = revoked.issued;
        gone.push(client_id.clone());
        self.invalidate(&gone).await;
        Ok(revoked.record)
    }
}

fn not_found(e: StoreError) -> AdminError {
    match e {
        StoreError::NotFound(what) => AdminError::NotFound(what),
        StoreError::LimitReached(what) => AdminError::LimitReached(what),
        other => AdminError::Store(other),
    }
}
