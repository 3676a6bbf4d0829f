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
//! of its user's data access ([`DataAccess`](finout_auth::model::DataAccess)), and no
//! account-wide cost (V2 cost and usage, CostGuard: 403); API tokens see the whole account.
//! At most 5 requests per token are in flight on `/v1`, `/v2` and `/admin` (configurable),
//! each until its answer is sent; the next gets 429 `too_many_requests`. [`ServerLimits`]
//! bounds what one account may hold of the server (connections, slow bodies, unread
//! answers). Virtual tags and endpoints are kept in memory, or in the store's database with
//! [`Mock::database`].

#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod error;
mod field_error;
mod filters;
pub mod fixtures;
mod ledger;
mod limits;
#[cfg(feature = "prometheus")]
mod metrics;
#[cfg(not(feature = "prometheus"))]
#[path = "metrics_disabled.rs"]
mod metrics;
mod mock;
mod mock_server;
mod query;
mod request_id;
mod routes;
pub mod seed;
mod server;
mod state;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    handler::Handler,
    middleware,
    routing::{delete, get, post, put},
};
use finout_auth::{AuthLayer, middleware::Quota};

pub use error::MockError;
pub use limits::{
    ADMIN_PER_MINUTE, DEFAULT_QUERY_DELAY, MAX_BODY_BYTES, MAX_QUERY_DELAY, V1_WRITES_PER_MINUTE,
};
use mock::delay;
pub use mock::{Mock, unknown_view};
pub use mock_server::{
    DEFAULT_ACCOUNT, DEFAULT_JOURNAL_BODY_BYTES, DEFAULT_JOURNAL_REQUESTS,
    DEFAULT_JOURNAL_TOTAL_BYTES, Fault, FaultHandle, JournalLimits, MockServer, MockServerBuilder,
    ReceivedPrincipal, ReceivedRequest, StartError,
};
pub use server::{ServerLimits, serve};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use state::MockDatabase;

impl Mock {
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
                self.metrics().clone(),
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

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
