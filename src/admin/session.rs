//! [`AdminSession`]: the admin operations on behalf of an authenticated caller, with
//! Finout's rules enforced (the matrix is in the [module docs](super)).

use super::{
    TokenAdmin,
    error::AdminError,
    rules::{self, NOT_ADMIN_USER, NOT_OWN},
    validate::only_narrows,
};
use crate::{
    model::{
        AccountId, ClientId, DataAccess, IssuedToken, NewToken, Principal, Role, TokenInfo,
        TokenKind, User, UserId,
    },
    store::{TokenFilter, UserUpdate},
};

/// Admin operations on behalf of an authenticated caller, with Finout's rules enforced:
///
/// - issuing is a write: a token whose effective role grants no `write` permission
///   ([`Principal::grants_action`]) issues nothing, and nobody issues above their own role;
/// - a token revokes, rotates, disables and enables itself and the tokens it issued,
///   directly or not, whatever its role, and a user's token lists those of its user's
///   tokens;
/// - everything else needs a user whose token and roles both hold `Admin`
///   ([`Principal::is_admin_user`]): issuing, listing and revoking API tokens, listing or
///   revoking a user's other tokens or another user's, managing users.
///
/// A refusal is [`AdminError::Forbidden`] (403). The full matrix, caller by operation, is in
/// the crate's `src/admin/mod.rs` and linked from the README.
#[derive(Debug, Clone, Copy)]
pub struct AdminSession<'a> {
    admin: &'a TokenAdmin,
    actor: &'a Principal,
}

impl TokenAdmin {
    /// Check the caller's rights on every operation.
    pub fn acting_as<'a>(&'a self, actor: &'a Principal) -> AdminSession<'a> {
        AdminSession { admin: self, actor }
    }
}

impl AdminSession<'_> {
    fn require_admin_user(&self) -> Result<UserId, AdminError> {
        match self.actor.user_id() {
            Some(user) if self.actor.is_admin_user() => Ok(user),
            _ => Err(AdminError::Forbidden(NOT_ADMIN_USER)),
        }
    }

    fn account(&self) -> AccountId {
        self.actor.account_id()
    }

    /// Issue an API token in the caller's account. Admin users only. The token records the
    /// caller's token as its issuer: it expires no later, and is deleted with it.
    pub async fn issue_api_token(&self, new: NewToken) -> Result<IssuedToken, AdminError> {
        let by = self.require_admin_user()?;
        self.admin
            .issue(
                self.account(),
                TokenKind::Api,
                None,
                Some(by),
                Some(self.actor.client_id()),
                new,
            )
            .await
    }

    /// The account's API tokens. Admin users only.
    pub async fn list_api_tokens(&self) -> Result<Vec<TokenInfo>, AdminError> {
        self.require_admin_user()?;
        self.admin
            .list_tokens(self.account(), TokenFilter::Api)
            .await
    }

    /// Revoke one of the account's API tokens: the caller's own token or one it issued
    /// (directly or not), whatever its role; any other only for an Admin user. `Forbidden`
    /// for a caller who may not, whether or not the token exists; `NotFound` for an Admin
    /// user asking for another account's token, a personal token or an unknown id.
    pub async fn revoke_api_token(&self, client_id: &ClientId) -> Result<(), AdminError> {
        self.revoke(client_id, TokenKind::Api).await
    }

    /// Issue a personal token for the calling user. Issuing is a write: the caller's
    /// effective role must grant a write permission (`Read-only` issues nothing), and the new
    /// token's role must be within both the caller's token role and the user's current
    /// roles. The token records the caller's token as its issuer: it expires no later, and
    /// is deleted with it.
    pub async fn issue_personal_token(&self, new: NewToken) -> Result<IssuedToken, AdminError> {
        let Some(user) = self.actor.user_id() else {
            return Err(AdminError::Forbidden(
                "personal tokens are issued with a personal token",
            ));
        };
        rules::require_write(self.actor)?;
        if !self.actor.has_role(&new.role) {
            return Err(AdminError::Forbidden(
                "a personal token cannot hold more than its user",
            ));
        }
        self.admin
            .issue(
                self.account(),
                TokenKind::Personal,
                Some(user),
                Some(user),
                Some(self.actor.client_id()),
                new,
            )
            .await
    }

    /// The calling user's personal tokens: all of them for an Admin user; for anyone else,
    /// the calling token and those it issued (directly or not), so that a lesser token of
    /// a user learns nothing of the user's other tokens. Expired tokens are listed until
    /// purged.
    pub async fn list_personal_tokens(&self) -> Result<Vec<TokenInfo>, AdminError> {
        let user = self.actor.user_id().ok_or(AdminError::Forbidden(
            "personal tokens belong to users; this is an API token",
        ))?;
        let tokens = self
            .admin
            .list_tokens(self.account(), TokenFilter::PersonalOf(user))
            .await?;
        if self.actor.is_admin_user() {
            Ok(tokens)
        } else {
            Ok(rules::lineage_within(tokens, self.actor.client_id()))
        }
    }

    /// Revoke a personal token of the account: the caller's own token or one it issued
    /// (directly or not), whatever its role; any other (of the caller's user or of another
    /// user) only for an Admin user. Refusals as
    /// [`revoke_api_token`](Self::revoke_api_token)'s.
    pub async fn revoke_personal_token(&self, client_id: &ClientId) -> Result<(), AdminError> {
        self.revoke(client_id, TokenKind::Personal).await
    }

    /// Revoke a token of `kind`, under the lineage rule.
    async fn revoke(&self, client_id: &ClientId, kind: TokenKind) -> Result<(), AdminError> {
        self.may_change(client_id, kind).await?;
        self.admin.revoke_token(self.account(), client_id).await?;
        Ok(())
    }

    /// Whether the caller may revoke, rotate, disable or enable the token: its own lineage,
    /// or any token for an Admin user. A caller that may not touch the token is refused
    /// before anything about it is told (it exists, its kind); an Admin user gets
    /// `NotFound` for a token of another account, of the other kind, or unknown.
    async fn may_change(&self, client_id: &ClientId, kind: TokenKind) -> Result<(), AdminError> {
        let found = self
            .admin
            .store
            .find_token(client_id)
            .await?
            .map(|t| t.record)
            .filter(|t| t.account_id == self.account());
        if !self.actor.is_admin_user() {
            let own = match &found {
                Some(token) => {
                    self.admin
                        .descends_from(token, self.actor.client_id())
                        .await?
                }
                None => false,
            };
            if !own {
                return Err(AdminError::Forbidden(NOT_OWN));
            }
        }
        if found.is_none_or(|t| t.kind != kind) {
            return Err(AdminError::NotFound("token"));
        }
        Ok(())
    }

    /// Rotate the secret of a token of `kind` (an API or a personal token), under the
    /// revoke rules: the caller's own token or one it issued (directly or not), whatever its
    /// role (a `Read-only` token may rotate its own secret); any other only for an Admin
    /// user. The new secret is in the answer, once; the replaced one works for `grace` more
    /// (see [`TokenAdmin::rotate_secret`]).
    pub async fn rotate_token(
        &self,
        kind: TokenKind,
        client_id: &ClientId,
        grace: std::time::Duration,
    ) -> Result<IssuedToken, AdminError> {
        self.may_change(client_id, kind).await?;
        self.admin
            .rotate(
                self.account(),
                client_id,
                grace,
                Some(self.actor.client_id()),
            )
            .await
    }

    /// Disable a token of `kind`, under the revoke rules (see
    /// [`TokenAdmin::disable_token`]). A token that disables itself cannot enable itself.
    pub async fn disable_token(
        &self,
        kind: TokenKind,
        client_id: &ClientId,
    ) -> Result<TokenInfo, AdminError> {
        self.may_change(client_id, kind).await?;
        self.admin.disable_token(self.account(), client_id).await
    }

    /// Enable a token of `kind`, under the revoke rules (see [`TokenAdmin::enable_token`]).
    pub async fn enable_token(
        &self,
        kind: TokenKind,
        client_id: &ClientId,
    ) -> Result<TokenInfo, AdminError> {
        self.may_change(client_id, kind).await?;
        self.admin.enable_token(self.account(), client_id).await
    }

    /// Add a user to the caller's account. Admin users only.
    pub async fn add_user(
        &self,
        email: impl Into<String>,
        roles: Vec<Role>,
    ) -> Result<User, AdminError> {
        self.add_user_with_access(email, roles, DataAccess::All)
            .await
    }

    /// Add a user with the given data access to the caller's account. Admin users only.
    pub async fn add_user_with_access(
        &self,
        email: impl Into<String>,
        roles: Vec<Role>,
        data_access: DataAccess,
    ) -> Result<User, AdminError> {
        self.require_admin_user()?;
        self.admin
            .add_user_with_access(self.account(), email, roles, data_access)
            .await
    }

    /// Remove a user (and their personal tokens). Admin users only.
    pub async fn remove_user(&self, user: UserId) -> Result<Vec<ClientId>, AdminError> {
        self.require_admin_user()?;
        self.admin.remove_user(self.account(), user).await
    }

    /// Change a user's roles. Admin users only.
    pub async fn set_user_roles(&self, user: UserId, roles: Vec<Role>) -> Result<(), AdminError> {
        self.update_user(user, UserUpdate::default().roles(roles))
            .await
    }

    /// Change a user's roles and/or data access. Admin users only; nobody widens their own
    /// roles or data access.
    pub async fn update_user(&self, user: UserId, update: UserUpdate) -> Result<(), AdminError> {
        let me = self.require_admin_user()?;
        let narrowing = update.clone();
        self.admin
            .update_user_checked(self.account(), user, update, |current| {
                if user == me && !only_narrows(current, &narrowing) {
                    return Err(AdminError::Forbidden(
                        "nobody widens their own roles or data access",
                    ));
                }
                Ok(())
            })
            .await
    }
}
