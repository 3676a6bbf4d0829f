//! The domain, as plain data: ids, roles and permissions, accounts and users, secrets,
//! tokens and principals. Nothing here does I/O or knows about requests; every other module
//! builds on it.
//!
//! The items every user names ([`Principal`], [`Role`], the
//! ids, [`NewToken`], [`IssuedToken`],
//! [`SecretKey`]) are at the crate root; the rest is here.

pub(crate) mod account;
pub(crate) mod id;
pub(crate) mod permission;
pub(crate) mod principal;
mod requirement;
pub(crate) mod role;
pub(crate) mod secret;
pub(crate) mod token;

pub use account::{Account, DataAccess, IdSet, MAX_ACCOUNT_NAME_LEN, MAX_ROLES_PER_USER, User};
pub use permission::{MAX_PERMISSION_LEN, Permission};
pub use principal::{AccountPrincipal, UserPrincipal};
pub use requirement::Requirement;
pub use role::{CustomRole, MAX_ROLE_NAME_LEN, MAX_ROLE_PERMISSIONS, UnknownRole};
pub use secret::SecretHash;
pub use token::{
    MAX_DESCRIPTION_LEN, MAX_ROTATION_GRACE, PreviousSecret, TokenInfo, TokenKind, TokenRecord,
};

// At the crate root for users; here for the crate's own imports.
pub(crate) use id::{AccountId, ClientId, UserId};
pub(crate) use principal::Principal;
pub(crate) use role::Role;
pub(crate) use secret::SecretKey;
pub(crate) use token::{IssuedToken, NewToken};
