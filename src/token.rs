//! The token model: [`ClientId`], [`SecretKey`], [`TokenRecord`] (what a store keeps),
//! [`TokenInfo`] (what a listing shows), [`NewToken`] and [`IssuedToken`], and the
//! pluggable [`CredentialGenerator`].

use std::{borrow::Borrow, fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::principal::{AccountId, Role, UserId};

/// A token's public identifier (Finout's "Client ID"), sent in `x-finout-client-id`.
///
/// Not a secret: it may be logged. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(Arc<str>);

/// Hashed as its bytes, so that maps keyed by `ClientId` can be searched with the `&[u8]`
/// of a header value (see the `Borrow<[u8]>` impl) without building a `ClientId`.
impl std::hash::Hash for ClientId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state);
    }
}

impl ClientId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ClientId {
    fn from(s: &str) -> Self {
        ClientId(s.into())
    }
}

impl From<String> for ClientId {
    fn from(s: String) -> Self {
        ClientId(s.into())
    }
}

impl Borrow<[u8]> for ClientId {
    fn borrow(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({:?})", &*self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A token's secret (Finout's "Secret Key"), sent in `x-finout-secret-key`.
///
/// Shown to its owner exactly once, at issue. `Debug` prints `[redacted]`, there is no
/// `Display` and no `Serialize`, and the memory is zeroed on drop. Read it with
/// [`SecretKey::expose_secret`].
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// Wrap a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretKey(Zeroizing::new(secret.into()))
    }

    /// The secret itself. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// An argon2id hash of a secret, as a PHC string (`$argon2id$v=19$m=...`).
///
/// Not secret in itself, but useless to anyone reading logs, so `Debug` omits it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(Arc<str>);

impl SecretHash {
    /// Wrap a PHC string (validated when verified, not here).
    pub fn from_phc(phc: impl Into<Arc<str>>) -> Self {
        SecretHash(phc.into())
    }

    /// The PHC string.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash([phc string])")
    }
}

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
    /// When it was last used, to the resolution of the authenticator's usage interval.
    pub last_used_at: Option<OffsetDateTime>,
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
            last_used_at: None,
        }
    }

    /// Whether the token is expired at `now` (expiry is exclusive: valid strictly before).
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
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
            last_used_at: self.last_used_at,
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
    /// When it was last used (`null` = never), recorded at most once per usage interval.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_used_at: Option<OffsetDateTime>,
}

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

/// Makes new client ids and secrets. The default, [`UuidV4Generator`], makes UUID v4
/// strings like Finout's.
pub trait CredentialGenerator: fmt::Debug + Send + Sync + 'static {
    /// A new, unique client id.
    fn client_id(&self) -> ClientId;
    /// A new secret key, from a cryptographically secure source.
    fn secret_key(&self) -> SecretKey;
}

/// Client ids and secrets as hyphenated UUID v4 strings (36 characters, 122 random bits).
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV4Generator;

impl CredentialGenerator for UuidV4Generator {
    fn client_id(&self) -> ClientId {
        ClientId::from(uuid::Uuid::new_v4().to_string())
    }

    fn secret_key(&self) -> SecretKey {
        // uuid's v4 draws from a CSPRNG seeded by the OS.
        let mut buf = uuid::Uuid::encode_buffer();
        SecretKey::new(&*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_debug_is_redacted() {
        let key = SecretKey::new("hunter2-hunter2");
        assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
        assert!(!format!("{key:#?}").contains("hunter2"));
    }

    #[test]
    fn uuid_generator_makes_v4_strings() {
        let g = UuidV4Generator;
        for s in [
            g.client_id().as_str().to_owned(),
            g.secret_key().expose_secret().to_owned(),
        ] {
            assert_eq!(s.len(), 36);
            let parsed = uuid::Uuid::parse_str(&s).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
        }
        assert_ne!(g.client_id(), g.client_id());
    }

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
