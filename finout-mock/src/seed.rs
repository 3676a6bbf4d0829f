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
//! Loading hashes the secrets with argon2id and is idempotent: what already exists (same
//! id) is left as it is. Errors name the offending field.

use serde::Deserialize;
use time::OffsetDateTime;

use finout_auth::{
    AccountId, AdminError, ClientId, Credentials, Role, SecretKey, TokenAdmin, UserId,
    crypto::SecretHasher,
    model::{Account, DataAccess, TokenKind, TokenRecord, User},
    store::TokenLimits,
};

use crate::fixtures::{self, View};

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

/// A seed file that cannot be used; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Not JSON, or not the seed's shape.
    #[error("invalid seed: {0}")]
    Parse(serde_json::Error),
    /// A field's value is not acceptable.
    #[error("invalid seed: {field}: {reason}")]
    Field {
        /// Where, e.g. `accounts[0].tokens[1].user`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The store refused.
    #[error("loading the seed failed: {0}")]
    Admin(#[from] AdminError),
}

impl Seed {
    /// Parse a seed from JSON text.
    pub fn parse(json: &str) -> Result<Self, SeedError> {
        let seed: Seed = serde_json::from_str(json).map_err(SeedError::Parse)?;
        seed.check()?;
        Ok(seed)
    }

    fn check(&self) -> Result<(), SeedError> {
        let bad = |field: String, reason: &str| {
            Err(SeedError::Field {
                field,
                reason: reason.to_owned(),
            })
        };
        for (a, account) in self.accounts.iter().enumerate() {
            let views = account
                .views
                .as_ref()
                .map(|views| {
                    views
                        .iter()
                        .map(|v| v.id.clone())
                        .collect::<std::collections::HashSet<_>>()
                })
                .unwrap_or_else(|| {
                    fixtures::default_views(account.id)
                        .into_iter()
                        .map(|v| v.id)
                        .collect()
                });
            for (u, user) in account.users.iter().enumerate() {
                for (i, id) in user
                    .data_access
                    .ids()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    if !views.contains(*id) {
                        return bad(
                            format!("accounts[{a}].users[{u}].dataAccess[{i}]"),
                            "no view of this account has that id",
                        );
                    }
                }
            }
            for (t, token) in account.tokens.iter().enumerate() {
                let at = |name: &str| format!("accounts[{a}].tokens[{t}].{name}");
                for (name, value) in [
                    ("clientId", &token.client_id),
                    ("secretKey", &token.secret_key),
                ] {
                    if Credentials::new(value, "x").is_err() {
                        return bad(at(name), "must be 1-256 visible ASCII characters");
                    }
                }
                match (token.kind, &token.user) {
                    (TokenKind::Api, Some(_)) => {
                        return bad(at("user"), "an API token has no user");
                    }
                    (TokenKind::Personal, None) => {
                        return bad(at("user"), "a personal token names its user's email");
                    }
                    (TokenKind::Personal, Some(email))
                        if !account.users.iter().any(|u| &u.email == email) =>
                    {
                        return bad(at("user"), "no user of this account has that email");
                    }
                    _ => {}
                }
            }
        }
        Ok(())
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

    /// Load into `admin`'s store. Idempotent: existing accounts, users and tokens (by id)
    /// are left alone.
    pub async fn load(&self, admin: &TokenAdmin, hasher: &SecretHasher) -> Result<(), SeedError> {
        let store = admin.store();
        for account in &self.accounts {
            if store
                .get_account(account.id)
                .await
                .map_err(AdminError::from)?
                .is_none()
            {
                store
                    .insert_account(Account {
                        id: account.id,
                        name: account.name.clone(),
                    })
                    .await
                    .map_err(AdminError::from)?;
            }
            for user in &account.users {
                if store
                    .get_user(account.id, user.id)
                    .await
                    .map_err(AdminError::from)?
                    .is_none()
                {
                    let mut new =
                        User::new(user.id, account.id, user.email.clone(), user.roles.clone());
                    new.data_access = user.data_access.clone();
                    store.insert_user(new).await.map_err(AdminError::from)?;
                }
            }
            for token in &account.tokens {
                let client_id = ClientId::from(token.client_id.as_str());
                if store
                    .find_token(&client_id)
                    .await
                    .map_err(AdminError::from)?
                    .is_some()
                {
                    continue;
                }
                let user = token
                    .user
                    .as_ref()
                    .and_then(|email| account.users.iter().find(|u| &u.email == email))
                    .map(|u| u.id);
                let hash = hasher
                    .hash_async(&SecretKey::new(token.secret_key.as_str()))
                    .await
                    .map_err(AdminError::Hash)?;
                let record = TokenRecord::new(
                    client_id,
                    token.kind,
                    account.id,
                    user,
                    token.description.clone(),
                    token.role.clone(),
                    hash,
                    OffsetDateTime::now_utc(),
                    token.expires_at,
                    None,
                );
                // Seeds are trusted set-up: the caps apply to issuing, not to what an
                // operator seeds.
                store
                    .insert_token(record, TokenLimits::unlimited())
                    .await
                    .map_err(AdminError::from)?;
            }
        }
        Ok(())
    }
}
