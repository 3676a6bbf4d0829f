//! Roles and permissions.
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

use std::{fmt, str::FromStr, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// An account-defined role: a name and the permission patterns it grants. Built with
/// [`Role::custom`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn role_coverage() {
        assert!(Role::Admin.covers(&Role::ReadOnly));
        assert!(Role::Basic.covers(&Role::ReadOnly));
        assert!(!Role::ReadOnly.covers(&Role::Basic));
        assert!(!Role::Basic.covers(&Role::Admin));
        let custom = Role::custom("X", []);
        assert!(Role::Admin.covers(&custom));
        assert!(!Role::Basic.covers(&custom));
    }
}
