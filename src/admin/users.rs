//! Managing users: adding them (under the per-account cap), checking a new user ahead,
//! changing roles and data access (compare-and-set), and removing them with their tokens.

use super::{
    TokenAdmin, USER_CHANGE_ATTEMPTS, USER_CHANGED,
    error::AdminError,
    not_found,
    validate::{
        InvalidRequest, check_admin_data_access, check_data_access, check_roles, normalize_email,
    },
};
use crate::{
    error::StoreError,
    model::{AccountId, ClientId, DataAccess, Role, User, UserId},
    store::UserUpdate,
};

impl TokenAdmin {
    /// Add a user with a new random id and access to all of the account's data.
    pub async fn add_user(
        &self,
        account: AccountId,
        email: impl Into<String>,
        roles: Vec<Role>,
    ) -> Result<User, AdminError> {
        self.add_user_with_access(account, email, roles, DataAccess::All)
            .await
    }

    /// Add a user with a new random id and the given data access. Refused past the
    /// account's cap on users ([`UserLimits`](crate::store::UserLimits), default 10,000): `LimitReached`.
    pub async fn add_user_with_access(
        &self,
        account: AccountId,
        email: impl Into<String>,
        roles: Vec<Role>,
        data_access: DataAccess,
    ) -> Result<User, AdminError> {
        let email = Self::check_new_user(&email.into(), &roles, &data_access)?;
        let mut user = User::new(UserId::new_v4(), account, email, roles);
        user.data_access = data_access;
        self.store
            .insert_user_within(user.clone(), self.user_limits)
            .await
            .map_err(not_found)?;
        Ok(user)
    }

    /// A user's email as it is stored and compared: trimmed and lowercased, and refused
    /// ([`InvalidRequest::Email`]) unless a plain ASCII address `local@domain.tld`. Two
    /// emails name the same user of an account when their normalized forms are equal.
    ///
    /// ```
    /// use finout_auth::TokenAdmin;
    /// assert_eq!(TokenAdmin::normalize_email(" Ops@Acme.TEST ").unwrap(), "ops@acme.test");
    /// assert!(TokenAdmin::normalize_email("").is_err());
    /// ```
    pub fn normalize_email(email: &str) -> Result<String, InvalidRequest> {
        normalize_email(email)
    }

    /// The checks [`add_user_with_access`](Self::add_user_with_access) makes of a new user,
    /// without storing anything: a plain address (see [`InvalidRequest::Email`]), one to
    /// [`MAX_ROLES_PER_USER`](crate::model::MAX_ROLES_PER_USER) roles within the custom role
    /// caps, a well-formed data access, and all data for a user holding `Admin`. Answers
    /// the email as it is stored and compared (trimmed, lowercased), so that a set-up checked
    /// ahead (a seed file) finds the duplicates the store would.
    pub fn check_new_user(
        email: &str,
        roles: &[Role],
        data_access: &DataAccess,
    ) -> Result<String, InvalidRequest> {
        let email = Self::normalize_email(email)?;
        check_roles(roles)?;
        check_data_access(data_access)?;
        check_admin_data_access(roles, data_access)?;
        Ok(email)
    }

    /// Replace a user's roles; their personal tokens follow at once.
    pub async fn set_user_roles(
        &self,
        account: AccountId,
        user: UserId,
        roles: Vec<Role>,
    ) -> Result<(), AdminError> {
        self.update_user(account, user, UserUpdate::default().roles(roles))
            .await
    }

    /// Change a user's roles and/or data access, atomically; their personal tokens follow
    /// at once. Refused if the user would hold `Admin` with restricted data access.
    pub async fn update_user(
        &self,
        account: AccountId,
        user: UserId,
        update: UserUpdate,
    ) -> Result<(), AdminError> {
        self.update_user_checked(account, user, update, |_| Ok(()))
            .await
    }

    /// [`update_user`](Self::update_user), with `check` run on the user as they are. The
    /// rules are checked against the user as read, and the update applies only if the user
    /// is still so (compare-and-set, retried a few times if it changed meanwhile): two
    /// concurrent updates can never combine into what neither was allowed to do.
    pub(crate) async fn update_user_checked(
        &self,
        account: AccountId,
        user: UserId,
        update: UserUpdate,
        check: impl Fn(&User) -> Result<(), AdminError>,
    ) -> Result<(), AdminError> {
        if let Some(roles) = &update.roles {
            check_roles(roles)?;
        }
        if let Some(access) = &update.data_access {
            check_data_access(access)?;
        }
        for _ in 0..USER_CHANGE_ATTEMPTS {
            let current = self
                .store
                .get_user(account, user)
                .await?
                .ok_or(AdminError::NotFound("user"))?;
            if !update.holds_for(&current) {
                return Err(AdminError::Store(StoreError::Conflict(USER_CHANGED)));
            }
            check(&current)?;
            let mut after = current.clone();
            update.apply_to(&mut after);
            check_admin_data_access(&after.roles, &after.data_access)?;
            let conditional = update.clone().if_unchanged_from(&current);
            match self.store.update_user(account, user, conditional).await {
                Ok(Some(tokens)) => {
                    self.invalidate(&tokens).await;
                    return Ok(());
                }
                Ok(None) => return Err(AdminError::NotFound("user")),
                Err(StoreError::Conflict(USER_CHANGED)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AdminError::Store(StoreError::Conflict(USER_CHANGED)))
    }

    /// Remove a user and delete all of their personal tokens, which stop working at once.
    /// Returns the deleted tokens' ids.
    pub async fn remove_user(
        &self,
        account: AccountId,
        user: UserId,
    ) -> Result<Vec<ClientId>, AdminError> {
        let tokens = self
            .store
            .remove_user(account, user)
            .await?
            .ok_or(AdminError::NotFound("user"))?;
        self.invalidate(&tokens).await;
        Ok(tokens)
    }
}
