//! axum integration (feature `axum`): [`Principal`] and `Option<Principal>` extractors, and
//! [`AuthError`] and [`AdminError`] as responses.
//!
//! ```
//! use axum::{Router, routing::get};
//! use finout_auth::Principal;
//!
//! async fn whoami(principal: Principal) -> String {
//!     format!("account {}", principal.account_id())
//! }
//!
//! async fn maybe(principal: Option<Principal>) -> &'static str {
//!     if principal.is_some() { "signed in" } else { "anonymous" }
//! }
//!
//! let app: Router = Router::new().route("/whoami", get(whoami)).route("/maybe", get(maybe));
//! ```
//!
//! Extracting `Principal` where no [`AuthLayer`](crate::AuthLayer) ran is a server bug, and
//! answers a clear 500 ([`AuthError::LayerMissing`], `internal_error`) rather than a silent
//! default. Behind [`AuthLayer::optional`](crate::AuthLayer::optional), a request without
//! credentials has no principal: `Option<Principal>` is `None`, and `Principal` answers 401
//! `missing_credentials`.

use axum_core::{
    body::Body,
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::request::Parts;

use super::{
    auth::Anonymous,
    rejection::{error_body_response, json_error_response},
};
use crate::{admin::error::AdminError, error::AuthError, model::Principal};

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(principal.clone()),
            // An optional `AuthLayer` let a request without credentials through.
            None if parts.extensions.get::<Anonymous>().is_some() => {
                Err(AuthError::MissingCredentials)
            }
            None => {
                tracing::error!(target: "finout_auth", "{}", AuthError::LayerMissing);
                Err(AuthError::LayerMissing)
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// Handlers can return `Err(AuthError::Forbidden)` and get the standard JSON rejection.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        json_error_response(&self).map(Body::new)
    }
}

/// Handlers can return `Result<_, AdminError>`: the status, `Retry-After` where meaningful,
/// and the JSON [`ErrorBody`](super::ErrorBody) with [`AdminError::code`] and
/// [`AdminError::message`] (see the table in [`AdminError`]'s docs).
impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        self.log_failure();
        error_body_response(
            self.status(),
            self.code(),
            &self.message(),
            self.retry_after(),
        )
        .map(Body::new)
    }
}
