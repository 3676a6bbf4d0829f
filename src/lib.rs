//! # finout-auth
//!
//! Authenticate HTTP requests the way the [Finout] API does: every call carries two
//! headers, `x-finout-client-id` and `x-finout-secret-key`, issued as **API tokens**
//! (account-level, created by Admins) or **personal tokens** (acting as one user, never
//! with more access than that user has *now*).
//!
//! - [`AuthLayer`]: a tower layer for axum, hyper or any tower stack. It authenticates each
//!   request, removes the secret header, and puts the [`Principal`] in the request
//!   extensions, or answers `401`/`429`/`503` with a JSON error.
//! - [`Authenticator`]: the engine. Secrets are stored only as argon2id hashes and verified
//!   off the async threads, bounded and coalesced; verified tokens are cached in moka, and a
//!   cached request costs a keyed BLAKE3 digest and a constant-time compare, not argon2.
//! - [`TokenAdmin`]: issue, list and revoke tokens; add, remove and re-role users, with
//!   Finout's rules for an authenticated caller ([`AdminSession`]) and caps on everything an
//!   account stores; expired tokens are purged after a retention. Changes take effect on the
//!   next request.
//! - [`store`]: the pluggable async [`TokenStore`](store::TokenStore): in memory, SQLite or
//!   PostgreSQL (features `sqlite`, `postgres`).
//! - [`middleware`]: [`RequireLayer`](middleware::RequireLayer) (403 `forbidden` unless a
//!   role or permission is held), [`TokenConcurrencyLimitLayer`](middleware::TokenConcurrencyLimitLayer)
//!   (N in flight per token), [`RateLimitLayer`](middleware::RateLimitLayer) (quotas per
//!   account or token), and the rejection responses.
//! - [`shared`]: for many replicas, the limits, failure windows and verified secrets kept in
//!   one shared state (Redis with the `redis` feature), each falling back to the process's own
//!   when it does not answer.
//!
//! [Finout]: https://www.finout.io
//!
//! # Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{convert::Infallible, sync::Arc};
//! use finout_auth::{
//!     AuthLayer, Authenticator, NewToken, Principal, Role, TokenAdmin,
//!     CLIENT_ID_HEADER, SECRET_KEY_HEADER, store::MemoryTokenStore,
//! };
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // One store, one authenticator (cache + counters), one admin that invalidates it.
//! let store = Arc::new(MemoryTokenStore::new());
//! let authenticator = Authenticator::new(store.clone());
//! let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
//!
//! let account = admin.create_account("Acme").await?;
//! let issued = admin
//!     .issue_api_token(account.id, None, NewToken::new("billing export", Role::ReadOnly))
//!     .await?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(authenticator))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let principal = request.extensions().get::<Principal>().unwrap();
//!         // The secret never reaches the inner service.
//!         assert!(request.headers().get("x-finout-secret-key").is_none());
//!         Ok::<_, Infallible>(Response::new(principal.account_id().to_string()))
//!     }));
//!
//! let request = Request::builder()
//!     .header(CLIENT_ID_HEADER, issued.client_id.as_str())
//!     .header(SECRET_KEY_HEADER, issued.secret_key.expose_secret())
//!     .body(String::new())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! Dependencies point one way, from the request down to the data:
//!
//! | module | what |
//! | --- | --- |
//! | [`middleware`] | the tower layers, rejection responses, axum extractors |
//! | `admin` ([`TokenAdmin`]) | issuing and revoking tokens, managing users, Finout's rules |
//! | `authenticator` ([`Authenticator`]) | the engine: cache, store lookups, known secrets, background refresh, throttle, verification |
//! | [`store`] | the store traits and the memory, SQLite and PostgreSQL stores |
//! | [`crypto`] | argon2id hashing and its bounded thread pools, keyed digests, credential generation |
//! | [`model`] | ids, roles, accounts and users, secrets, tokens, principals |
//! | [`clock`], [`metrics`], `error`, `credentials` | shared by all of the above |
//!
//! # Errors
//!
//! Rejections carry a fixed code ([`ErrorCode`]) and the body
//! `{"error": "<code>", "message": "<text>", "requestId": "<uuid>"}`:
//!
//! | code | status | when |
//! | --- | --- | --- |
//! | `missing_credentials` | 401 | one or both headers absent |
//! | `malformed_credentials` | 401 | duplicate header, empty, over 256 bytes, bytes outside visible ASCII |
//! | `invalid_credentials` | 401 | unknown id, wrong secret, revoked, deleted, user removed |
//! | `token_expired` | 401 | right secret, past its expiry |
//! | `forbidden` | 403 | authenticated, but the role does not allow it |
//! | `too_many_attempts` | 429 | failure throttle for a client id |
//! | `too_many_requests` | 429 | a rate or concurrency limit |
//! | `auth_busy` | 503 | no verification capacity in time |
//! | `auth_unavailable` | 503 | the store failed (fail closed) |
//! | `internal_error` | 500 | a server bug: no `AuthLayer` where a `Principal` is needed |
//!
//! # Features
//!
//! | feature | adds |
//! | --- | --- |
//! | `axum` | `Principal` / `Option<Principal>` extractors, `AuthError` and `AdminError: IntoResponse` |
//! | `sqlite` | [`store::SqliteTokenStore`], an embedded SQLite file |
//! | `postgres` | [`store::PostgresTokenStore`], shared by replicas, with a change feed |
//! | `testing` | [`testing`]: the store conformance suite, for your own stores |
//! | `metrics` | counters through the [`metrics`](https://docs.rs/metrics) facade |
//! | `tonic` | `middleware::GrpcRejection` (gRPC statuses for rejections), `From<&AuthError> for tonic::Status` |
//! | `thread-priority` | argon2 threads at the lowest OS priority ([`AuthenticatorBuilder::low_priority_verification`]) |
//! | `redis` | `shared::RedisShared`: rate limits, in-flight slots, failure windows and verified secrets shared by replicas |
//!
//! # Public dependencies
//!
//! These crates appear in this crate's API, so a new major version of any of them is a
//! breaking change here. Those you name to implement or call something are re-exported:
//!
//! | crate | where | re-exported as |
//! | --- | --- | --- |
//! | `http` 1 | requests, responses and headers throughout | [`http`] |
//! | `bytes` 1, `http-body-util` 0.1 | [`RejectionResponse`](middleware::RejectionResponse) answers `http::Response<Full<Bytes>>` | [`bytes`], [`http_body_util`] |
//! | `sqlx` 0.8 (`sqlite`, `postgres`) | the stores' `from_pool` and `pool` | `sqlx` |
//! | `http-body` 1, `tower-layer` / `tower-service` 0.3 | [`AuthBody`](middleware::AuthBody) is a `Body`; the layers and services | — |
//! | `async-trait` 0.1, `time` 0.3, `uuid` 1, `serde` 1 | implementing a [`TokenStore`](store::TokenStore); [`clock::Clock`] and token times; the ids; the model's serde impls | — |
//! | `axum-core` 0.5 (`axum`) | the extractors | — |
//! | `tonic` 0.14 (`tonic`) | `GrpcRejection`'s answers, `AuthError` and `AdminError` as `tonic::Status` | `tonic` |

#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod authenticator;
pub mod client;
pub mod clock;
mod credentials;
pub mod crypto;
mod error;
pub mod metrics;
pub mod middleware;
pub mod model;
pub mod shared;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use admin::{TokenAdmin, error::AdminError, session::AdminSession, validate::InvalidRequest};
pub use authenticator::{Authenticator, builder::AuthenticatorBuilder, wiring::Wiring};
pub use credentials::{CLIENT_ID_HEADER, Credentials, MAX_CREDENTIAL_LEN, SECRET_KEY_HEADER};
pub use error::{AuthError, ErrorCode, MalformedReason, StoreError};
pub use middleware::auth::AuthLayer;
pub use model::{
    id::{AccountId, ClientId, UserId},
    principal::Principal,
    role::Role,
    secret::SecretKey,
    token::{IssuedToken, NewToken},
};

/// The `bytes` crate, for [`RejectionResponse`](middleware::RejectionResponse) bodies.
pub use bytes;
/// The `http` crate: the requests, responses and headers of the whole API.
pub use http;
/// The `http-body-util` crate, for [`RejectionResponse`](middleware::RejectionResponse) bodies
/// (`Full`).
pub use http_body_util;
/// The `sqlx` crate, for the SQL stores' `from_pool` and `pool`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sqlx;
/// The `tonic` crate, for [`GrpcRejection`](middleware::GrpcRejection) and the
/// `AuthError` and `AdminError` conversions to `tonic::Status`.
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use tonic;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
