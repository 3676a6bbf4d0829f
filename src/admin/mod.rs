//! Issuing, listing and revoking tokens, and managing users: the "Admin Portal" side.
//!
//! [`TokenAdmin`]'s own methods are *trusted*: they check that a request is consistent (the
//! user exists, a personal token's role is within its user's roles, the caps hold) but not
//! who asks. Use them for bootstrapping, seeds and CLIs. [`TokenAdmin::acting_as`] gives an
//! [`AdminSession`](crate::AdminSession) that also enforces Finout's rules for an
//! authenticated caller.
//!
//! # Who may do what
//!
//! A caller acts with its token's *effective* role: an API token's role, or a personal
//! token's role limited by its user's roles at the moment of the request (both must grant
//! a permission). Four rules decide every operation:
//!
//! - **Issuing is a write.** A token whose effective role grants no permission whose action
//!   (third segment) is `write` issues nothing: `Read-only`, or a custom role like
//!   `fin.*.read.*`. For a personal token the token's role and one of its user's roles must
//!   grant *the same* write permission ([`Principal::grants_action`](crate::Principal::grants_action), exact on the patterns).
//!   Nobody issues a token above their own effective role.
//! - **A token answers for its own lineage.** Whatever its role, a token may revoke, rotate,
//!   disable and enable itself and the tokens it issued, directly or not (`issued_by`
//!   chains), and a user's token lists those of its user's personal tokens.
//! - **Everything else needs an Admin user.** Issuing, listing and revoking API tokens,
//!   listing or revoking a user's other tokens or another user's, and managing users need a
//!   personal token whose role and user both hold `Admin`
//!   ([`Principal::is_admin_user`](crate::Principal::is_admin_user)).
//! - **A token never outlives its issuer**: a token issued by a token-authenticated request
//!   records its issuer (`issued_by`), expires no later, and is deleted with it (revoking a
//!   token, removing its user, or purging it once expired deletes every token it issued).
//!
//! | caller (effective role) | issue API | list API | revoke API | issue personal | list personal | revoke itself | revoke its lineage | revoke another token of its user | revoke another user's token | add / update / remove users |
//! | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
//! | personal, `Admin` (token and user) | yes | yes | yes | yes | all of its user's | yes | yes | yes | yes | yes |
//! | personal, `Basic`, `API token role`, or a custom role that writes | 403 | 403 | 403 | yes, within its role | itself and its lineage | yes | yes | 403 | 403 | 403 |
//! | personal, `Read-only`, or a custom role that does not write | 403 | 403 | 403 | 403 | itself and its lineage | yes | yes | 403 | 403 | 403 |
//! | API token, any role (`Admin` too) | 403 | 403 | 403 | 403 | 403 | yes | yes | — (no user) | 403 | 403 |
//!
//! Rotating, disabling and enabling follow the revoke columns ("revoke itself", "revoke its
//! lineage", ...): a `Read-only` token may rotate its own secret. "Revoke API" is revoking
//! an API token outside the caller's lineage. An Admin user holding
//! a `Basic` token is on the second row, an `Admin` token whose user was demoted to
//! `Read-only` on the third. A refused revoke answers 403 whether or not the token exists,
//! so a non-admin learns nothing about the account's other tokens; an Admin user gets 404
//! for a token of another account, of the wrong kind, or unknown. `tests/admin.rs` checks
//! every cell. A user holding `Admin` sees all data (a restriction on one is refused), and
//! nobody widens their own roles or data access.
//!
//! # Caps
//!
//! Every free-text field and every collection an admin request stores is bounded; past a
//! bound the request is refused ([`AdminError::Invalid`] names it, or
//! [`AdminError::LimitReached`]) and nothing is stored:
//!
//! | what | at most | refusal |
//! | --- | ---: | --- |
//! | users per account ([`UserLimits`]) | 10,000 | `LimitReached("users per account")` |
//! | live personal tokens per user ([`TokenLimits`]) | 100 | `LimitReached("personal tokens per user")` |
//! | live tokens per account ([`TokenLimits`]) | 5,000 | `LimitReached("tokens per account")` |
//! | personal tokens kept per user, expired included | 1,000 | the longest expired are purged |
//! | tokens kept per account, expired included | 50,000 | the longest expired are purged |
//! | roles per user | 16 | [`InvalidRequest::TooManyRoles`] |
//! | permissions per custom role | 100 | [`InvalidRequest::TooManyPermissions`] |
//! | bytes per permission pattern | 128 | [`InvalidRequest::Permission`] |
//! | bytes per custom role name | 64 | [`InvalidRequest::RoleName`] |
//! | bytes per account name | 256 | [`InvalidRequest::AccountName`] |
//! | bytes per token description | 1,024 | [`InvalidRequest::Description`] |
//! | bytes per email | 320 | [`InvalidRequest::Email`] |
//! | data access ids per user, bytes per id | 1,000, 256 | [`InvalidRequest::TooManyDataAccessIds`], [`InvalidRequest::DataAccessId`] |
//!
//! Expired tokens never count toward the live caps. They stay listed (their `expiresAt` in
//! the past) for a retention, 30 days by default ([`TokenAdmin::with_expired_retention`]),
//! and are then purged by [`TokenAdmin::purge_expired`] (or its background loop,
//! [`TokenAdmin::continuously_purge_expired`]); past the "kept" caps above, issuing purges
//! the longest expired first, in the insert's transaction.
//!
//! Issuing is bounded too: new secrets are hashed on a small pool of its own (default one
//! thread, 16 waiting, 2 s wait: past it `auth_busy`), so a burst of issues neither starves
//! verification nor grows memory (argon2 takes ~19 MiB per running hash).
//!
//! # Rotation, disabling
//!
//! [`TokenAdmin::rotate_secret`] gives a token a new secret (shown once) and keeps its client
//! id, role, expiry and lineage; the replaced secret keeps working for a grace of at most
//! [`MAX_ROTATION_GRACE`](crate::model::MAX_ROTATION_GRACE) (7 days; zero: it stops at
//! once). The grace is the store's state, so every replica applies it; rotating again ends
//! an earlier grace (at most two secrets are valid). [`TokenAdmin::disable_token`] refuses a
//! token (`invalid_credentials`) and keeps it listed with its `disabled_at` until
//! [`TokenAdmin::enable_token`]; the tokens it issued stay enabled (revoke it to delete
//! them). On the replica that made the change both take effect at once; on others with the
//! PostgreSQL change feed within its latency (tested under a second), and without it within
//! their cache TTL: a cached entry is trusted no longer than the record it was made from.
//! A replaced secret is checked against its grace's end on every cached hit.
//!
//! Every change that affects authentication (a purge included) invalidates the caches
//! registered with [`TokenAdmin::with_authenticator`] (any [`Invalidate`]) before the method
//! returns.
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

mod answer;
pub(crate) mod error;
mod issue;
mod purge;
mod rotate;
mod rules;
pub(crate) mod session;
mod users;
pub(crate) mod validate;

use std::{sync::Arc, time::Duration};

use error::AdminError;

use crate::{
    clock::{Clock, SystemClock},
    crypto::{CredentialGenerator, SecretHasher, UuidV4Generator, pool::Admission},
    error::StoreError,
    model::{
        Account, AccountId, ClientId, IssuedToken, NewToken, TokenInfo, TokenKind, TokenRecord,
        UserId,
    },
    store::{Batch, Invalidate, TokenAdminStore, TokenFilter, TokenLimits, UserLimits},
};
#[cfg(doc)]
use validate::InvalidRequest;

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
    user_limits: UserLimits,
    /// How long expired tokens stay listed before a purge deletes them.
    retention: Duration,
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
            user_limits: UserLimits::default(),
            retention: Self::DEFAULT_EXPIRED_RETENTION,
            hashing: hashing_pool(1, 16, Duration::from_secs(2)),
        }
    }

    /// Cap the tokens per user and per account, live and kept (default
    /// [`TokenLimits::default`]).
    #[must_use]
    pub fn with_token_limits(mut self, limits: TokenLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Cap the users per account (default [`UserLimits::default`], 10,000).
    #[must_use]
    pub fn with_user_limits(mut self, limits: UserLimits) -> Self {
        self.user_limits = limits;
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

    /// The clock this admin reads "now" from: issuing, expiry, the retention.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
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

    /// Create an account with a new random id. Its name must be 1 to
    /// [`MAX_ACCOUNT_NAME_LEN`](crate::model::MAX_ACCOUNT_NAME_LEN) bytes
    /// ([`InvalidRequest::AccountName`]).
    pub async fn create_account(&self, name: impl Into<String>) -> Result<Account, AdminError> {
        let name = name.into();
        validate::check_account_name(&name)?;
        let account = Account {
            id: AccountId::new_v4(),
            name,
        };
        self.store.insert_account(account.clone()).await?;
        Ok(account)
    }

    /// Store a [`Batch`] of accounts, users and tokens all at once or not at all (see
    /// [`TokenAdminStore::insert_batch`]), then forget what caches hold about its client ids.
    /// Trusted, like the other methods here: its elements are stored as given, so check them
    /// first (users with [`check_new_user`](Self::check_new_user), a personal token's role
    /// with [`User::holds`](crate::model::User::holds)); the token caps do not apply.
    pub async fn insert_batch(&self, batch: Batch) -> Result<(), AdminError> {
        let client_ids: Vec<ClientId> = batch.tokens.iter().map(|t| t.client_id.clone()).collect();
        self.store.insert_batch(batch).await.map_err(not_found)?;
        // A lookup of these ids before they existed may be cached as "unknown".
        self.invalidate(&client_ids).await;
        Ok(())
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
