//! Seed files: accounts, users and tokens (with their plaintext secrets) to load into a
//! store, so that a test suite knows its credentials in advance.
//!
//! ```json
//! {
//!   "accounts": [{
//!     "id": "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d",
//!     "name": "Acme",
//!     "views": [{"id": "v-1", "name": "Everything"}, {"id": "v-2", "name": "EKS"}],
//!     "users": [
//!       {"id": "5b0c…", "email": "ops@acme.test", "roles": ["Admin"]},
//!       {"id": "8e1d…", "email": "dev@acme.test", "roles": ["Basic"], "dataAccess": ["v-2"]}
//!     ],
//!     "tokens": [
//!       {"clientId": "ci-reader", "secretKey": "s3cret-s3cret", "type": "api",
//!        "role": "Read-only", "description": "CI", "expiresAt": null},
//!       {"clientId": "ops-laptop", "secretKey": "an0ther-s3cret", "type": "personal",
//!        "user": "ops@acme.test", "role": "Admin", "description": "laptop",
//!        "expiresAt": "2030-01-01T00:00:00Z"}
//!     ]
//!   }]
//! }
//! ```
//!
//! A user's `dataAccess` lists the view ids their personal tokens may see (absent or `null`:
//! all of the account's); each must be one of the account's views (its `views`, or the
//! default fixture views when it declares none).
//!
//! A seed is all or nothing. [`Seed::parse`] checks it whole, by the admin API's rules:
//! account, user and client ids unique across the seed, emails (as the admin API normalizes
//! them, see [`TokenAdmin::normalize_email`]) unique within an account, every user with at
//! least one role, a user holding `Admin` with all data, a personal token naming a user of
//! its account and a role within that user's roles, an API token naming no user.
//! [`Seed::load`] then checks it against the store (a user id or client id already there
//! for another account, user or email is refused) and writes what is new in one
//! transaction. Every problem found is reported with its field path, e.g.
//! `accounts[1].users[0].id`, and nothing is written.
//!
//! Loading hashes the secrets with argon2id and is idempotent: an account, user (same id,
//! account and email) or token (same client id, account and user) already in the store is
//! left as it is, with its roles, secret and expiry as they are there.
//!
//! A seed never resurrects what was removed on purpose. With a database of the mock's
//! (`Seed::load_with_ledger`, features `sqlite` or `postgres`, which the binary uses), every
//! account, user and token id of the seed that a load finds in the store or writes there is
//! remembered (the table `finout_mock_seeded`). A later load does not re-create one of
//! those that is gone from the store — a token revoked (or purged once expired), a user
//! removed with their personal tokens — nor what belongs to it (a gone user's personal
//! tokens, a gone account's users and tokens); it logs at INFO how many it skipped. An id
//! the store never had through a seed, e.g. a token added to the seed file later, is created
//! as usual. To bring one back, give it a new id. A memory store has no restart, so
//! [`Seed::load`] remembers nothing.
//!
//! Loading is safe from several processes at once on one store (replicas starting with one
//! seed): a load that finds its writes taken by another's is tried again, and then finds
//! everything there.

mod check;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod ledger;
// Without a database there is nothing to remember what seeds created in.
#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
#[path = "no_ledger.rs"]
mod ledger;
mod load;

use std::fmt;

use serde::Deserialize;
use time::OffsetDateTime;

use finout_auth::{
    AccountId, AdminError, Role, TokenAdmin, UserId,
    model::{DataAccess, TokenKind},
};

use crate::fixtures::View;

/// A parsed seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// The accounts to create.
    pub accounts: Vec<SeedAccount>,
}

/// One account of a seed, with its users and tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedAccount {
    /// The account id.
    pub id: AccountId,
    /// Its name.
    pub name: String,
    /// Views replacing the default fixture views.
    #[serde(default)]
    pub views: Option<Vec<SeedView>>,
    /// Its users.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Its tokens.
    #[serde(default)]
    pub tokens: Vec<SeedToken>,
}

/// A view of a seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedView {
    /// The view id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A user of a seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedUser {
    /// The user id.
    pub id: UserId,
    /// The email, which tokens use to name their user.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// The view ids the user may see (absent or `null`: all of the account's).
    #[serde(default)]
    pub data_access: DataAccess,
}

/// A token of a seed, with its plaintext secret.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedToken {
    /// The client id.
    pub client_id: String,
    /// The secret, in plaintext (hashed on load).
    pub secret_key: String,
    /// `api` or `personal`.
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// For a personal token, its user's email.
    #[serde(default)]
    pub user: Option<String>,
    /// The token's role.
    pub role: Role,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// When it expires (`null`: never).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SeedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedToken")
            .field("client_id", &self.client_id)
            .field("secret_key", &"[redacted]")
            .field("kind", &self.kind)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One problem of a seed: the field, as a path (`accounts[0].tokens[1].user`), and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, e.g. `accounts[0].tokens[1].user`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// How many problems an error's text lists; the rest are counted.
const PROBLEMS_SHOWN: usize = 20;

/// The problems, one a line.
struct Listed<'a>(&'a [Problem]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0.iter().take(PROBLEMS_SHOWN) {
            write!(f, "\n  {problem}")?;
        }
        if self.0.len() > PROBLEMS_SHOWN {
            write!(f, "\n  and {} more", self.0.len() - PROBLEMS_SHOWN)?;
        }
        Ok(())
    }
}

/// A seed that cannot be loaded. Nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// Not JSON, or not the seed's shape.
    #[error("invalid seed: {0}")]
    Parse(serde_json::Error),
    /// Fields whose values are not acceptable, on their own or next to what the store
    /// holds: every one found, in the seed's order.
    #[error("invalid seed:{}", Listed(.0))]
    Invalid(Vec<Problem>),
    /// The store refused or failed.
    #[error("loading the seed failed: {0}")]
    Admin(#[from] AdminError),
    /// The mock's record of what seeds put in the store could not be read or written.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("loading the seed failed: the record of what seeds created: {0}")]
    Ledger(sqlx::Error),
}

/// What a load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loaded {
    /// Accounts, users and tokens written.
    pub created: usize,
    /// Accounts, users and tokens not written: a seed put them in the store before and they
    /// are gone (or they belong to one that is).
    pub skipped: usize,
}

impl SeedError {
    /// The problems found in the seed's fields (empty for the other errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            SeedError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

impl Seed {
    /// Parse a seed from JSON text and check it whole (see the [module docs](self)).
    pub fn parse(json: &str) -> Result<Self, SeedError> {
        let seed: Seed = serde_json::from_str(json).map_err(SeedError::Parse)?;
        seed.check()?;
        Ok(seed)
    }

    fn check(&self) -> Result<(), SeedError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SeedError::Invalid(problems))
        }
    }

    /// The views each seeded account declares (replacing the fixtures).
    pub fn views(&self) -> Vec<(AccountId, Vec<View>)> {
        self.accounts
            .iter()
            .filter_map(|a| {
                let views = a.views.as_ref()?;
                Some((
                    a.id,
                    views
                        .iter()
                        .map(|v| View {
                            id: v.id.clone(),
                            name: v.name.clone(),
                        })
                        .collect(),
                ))
            })
            .collect()
    }
}

impl SeedAccount {
    /// The user whose email is `email`, compared as the admin API compares emails.
    fn user_by_email(&self, email: &str) -> Option<&SeedUser> {
        let email = TokenAdmin::normalize_email(email).ok()?;
        self.users
            .iter()
            .find(|u| TokenAdmin::normalize_email(&u.email).is_ok_and(|e| e == email))
    }
}
