//! [`AdminError`]: what issuing, listing and revoking tokens and managing users report.

use std::time::Duration;

use crate::{crypto::HashError, error::StoreError};

use super::validate::InvalidRequest;

/// An error from issuing, listing or revoking tokens and managing users.
///
/// Each answers one stable [`code`](AdminError::code) and [`status`](AdminError::status);
/// with the `axum` feature it is a response (the JSON
/// [`ErrorBody`](crate::middleware::ErrorBody)), with `tonic` a `tonic::Status`:
///
/// | error | HTTP | `error` code | gRPC |
/// | --- | --- | --- | --- |
/// | `Forbidden` | 403 | `forbidden` | `PERMISSION_DENIED` |
/// | `NotFound`, `Store(NotFound)` | 404 | `not_found` | `NOT_FOUND` |
/// | `Invalid` | 400 | `invalid_request` | `INVALID_ARGUMENT` |
/// | `LimitReached`, `Store(LimitReached)` | 409 | `limit_reached` | `FAILED_PRECONDITION` |
/// | `Store(Conflict)` | 409 | `conflict` | `ALREADY_EXISTS` |
/// | `Busy` | 503, `Retry-After` | `auth_busy` | `UNAVAILABLE`, `retry-after` |
/// | `Store(Backend)` | 503, `Retry-After: 1` | `auth_unavailable` | `UNAVAILABLE`, `retry-after` |
/// | `Hash` | 500 | `internal_error` | `INTERNAL` |
///
/// A cap is `limit_reached`, not finout-mock's `conflict`: the client must free a slot
/// (revoke a token, remove a user), where a conflict asks for another key. A cap is
/// `FAILED_PRECONDITION` rather than `RESOURCE_EXHAUSTED`, which the crate answers for rate
/// limits: clients retry those after a wait, and a cap does not clear by waiting.
///
/// Store failures and hashing failures answer a fixed message; their detail is logged at
/// `WARN` (target `finout_auth`), never sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The acting principal may not do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The token, user or account does not exist (in the actor's account).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The request is not valid (bad role, bad expiry, empty description...).
    #[error("invalid request: {0}")]
    Invalid(InvalidRequest),
    /// A cap on how many of something the account or user may hold is reached: live tokens
    /// per user or per account ([`TokenLimits`](crate::store::TokenLimits)), users per
    /// account ([`UserLimits`](crate::store::UserLimits)). The text names the cap; revoke a
    /// token or remove a user first.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// No hashing capacity in time: try again after `retry_after`.
    #[error("busy: retry later")]
    Busy {
        /// When to try again.
        retry_after: Duration,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing the new secret failed.
    #[error("issuing the token failed")]
    Hash(#[source] HashError),
}

impl From<InvalidRequest> for AdminError {
    fn from(why: InvalidRequest) -> Self {
        AdminError::Invalid(why)
    }
}
