//! Authorization after authentication: [`RequireLayer`] lets a request through only if its
//! [`Principal`] holds a role or permission, and answers 403 `forbidden` otherwise.
//!
//! Put it *inside* an [`AuthLayer`](crate::AuthLayer) (in axum: add it with `route_layer`
//! after, or `.layer` before, the `AuthLayer`), so the principal is already there. Without
//! one, it answers 500 `internal_error`: a server bug, not the client's.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::convert::Infallible;
//! use finout_auth::{AccountId, ClientId, Principal, Role, middleware::RequireLayer};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let service = ServiceBuilder::new()
//!     .layer(RequireLayer::role(Role::Admin))
//!     .service(service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) }));
//!
//! let mut request = Request::new(String::new());
//! request.extensions_mut().insert(Principal::account(AccountId::new_v4(), Role::ReadOnly, ClientId::from("id")));
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    auth::Anonymous,
    body::AuthBody,
    rejection::{JsonRejection, Ready, RejectionResponse, counter},
    request_id::RequestId,
};
use crate::{
    error::AuthError,
    metrics::Metrics,
    model::{Permission, Principal, Role},
};

#[derive(Clone)]
enum Requirement {
    Role(Role),
    Permission(Permission),
    AdminUser,
    Custom(Arc<dyn Fn(&Principal) -> bool + Send + Sync>),
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Role(r) => write!(f, "Role({r})"),
            Requirement::Permission(p) => write!(f, "Permission({})", p.0),
            Requirement::AdminUser => f.write_str("AdminUser"),
            Requirement::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl Requirement {
    fn allows(&self, principal: &Principal) -> bool {
        match self {
            Requirement::Role(role) => principal.has_role(role),
            Requirement::Permission(p) => principal.has_permission(&p.0),
            Requirement::AdminUser => principal.is_admin_user(),
            Requirement::Custom(check) => check(principal),
        }
    }
}

/// Requires a role or permission of the authenticated [`Principal`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireLayer<R = JsonRejection> {
    requirement: Requirement,
    rejection: R,
    metrics: Option<Metrics>,
}

impl RequireLayer {
    /// The caller must effectively hold at least `role` ([`Principal::has_role`]).
    pub fn role(role: Role) -> Self {
        Self::with(Requirement::Role(role))
    }

    /// The caller must be allowed `permission` ([`Principal::has_permission`]).
    pub fn permission(permission: impl Into<Permission>) -> Self {
        Self::with(Requirement::Permission(permission.into()))
    }

    /// The caller must be a user holding `Admin` ([`Principal::is_admin_user`]).
    pub fn admin_user() -> Self {
        Self::with(Requirement::AdminUser)
    }

    /// The caller must pass `check`.
    pub fn check(check: impl Fn(&Principal) -> bool + Send + Sync + 'static) -> Self {
        Self::with(Requirement::Custom(Arc::new(check)))
    }

    fn with(requirement: Requirement) -> Self {
        RequireLayer {
            requirement,
            rejection: JsonRejection,
            metrics: None,
        }
    }
}

impl<R> RequireLayer<R> {
    /// Answer rejections with `rejection` instead of the JSON body.
    pub fn rejection<R2: RejectionResponse>(self, rejection: R2) -> RequireLayer<R2> {
        RequireLayer {
            requirement: self.requirement,
            rejection,
            metrics: self.metrics,
        }
    }

    /// Count every rejection it answers into `metrics` instead of the authenticator's.
    ///
    /// Not needed inside an [`AuthLayer`](crate::AuthLayer): without a handle of its own, it
    /// counts into that of the authenticator that let the request in
    /// ([`Authenticator::metrics_handle`](crate::Authenticator::metrics_handle)), found
    /// through the request. Needed to count
    /// the 500 it answers when no `AuthLayer` is outside it.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S, R: Clone> Layer<S> for RequireLayer<R> {
    type Service = Require<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            requirement: self.requirement.clone(),
            rejection: self.rejection.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`RequireLayer`].
#[derive(Debug, Clone)]
pub struct Require<S, R = JsonRejection> {
    inner: S,
    requirement: Requirement,
    rejection: R,
    metrics: Option<Metrics>,
}

impl<S, R> Require<S, R> {
    define_inner_service_accessors!();
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let error = match request.extensions().get::<Principal>() {
            Some(p) if self.requirement.allows(p) => {
                return RequireFuture {
                    state: RequireState::Inner {
                        future: self.inner.call(request),
                    },
                };
            }
            Some(p) => {
                tracing::debug!(target: "finout_auth", client_id = %p.client_id(), requirement = ?self.requirement, "forbidden");
                AuthError::Forbidden
            }
            // An optional `AuthLayer` let a request without credentials through.
            None if request.extensions().get::<Anonymous>().is_some() => {
                AuthError::MissingCredentials
            }
            None => {
                tracing::error!(target: "finout_auth", "RequireLayer without a Principal: is AuthLayer installed outside it?");
                AuthError::LayerMissing
            }
        };
        let response = self
            .rejection
            .response_with_id(&error, &RequestId::of(request.headers()));
        let metrics = counter(self.metrics.as_ref(), &request);
        RequireFuture {
            state: RequireState::Rejected {
                response: Ready::counted(response, error.code(), metrics),
            },
        }
    }
}

pin_project! {
    /// The future of [`Require`]: the inner call, or a ready rejection.
    pub struct RequireFuture<F> {
        #[pin]
        state: RequireState<F>,
    }
}

pin_project! {
    #[project = RequireProj]
    enum RequireState<F> {
        Inner { #[pin] future: F },
        Rejected { response: Ready },
    }
}

impl<F> fmt::Debug for RequireFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for RequireFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RequireProj::Inner { future } => {
                Poll::Ready(ready!(future.poll(cx)).map(|r| r.map(AuthBody::inner)))
            }
            RequireProj::Rejected { response } => Poll::Ready(Ok(response.take())),
        }
    }
}
