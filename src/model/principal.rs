//! Who a request acts as: [`Principal`], an API token's account or a personal token's user.
//!
//! A personal token's effective access is its own role *limited by* the roles its user holds
//! at the moment of the request: [`Principal::has_permission`] requires both the token's role
//! and one of the user's roles to grant it, so demoting the user demotes the token.

use std::{fmt, sync::Arc};

use serde::Serialize;

use super::{
    account::{DataAccess, User},
    id::{AccountId, ClientId, UserId},
    permission::Shape,
    role::Role,
    token::TokenKind,
};
use crate::metrics::Metrics;

/// The authenticated caller, attached to each request's extensions by the layer.
///
/// Cheap to clone (one reference count).
///
/// Serializes as its public fields in camelCase, tagged `"kind": "account"` or `"user"`
/// (for a "who am I" answer or an audit record): a principal holds no secret. It has no
/// `Deserialize`, as a principal comes from authentication, never from input.
///
/// ```
/// use finout_auth::{AccountId, ClientId, Principal, Role, UserId};
/// let api = Principal::account(AccountId::new_v4(), Role::ReadOnly, ClientId::from("c-1"));
/// let json = serde_json::to_value(&api).unwrap();
/// assert_eq!(json["kind"], "account");
/// assert_eq!(json["tokenRole"], "Read-only");
/// assert_eq!(json["clientId"], "c-1");
///
/// let user_id = UserId::new_v4();
/// let personal = Principal::user(AccountId::new_v4(), user_id, vec![Role::Basic], Role::Basic, "c-2".into());
/// let json = serde_json::to_value(&personal).unwrap();
/// assert_eq!(json["kind"], "user");
/// assert_eq!(json["userId"], user_id.to_string());
/// assert_eq!(json["roles"], serde_json::json!(["Basic"]));
/// assert_eq!(json["dataAccess"], serde_json::Value::Null); // everything
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Principal {
    /// An API token: account-level.
    Account(Arc<AccountPrincipal>),
    /// A personal token: acts as its user, within the user's current roles.
    User(Arc<UserPrincipal>),
}

/// The caller behind an API token.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AccountPrincipal {
    /// The account the token belongs to.
    pub account_id: AccountId,
    /// The token's role.
    pub token_role: Role,
    /// The token's client id.
    pub client_id: ClientId,
    #[serde(skip)]
    counted_by: CountedBy,
}

/// The caller behind a personal token.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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
    #[serde(skip)]
    counted_by: CountedBy,
}

/// The metrics handle of the authenticator a principal came from: how the layers after its
/// `AuthLayer` find where to count their rejections, through the request. Not part of who
/// the caller is: it compares equal, and is neither printed nor serialized.
#[derive(Clone, Default)]
struct CountedBy(Option<Metrics>);

impl PartialEq for CountedBy {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for CountedBy {}

impl fmt::Debug for AccountPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountPrincipal")
            .field("account_id", &self.account_id)
            .field("token_role", &self.token_role)
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl fmt::Debug for UserPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPrincipal")
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field("token_role", &self.token_role)
            .field("client_id", &self.client_id)
            .field("data_access", &self.data_access)
            .finish()
    }
}

static ALL_DATA: DataAccess = DataAccess::All;

impl Principal {
    /// An API token's principal.
    pub fn account(account_id: AccountId, token_role: Role, client_id: ClientId) -> Self {
        Principal::Account(Arc::new(AccountPrincipal {
            account_id,
            token_role,
            client_id,
            counted_by: CountedBy::default(),
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
            counted_by: CountedBy::default(),
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
            counted_by: CountedBy::default(),
        }))
    }

    /// The same principal, counted by `metrics` (its authenticator's).
    pub(crate) fn counted_by(mut self, metrics: Metrics) -> Self {
        // A principal just built: its allocation is not shared, nothing is copied.
        let counted_by = match &mut self {
            Principal::Account(a) => &mut Arc::make_mut(a).counted_by,
            Principal::User(u) => &mut Arc::make_mut(u).counted_by,
        };
        *counted_by = CountedBy(Some(metrics));
        self
    }

    /// The handle of the authenticator this principal came from, if it came from one.
    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        match self {
            Principal::Account(a) => a.counted_by.0.as_ref(),
            Principal::User(u) => u.counted_by.0.as_ref(),
        }
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

    /// Whether the caller effectively holds at least one permission whose action (third
    /// segment) is `action`: the token's role grants it and, for a personal token, one of
    /// the user's current roles grants *the same* permission (computed exactly on the
    /// patterns, so a token that may write only views and a user who may write only tags
    /// write nothing together). Issuing a token is a write.
    ///
    /// ```
    /// use finout_auth::{AccountId, Principal, Role, UserId, model::Permission};
    /// let views = Role::custom("Views", [Permission::from("fin.megabill.write.views")]);
    /// let tags = Role::custom("Tags", [Permission::from("fin.tags.write.*")]);
    /// let p = |roles, token| Principal::user(AccountId::new_v4(), UserId::new_v4(), roles, token, "c".into());
    /// assert!(p(vec![Role::Basic], views.clone()).grants_action("write"));
    /// assert!(!p(vec![tags], views).grants_action("write"));
    /// assert!(!p(vec![Role::Admin], Role::ReadOnly).grants_action("write"));
    /// ```
    pub fn grants_action(&self, action: &str) -> bool {
        match self {
            Principal::Account(a) => a.token_role.grants_action(action),
            Principal::User(u) => {
                let action = Shape::action(action);
                let token: Vec<Shape<'_>> = u
                    .token_role
                    .shapes()
                    .iter()
                    .map(|s| s.and(&action))
                    .filter(|s| !s.is_empty())
                    .collect();
                u.roles.iter().any(|role| {
                    role.shapes()
                        .iter()
                        .any(|r| token.iter().any(|t| !t.and(r).is_empty()))
                })
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
    use crate::model::Permission;

    #[test]
    fn the_handle_it_is_counted_by_is_not_part_of_who_it_is() {
        let plain = user(vec![Role::Basic], Role::Basic);
        let counted = plain.clone().counted_by(Metrics::new());
        assert!(counted.metrics().is_some() && plain.metrics().is_none());
        assert_eq!(counted, plain);
        assert_eq!(format!("{counted:?}"), format!("{plain:?}"));
        assert_eq!(
            serde_json::to_value(&counted).unwrap(),
            serde_json::to_value(&plain).unwrap()
        );
    }

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
    fn a_users_role_coverage_is_limited_by_the_tokens() {
        let admin_user = user(vec![Role::Admin], Role::ReadOnly);
        assert!(admin_user.has_role(&Role::ReadOnly));
        assert!(!admin_user.has_role(&Role::Basic));
    }

    #[test]
    fn writing_needs_a_write_both_the_token_and_a_user_role_grant() {
        let views = Role::custom("Views", [Permission::from("fin.megabill.write.views")]);
        let any_write = Role::custom("Writer", [Permission::from("fin.*.write.*")]);
        let reader = Role::custom("Reader", [Permission::from("fin.*.read.*")]);
        let admin_only = Role::custom("Admin scope", [Permission::from("admin.*")]);
        assert!(user(vec![Role::Admin], Role::Admin).grants_action("write"));
        assert!(user(vec![Role::Basic], views.clone()).grants_action("write"));
        assert!(user(vec![any_write.clone()], views.clone()).grants_action("write"));
        assert!(!user(vec![Role::Admin], Role::ReadOnly).grants_action("write"));
        assert!(!user(vec![Role::ReadOnly], Role::Admin).grants_action("write"));
        assert!(!user(vec![reader.clone()], Role::Basic).grants_action("write"));
        assert!(!user(vec![Role::Admin], reader).grants_action("write"));
        // Basic writes outside the admin scope only; this role writes only inside it.
        assert!(!user(vec![Role::Basic], admin_only.clone()).grants_action("write"));
        assert!(user(vec![Role::Admin], admin_only).grants_action("write"));
        // One of the user's roles suffices.
        assert!(user(vec![Role::ReadOnly, Role::Basic], any_write).grants_action("write"));
        let api = |role| Principal::account(AccountId::new_v4(), role, ClientId::from("c"));
        assert!(api(Role::ApiToken).grants_action("write"));
        assert!(!api(Role::ReadOnly).grants_action("write"));
        assert!(api(views).grants_action("write"));
    }

    #[test]
    fn api_token_is_never_an_admin_user() {
        let p = Principal::account(AccountId::new_v4(), Role::Admin, ClientId::from("c"));
        assert!(p.has_role(&Role::Admin));
        assert!(!p.is_admin_user());
    }
}
