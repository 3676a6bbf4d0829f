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
//!
//! For a test suite: seeded, inspected and broken on purpose (see [`MockServer`]).

mod fault;
mod journal;

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::{self, Next},
    response::Response,
};
use finout_auth::{
    AccountId, AdminError, Authenticator, NewToken, Role, TokenAdmin, UserId,
    clock::{Clock, SystemClock},
    crypto::SecretHasher,
    middleware::RequestId,
    model::{Account, TokenKind},
    store::MemoryTokenStore,
};
use http_body::Body as _;
use tokio::sync::oneshot;

pub use fault::{Fault, FaultHandle};
pub(crate) use journal::note_principal;
pub use journal::{
    DEFAULT_JOURNAL_BODY_BYTES, DEFAULT_JOURNAL_REQUESTS, DEFAULT_JOURNAL_TOTAL_BYTES,
    JournalLimits, ReceivedPrincipal, ReceivedRequest,
};

use crate::{
    limits::{DEFAULT_QUERY_DELAY, MAX_BODY_BYTES},
    mock::Mock,
    seed::{Seed, SeedAccount, SeedError, SeedToken},
    server::ServerLimits,
};

/// The account a [`MockServer`] creates (and the `finout-mock` binary's on a fresh store).
pub const DEFAULT_ACCOUNT: AccountId =
    AccountId(uuid::uuid!("f1a70c4e-0000-4000-8000-000000000001"));

/// A running mock with a memory store, an account ([`DEFAULT_ACCOUNT`]), an Admin user and
/// that user's personal Admin token. Stops when dropped. Secrets are hashed for tests only
/// unless [`MockServerBuilder::hasher`] says otherwise.
///
/// For a test suite, like wiremock's `MockServer`, it can be:
///
/// - **seeded** with the accounts, users and tokens (with secrets the test chooses) of a
///   [`Seed`]: [`MockServerBuilder::seed`], or [`MockServerBuilder::api_token`] for one more
///   token in [`DEFAULT_ACCOUNT`];
/// - **inspected**: every request it received is in its journal,
///   [`MockServer::received_requests`] (bounded: see [`JournalLimits`]; the secret header is
///   never recorded);
/// - **broken** on purpose: [`MockServer::inject`] a [`Fault`] (500, 503 or 429 with
///   `Retry-After`, or latency, for the next N calls or a seeded share of them), answered
///   before authentication.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use finout_auth::Role;
/// use finout_mock::{Fault, MockServer};
/// use http::{Method, StatusCode};
///
/// let server = MockServer::builder()
///     .api_token("ci-reader", "a-secret-the-test-knows", Role::ReadOnly)
///     .start()
///     .await;
/// let outage = server.inject(
///     Fault::on(Method::GET, "/v1/view").status(StatusCode::SERVICE_UNAVAILABLE).times(2),
/// );
/// // ... run the client under test against server.uri() ...
/// assert_eq!(outage.fired(), 0);
/// assert!(server.received_requests_to(&Method::GET, "/v1/view").is_empty());
/// # }
/// ```
pub struct MockServer {
    addr: SocketAddr,
    account: AccountId,
    user: UserId,
    client_id: String,
    secret_key: String,
    mock: Mock,
    double: Arc<Double>,
    stop: Option<oneshot::Sender<()>>,
}

/// What makes a [`MockServer`] a test double: its journal and its faults.
#[derive(Debug)]
struct Double {
    journal: Arc<journal::Journal>,
    faults: fault::Faults,
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
            seeds: Vec::new(),
            journal: JournalLimits::default(),
            faults: Vec::new(),
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

    /// The requests it received and kept (see [`JournalLimits`]), in the order they
    /// arrived. A request is there once its answer's head was produced (or its client went
    /// away): after a client call returns, its request is there.
    pub fn received_requests(&self) -> Vec<ReceivedRequest> {
        self.double.journal.requests()
    }

    /// The requests it received of `method` to exactly `path`, in the order they arrived.
    pub fn received_requests_to(&self, method: &Method, path: &str) -> Vec<ReceivedRequest> {
        let mut requests = self.received_requests();
        requests.retain(|r| r.is(method, path));
        requests
    }

    /// How many requests the journal dropped (the oldest first) to stay within its
    /// [`JournalLimits`]; [`clear_received_requests`](Self::clear_received_requests) does
    /// not count.
    pub fn dropped_requests(&self) -> u64 {
        self.double.journal.dropped()
    }

    /// Forget the requests received so far.
    pub fn clear_received_requests(&self) {
        self.double.journal.clear();
    }

    /// Inject `fault` (after those injected before it, which are consulted first: see
    /// [`Fault`]); the handle tells how many times it fired.
    pub fn inject(&self, fault: Fault) -> FaultHandle {
        self.double.faults.inject(fault)
    }

    /// Remove every fault injected.
    pub fn clear_faults(&self) {
        self.double.faults.clear();
    }
}

/// The name of [`DEFAULT_ACCOUNT`].
const DEFAULT_ACCOUNT_NAME: &str = "finout-mock";

/// How long a faulted answer waits at most for the request's body, to journal it.
const FAULT_BODY_WAIT: Duration = Duration::from_secs(5);

/// The outermost layer of a [`MockServer`]: journal the request, apply a fault.
async fn observe(State(double): State<Arc<Double>>, request: Request, next: Next) -> Response {
    let (mut pending, request) = journal::Pending::start(&double.journal, request);
    let decision = double.faults.decide(request.method(), request.uri().path());
    if decision.applies() {
        pending.faulted();
    }
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let response = match decision.answer {
        Some(answer) => {
            let id = RequestId::of(request.headers());
            // Read the body (bounded, briefly), so that the journal has it.
            let mut body = request.into_body();
            let _ = tokio::time::timeout(FAULT_BODY_WAIT, async {
                let mut read = 0usize;
                while let Some(Ok(frame)) =
                    std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
                {
                    read += frame.data_ref().map_or(0, |d| d.len());
                    if read > MAX_BODY_BYTES {
                        break;
                    }
                }
            })
            .await;
            answer.render(&id)
        }
        None => next.run(request).await,
    };
    pending.finish(response.status());
    response
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
