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

use tracing::Instrument;

use super::{
    body::AuthBody,
    rejection::{JsonRejection, Ready, RejectionResponse},
    request_id::RequestId,
};
use crate::{
    authenticator::Authenticator,
    credentials::{CLIENT_ID_HEADER, Credentials, TakenSecret},
    error::AuthError,
    metrics::Metrics,
    model::{ClientId, Principal, SecretKey},
};

/// Applies [`AuthService`]: authenticate every request with an [`Authenticator`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AuthLayer<R = JsonRejection> {
    authenticator: Authenticator,
    rejection: R,
    optional: bool,
}

impl AuthLayer {
    /// Authenticate with `authenticator`, rejecting with [`JsonRejection`].
    pub fn new(authenticator: Authenticator) -> Self {
        AuthLayer {
            authenticator,
            rejection: JsonRejection,
            optional: false,
        }
    }
}

impl<R> AuthLayer<R> {
    /// Answer rejections with `rejection` instead.
    pub fn rejection<R2: RejectionResponse>(self, rejection: R2) -> AuthLayer<R2> {
        AuthLayer {
            authenticator: self.authenticator,
            rejection,
            optional: self.optional,
        }
    }

    /// Optional authentication: a request with neither credential header passes without a
    /// [`Principal`] (handlers see `Option<Principal>` as `None`); one with credentials is
    /// authenticated as always, and bad or partial credentials are still rejected.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
            rejection: self.rejection.clone(),
            optional: self.optional,
        }
    }
}

/// Middleware that authenticates requests before they reach `S`. See [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S, R = JsonRejection> {
    inner: S,
    authenticator: Authenticator,
    rejection: R,
    optional: bool,
}

/// The mark of a request an optional [`AuthLayer`] let through without credentials, with the
/// handle its authenticator counts into (for a refusal by a layer after it).
#[derive(Debug, Clone)]
pub(crate) struct Anonymous(pub(crate) Metrics);

/// Record who the caller is on the current span (the caller's, e.g. tower-http's
/// `TraceLayer` span), for the fields it declared: `client_id` and `account_id`.
#[inline]
fn record_on_span(principal: &Principal) {
    // No subscriber was ever set (a benchmark, a quiet service): nothing to record on.
    if !tracing::dispatcher::has_been_set() {
        return;
    }
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("client_id", principal.client_id().as_str());
        span.record(
            "account_id",
            tracing::field::display(principal.account_id()),
        );
    }
}

/// The request id the logs name, when anyone logs this crate's outcomes (DEBUG): the same
/// id a rejection then answers with. `None` costs one level check and no header read.
#[inline]
fn logged_request_id(headers: &http::HeaderMap) -> Option<RequestId> {
    tracing::enabled!(target: "finout_auth", tracing::Level::DEBUG).then(|| RequestId::of(headers))
}

/// Run `f` (which may log an outcome) in a span naming the request id, if one is logged.
#[inline]
fn with_request_id<T>(request_id: Option<&RequestId>, f: impl FnOnce() -> T) -> T {
    match request_id {
        Some(id) => tracing::debug_span!(target: "finout_auth", "authenticate", request_id = %id)
            .in_scope(f),
        None => f(),
    }
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
        let logged_id = logged_request_id(request.headers());
        let cold = match Credentials::from_taken(request.headers(), &secret) {
            Err(AuthError::MissingCredentials)
                if self.optional
                    && !secret.is_present()
                    && !request.headers().contains_key(CLIENT_ID_HEADER) =>
            {
                // Optional authentication and no credentials at all: no principal, and a
                // mark saying so (a `Principal` extractor then answers 401, not 500).
                request
                    .extensions_mut()
                    .insert(Anonymous(self.authenticator.metrics_handle().clone()));
                return AuthFuture::calling(self.inner.call(request));
            }
            Err(error) => {
                with_request_id(logged_id.as_ref(), || {
                    self.authenticator.record_rejection(&error)
                });
                let request_id = logged_id.unwrap_or_else(|| RequestId::of(request.headers()));
                return AuthFuture::rejected(self.rejection.response_with_id(&error, &request_id));
            }
            Ok(credentials) => match with_request_id(logged_id.as_ref(), || {
                self.authenticator.authenticate_cached(credentials)
            }) {
                Some(Ok(principal)) => {
                    record_on_span(&principal);
                    request.extensions_mut().insert(principal);
                    // Called now, so the service `poll_ready` made ready takes the request.
                    return AuthFuture::calling(self.inner.call(request));
                }
                Some(Err(error)) => {
                    let request_id = logged_id.unwrap_or_else(|| RequestId::of(request.headers()));
                    return AuthFuture::rejected(
                        self.rejection.response_with_id(&error, &request_id),
                    );
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
        // The cold path's logs (a throttle trip, a store failure, auth_busy) name the request,
        // by the id a rejection answers with. At WARN, the level of the events it exists for: a
        // subscriber that keeps only warnings still shows the request id on them.
        let request_id = logged_id.unwrap_or_else(|| RequestId::of(request.headers()));
        let span = tracing::span!(
            target: "finout_auth",
            tracing::Level::WARN,
            "authenticate",
            request_id = %request_id
        );
        AuthFuture {
            state: State::Authenticating {
                authentication: Box::pin(
                    async move { authenticator.authenticate_uncached(client_id, secret).await }
                        .instrument(span),
                ),
                pending: Some((inner, request)),
                rejection: self.rejection.clone(),
                request_id,
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
            request_id: RequestId,
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
                    request_id,
                } => {
                    let outcome = ready!(authentication.as_mut().poll(cx));
                    match (outcome, pending.take()) {
                        (Ok(principal), Some((mut inner, mut request))) => {
                            record_on_span(&principal);
                            request.extensions_mut().insert(principal);
                            let future = inner.call(request);
                            this.state.set(State::Calling { future });
                        }
                        (Err(error), _) => {
                            let response =
                                Ready::new(rejection.response_with_id(&error, request_id));
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
