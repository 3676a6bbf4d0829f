//! What an admin request must satisfy before it reaches the store, and what it answers when it
//! does not ([`InvalidRequest`]).

use time::{Duration, OffsetDateTime};

use crate::model::{DataAccess, MAX_DESCRIPTION_LEN, Role};

/// The longest email accepted, in bytes (RFC 5321's limit).
const MAX_EMAIL_LEN: usize = 320;
/// The most ids a user's data access may list.
const MAX_DATA_ACCESS_IDS: usize = 1_000;
/// The longest id a user's data access may list, in bytes.
const MAX_DATA_ACCESS_ID_LEN: usize = 256;

/// Why an admin request was refused before anything was stored: callers can match on it, and
/// its text is safe to show to whoever made the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// A token's description is empty or too long.
    #[error("description must be 1-{MAX_DESCRIPTION_LEN} bytes")]
    Description,
    /// A user's email is empty or too long.
    #[error("email must be 1-{MAX_EMAIL_LEN} characters")]
    Email,
    /// A user without any role.
    #[error("a user needs at least one role")]
    NoRoles,
    /// A data access listing too many ids.
    #[error("data access lists at most {MAX_DATA_ACCESS_IDS} ids")]
    TooManyDataAccessIds,
    /// A data access id that is empty or too long.
    #[error("data access ids must be 1-{MAX_DATA_ACCESS_ID_LEN} characters")]
    DataAccessId,
    /// A token lifetime of zero or less.
    #[error("expiry must be in the future")]
    ExpiryNotInFuture,
    /// A token lifetime beyond what a timestamp can hold.
    #[error("expiry is too far in the future")]
    ExpiryTooFar,
}

pub(super) fn check_description(description: &str) -> Result<(), InvalidRequest> {
    if description.trim().is_empty() || description.len() > MAX_DESCRIPTION_LEN {
        return Err(InvalidRequest::Description);
    }
    Ok(())
}

pub(super) fn check_email(email: &str) -> Result<(), InvalidRequest> {
    if email.trim().is_empty() || email.len() > MAX_EMAIL_LEN {
        return Err(InvalidRequest::Email);
    }
    Ok(())
}

pub(super) fn check_roles(roles: &[Role]) -> Result<(), InvalidRequest> {
    if roles.is_empty() {
        return Err(InvalidRequest::NoRoles);
    }
    Ok(())
}

pub(super) fn check_data_access(access: &DataAccess) -> Result<(), InvalidRequest> {
    let ids = access.ids().unwrap_or_default();
    if ids.len() > MAX_DATA_ACCESS_IDS {
        return Err(InvalidRequest::TooManyDataAccessIds);
    }
    if ids
        .iter()
        .any(|id| id.is_empty() || id.len() > MAX_DATA_ACCESS_ID_LEN)
    {
        return Err(InvalidRequest::DataAccessId);
    }
    Ok(())
}

/// When a token issued `now` to live `lifetime` (`None`: forever) expires.
pub(super) fn expiry(
    now: OffsetDateTime,
    lifetime: Option<Duration>,
) -> Result<Option<OffsetDateTime>, InvalidRequest> {
    match lifetime {
        None => Ok(None),
        Some(d) if d.is_positive() => now
            .checked_add(d)
            .map(Some)
            .ok_or(InvalidRequest::ExpiryTooFar),
        Some(_) => Err(InvalidRequest::ExpiryNotInFuture),
    }
}
