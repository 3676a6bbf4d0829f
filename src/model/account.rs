//! Accounts and their users: [`Account`], [`User`] and a user's [`DataAccess`].

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{
    id::{AccountId, UserId},
    role::Role,
};

/// The longest account name, in bytes.
pub const MAX_ACCOUNT_NAME_LEN: usize = 256;
/// The most roles one user may hold.
pub const MAX_ROLES_PER_USER: usize = 16;

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
///
/// Built with [`User::new`] and field assignment (it may gain fields, as it gained
/// `data_access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
/// access says *which data* it may do it to. [`allows`](Self::allows) takes constant time
/// whatever the number of ids (a hash set).
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
    /// Only these ids; empty means nothing at all.
    Only(IdSet),
}

/// A set of data ids: constant-time membership, listed in sorted order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IdSet {
    ids: HashSet<String>,
}

impl IdSet {
    /// Whether `id` is in the set.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The ids, sorted.
    pub fn sorted(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// Whether every id of `self` is in `other`.
    pub fn is_subset(&self, other: &IdSet) -> bool {
        self.ids.is_subset(&other.ids)
    }
}

impl<S: Into<String>> FromIterator<S> for IdSet {
    fn from_iter<I: IntoIterator<Item = S>>(ids: I) -> Self {
        IdSet {
            ids: ids.into_iter().map(Into::into).collect(),
        }
    }
}

impl std::hash::Hash for IdSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.sorted().hash(state);
    }
}

impl std::fmt::Debug for IdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.sorted()).finish()
    }
}

impl DataAccess {
    /// Access to exactly these ids (order and repeats do not matter).
    pub fn only<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        DataAccess::Only(ids.into_iter().collect())
    }

    /// Whether data with this id is visible. Constant time.
    pub fn allows(&self, id: &str) -> bool {
        match self {
            DataAccess::All => true,
            DataAccess::Only(ids) => ids.contains(id),
        }
    }

    /// The ids, sorted, unless access is unrestricted.
    pub fn ids(&self) -> Option<Vec<&str>> {
        match self {
            DataAccess::All => None,
            DataAccess::Only(ids) => Some(ids.sorted()),
        }
    }

    /// Whether everything `self` allows, `other` allows too.
    pub fn is_within(&self, other: &DataAccess) -> bool {
        match (self, other) {
            (_, DataAccess::All) => true,
            (DataAccess::All, DataAccess::Only(_)) => false,
            (DataAccess::Only(mine), DataAccess::Only(theirs)) => mine.is_subset(theirs),
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
        access
            .ids()
            .map(|ids| ids.into_iter().map(str::to_owned).collect())
    }
}
