//! [`MockServerBuilder`]: the clock, limits, hasher, seeds, journal and faults of a
//! [`MockServer`], and starting it.

use std::{sync::Arc, time::Duration};

use axum::middleware;
use finout_auth::{
    AdminError, Authenticator, NewToken, Role, TokenAdmin,
    clock::{Clock, SystemClock},
    crypto::SecretHasher,
    model::{Account, TokenKind},
    store::MemoryTokenStore,
};
use tokio::sync::oneshot;

use super::{
    DEFAULT_ACCOUNT, DEFAULT_ACCOUNT_NAME, Double, Fault, JournalLimits, MockServer, fault,
    journal, observe,
};
use crate::{
    limits::DEFAULT_QUERY_DELAY,
    mock::Mock,
    seed::{Seed, SeedAccount, SeedError, SeedToken},
    server::ServerLimits,
};

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
    seeds: Vec<Seed>,
    journal: JournalLimits,
    faults: Vec<Fault>,
}

/// Why a [`MockServer`] did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No loopback port could be bound.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(#[from] std::io::Error),
    /// Creating the account, user or token failed.
    #[error("cannot create the bootstrap token: {0}")]
    Bootstrap(#[from] AdminError),
    /// A seed given to [`MockServerBuilder::seed`] (or a token of
    /// [`MockServerBuilder::api_token`]) was refused; nothing of it was loaded.
    #[error("{0}")]
    Seed(#[from] SeedError),
}

impl MockServerBuilder {
    /// The defaults: the system clock, [`DEFAULT_QUERY_DELAY`], rate limits on, no
    /// latency, the tests-only hasher, default server and journal limits, no seed or fault.
    pub(super) fn new() -> Self {
        MockServerBuilder {
            clock: Arc::new(SystemClock),
            query_delay: DEFAULT_QUERY_DELAY,
            rate_limits: true,
            latency: Duration::ZERO,
            hasher: SecretHasher::insecure_for_tests_only(),
            limits: ServerLimits::default(),
            seeds: Vec::new(),
            journal: JournalLimits::default(),
            faults: Vec::new(),
        }
    }

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

    /// Load `seed` (accounts, users, tokens with their known secrets, views) into the
    /// server's store before it starts, besides [`DEFAULT_ACCOUNT`] and its Admin token; its
    /// accounts' views replace their fixture views. May be called more than once: the seeds
    /// load in order. A seed naming [`DEFAULT_ACCOUNT`] adds users and tokens to it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use finout_mock::{MockServer, seed::Seed};
    ///
    /// let seed = Seed::parse(r#"{"accounts": [{
    ///     "id": "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d", "name": "Acme",
    ///     "tokens": [{"clientId": "acme-ci", "secretKey": "acme-s3cret", "type": "api",
    ///                 "role": "Read-only"}]
    /// }]}"#).unwrap();
    /// let server = MockServer::builder().seed(seed).start().await;
    /// // x-finout-client-id: acme-ci, x-finout-secret-key: acme-s3cret
    /// # let _ = server;
    /// # }
    /// ```
    pub fn seed(mut self, seed: Seed) -> Self {
        self.seeds.push(seed);
        self
    }

    /// One more API token in [`DEFAULT_ACCOUNT`], with the client id and secret the test
    /// chooses (loaded as a [`Seed`], by its rules: a client id unique, a role that API
    /// tokens may hold).
    pub fn api_token(self, client_id: &str, secret_key: &str, role: Role) -> Self {
        self.seed(Seed {
            accounts: vec![SeedAccount {
                id: DEFAULT_ACCOUNT,
                name: DEFAULT_ACCOUNT_NAME.to_owned(),
                views: None,
                users: Vec::new(),
                tokens: vec![SeedToken {
                    client_id: client_id.to_owned(),
                    secret_key: secret_key.to_owned(),
                    kind: TokenKind::Api,
                    user: None,
                    role,
                    description: "MockServerBuilder::api_token".to_owned(),
                    expires_at: None,
                }],
            }],
        })
    }

    /// Bound the journal of received requests differently (default
    /// [`JournalLimits::default`]: the last 10,000 requests, 64 KiB of each body, 64 MiB in
    /// all).
    pub fn journal_limits(mut self, limits: JournalLimits) -> Self {
        self.journal = limits;
        self
    }

    /// Start with `fault` injected (as [`MockServer::inject`] would, before any request).
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
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
                name: DEFAULT_ACCOUNT_NAME.into(),
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
        let mut mock = Mock::new(admin.clone(), authenticator)
            .clock(self.clock)
            .query_delay(self.query_delay)
            .rate_limits(self.rate_limits)
            .latency(self.latency);
        for seed in &self.seeds {
            seed.load(&admin, &self.hasher).await?;
            for (account, views) in seed.views() {
                mock = mock.views(account, views);
            }
        }
        let double = Arc::new(Double {
            journal: Arc::new(journal::Journal::new(self.journal)),
            faults: fault::Faults::default(),
        });
        for fault in self.faults {
            double.faults.inject(fault);
        }
        let router = mock
            .router()
            .layer(middleware::from_fn_with_state(double.clone(), observe));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(crate::server::serve(listener, router, self.limits, async {
            let _ = stopped.await;
        }));
        Ok(MockServer {
            addr,
            account: DEFAULT_ACCOUNT,
            user: user.id,
            client_id: token.client_id.to_string(),
            secret_key: token.secret_key.expose_secret().to_owned(),
            mock,
            double,
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
