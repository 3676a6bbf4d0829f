//! Who a request acts as: [`Principal`], and the account model behind it ([`AccountId`],
//! [`UserId`], [`Role`], [`User`], [`Account`], [`DataAccess`]).
//!
//! # Roles and permissions
//!
//! Finout has four predefined roles, `Admin`, `Read-only`, `Basic` and `API token role`, and
//! accounts may define custom roles as sets of permission strings such as
//! `fin.megabill.write.views`. Permissions here are dot-separated segments
//! `<scope>.<area>.<action>.<object>`; the `admin` scope covers account administration
//! (users and tokens). The predefined roles grant:
//!
//! | role | grants |
//! | --- | --- |
//! | `Admin` | everything |
//! | `Basic`, `API token role` | every permission outside the `admin` scope |
//! | `Read-only` | permissions outside `admin` whose action segment is `read` |
//!
//! A custom role grants the patterns it lists; `*` matches one segment, and a trailing `*`
//! matches the rest.
//!
//! A personal token's effective access is its own role *limited by* the roles its user holds
//! at the moment of the request: [`Principal::has_permission`] requires both the token's role
//! and one of the user's roles to grant it, so demoting the user demotes the token.

use std::{fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::token::{ClientId, TokenKind};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn new_v4() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }
    };
}

uuid_id!(
    /// An account (tenant) id.
    AccountId
);
uuid_id!(
    /// A user id; a user belongs to exactly one account.
    UserId
);

/// An account (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The account id.
    pub id: AccountId,
    /// A display name.
    pub name: String,
}

/// A user of an account, with the roles they hold now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user id.
    pub id: UserId,
    /// The account the user belongs to.
    pub account_id: AccountId,
    /// The user's email address.
    pub email: String,
    /// The roles the user holds.
    pub roles: Vec<Role>,
    /// Which of the account's data the user may see; their personal tokens see no more.
    /// Serialized as `dataAccess`: `null` (or absent) for everything, else a list of ids.
    #[serde(default)]
    pub data_access: DataAccess,
}

impl User {
    /// A user with every data access (the usual case); set [`User::data_access`] to narrow.
    pub fn new(
        id: UserId,
        account_id: AccountId,
        email: impl Into<String>,
        roles: Vec<Role>,
    ) -> Self {
        User {
            id,
            account_id,
            email: email.into(),
            roles,
            data_access: DataAccess::All,
        }
    }

    /// Whether one of the user's roles covers `role` (see [`Role::covers`]).
    pub fn holds(&self, role: &Role) -> bool {
        self.roles.iter().any(|r| r.covers(role))
    }
}

/// Which of an account's data a user may see: Finout's *data access* permissions, which a
/// personal token respects and an API token (account-level) does not have.
///
/// In Finout data access is granted per view; the ids here are whatever the application
/// scopes data by (view ids in `finout-mock`). Roles say what a caller may *do*; data
/// access says *which data* it may do it to.
///
/// ```
/// use finout_auth::principal::DataAccess;
/// let some = DataAccess::only(["v-eng", "v-ops"]);
/// assert!(some.allows("v-eng"));
/// assert!(!some.allows("v-finance"));
/// assert!(DataAccess::All.allows("v-finance"));
/// assert_eq!(serde_json::to_string(&some).unwrap(), r#"["v-eng","v-ops"]"#);
/// assert_eq!(serde_json::to_string(&DataAccess::All).unwrap(), "null");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(from = "Option<Vec<String>>", into = "Option<Vec<String>>")]
pub enum DataAccess {
    /// The whole account.
    #[default]
    All,
    /// Only these ids (sorted, without repeats); empty means nothing at all.
    Only(Vec<String>),
}

impl DataAccess {
    /// Access to exactly these ids (order and repeats do not matter).
    pub fn only<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        ids.sort_unstable();
        ids.dedup();
        DataAccess::Only(ids)
    }

    /// Whether data with this id is visible.
    pub fn allows(&self, id: &str) -> bool {
        match self {
            DataAccess::All => true,
            DataAccess::Only(ids) => ids.iter().any(|i| i == id),
        }
    }

    /// The ids, unless access is unrestricted.
    pub fn ids(&self) -> Option<&[String]> {
        match self {
            DataAccess::All => None,
            DataAccess::Only(ids) => Some(ids),
        }
    }
}

impl From<Option<Vec<String>>> for DataAccess {
    fn from(ids: Option<Vec<String>>) -> Self {
        ids.map_or(DataAccess::All, DataAccess::only)
    }
}

impl From<DataAccess> for Option<Vec<String>> {
    fn from(access: DataAccess) -> Self {
        match access {
            DataAccess::All => None,
            DataAccess::Only(ids) => Some(ids),
        }
    }
}

/// A role: one of Finout's predefined roles or an account's custom role.
///
/// Predefined roles serialize as their Finout names (`"Admin"`, `"Read-only"`, `"Basic"`,
/// `"API token role"`); a custom role as `{"name": .., "permissions": [..]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Full access, including users and tokens.
    Admin,
    /// Read access outside administration.
    ReadOnly,
    /// Read and write access outside administration.
    Basic,
    /// The predefined role for API tokens: read and write outside administration.
    ApiToken,
    /// An account-defined role.
    Custom(CustomRole),
}

/// An account-defined role: a name and the permission patterns it grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CustomRole {
    /// The role's name; must not collide with a predefined role's.
    pub name: Arc<str>,
    /// Permission patterns, e.g. `fin.megabill.write.views` or `fin.*.read.*`.
    pub permissions: Arc<[Permission]>,
}

impl Role {
    /// The predefined roles.
    pub const PREDEFINED: [Role; 4] = [Role::Admin, Role::ReadOnly, Role::Basic, Role::ApiToken];

    /// A custom role.
    pub fn custom(
        name: impl Into<Arc<str>>,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Self {
        Role::Custom(CustomRole {
            name: name.into(),
            permissions: permissions.into_iter().collect(),
        })
    }

    /// The role's name as Finout writes it.
    pub fn name(&self) -> &str {
        match self {
            Role::Admin => "Admin",
            Role::ReadOnly => "Read-only",
            Role::Basic => "Basic",
            Role::ApiToken => "API token role",
            Role::Custom(c) => &c.name,
        }
    }

    /// Whether holding this role includes everything `other` allows: the same role, `Admin`
    /// (covers every role), or `Basic` / `API token role` over `Read-only`.
    pub fn covers(&self, other: &Role) -> bool {
        self == other
            || *self == Role::Admin
            || (matches!(self, Role::Basic | Role::ApiToken) && *other == Role::ReadOnly)
    }

    /// Whether this role, on its own, grants `permission`.
    pub fn grants(&self, permission: &str) -> bool {
        let admin_scope = permission == "admin" || permission.starts_with("admin.");
        match self {
            Role::Admin => true,
            Role::Basic | Role::ApiToken => !admin_scope,
            Role::ReadOnly => !admin_scope && permission.split('.').nth(2) == Some("read"),
            Role::Custom(c) => c.permissions.iter().any(|p| p.matches(permission)),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of the predefined roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected Admin, Read-only, Basic or API token role")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    /// Parses a predefined role's name (custom roles need their permissions too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::PREDEFINED
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Role::Custom(c) => c.serialize(s),
            other => s.serialize_str(other.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Name(String),
            Custom(CustomRole),
        }
        match Repr::deserialize(d)? {
            Repr::Name(name) => name.parse().map_err(serde::de::Error::custom),
            Repr::Custom(c) if Role::PREDEFINED.iter().any(|r| r.name() == &*c.name) => Err(
                serde::de::Error::custom("a custom role may not take a predefined role's name"),
            ),
            Repr::Custom(c) => Ok(Role::Custom(c)),
        }
    }
}

/// A permission or permission pattern, e.g. `fin.megabill.write.views`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Permission(pub Arc<str>);

impl Permission {
    /// A permission from its string.
    pub fn new(p: impl Into<Arc<str>>) -> Self {
        Permission(p.into())
    }

    /// Whether this pattern matches `permission`: `*` matches one segment, a trailing `*` the
    /// rest (one or more segments).
    pub fn matches(&self, permission: &str) -> bool {
        let mut pattern = self.0.split('.').peekable();
        let mut actual = permission.split('.');
        while let Some(p) = pattern.next() {
            let last = pattern.peek().is_none();
            match actual.next() {
                None => return false,
                Some(_) if p == "*" && last => return true,
                Some(a) if p == "*" || p == a => {}
                Some(_) => return false,
            }
        }
        actual.next().is_none()
    }
}

impl From<&str> for Permission {
    fn from(p: &str) -> Self {
        Permission::new(p)
    }
}

/// The authenticated caller, attached to each request's extensions by the layer.
///
/// Cheap to clone (one reference count).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Principal {
    /// An API token: account-level.
    Account(Arc<AccountPrincipal>),
    /// A personal token: acts as its user, within the user's current roles.
    User(Arc<UserPrincipal>),
}

/// The caller behind an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountPrincipal {
    /// The account the token belongs to.
    pub account_id: AccountId,
    /// The token's role.
    pub token_role: Role,
    /// The token's client id.
    pub client_id: ClientId,
}

/// The caller behind a personal token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserPrincipal {
    /// The user's account.
    pub account_id: AccountId,
    /// The user.
    pub user_id: UserId,
    /// The roles the user holds now (as of the token lookup).
    pub roles: Vec<Role>,
    /// The token's own role.
    pub token_role: Role,
    /// The token's client id.
    pub client_id: ClientId,
    /// The user's data access (as of the token lookup).
    pub data_access: DataAccess,
}

static ALL_DATA: DataAccess = DataAccess::All;

impl Principal {
    /// An API token's principal.
    pub fn account(account_id: AccountId, token_role: Role, client_id: ClientId) -> Self {
        Principal::Account(Arc::new(AccountPrincipal {
            account_id,
            token_role,
            client_id,
        }))
    }

    /// A personal token's principal.
    pub fn user(
        account_id: AccountId,
        user_id: UserId,
        roles: Vec<Role>,
        token_role: Role,
        client_id: ClientId,
    ) -> Self {
        Principal::User(Arc::new(UserPrincipal {
            account_id,
            user_id,
            roles,
            token_role,
            client_id,
            data_access: DataAccess::All,
        }))
    }

    /// A personal token's principal from its user's current state (roles and data access).
    pub fn for_user(user: &User, token_role: Role, client_id: ClientId) -> Self {
        Principal::User(Arc::new(UserPrincipal {
            account_id: user.account_id,
            user_id: user.id,
            roles: user.roles.clone(),
            token_role,
            client_id,
            data_access: user.data_access.clone(),
        }))
    }

    /// The account the caller acts in.
    pub fn account_id(&self) -> AccountId {
        match self {
            Principal::Account(a) => a.account_id,
            Principal::User(u) => u.account_id,
        }
    }

    /// The user, for a personal token.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Principal::Account(_) => None,
            Principal::User(u) => Some(u.user_id),
        }
    }

    /// The client id of the token used.
    pub fn client_id(&self) -> &ClientId {
        match self {
            Principal::Account(a) => &a.client_id,
            Principal::User(u) => &u.client_id,
        }
    }

    /// The role the token was issued with.
    pub fn token_role(&self) -> &Role {
        match self {
            Principal::Account(a) => &a.token_role,
            Principal::User(u) => &u.token_role,
        }
    }

    /// The user's current roles, for a personal token.
    pub fn user_roles(&self) -> Option<&[Role]> {
        match self {
            Principal::Account(_) => None,
            Principal::User(u) => Some(&u.roles),
        }
    }

    /// Which data the caller may see: everything for an API token, the user's data access
    /// for a personal token.
    pub fn data_access(&self) -> &DataAccess {
        match self {
            Principal::Account(_) => &ALL_DATA,
            Principal::User(u) => &u.data_access,
        }
    }

    /// API or personal.
    pub fn token_kind(&self) -> TokenKind {
        match self {
            Principal::Account(_) => TokenKind::Api,
            Principal::User(_) => TokenKind::Personal,
        }
    }

    /// Whether the caller effectively holds at least `role`: the token's role covers it
    /// (see [`Role::covers`]) and, for a personal token, one of the user's current roles
    /// does too.
    pub fn has_role(&self, role: &Role) -> bool {
        match self {
            Principal::Account(a) => a.token_role.covers(role),
            Principal::User(u) => {
                u.token_role.covers(role) && u.roles.iter().any(|r| r.covers(role))
            }
        }
    }

    /// Whether the caller may do what `permission` names: the token's role grants it and,
    /// for a personal token, one of the user's current roles does too.
    pub fn has_permission(&self, permission: &str) -> bool {
        match self {
            Principal::Account(a) => a.token_role.grants(permission),
            Principal::User(u) => {
                u.token_role.grants(permission) && u.roles.iter().any(|r| r.grants(permission))
            }
        }
    }

    /// Whether the caller is a user holding (effectively) `Admin`: the only caller allowed
    /// to manage API tokens and users.
    pub fn is_admin_user(&self) -> bool {
        matches!(self, Principal::User(_)) && self.has_role(&Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: Vec<Role>, token_role: Role) -> Principal {
        Principal::user(
            AccountId::new_v4(),
            UserId::new_v4(),
            roles,
            token_role,
            ClientId::from("c"),
        )
    }

    #[test]
    fn predefined_roles_round_trip_through_their_names() {
        for role in Role::PREDEFINED {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn custom_roles_round_trip_and_cannot_shadow_predefined() {
        let role = Role::custom("FinOps", [Permission::from("fin.megabill.write.views")]);
        let json = serde_json::to_string(&role).unwrap();
        assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        let shadow = r#"{"name":"Admin","permissions":["*"]}"#;
        assert!(serde_json::from_str::<Role>(shadow).is_err());
    }

    #[test]
    fn permission_patterns_match_segments() {
        let p = Permission::from("fin.*.read.*");
        assert!(p.matches("fin.megabill.read.views"));
        assert!(p.matches("fin.megabill.read.views.extra"));
        assert!(!p.matches("fin.megabill.write.views"));
        assert!(!p.matches("fin.megabill.read"));
        assert!(Permission::from("fin.a").matches("fin.a"));
        assert!(!Permission::from("fin.a").matches("fin.a.b"));
    }

    #[test]
    fn predefined_role_grants() {
        assert!(Role::Admin.grants("admin.tokens.write.api"));
        assert!(!Role::Basic.grants("admin.tokens.write.api"));
        assert!(Role::Basic.grants("fin.megabill.write.views"));
        assert!(Role::ReadOnly.grants("fin.megabill.read.views"));
        assert!(!Role::ReadOnly.grants("fin.megabill.write.views"));
    }

    #[test]
    fn personal_token_is_limited_by_the_users_current_roles() {
        let demoted = user(vec![Role::ReadOnly], Role::Basic);
        assert!(!demoted.has_permission("fin.megabill.write.views"));
        assert!(demoted.has_permission("fin.megabill.read.views"));
        let demoted_admin = user(vec![Role::Basic], Role::Admin);
        assert!(!demoted_admin.has_role(&Role::Admin));
        assert!(!demoted_admin.is_admin_user());
        assert!(user(vec![Role::Admin], Role::Admin).is_admin_user());
    }

    #[test]
    fn role_coverage() {
        assert!(Role::Admin.covers(&Role::ReadOnly));
        assert!(Role::Basic.covers(&Role::ReadOnly));
        assert!(!Role::ReadOnly.covers(&Role::Basic));
        assert!(!Role::Basic.covers(&Role::Admin));
        let custom = Role::custom("X", []);
        assert!(Role::Admin.covers(&custom));
        assert!(!Role::Basic.covers(&custom));
        let admin_user = user(vec![Role::Admin], Role::ReadOnly);
        assert!(admin_user.has_role(&Role::ReadOnly));
        assert!(!admin_user.has_role(&Role::Basic));
    }

    #[test]
    fn api_token_is_never_an_admin_user() {
        let p = Principal::account(AccountId::new_v4(), Role::Admin, ClientId::from("c"));
        assert!(p.has_role(&Role::Admin));
        assert!(!p.is_admin_user());
    }
}
