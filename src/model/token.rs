//! Tokens: [`TokenKind`], [`TokenRecord`] (what a store keeps), [`TokenInfo`] (what a
//! listing shows), [`NewToken`] (a request to issue one) and [`IssuedToken`] (the answer,
//! with the only copy of the secret).

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{
    id::{AccountId, ClientId, UserId},
    role::Role,
    secret::{SecretHash, SecretKey},
};

/// API token (account-level) or personal token (acts as one user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Account-level, for service-to-service use; created only by Admins.
    Api,
    /// Tied to one user and limited by that user's current roles.
    Personal,
}

impl TokenKind {
    /// `"api"` or `"personal"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Personal => "personal",
        }
    }
}

/// A token as a store keeps it: everything but the secret, which is only a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRecord {
    /// The public id.
    pub client_id: ClientId,
    /// API or personal.
    pub kind: TokenKind,
    /// The owning account.
    pub account_id: AccountId,
    /// The owning user, for a personal token.
    pub user_id: Option<UserId>,
    /// Free text describing what the token is for.
    pub description: String,
    /// The role chosen at creation.
    pub role: Role,
    /// The argon2id hash of the secret.
    pub secret_hash: SecretHash,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When it stops working; `None` = never.
    pub expires_at: Option<OffsetDateTime>,
    /// Who issued it (`None` when issued by the system, e.g. a seed).
    pub created_by: Option<UserId>,
    /// The client id of the token whose request issued it (`None` when issued by the system):
    /// revoking that token, or removing its user, deletes this one too, and this one never
    /// outlives it.
    pub issued_by: Option<ClientId>,
    /// When it was last used, to the resolution of the authenticator's usage interval.
    pub last_used_at: Option<OffsetDateTime>,
    /// The secret replaced by the last rotation, still accepted until its grace ends
    /// (`None`: rotated without a grace, or never rotated).
    pub previous_secret: Option<PreviousSecret>,
    /// When the token was disabled; `None` while it is enabled. A disabled token is kept,
    /// listed and refused (`invalid_credentials`) until it is enabled again.
    pub disabled_at: Option<OffsetDateTime>,
}

/// The secret a rotation replaced: its hash, accepted until `valid_until` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// The argon2id hash of the replaced secret.
    pub hash: SecretHash,
    /// When the grace ends: accepted strictly before.
    pub valid_until: OffsetDateTime,
}

impl TokenRecord {
    /// Build a record. `user_id` must be `Some` exactly for personal tokens.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client_id: ClientId,
        kind: TokenKind,
        account_id: AccountId,
        user_id: Option<UserId>,
        description: impl Into<String>,
        role: Role,
        secret_hash: SecretHash,
        created_at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        created_by: Option<UserId>,
    ) -> Self {
        TokenRecord {
            client_id,
            kind,
            account_id,
            user_id,
            description: description.into(),
            role,
            secret_hash,
            created_at,
            expires_at,
            created_by,
            issued_by: None,
            last_used_at: None,
            previous_secret: None,
            disabled_at: None,
        }
    }

    /// Record the token whose request issued this one.
    #[must_use]
    pub fn with_issuer(mut self, issued_by: Option<ClientId>) -> Self {
        self.issued_by = issued_by;
        self
    }

    /// Whether the token is expired at `now` (expiry is exclusive: valid strictly before).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The replaced secret while its grace lasts at `now`, else `None`.
    pub fn previous_secret_at(&self, now: OffsetDateTime) -> Option<&PreviousSecret> {
        self.previous_secret
            .as_ref()
            .filter(|p| now < p.valid_until)
    }

    /// The replaced secret's hash while its grace lasts at `now`, else `None`.
    pub fn previous_hash_at(&self, now: OffsetDateTime) -> Option<&SecretHash> {
        self.previous_secret_at(now).map(|p| &p.hash)
    }

    /// Whether the token is disabled.
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    /// The listing view of this record (no hash).
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            client_id: self.client_id.clone(),
            kind: self.kind,
            account_id: self.account_id,
            user_id: self.user_id,
            description: self.description.clone(),
            role: self.role.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            created_by: self.created_by,
            issued_by: self.issued_by.clone(),
            last_used_at: self.last_used_at,
            previous_secret_valid_until: self.previous_secret.as_ref().map(|p| p.valid_until),
            disabled_at: self.disabled_at,
        }
    }
}

/// What a listing shows of a token: never the secret, never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TokenInfo {
    /// The public id.
    pub client_id: ClientId,
    /// API or personal.
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// The owning account.
    pub account_id: AccountId,
    /// The owning user, for a personal token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_id: Option<UserId>,
    /// What the token is for.
    pub description: String,
    /// The token's role.
    pub role: Role,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires; `null` = never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Who issued it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_by: Option<UserId>,
    /// The client id of the token whose request issued it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub issued_by: Option<ClientId>,
    /// When it was last used (`null` = never), recorded at most once per usage interval.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_at: Option<OffsetDateTime>,
    /// Until when the secret replaced by the last rotation is still accepted (absent when
    /// there is none; a time in the past once the grace is over).
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_secret_valid_until: Option<OffsetDateTime>,
    /// When the token was disabled (absent while it is enabled).
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disabled_at: Option<OffsetDateTime>,
}

/// The longest grace a rotation gives the replaced secret: 7 days.
pub const MAX_ROTATION_GRACE: Duration = Duration::days(7);

/// The longest description accepted, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// A request to issue a token: description, role and optional lifetime.
///
/// ```
/// use finout_auth::{NewToken, Role};
/// let new = NewToken::new("CI pipeline", Role::ReadOnly).expires_in_minutes(60);
/// assert_eq!(new.expires_in.unwrap().whole_minutes(), 60);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewToken {
    /// What the token is for.
    pub description: String,
    /// The role it carries.
    pub role: Role,
    /// How long it lives; `None` = never expires.
    pub expires_in: Option<Duration>,
}

impl NewToken {
    /// A token that never expires.
    pub fn new(description: impl Into<String>, role: Role) -> Self {
        NewToken {
            description: description.into(),
            role,
            expires_in: None,
        }
    }

    /// Expire after `minutes` (Finout's `expiresInMinutes`).
    pub fn expires_in_minutes(mut self, minutes: u32) -> Self {
        self.expires_in = Some(Duration::minutes(i64::from(minutes)));
        self
    }

    /// Expire after `duration`.
    pub fn expires_in(mut self, duration: Duration) -> Self {
        self.expires_in = Some(duration);
        self
    }
}

/// A freshly issued token: the only time its secret is available.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The client id (also in `info`).
    pub client_id: ClientId,
    /// The secret key: hand it to the user now, it cannot be shown again.
    pub secret_key: SecretKey,
    /// The token as listings show it.
    pub info: TokenInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_exclusive() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let mut record = TokenRecord::new(
            ClientId::from("c"),
            TokenKind::Api,
            AccountId::new_v4(),
            None,
            "d",
            Role::Basic,
            SecretHash::from_phc("x"),
            now,
            Some(now + Duration::minutes(1)),
            None,
        );
        assert!(!record.is_expired_at(now + Duration::seconds(59)));
        assert!(record.is_expired_at(now + Duration::minutes(1)));
        record.expires_at = None;
        assert!(!record.is_expired_at(now + Duration::days(10_000)));
        assert!(!format!("{record:?}").contains("$argon2"));
    }
}
