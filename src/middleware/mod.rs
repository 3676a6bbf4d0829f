//! Tower middleware, in the order a request meets it:
//!
//! - [`AuthLayer`](crate::AuthLayer) → [`AuthService`]: authenticate, or answer 401/429/503.
//! - [`RequireLayer`] → [`Require`]: a role or permission, or 403 `forbidden`.
//! - [`TokenConcurrencyLimitLayer`] → [`TokenConcurrencyLimit`]: at most N requests in flight
//!   per token, or 429 `too_many_requests`.
//! - [`RateLimitLayer`] → [`RateLimit`]: at most N requests per period per account (or
//!   token), or 429 `too_many_requests` with `Retry-After`.
//!
//! Each answers a rejection through a [`RejectionResponse`] (by default [`JsonRejection`]:
//! the [`ErrorBody`]), its responses carry an [`AuthBody`], and its futures are in
//! [`future`]. The layers after the `AuthLayer` count their rejections into a handle given
//! with `.metrics(..)`, else into the [`Metrics`](crate::metrics::Metrics) of the
//! authenticator that let the request in (its [`Principal`](crate::Principal) carries it);
//! one placed outside every `AuthLayer`, or under a `Principal` built by hand, counts only
//! into a handle given to it. With the `axum` feature, `Principal` and `Option<Principal>`
//! are extractors and [`AuthError`](crate::AuthError) and [`AdminError`](crate::AdminError)
//! are responses.

/// `get_ref`, `get_mut` and `into_inner` for a service whose inner service is `self.inner`.
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consume `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub(crate) mod auth;
#[cfg(feature = "axum")]
mod axum;
mod body;
#[cfg(feature = "tonic")]
mod grpc;
mod limit;
mod rate;
mod rejection;
mod request_id;
mod require;

pub use auth::AuthService;
pub use body::AuthBody;
#[cfg(feature = "tonic")]
pub use grpc::{GrpcRejection, grpc_code};
pub use limit::{TokenConcurrencyLimit, TokenConcurrencyLimitLayer};
// For `MemoryShared`, which decides as this module does.
#[cfg(any(test, feature = "testing"))]
pub(crate) use rate::headers::{standing as rate_standing, tightest as rate_tightest};
pub use rate::{
    DEFAULT_MAX_KEYS, MAX_PERIOD, Quota, RateKey, RateLimit, RateLimitHeaders, RateLimitLayer,
};
pub use rejection::{
    ErrorBody, JsonRejection, RejectionResponse, json_error_response, json_error_response_with_id,
};
pub use request_id::{MAX_REQUEST_ID_LEN, REQUEST_ID_HEADER, RequestId};
pub use require::{Require, RequireLayer};

/// The response futures of the middleware.
pub mod future {
    pub use super::auth::AuthFuture;
    pub use super::limit::LimitFuture;
    pub use super::require::RequireFuture;
}
