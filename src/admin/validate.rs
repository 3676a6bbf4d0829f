//! What an admin request must satisfy before it reaches the store, and what it answers when it
//! does not ([`InvalidRequest`]).

use time::{Duration, OffsetDateTime};

use crate::model::{
    DataAccess, MAX_ACCOUNT_NAME_LEN, MAX_DESCRIPTION_LEN, MAX_PERMISSION_LEN, MAX_ROLE_NAME_LEN,
    MAX_ROLE_PERMISSIONS, MAX_ROLES_PER_USER, MAX_ROTATION_GRACE, Permission, Role, User,
};
use crate::store::UserUpdate;

/// The longest email accepted, in bytes (RFC 5321's limit).
const MAX_EMAIL_LEN: usize = 320;
/// The longest local part (before the `@`), in bytes (RFC 5321).
const MAX_LOCAL_LEN: usize = 64;
/// The longest domain label, in bytes (RFC 1035).
const MAX_LABEL_LEN: usize = 63;
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
    /// A user's email is not an address this crate accepts.
    #[error(
        "email must be an ASCII address local@domain.tld of at most {MAX_EMAIL_LEN} bytes, \
         without spaces, control characters or quoting"
    )]
    Email,
    /// A data access restriction on a user holding `Admin`.
    #[error("a user holding Admin sees all data: their data access cannot be restricted")]
    AdminDataAccess,
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
    /// A user holding too many roles.
    #[error("a user holds at most {MAX_ROLES_PER_USER} roles")]
    TooManyRoles,
    /// A custom role whose name is empty, too long, has control characters, or is a
    /// predefined role's.
    #[error(
        "a custom role's name must be 1-{MAX_ROLE_NAME_LEN} bytes without control characters, \
         and not a predefined role's"
    )]
    RoleName,
    /// A custom role listing too many permissions.
    #[error("a custom role lists at most {MAX_ROLE_PERMISSIONS} permissions")]
    TooManyPermissions,
    /// A permission pattern that is too long or not dot-separated visible ASCII.
    #[error(
        "a permission must be 1-{MAX_PERMISSION_LEN} bytes of visible ASCII, in dot-separated \
         segments none of which is empty"
    )]
    Permission,
    /// An account name that is empty or too long.
    #[error("an account name must be 1-{MAX_ACCOUNT_NAME_LEN} bytes, not only spaces")]
    AccountName,
    /// A rotation's grace longer than [`MAX_ROTATION_GRACE`] (7 days).
    #[error("a rotation's grace is at most 7 days (604800 seconds)")]
    RotationGrace,
}

/// When a rotation's replaced secret stops working: `None` for no grace, else `now + grace`,
/// if the grace is at most [`MAX_ROTATION_GRACE`].
pub(super) fn grace_end(
    now: OffsetDateTime,
    grace: std::time::Duration,
) -> Result<Option<OffsetDateTime>, InvalidRequest> {
    if grace.is_zero() {
        return Ok(None);
    }
    let grace = Duration::try_from(grace).map_err(|_| InvalidRequest::RotationGrace)?;
    if grace > MAX_ROTATION_GRACE {
        return Err(InvalidRequest::RotationGrace);
    }
    now.checked_add(grace)
        .map(Some)
        .ok_or(InvalidRequest::RotationGrace)
}

pub(super) fn check_description(description: &str) -> Result<(), InvalidRequest> {
    if description.trim().is_empty() || description.len() > MAX_DESCRIPTION_LEN {
        return Err(InvalidRequest::Description);
    }
    Ok(())
}

/// A user's email as stored and compared: surrounding whitespace trimmed, lowercased, and
/// checked to be a plain ASCII address (`local@domain.tld`, RFC 5321 lengths, dot-atom
/// local part, letter-digit-hyphen domain labels). Non-ASCII addresses are refused rather
/// than compared: look-alike characters would make one person two users.
pub(crate) fn normalize_email(email: &str) -> Result<String, InvalidRequest> {
    let email = email.trim_matches(|c: char| c.is_ascii_whitespace());
    if email.len() > MAX_EMAIL_LEN || !email.is_ascii() {
        return Err(InvalidRequest::Email);
    }
    let email = email.to_ascii_lowercase();
    let (local, domain) = email.split_once('@').ok_or(InvalidRequest::Email)?;
    let local_ok = (1..=MAX_LOCAL_LEN).contains(&local.len())
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b))
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=MAX_LABEL_LEN).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(InvalidRequest::Email)
    }
}

/// A user holding `Admin` sees all data.
pub(super) fn check_admin_data_access(
    roles: &[Role],
    access: &DataAccess,
) -> Result<(), InvalidRequest> {
    if *access != DataAccess::All && roles.iter().any(|r| r.covers(&Role::Admin)) {
        return Err(InvalidRequest::AdminDataAccess);
    }
    Ok(())
}

/// Whether `update` leaves `user` with no role they do not hold now and no data they do not
/// see now: what a user may do to themselves.
pub(super) fn only_narrows(user: &User, update: &UserUpdate) -> bool {
    let roles_ok = update
        .roles
        .as_ref()
        .is_none_or(|roles| roles.iter().all(|r| user.holds(r)));
    let access_ok = update
        .data_access
        .as_ref()
        .is_none_or(|access| access.is_within(&user.data_access));
    roles_ok && access_ok
}

/// A user's roles: at least one, at most [`MAX_ROLES_PER_USER`], each within the custom
/// role caps.
pub(super) fn check_roles(roles: &[Role]) -> Result<(), InvalidRequest> {
    if roles.is_empty() {
        return Err(InvalidRequest::NoRoles);
    }
    if roles.len() > MAX_ROLES_PER_USER {
        return Err(InvalidRequest::TooManyRoles);
    }
    roles.iter().try_for_each(check_role)
}

/// A role within the caps: a custom role's name and permissions bounded (what one user may
/// store is bounded by the product of the caps).
pub(super) fn check_role(role: &Role) -> Result<(), InvalidRequest> {
    let Role::Custom(custom) = role else {
        return Ok(());
    };
    let name = &*custom.name;
    if name.trim().is_empty()
        || name.len() > MAX_ROLE_NAME_LEN
        || name.chars().any(char::is_control)
        || Role::PREDEFINED.iter().any(|r| r.name() == name)
    {
        return Err(InvalidRequest::RoleName);
    }
    if custom.permissions.len() > MAX_ROLE_PERMISSIONS {
        return Err(InvalidRequest::TooManyPermissions);
    }
    custom.permissions.iter().try_for_each(check_permission)
}

fn check_permission(permission: &Permission) -> Result<(), InvalidRequest> {
    let p = &*permission.0;
    let visible = |b: u8| b.is_ascii_graphic();
    if p.len() > MAX_PERMISSION_LEN || !p.bytes().all(visible) || p.split('.').any(str::is_empty) {
        return Err(InvalidRequest::Permission);
    }
    Ok(())
}

pub(super) fn check_account_name(name: &str) -> Result<(), InvalidRequest> {
    if name.trim().is_empty() || name.len() > MAX_ACCOUNT_NAME_LEN {
        return Err(InvalidRequest::AccountName);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_plain_ascii_addresses() {
        for (given, stored) in [
            ("alice@acme.test", "alice@acme.test"),
            ("  Alice@ACME.test\t", "alice@acme.test"),
            ("a.b+tag@sub.acme-corp.io", "a.b+tag@sub.acme-corp.io"),
        ] {
            assert_eq!(normalize_email(given).as_deref(), Ok(stored), "{given:?}");
        }
        let too_long = format!("{}@acme.test", "a".repeat(65));
        for bad in [
            "",
            "   ",
            "alice",
            "alice@",
            "@acme.test",
            "alice@acme",
            "alice@@acme.test",
            "al ice@acme.test",
            "alice\u{0}@acme.test",
            "alice@acme.test\r\nBcc: x@y.z",
            "al\u{7f}ice@acme.test",
            "аlice@acme.test", // Cyrillic а
            "alice@acme..test",
            ".alice@acme.test",
            "alice.@acme.test",
            "alice@-acme.test",
            "\"alice\"@acme.test",
            too_long.as_str(),
        ] {
            assert_eq!(normalize_email(bad), Err(InvalidRequest::Email), "{bad:?}");
        }
    }

    #[test]
    fn admin_implies_all_data_and_self_updates_only_narrow() {
        let only = DataAccess::only(["v1"]);
        assert_eq!(
            check_admin_data_access(&[Role::Admin], &only),
            Err(InvalidRequest::AdminDataAccess)
        );
        assert_eq!(
            check_admin_data_access(&[Role::Admin], &DataAccess::All),
            Ok(())
        );
        assert_eq!(check_admin_data_access(&[Role::ReadOnly], &only), Ok(()));

        let mut user = User::new(
            crate::model::UserId::new_v4(),
            crate::model::AccountId::new_v4(),
            "u@acme.test",
            vec![Role::ReadOnly],
        );
        user.data_access = DataAccess::only(["v1", "v2"]);
        let narrows = |u: UserUpdate| only_narrows(&user, &u);
        assert!(narrows(
            UserUpdate::default().data_access(DataAccess::only(["v1"]))
        ));
        assert!(!narrows(UserUpdate::default().data_access(DataAccess::All)));
        assert!(!narrows(
            UserUpdate::default().data_access(DataAccess::only(["v3"]))
        ));
        assert!(narrows(UserUpdate::default().roles(vec![Role::ReadOnly])));
        assert!(!narrows(UserUpdate::default().roles(vec![Role::Admin])));
    }
}
