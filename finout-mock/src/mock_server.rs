//! [`MockServer`]: the mock in your test process, on a free loopback port, in one call —
//! in the style of wiremock.
//!
//! Its secrets are hashed with [`SecretHasher::insecure_for_tests_only`] unless the builder
//! says otherwise: a test suite's debug build, where finout-auth's dev-profile override does
//! not reach, would otherwise pay an unoptimized argon2 run (about 0.3 s) for every token it
//! issues and every first request. The memory store lives and dies with the test process.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = finout_mock::MockServer::start().await;
//! // Point your Finout client at server.uri() with these two headers:
//! let (client_id, secret_key) = (server.client_id(), server.secret_key());
//! # let _ = (client_id, secret_key);
//! # }
//! ```

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

use finout_auth::{
    AccountId, AdminError, Authenticator, NewToken, Role, TokenAdmin, UserId,
    clock::{Clock, SystemClock},
    crypto::SecretHasher,
    model::Account,
    store::MemoryTokenStore,
};
use tokio::sync::oneshot;

use crate::{DEFAULT_QUERY_DELAY, Mock, ServerLimits};

/// The account a [`MockServer`] creates (and the `finout-mock` binary's on a fresh store).
pub const DEFAULT_ACCOUNT: AccountId =
    AccountId(uuid::uuid!("f1a70c4e-0000-4000-8000-000000000001"));

/// A running mock with a memory store, an account ([`DEFAULT_ACCOUNT`]), an Admin user and
/// that user's personal Admin token. Stops when dropped. Secrets are hashed for tests only
/// unless [`MockServerBuilder::hasher`] says otherwise.
pub struct MockServer {
    addr: SocketAddr,
    account: AccountId,
    user: UserId,
    client_id: String,
    secret_key: String,
    mock: Mock,
    stop: Option<oneshot::Sender<()>>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .field("account", &self.account)
            .field("client_id", &self.client_id)
            .field("secret_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// How to start a [`MockServer`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MockServerBuilder {
    clock: Arc<dyn Clock>,
    query_delay: Duration,
    rate_limits: bool,
    latency: Duration,
    hasher: SecretHasher,
    limits: ServerLimits,
}

/// Why a [`MockServer`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No loopback port could be bound.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(#[from] std::io::Error),
    /// Creating the account, user or token failed.
    #[error("cannot create the bootstrap token: {0}")]
    Bootstrap(#[from] AdminError),
}

impl MockServerBuilder {
    /// The mock's clock (V2 query completion, rate limits, timestamps, token expiry and a
    /// rotation's grace), e.g. a
    /// [`ManualClock`](finout_auth::clock::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a V2 cost-and-usage query takes to complete.
    pub fn query_delay(mut self, delay: Duration) -> Self {
        self.query_delay = delay;
        self
    }

    /// Finout's V2 rate limits on (the default) or off.
    pub fn rate_limits(mut self, on: bool) -> Self {
        self.rate_limits = on;
        self
    }

    /// How secrets are hashed: [`SecretHasher::insecure_for_tests_only`] by default, so that
    /// a dependent's debug build does not pay an unoptimized argon2 run (about 0.3 s) per
    /// token issued and per first request; `SecretHasher::default()` for argon2's real cost.
    pub fn hasher(mut self, hasher: SecretHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Delay every `/v1` and `/v2` answer.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Serve within `limits` (default [`ServerLimits::default`]).
    pub fn server_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Start it.
    pub async fn try_start(self) -> Result<MockServer, StartError> {
        let store = Arc::new(MemoryTokenStore::new());
        // The authenticator and the admin read the mock's clock too: expiry and a
        // rotation's grace follow a test's ManualClock.
        let authenticator = Authenticator::builder(store.clone())
            .clock(self.clock.clone())
            .hasher(self.hasher.clone())
            // A test process's threads are all the test's: no OS priority games.
            .low_priority_verification(false)
            // A test suite's wrong secrets are answered when decided, not at the deadline:
            // there is nobody to hide which client ids exist from.
            .uniform_refusals(false)
            .build();
        let admin = TokenAdmin::new(store)
            .with_hasher(self.hasher.clone())
            .with_authenticator(authenticator.clone());
        admin
            .store()
            .insert_account(Account {
                id: DEFAULT_ACCOUNT,
                name: "finout-mock".into(),
            })
            .await
            .map_err(AdminError::from)?;
        let user = admin
            .add_user(
                DEFAULT_ACCOUNT,
                "admin@finout-mock.local",
                vec![Role::Admin],
            )
            .await?;
        let token = admin
            .issue_personal_token(
                DEFAULT_ACCOUNT,
                user.id,
                NewToken::new("finout-mock", Role::Admin),
            )
            .await?;
        let mock = Mock::new(admin, authenticator)
            .clock(self.clock)
            .query_delay(self.query_delay)
            .rate_limits(self.rate_limits)
            .latency(self.latency);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(crate::serve(listener, mock.router(), self.limits, async {
            let _ = stopped.await;
        }));
        Ok(MockServer {
            addr,
            account: DEFAULT_ACCOUNT,
            user: user.id,
            client_id: token.client_id.to_string(),
            secret_key: token.secret_key.expose_secret().to_owned(),
            mock,
            stop: Some(stop),
        })
    }

    /// Start it; panics if it cannot (a test has nothing better to do).
    pub async fn start(self) -> MockServer {
        match self.try_start().await {
            Ok(server) => server,
            Err(e) => panic!("finout-mock: {e}"),
        }
    }
}

impl MockServer {
    /// Start a mock with the defaults; panics if it cannot.
    pub async fn start() -> MockServer {
        MockServer::builder().start().await
    }

    /// Choose the clock, query delay, rate limits, latency or hasher first.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            clock: Arc::new(SystemClock),
            query_delay: DEFAULT_QUERY_DELAY,
            rate_limits: true,
            latency: Duration::ZERO,
            hasher: SecretHasher::insecure_for_tests_only(),
            limits: ServerLimits::default(),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `x-finout-client-id`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The value for `x-finout-secret-key`.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The account.
    pub fn account_id(&self) -> AccountId {
        self.account
    }

    /// The Admin user the token belongs to.
    pub fn user_id(&self) -> UserId {
        self.user
    }

    /// The admin of its store: add users, issue more tokens.
    pub fn admin(&self) -> &TokenAdmin {
        self.mock.admin()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
