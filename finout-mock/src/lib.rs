//! `finout-mock`: a Finout-compatible mock API server, and the pieces it is made of, to embed
//! in a test process of your own.
//!
//! [`Mock::router`] answers like Finout's API: the two credential headers, the same token
//! rules and error shapes (through [`finout_auth`]), and deterministic fixture data per
//! account.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use finout_auth::{Authenticator, TokenAdmin, store::MemoryTokenStore};
//! use finout_mock::Mock;
//!
//! let store = Arc::new(MemoryTokenStore::new());
//! let authenticator = Authenticator::new(store.clone());
//! let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
//! let app: axum::Router = Mock::new(admin, authenticator).router();
//! // axum::serve(listener, app).await?;
//! # let _ = app; Ok(()) }
//! ```
//!
//! For a test suite, [`MockServer::start`] runs one on a free port in one call.
//!
//! Routes (the README has the table): `GET /healthz` without credentials; `GET /metrics`
//! (Prometheus text, Admin users only); `/admin/...` (whoami, API and personal tokens,
//! users); Finout's V1 API (`/v1/view`, `/v1/cost/query-by-view`, `/v1/virtual-tags` with
//! metadata, `/v1/megabill/query-language`, `/v1/cost-guard`, `/v1/endpoints`) and V2 API
//! (`/v2/query-language`, the asynchronous `/v2/data/cost-usage` query, `/v2/virtual-tags`
//! with versions and metadata, each route rate-limited per account as Finout documents).
//! Any other path or method answers 404 / 405 in Finout's error shape (after
//! authentication), a body over [`MAX_BODY_BYTES`] 413, a body or parameter that cannot be
//! read 400 naming the field's JSON path and what it expects. Every answer carries
//! `x-request-id` (an error's `requestId`). [`serve`] runs the router with a
//! connection cap and a header-read timeout. Writes need a role other than `Read-only` (403
//! otherwise); another account's resources answer 404. A personal token sees only the views
//! of its user's data access ([`DataAccess`]), and no account-wide cost (V2 cost and usage,
//! CostGuard: 403); API tokens see the whole account. At most 5 requests per token are in
//! flight on `/v1`, `/v2` and `/admin` (configurable), each until its answer is sent; the
//! next gets 429 `too_many_requests`. [`ServerLimits`] bounds what one account may hold of
//! the server (connections, slow bodies, unread answers). Virtual tags and endpoints are kept in memory, or in the store's
//! database with [`Mock::database`].

#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod error;
mod field_error;
pub mod fixtures;
mod ledger;
#[cfg(feature = "prometheus")]
mod metrics;
#[cfg(not(feature = "prometheus"))]
#[path = "metrics_disabled.rs"]
mod metrics;
mod mock_server;
mod request_id;
mod routes;
pub mod seed;
mod server;
mod state;

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    handler::Handler,
    middleware::{self, Next},
    response::Response,
    routing::{delete, get, post, put},
};
use finout_auth::{
    AccountId, AuthLayer, Authenticator, Principal, TokenAdmin,
    clock::{Clock, SystemClock},
    metrics::Metrics,
    middleware::{Quota, TokenConcurrencyLimitLayer},
    model::DataAccess,
    shared::Shared,
};
use time::OffsetDateTime;

use error::Answer;
pub use error::MockError;
use fixtures::View;
pub use mock_server::{
    DEFAULT_ACCOUNT, DEFAULT_JOURNAL_BODY_BYTES, DEFAULT_JOURNAL_REQUESTS,
    DEFAULT_JOURNAL_TOTAL_BYTES, Fault, FaultHandle, JournalLimits, MockServer, MockServerBuilder,
    ReceivedPrincipal, ReceivedRequest, StartError,
};
pub use server::{ServerLimits, serve};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use state::MockDatabase;

/// The largest request body accepted, in bytes; past it, 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Requests a minute per account on `/admin` and `/metrics`.
pub const ADMIN_PER_MINUTE: u32 = 600;
/// V1 writes (virtual tags, their metadata, endpoints) a minute per account, all together.
pub const V1_WRITES_PER_MINUTE: u32 = 600;

/// A Finout-compatible mock API over a token store.
#[derive(Debug, Clone)]
pub struct Mock {
    inner: Arc<MockInner>,
}

#[derive(Debug, Clone)]
struct MockInner {
    admin: TokenAdmin,
    authenticator: Authenticator,
    latency: Duration,
    max_in_flight: usize,
    clock: Arc<dyn Clock>,
    /// How long a V2 cost-and-usage query takes to complete.
    query_delay: Duration,
    rate_limits: bool,
    /// Where the limits are shared with other replicas, if anywhere.
    shared: Option<Shared>,
    /// Virtual tags and endpoints, per account (in the database, if any).
    state: Arc<state::State>,
    /// V2 cost-and-usage queries, per account (in memory).
    queries: Arc<routes::v2::Queries>,
    /// Views replacing the fixtures, per account (from a seed).
    views: HashMap<AccountId, Vec<View>>,
    /// What `/metrics` answers.
    #[cfg(feature = "prometheus")]
    prometheus: metrics::Prometheus,
}

/// How long a V2 cost-and-usage query takes to complete by default.
pub const DEFAULT_QUERY_DELAY: Duration = Duration::from_secs(2);
/// The longest query delay: 100 years.
pub const MAX_QUERY_DELAY: Duration = Duration::from_secs(100 * 365 * 86_400);

impl Mock {
    /// A mock over `admin`'s store, authenticating with `authenticator` (register it with
    /// the admin, so revocations take effect at once). What clients write is kept in
    /// memory until [`database`](Self::database) says where to keep it.
    pub fn new(admin: TokenAdmin, authenticator: Authenticator) -> Self {
        Mock {
            inner: Arc::new(MockInner {
                admin,
                authenticator,
                latency: Duration::ZERO,
                max_in_flight: 5,
                clock: Arc::new(SystemClock),
                query_delay: DEFAULT_QUERY_DELAY,
                rate_limits: true,
                shared: None,
                state: Arc::default(),
                queries: Arc::default(),
                views: HashMap::new(),
                #[cfg(feature = "prometheus")]
                prometheus: metrics::Prometheus::new(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut MockInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| (*shared).clone());
        f(&mut inner);
        Mock {
            inner: Arc::new(inner),
        }
    }

    /// Keep virtual tags, their metadata and endpoints in `db` (the mock's own table,
    /// created if needed), loading what it holds: they survive a restart (features `sqlite`,
    /// `postgres`).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub async fn database(self, db: MockDatabase) -> Result<Self, sqlx::Error> {
        let state = Arc::new(state::State::load(db).await?);
        Ok(self.with(|m| m.state = state))
    }

    /// Read the time from `clock`: V2 query completion, rate limits and timestamps (e.g. a
    /// [`ManualClock`](finout_auth::clock::ManualClock) in tests).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        self.with(|m| m.clock = Arc::new(clock))
    }

    /// How long a V2 cost-and-usage query stays `queued`/`running` before it completes
    /// (default [`DEFAULT_QUERY_DELAY`]; at most [`MAX_QUERY_DELAY`], which is as good as
    /// never).
    #[must_use]
    pub fn query_delay(self, delay: Duration) -> Self {
        self.with(|m| m.query_delay = delay.min(MAX_QUERY_DELAY))
    }

    /// Apply Finout's per-route V2 rate limits (the default) or not.
    #[must_use]
    pub fn rate_limits(self, on: bool) -> Self {
        self.with(|m| m.rate_limits = on)
    }

    /// Share the rate and in-flight limits with the other replicas through `shared` (give
    /// the authenticator the same, for its failure windows and verified secrets).
    #[must_use]
    pub fn shared(self, shared: Shared) -> Self {
        self.with(|m| m.shared = Some(shared))
    }

    /// The in-flight limit per token, shared if the mock is.
    fn in_flight_limit(&self) -> TokenConcurrencyLimitLayer {
        let layer = TokenConcurrencyLimitLayer::new(self.inner.max_in_flight)
            .metrics(self.metrics().clone());
        match &self.inner.shared {
            Some(shared) => layer.shared(shared.clone()),
            None => layer,
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Delay every `/v1` response by `latency` (to test clients against a slow API).
    #[must_use]
    pub fn latency(self, latency: Duration) -> Self {
        self.with(|m| m.latency = latency)
    }

    /// Requests in flight per token on `/v1` (Finout allows 5).
    #[must_use]
    pub fn max_in_flight(self, n: usize) -> Self {
        self.with(|m| m.max_in_flight = n)
    }

    /// Answer `account`'s views with `views` instead of the fixtures.
    #[must_use]
    pub fn views(self, account: AccountId, views: Vec<View>) -> Self {
        self.with(|m| {
            m.views.insert(account, views);
        })
    }

    /// The admin behind this mock.
    pub fn admin(&self) -> &TokenAdmin {
        &self.inner.admin
    }

    /// The counters every answer is recorded in (the authenticator's).
    fn metrics(&self) -> &Metrics {
        self.inner.authenticator.metrics_handle()
    }

    fn views_of(&self, account: AccountId) -> Vec<View> {
        self.inner
            .views
            .get(&account)
            .cloned()
            .unwrap_or_else(|| fixtures::default_views(account))
    }

    /// The views `principal` may see: all of its account's for an API token, those of the
    /// user's data access for a personal token.
    fn visible_views(&self, principal: &Principal) -> Vec<View> {
        let access = principal.data_access();
        let mut views = self.views_of(principal.account_id());
        views.retain(|v| access.allows(&v.id));
        views
    }

    /// Refuse data access naming a view the account does not have.
    fn check_views(&self, account: AccountId, access: &DataAccess) -> Answer<()> {
        unknown_view(&self.views_of(account), access).map_or(Ok(()), |id| {
            Err(MockError::invalid(format!(
                "dataAccess: no view with id {id:?} in this account"
            )))
        })
    }

    /// The axum router: every route of the crate docs.
    pub fn router(&self) -> Router {
        let admin = Router::new()
            .route("/admin/whoami", get(routes::admin::whoami))
            .route(
                "/admin/api-tokens",
                post(routes::admin::create_api_token).get(routes::admin::list_api_tokens),
            )
            .route(
                "/admin/api-tokens/{client_id}",
                delete(routes::admin::revoke_api_token),
            )
            .route(
                "/admin/api-tokens/{client_id}/rotate",
                post(routes::admin::rotate_api_token),
            )
            .route(
                "/admin/api-tokens/{client_id}/disable",
                post(routes::admin::disable_api_token),
            )
            .route(
                "/admin/api-tokens/{client_id}/enable",
                post(routes::admin::enable_api_token),
            )
            .route(
                "/admin/personal-tokens",
                post(routes::admin::create_personal_token).get(routes::admin::list_personal_tokens),
            )
            .route(
                "/admin/personal-tokens/{client_id}",
                delete(routes::admin::revoke_personal_token),
            )
            .route(
                "/admin/personal-tokens/{client_id}/rotate",
                post(routes::admin::rotate_personal_token),
            )
            .route(
                "/admin/personal-tokens/{client_id}/disable",
                post(routes::admin::disable_personal_token),
            )
            .route(
                "/admin/personal-tokens/{client_id}/enable",
                post(routes::admin::enable_personal_token),
            )
            .route("/admin/users", post(routes::admin::add_user))
            .route(
                "/admin/users/{id}/roles",
                put(routes::admin::set_user_roles),
            )
            .route("/admin/users/{id}", delete(routes::admin::remove_user))
            .route("/metrics", get(metrics::prometheus))
            // The mock's own API: the same in-flight limit per token as V1, and a rate per
            // account, so that no account's administration can take the server's time.
            .layer(self.in_flight_limit())
            .layer(self.rate_limit("admin", vec![Quota::per_minute(ADMIN_PER_MINUTE)]));
        // V1 writes (Finout documents no limit for them) share one rate per account.
        // One layer cloned onto each write route: its clones share one count.
        let writes = self.rate_limit("v1-write", vec![Quota::per_minute(V1_WRITES_PER_MINUTE)]);
        let write = || writes.clone();
        let v1 = Router::new()
            .route("/v1/view", get(routes::views::views))
            .route("/v1/cost/query-by-view", post(routes::views::query_by_view))
            .route(
                "/v1/virtual-tags",
                get(routes::tags::list).post(routes::tags::create.layer(write())),
            )
            .route(
                "/v1/virtual-tags/{id}",
                get(routes::tags::get)
                    .put(routes::tags::replace.layer(write()))
                    .delete(routes::tags::delete.layer(write())),
            )
            .route("/v1/megabill/query-language/keys", get(routes::keys::keys))
            .route(
                "/v1/megabill/query-language/values/{cost_center}/{key}",
                get(routes::keys::values),
            )
            .route(
                "/v1/virtual-tags/{id}/metadata",
                get(routes::tags::get_metadata).put(routes::tags::put_metadata.layer(write())),
            )
            .route("/v1/cost-guard/scans", get(routes::costguard::scans))
            .route(
                "/v1/cost-guard/scans-recommendations",
                post(routes::costguard::recommendations),
            )
            .route(
                "/v1/endpoints",
                get(routes::endpoints::list).post(routes::endpoints::create.layer(write())),
            )
            .layer(middleware::from_fn_with_state(self.clone(), delay))
            .layer(self.in_flight_limit());
        // V2 documents rate limits only; the mock also holds V1's in-flight limit per token
        // there, so that a burst within the rate cannot pile up unbounded work.
        let v2 = routes::v2::router(self)
            .layer(middleware::from_fn_with_state(self.clone(), delay))
            .layer(self.in_flight_limit());
        // Its own 405 fallback: `method_not_allowed_fallback` below reaches only the routes
        // registered before it, not those merged after.
        let open = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .method_not_allowed_fallback(error::no_method);
        // The handlers' error answers are counted by `count_answered`; the layers count
        // their own (the authentication layer's 401/429/503, the concurrency limit's 429).
        // Unknown paths and methods answer in Finout's error shape, and only to an
        // authenticated caller: without credentials every path but the open ones is 401.
        admin
            .merge(v1)
            .merge(v2)
            .fallback(error::no_route)
            .method_not_allowed_fallback(error::no_method)
            .layer(middleware::from_fn_with_state(
                self.clone(),
                error::count_answered,
            ))
            .layer(middleware::from_fn(server::tenants::per_account))
            // Who the request was authenticated as, for a MockServer's journal.
            .layer(middleware::from_fn(mock_server::note_principal))
            .layer(AuthLayer::new(self.inner.authenticator.clone()))
            .merge(open)
            .layer(middleware::from_fn_with_state(
                self.clone(),
                metrics::observe,
            ))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn(request_id::name))
            .with_state(self.clone())
    }
}

/// The first view id of `access` that is not one of `views`, if any: the check of
/// `POST /admin/users`, `PUT /admin/users/{id}/roles` and `finout-mock user add|roles`.
pub fn unknown_view<'a>(views: &[View], access: &'a DataAccess) -> Option<&'a str> {
    let known: std::collections::HashSet<&str> = views.iter().map(|v| v.id.as_str()).collect();
    access
        .ids()
        .unwrap_or_default()
        .into_iter()
        .find(|id| !known.contains(id))
}

async fn delay(State(mock): State<Mock>, request: Request, next: Next) -> Response {
    if !mock.inner.latency.is_zero() {
        tokio::time::sleep(mock.inner.latency).await;
    }
    next.run(request).await
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
