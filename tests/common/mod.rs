//! Shared test fixtures: a memory store with one account, an Admin user, fast argon2
//! parameters, a manual clock, and store wrappers that delay or fail.
#![allow(dead_code)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use finout_auth::{
    AuthError, Authenticator, AuthenticatorBuilder, ClientId, Credentials, IssuedToken, NewToken,
    Principal, Role, StoreError, TokenAdmin,
    clock::ManualClock,
    crypto::SecretHasher,
    model::{Account, SecretHash, TokenKind, TokenRecord, User},
    store::{MemoryTokenStore, ResolvedToken, TokenAdminStore, TokenStore},
};
use time::macros::datetime;

/// Cheap argon2id parameters so tests stay fast (production uses m=19456, t=2).
pub fn fast_hasher() -> SecretHasher {
    SecretHasher::with_params(64, 1, 1).expect("valid params")
}

pub fn clock() -> ManualClock {
    ManualClock::new(datetime!(2026-01-01 0:00 UTC))
}

pub struct Harness {
    pub store: Arc<MemoryTokenStore>,
    pub auth: Authenticator,
    pub admin: TokenAdmin,
    pub clock: ManualClock,
    pub account: Account,
    pub admin_user: User,
}

impl Harness {
    /// Store an Admin API token `id` whose hash asks argon2 for 4 GiB of memory, as a
    /// tampered row would: outside the cost caps, to be refused without running it.
    pub async fn insert_greedy_hash(&self, id: &ClientId) {
        let greedy = SecretHash::from_phc(
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        );
        let record = TokenRecord::new(
            id.clone(),
            TokenKind::Api,
            self.account.id,
            None,
            "tampered",
            Role::Admin,
            greedy,
            time::OffsetDateTime::UNIX_EPOCH,
            None,
            None,
        );
        self.store
            .insert_token(record, Default::default())
            .await
            .unwrap();
    }

    pub async fn new() -> Self {
        Self::with(|b| b).await
    }

    /// A harness whose authenticator is configured further by `configure`.
    pub async fn with(
        configure: impl FnOnce(AuthenticatorBuilder) -> AuthenticatorBuilder,
    ) -> Self {
        Self::over(Arc::new(MemoryTokenStore::new()), configure).await
    }

    /// A harness whose authenticator reads through `wrap(store)`.
    pub async fn over(
        store: Arc<MemoryTokenStore>,
        configure: impl FnOnce(AuthenticatorBuilder) -> AuthenticatorBuilder,
    ) -> Self {
        Self::wrapped(store.clone(), store, configure).await
    }

    pub async fn wrapped(
        store: Arc<MemoryTokenStore>,
        read_side: Arc<dyn TokenStore>,
        configure: impl FnOnce(AuthenticatorBuilder) -> AuthenticatorBuilder,
    ) -> Self {
        let clock = clock();
        // Refusals are answered at the verification deadline: a short one keeps the tests
        // that send wrong secrets quick (the default, 1 s, is tested where it matters).
        let auth = configure(
            Authenticator::builder(read_side)
                .hasher(fast_hasher())
                .clock(clock.clone())
                .verification_wait(Duration::from_millis(200)),
        )
        .build();
        let admin = TokenAdmin::new(store.clone())
            .with_hasher(fast_hasher())
            .with_authenticator(auth.clone());
        let account = admin.create_account("Acme").await.expect("account");
        let admin_user = admin
            .add_user(account.id, "admin@acme.test", vec![Role::Admin])
            .await
            .expect("admin user");
        Harness {
            store,
            auth,
            admin,
            clock,
            account,
            admin_user,
        }
    }

    pub async fn api_token(&self, role: Role) -> IssuedToken {
        self.admin
            .issue_api_token(
                self.account.id,
                Some(self.admin_user.id),
                NewToken::new("api", role),
            )
            .await
            .expect("issue api token")
    }

    pub async fn personal_token(&self, user: &User, role: Role) -> IssuedToken {
        self.admin
            .issue_personal_token(self.account.id, user.id, NewToken::new("personal", role))
            .await
            .expect("issue personal token")
    }

    pub async fn authenticate(&self, token: &IssuedToken) -> Result<Principal, AuthError> {
        authenticate(
            &self.auth,
            &token.client_id,
            token.secret_key.expose_secret(),
        )
        .await
    }
}

pub async fn authenticate(
    auth: &Authenticator,
    id: &ClientId,
    secret: &str,
) -> Result<Principal, AuthError> {
    auth.authenticate(Credentials::new(id.as_str(), secret).expect("well-formed"))
        .await
}

/// A read side that can be switched to fail, and can delay every answer.
#[derive(Debug)]
pub struct FlakyStore {
    pub inner: Arc<MemoryTokenStore>,
    pub down: AtomicBool,
    pub delay: Duration,
}

impl FlakyStore {
    pub fn new(inner: Arc<MemoryTokenStore>, delay: Duration) -> Arc<Self> {
        Arc::new(FlakyStore {
            inner,
            down: AtomicBool::new(false),
            delay,
        })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection refused (test)")]
pub struct Refused;

#[async_trait]
impl TokenStore for FlakyStore {
    async fn find_token(&self, id: &ClientId) -> Result<Option<ResolvedToken>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::backend(Refused));
        }
        // Read now, answer late: the answer may be stale by the time it arrives.
        let found = self.inner.find_token(id).await;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        found
    }
}
