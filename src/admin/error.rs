//! [`AdminError`]: what issuing, listing and revoking tokens and managing users report.

use std::time::Duration;

use crate::{crypto::HashError, error::StoreError};

use super::validate::InvalidRequest;

/// An error from issuing, listing or revoking tokens and managing users.
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
