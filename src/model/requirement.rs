//! [`Principal::require`]: a role or permission check inside a handler, answering
//! [`AuthError::Forbidden`] as the [`RequireLayer`](crate::middleware::RequireLayer) would.

use super::{Permission, Principal, Role};
use crate::error::AuthError;

/// What [`Principal::require`] checks: a [`Role`] the caller must effectively hold
/// ([`Principal::has_role`]) or a permission it must be allowed
/// ([`Principal::has_permission`]): a `&str` or [`Permission`]. Implement it for a check of
/// your own.
pub trait Requirement {
    /// Whether `principal` meets the requirement.
    fn is_met_by(&self, principal: &Principal) -> bool;
}

impl Requirement for Role {
    fn is_met_by(&self, principal: &Principal) -> bool {
        principal.has_role(self)
    }
}

impl Requirement for str {
    fn is_met_by(&self, principal: &Principal) -> bool {
        principal.has_permission(self)
    }
}

impl Requirement for String {
    fn is_met_by(&self, principal: &Principal) -> bool {
        principal.has_permission(self)
    }
}

impl Requirement for Permission {
    fn is_met_by(&self, principal: &Principal) -> bool {
        principal.has_permission(&self.0)
    }
}

// `require(&role)` and `require("fin.x.y")` (a `&str`) alike.
impl<T: Requirement + ?Sized> Requirement for &T {
    fn is_met_by(&self, principal: &Principal) -> bool {
        (**self).is_met_by(principal)
    }
}

impl Principal {
    /// `Ok` if the caller meets `requirement` (a [`Role`] or a permission), else
    /// [`AuthError::Forbidden`]: 403 `forbidden` as an axum response (feature `axum`),
    /// `PERMISSION_DENIED` as a `tonic::Status` (feature `tonic`), so a handler checks with
    /// one `?`.
    ///
    /// ```
    /// use finout_auth::{AccountId, ClientId, Principal, Role};
    /// let reader = Principal::account(AccountId::new_v4(), Role::ReadOnly, ClientId::from("c"));
    /// assert!(reader.require(Role::ReadOnly).is_ok());
    /// assert!(reader.require(Role::Admin).is_err());
    /// assert!(reader.require("fin.megabill.read.views").is_ok());
    /// assert!(reader.require("fin.megabill.write.views").is_err());
    /// ```
    ///
    /// In an axum handler (the `AuthLayer` put the principal there):
    ///
    /// ```
    /// # #[cfg(feature = "axum")]
    /// # mod example {
    /// use axum::{Router, routing::delete};
    /// use finout_auth::{AuthError, Principal, Role};
    ///
    /// async fn drop_view(principal: Principal) -> Result<&'static str, AuthError> {
    ///     principal.require("fin.megabill.write.views")?;
    ///     Ok("deleted")
    /// }
    ///
    /// async fn audit(principal: Principal) -> Result<&'static str, AuthError> {
    ///     principal.require(Role::Admin)?;
    ///     Ok("the audit log")
    /// }
    ///
    /// pub fn app() -> Router {
    ///     Router::new().route("/views/{id}", delete(drop_view)).route("/audit", axum::routing::get(audit))
    /// }
    /// # }
    /// # #[cfg(feature = "axum")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # use axum::{body::Body, http::{Request, StatusCode}};
    /// # use finout_auth::{AccountId, ClientId, Principal, Role};
    /// # use tower::ServiceExt;
    /// # let mut request = Request::delete("/views/1").body(Body::empty()).unwrap();
    /// # request.extensions_mut().insert(Principal::account(AccountId::new_v4(), Role::ReadOnly, ClientId::from("c")));
    /// # let response = example::app().oneshot(request).await.unwrap();
    /// # assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// # }
    /// # #[cfg(not(feature = "axum"))]
    /// # fn main() {}
    /// ```
    ///
    /// In a tonic handler (`AuthLayer::new(..).rejection(GrpcRejection)` put it in the
    /// request's extensions):
    ///
    /// ```
    /// # #[cfg(feature = "tonic")]
    /// # mod example {
    /// use finout_auth::{AuthError, Principal, Role};
    /// use tonic::{Request, Response, Status};
    ///
    /// pub async fn delete_view(request: Request<String>) -> Result<Response<()>, Status> {
    ///     let principal = request
    ///         .extensions()
    ///         .get::<Principal>()
    ///         .ok_or(AuthError::LayerMissing)?;
    ///     principal.require("fin.megabill.write.views")?;
    ///     Ok(Response::new(()))
    /// }
    /// # }
    /// # #[cfg(feature = "tonic")]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # use finout_auth::{AccountId, ClientId, Principal, Role};
    /// # let mut request = tonic::Request::new(String::new());
    /// # request.extensions_mut().insert(Principal::account(AccountId::new_v4(), Role::ReadOnly, ClientId::from("c")));
    /// # let status = example::delete_view(request).await.unwrap_err();
    /// # assert_eq!(status.code(), tonic::Code::PermissionDenied);
    /// # }
    /// # #[cfg(not(feature = "tonic"))]
    /// # fn main() {}
    /// ```
    pub fn require(&self, requirement: impl Requirement) -> Result<(), AuthError> {
        if requirement.is_met_by(self) {
            Ok(())
        } else {
            Err(AuthError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, ClientId, UserId};

    #[test]
    fn roles_and_permissions_are_checked_as_the_layer_checks_them() {
        let demoted = Principal::user(
            AccountId::new_v4(),
            UserId::new_v4(),
            vec![Role::ReadOnly],
            Role::Admin,
            ClientId::from("c"),
        );
        assert!(demoted.require(Role::ReadOnly).is_ok());
        assert!(matches!(
            demoted.require(Role::Basic),
            Err(AuthError::Forbidden)
        ));
        let write = "fin.megabill.write.views";
        assert!(matches!(demoted.require(write), Err(AuthError::Forbidden)));
        assert!(demoted.require(&Role::ReadOnly).is_ok());
        assert!(
            demoted
                .require(String::from("fin.megabill.read.views"))
                .is_ok()
        );
        assert!(demoted.require(Permission::from(write)).is_err());
    }
}
