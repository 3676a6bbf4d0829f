//! [`MockServer`]: the mock in your test process, on a free loopback port, in one call —
//! in the style of wiremock.
//!
//! Its secrets are hashed with
//! [`SecretHasher::insecure_for_tests_only`](finout_auth::crypto::SecretHasher::insecure_for_tests_only)
//! unless the builder says otherwise: a test suite's debug build, where finout-auth's
//! dev-profile override does not reach, would otherwise pay an unoptimized argon2 run (about
//! 0.3 s) for every token it issues and every first request. The memory store lives and dies with the test process.
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

mod builder;
mod fault;
mod journal;

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use finout_auth::{AccountId, TokenAdmin, UserId, middleware::RequestId};
use http_body::Body as _;
use tokio::sync::oneshot;

pub use builder::{MockServerBuilder, StartError};
pub use fault::{Fault, FaultHandle};
pub(crate) use journal::note_principal;
pub use journal::{
    DEFAULT_JOURNAL_BODY_BYTES, DEFAULT_JOURNAL_REQUESTS, DEFAULT_JOURNAL_TOTAL_BYTES,
    JournalLimits, ReceivedPrincipal, ReceivedRequest,
};

use crate::{limits::MAX_BODY_BYTES, mock::Mock};

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
///   [`Seed`](crate::seed::Seed): [`MockServerBuilder::seed`], or [`MockServerBuilder::api_token`] for one more
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

impl MockServer {
    /// Start a mock with the defaults; panics if it cannot.
    pub async fn start() -> MockServer {
        MockServer::builder().start().await
    }

    /// Choose the clock, query delay, rate limits, latency or hasher first.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::new()
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
