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

use super::permission::{Permission, Shape};

/// The longest custom role name, in bytes.
pub const MAX_ROLE_NAME_LEN: usize = 64;
/// The most permission patterns one custom role may list.
pub const MAX_ROLE_PERMISSIONS: usize = 100;

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
        let admin_scope = permission.split('.').next() == Some(ADMIN_SCOPE);
        match self {
            Role::Admin => true,
            Role::Basic | Role::ApiToken => !admin_scope,
            Role::ReadOnly => !admin_scope && permission.split('.').nth(2) == Some("read"),
            Role::Custom(c) => c.permissions.iter().any(|p| p.matches(permission)),
        }
    }

    /// Whether this role grants at least one permission whose action (third segment) is
    /// `action`: `Admin`, `Basic` and `API token role` grant every action, `Read-only` only
    /// `read`, a custom role those its patterns can match (`fin.*.write.*`, `fin.*` and `*`
    /// can match a `write`; `fin.*.read.*` cannot).
    ///
    /// ```
    /// use finout_auth::{Role, model::Permission};
    /// assert!(Role::Basic.grants_action("write"));
    /// assert!(!Role::ReadOnly.grants_action("write"));
    /// let reader = Role::custom("Reader", [Permission::from("fin.*.read.*")]);
    /// assert!(!reader.grants_action("write"));
    /// ```
    pub fn grants_action(&self, action: &str) -> bool {
        let action = Shape::action(action);
        self.shapes().iter().any(|s| !s.and(&action).is_empty())
    }

    /// The permissions this role grants, as a union of shapes (one per pattern).
    pub(crate) fn shapes(&self) -> Vec<Shape<'_>> {
        match self {
            Role::Admin => vec![Shape::everything()],
            Role::Basic | Role::ApiToken => vec![Shape::outside(ADMIN_SCOPE)],
            Role::ReadOnly => vec![Shape::outside(ADMIN_SCOPE).and(&Shape::action("read"))],
            Role::Custom(c) => c.permissions.iter().map(Permission::shape).collect(),
        }
    }
}

/// The scope of account administration (users and tokens), which only `Admin` grants among
/// the predefined roles.
const ADMIN_SCOPE: &str = "admin";

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
    fn predefined_role_grants() {
        assert!(Role::Admin.grants("admin.tokens.write.api"));
        assert!(!Role::Basic.grants("admin.tokens.write.api"));
        assert!(Role::Basic.grants("fin.megabill.write.views"));
        assert!(Role::ReadOnly.grants("fin.megabill.read.views"));
        assert!(!Role::ReadOnly.grants("fin.megabill.write.views"));
    }

    proptest::proptest! {
        /// A role's shapes hold a permission exactly when the role grants it.
        #[test]
        fn shapes_agree_with_grants(
            permission in crate::model::permission::tests::dotted(5),
            pattern in crate::model::permission::tests::dotted(4),
        ) {
            let permission = permission.replace('*', "x");
            let custom = Role::custom("C", [Permission::from(pattern.as_str())]);
            for role in Role::PREDEFINED.into_iter().chain([custom]) {
                let exact = Shape::exact(&permission);
                let held = role.shapes().iter().any(|s| !s.and(&exact).is_empty());
                proptest::prop_assert_eq!(held, role.grants(&permission), "{}", role);
            }
        }
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
