//! Authentication: [`AuthLayer`] → [`AuthService`] → [`AuthFuture`].
//!
//! For each request it reads the two credential headers, authenticates them with an
//! [`Authenticator`], removes the secret header, inserts the [`Principal`] into the request
//! extensions and calls the inner service; or answers the rejection itself, by default with
//! the JSON body `{"error","message","requestId"}`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{convert::Infallible, sync::Arc};
//! use finout_auth::{AuthLayer, Authenticator, Principal, store::MemoryTokenStore};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let auth = Authenticator::new(Arc::new(MemoryTokenStore::new()));
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(auth))
//!     .service(service_fn(|req: Request<String>| async move {
//!         let principal = req.extensions().get::<Principal>().expect("set by the layer");
//!         Ok::<_, Infallible>(Response::new(principal.account_id().to_string()))
//!     }));
//!
//! // No credentials: the layer answers 401 itself.
//! let response = service.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    body::AuthBody,
    rejection::{JsonRejection, Ready, RejectionResponse},
};
use crate::{
    authenticator::Authenticator,
    credentials::{Credentials, TakenSecret},
    error::AuthError,
    model::{ClientId, Principal, SecretKey},
};

/// Applies [`AuthService`]: authenticate every request with an [`Authenticator`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthLayer<R = JsonRejection> {
    authenticator: Authenticator,
    rejection: R,
}

impl AuthLayer {
    /// Authenticate with `authenticator`, rejecting with [`JsonRejection`].
    pub fn new(authenticator: Authenticator) -> Self {
        AuthLayer {
            authenticator,
            rejection: JsonRejection,
        }
    }
}

impl<R> AuthLayer<R> {
    /// Answer rejections with `rejection` instead.
    pub fn rejection<R2: RejectionResponse>(self, rejection: R2) -> AuthLayer<R2> {
        AuthLayer {
            authenticator: self.authenticator,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

/// Middleware that authenticates requests before they reach `S`. See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S, R = JsonRejection> {
    inner: S,
    authenticator: Authenticator,
    rejection: R,
}

impl<S, R> AuthService<S, R> {
    /// The authenticator this service uses.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    define_inner_service_accessors!();
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    R: RejectionResponse,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = AuthFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The secret leaves the headers first, in the same lookup that reads it, so the
        // inner service never sees it whatever the outcome.
        let secret = TakenSecret::take(request.headers_mut());
        let cold = match Credentials::from_taken(request.headers(), &secret) {
            Err(error) => {
                self.authenticator.record_rejection(&error);
                return AuthFuture::rejected(self.rejection.response(&error));
            }
            Ok(credentials) => match self.authenticator.authenticate_cached(credentials) {
                Some(Ok(principal)) => {
                    request.extensions_mut().insert(principal);
                    // Called now, so the service `poll_ready` made ready takes the request.
                    return AuthFuture::calling(self.inner.call(request));
                }
                Some(Err(error)) => {
                    return AuthFuture::rejected(self.rejection.response(&error));
                }
                None => (
                    ClientId::from(credentials.client_id()),
                    SecretKey::new(credentials.secret()),
                ),
            },
        };
        // The inner service is called later, from the future: take the ready one along and
        // leave a clone behind, which may not be ready (tower's "be careful when cloning
        // inner services"). A hot request needs no clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        let (client_id, secret) = cold;
        AuthFuture {
            state: State::Authenticating {
                authentication: Box::pin(async move {
                    authenticator.authenticate_uncached(client_id, secret).await
                }),
                pending: Some((inner, request)),
                rejection: self.rejection.clone(),
            },
        }
    }
}

type Authentication = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>;

pin_project! {
    /// The future of [`AuthService`]: authenticating (cold path only), then the inner call,
    /// or a ready rejection.
    pub struct AuthFuture<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, R>
    where
        S: Service<Request<ReqBody>>,
    {
        Authenticating {
            authentication: Authentication,
            pending: Option<(S, Request<ReqBody>)>,
            rejection: R,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Ready,
        },
    }
}

impl<S, ReqBody, R> AuthFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn rejected(response: Response<Full<Bytes>>) -> Self {
        AuthFuture {
            state: State::Rejected {
                response: Ready::new(response),
            },
        }
    }

    fn calling(future: S::Future) -> Self {
        AuthFuture {
            state: State::Calling { future },
        }
    }
}

impl<S, ReqBody, R> fmt::Debug for AuthFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody, R> Future for AuthFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Authenticating {
                    authentication,
                    pending,
                    rejection,
                } => {
                    let outcome = ready!(authentication.as_mut().poll(cx));
                    match (outcome, pending.take()) {
                        (Ok(principal), Some((mut inner, mut request))) => {
                            request.extensions_mut().insert(principal);
                            let future = inner.call(request);
                            this.state.set(State::Calling { future });
                        }
                        (Err(error), _) => {
                            let response = Ready::new(rejection.response(&error));
                            this.state.set(State::Rejected { response });
                        }
                        (Ok(_), None) => panic!("AuthFuture polled after completion"),
                    }
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(AuthBody::inner)));
                }
                StateProj::Rejected { response } => return Poll::Ready(Ok(response.take())),
            }
        }
    }
}
