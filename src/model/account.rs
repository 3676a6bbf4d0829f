//! Accounts and their users: [`Account`], [`User`] and a user's [`DataAccess`].

use serde::{Deserialize, Serialize};

use super::{
    id::{AccountId, UserId},
    role::Role,
};

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
/// use finout_auth::model::DataAccess;
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
