//! Errors shared by every layer of the crate: [`ErrorCode`] (the fixed wire codes),
//! [`AuthError`] (what a request is rejected with) and [`StoreError`] (what a store reports).
//! Errors of one module live beside it (the admin's, the hasher's).

use std::{error::Error as StdError, fmt, time::Duration};

use http::StatusCode;

/// The stable, machine-readable code of a rejection.
///
/// These strings are part of the crate's contract: clients match on them, and the
/// default response body carries them in its `error` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// One or both credential headers are absent.
    MissingCredentials,
    /// A duplicate, empty, too long or non-visible-ASCII credential header.
    MalformedCredentials,
    /// Unknown client id, wrong secret, revoked or deleted token, removed user.
    InvalidCredentials,
    /// The right secret for a token past its expiry.
    TokenExpired,
    /// Authenticated, but the role does not allow the operation.
    Forbidden,
    /// Too many failed attempts for one client id.
    TooManyAttempts,
    /// A rate or concurrency limit.
    TooManyRequests,
    /// No secret-verification capacity right now.
    AuthBusy,
    /// The token store failed; the request is refused (fail closed).
    AuthUnavailable,
    /// The server is misconfigured: a handler or layer that needs the
    /// [`Principal`](crate::Principal) runs where no [`AuthLayer`](crate::AuthLayer) put one.
    /// Answered `500` with the code `internal_error`.
    LayerMissing,
}

impl ErrorCode {
    /// Every code, in the order of the error table.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::MissingCredentials,
        ErrorCode::MalformedCredentials,
        ErrorCode::InvalidCredentials,
        ErrorCode::TokenExpired,
        ErrorCode::Forbidden,
        ErrorCode::TooManyAttempts,
        ErrorCode::TooManyRequests,
        ErrorCode::AuthBusy,
        ErrorCode::AuthUnavailable,
        ErrorCode::LayerMissing,
    ];

    /// The code as it appears on the wire, e.g. `"invalid_credentials"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingCredentials => "missing_credentials",
            ErrorCode::MalformedCredentials => "malformed_credentials",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::AuthBusy => "auth_busy",
            ErrorCode::AuthUnavailable => "auth_unavailable",
            ErrorCode::LayerMissing => "internal_error",
        }
    }

    /// The HTTP status this code is answered with.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorCode::MissingCredentials
            | ErrorCode::MalformedCredentials
            | ErrorCode::InvalidCredentials
            | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::TooManyAttempts | ErrorCode::TooManyRequests => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorCode::AuthBusy | ErrorCode::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short human-readable explanation, safe to show to any client.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::MissingCredentials => {
                "Both x-finout-client-id and x-finout-secret-key headers are required."
            }
            ErrorCode::MalformedCredentials => {
                "Credential headers must appear once, with 1-256 visible ASCII characters."
            }
            ErrorCode::InvalidCredentials => "The client id or secret key is not valid.",
            ErrorCode::TokenExpired => "This token has expired; generate a new one.",
            ErrorCode::Forbidden => "This token's role does not allow the operation.",
            ErrorCode::TooManyAttempts => "Too many failed attempts for this client id.",
            ErrorCode::TooManyRequests => "Too many requests; slow down.",
            ErrorCode::AuthBusy => "Authentication is busy; retry shortly.",
            ErrorCode::AuthUnavailable => "Authentication is unavailable; retry shortly.",
            ErrorCode::LayerMissing => "authentication layer missing",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was not authenticated (or not authorized).
///
/// The `Display` text is meant for logs; clients only ever see [`AuthError::code`] and its
/// fixed message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// One or both credential headers are absent.
    #[error("missing credentials")]
    MissingCredentials,
    /// A credential header is present but not acceptable.
    #[error("malformed credentials: {0}")]
    MalformedCredentials(MalformedReason),
    /// Unknown id, wrong secret, revoked, deleted or owner removed: deliberately one answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The secret was right but the token is past its expiry.
    #[error("token expired")]
    TokenExpired,
    /// The principal lacks the role or permission required.
    #[error("forbidden")]
    Forbidden,
    /// Too many failed attempts for this client id.
    #[error("too many failed attempts")]
    TooManyAttempts {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// A rate or concurrency limit was hit.
    #[error("too many requests")]
    TooManyRequests {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// No verification capacity became free in time.
    #[error("authentication busy")]
    AuthBusy {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// The token store failed.
    #[error("token store unavailable")]
    AuthUnavailable(#[source] StoreError),
    /// No [`Principal`](crate::Principal) where one is needed: the
    /// [`AuthLayer`](crate::AuthLayer) is not installed outside this handler or layer.
    #[error(
        "no Principal in request extensions: is finout_auth::AuthLayer installed on this route?"
    )]
    LayerMissing,
}

impl AuthError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::MissingCredentials => ErrorCode::MissingCredentials,
            AuthError::MalformedCredentials(_) => ErrorCode::MalformedCredentials,
            AuthError::InvalidCredentials => ErrorCode::InvalidCredentials,
            AuthError::TokenExpired => ErrorCode::TokenExpired,
            AuthError::Forbidden => ErrorCode::Forbidden,
            AuthError::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
            AuthError::TooManyRequests { .. } => ErrorCode::TooManyRequests,
            AuthError::AuthBusy { .. } => ErrorCode::AuthBusy,
            AuthError::AuthUnavailable(_) => ErrorCode::AuthUnavailable,
            AuthError::LayerMissing => ErrorCode::LayerMissing,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// How long the client should wait before retrying, where that is meaningful.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::TooManyAttempts { retry_after }
            | AuthError::TooManyRequests { retry_after }
            | AuthError::AuthBusy { retry_after } => Some(*retry_after),
            AuthError::AuthUnavailable(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// What exactly is wrong with a malformed credential header (for logs only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedReason {
    /// The header appears more than once.
    Duplicate,
    /// The value is empty.
    Empty,
    /// The value is longer than 256 bytes.
    TooLong,
    /// The value holds a byte outside visible ASCII (`0x21..=0x7e`).
    InvalidByte,
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MalformedReason::Duplicate => "header appears more than once",
            MalformedReason::Empty => "empty value",
            MalformedReason::TooLong => "value longer than 256 bytes",
            MalformedReason::InvalidByte => "byte outside visible ASCII",
        })
    }
}

pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error and all its causes, `: `-separated, for logs.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// An error reported by a [`TokenStore`](crate::store::TokenStore).
///
/// Backend errors keep their source (never stringified), so logs can show the full chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record with the same key already exists (e.g. a client id collision).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The referenced account, user or issuing token does not exist.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A cap on the number of tokens (per user or per account) is reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// The backend failed (connection, query, corrupt row...).
    #[error("store backend error")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Wrap any backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        StoreError::Backend(err.into())
    }
}
