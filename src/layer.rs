//! The tower middleware: [`AuthLayer`] → [`AuthService`] → [`ResponseFuture`].
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
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use serde::Serialize;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    authenticator::Authenticator,
    credentials::{self, CLIENT_ID_HEADER, Credentials, SECRET_KEY_HEADER},
    error::{AuthError, ErrorCode},
    principal::Principal,
    token::{ClientId, SecretKey},
};

/// Turns a rejection into a response. Implement it (or pass a closure
/// `Fn(&AuthError) -> Response<Full<Bytes>>`) to answer in another shape, e.g. a gRPC
/// status for tonic.
pub trait RejectionResponse: Clone + Send + Sync + 'static {
    /// The response for `error`.
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>>;
}

impl<F> RejectionResponse for F
where
    F: Fn(&AuthError) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>> {
        self(error)
    }
}

/// The default rejection: the code's status, `Retry-After` where meaningful, and the JSON
/// body `{"error": "<code>", "message": "<text>", "requestId": "<uuid>"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRejection;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    request_id: uuid::Uuid,
}

impl RejectionResponse for JsonRejection {
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>> {
        json_error_response(error)
    }
}

/// The default JSON rejection response for `error` (what [`JsonRejection`] answers).
pub fn json_error_response(error: &AuthError) -> Response<Full<Bytes>> {
    let code = error.code();
    // `{"error":"<code>","message":"<text>","requestId":"` is fixed per code: serialize it
    // once, then append only the request id, so a rejection costs no escaping.
    static PREFIXES: OnceLock<Vec<String>> = OnceLock::new();
    let prefixes = PREFIXES.get_or_init(|| {
        ErrorCode::ALL
            .iter()
            .map(|code| {
                let mut json = serde_json::to_string(&ErrorBody {
                    error: code.as_str(),
                    message: code.message(),
                    request_id: uuid::Uuid::nil(),
                })
                .unwrap_or_default();
                // Drop the placeholder id and the closing `"}`.
                json.truncate(json.len() - uuid::fmt::Hyphenated::LENGTH - 2);
                json
            })
            .collect()
    });
    let prefix = prefixes.get(code.index()).map_or("", String::as_str);
    let mut body = Vec::with_capacity(prefix.len() + uuid::fmt::Hyphenated::LENGTH + 2);
    body.extend_from_slice(prefix.as_bytes());
    let mut id = uuid::Uuid::encode_buffer();
    body.extend_from_slice(
        uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut id)
            .as_bytes(),
    );
    body.extend_from_slice(b"\"}");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(after) = error.retry_after() {
        headers.insert(header::RETRY_AFTER, retry_after_value(after));
    }
    response
}

fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

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
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    ReqBody: Send + 'static,
    R: RejectionResponse,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The secret leaves the headers first, in the same lookup that reads it, so the
        // inner service never sees it whatever the outcome.
        let secret = take(request.headers_mut(), &SECRET_KEY_HEADER);
        let parsed = Credentials::from_values(
            credentials::single(request.headers().get_all(CLIENT_ID_HEADER).iter()),
            secret.as_ref().map(|(value, repeated)| (value, *repeated)),
        );
        let cold = match parsed {
            Err(error) => {
                self.authenticator.record_rejection(&error);
                return ResponseFuture::rejected(self.rejection.response(&error));
            }
            Ok(credentials) => match self.authenticator.authenticate_cached(credentials) {
                Some(Ok(principal)) => {
                    request.extensions_mut().insert(principal);
                    // Called now, so the service `poll_ready` made ready takes the request.
                    return ResponseFuture::calling(self.inner.call(request));
                }
                Some(Err(error)) => {
                    return ResponseFuture::rejected(self.rejection.response(&error));
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
        ResponseFuture {
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

/// Remove every value of `name`; answer the first, and whether there were more.
///
/// One lookup: [`HeaderMap::len`] counts values, so what the removal took tells whether the
/// header was repeated. Not through [`HeaderMap::entry`]: it makes room for an insert before
/// it looks, and hyper sizes a request's map exactly to its headers, so every request would
/// reallocate the map.
fn take(headers: &mut HeaderMap, name: &HeaderName) -> Option<(HeaderValue, bool)> {
    let before = headers.len();
    let first = headers.remove(name)?;
    Some((first, before - headers.len() > 1))
}

type Authentication = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>;

pin_project! {
    /// The future of [`AuthService`]: authenticating (cold path only), then the inner call,
    /// or a ready rejection.
    pub struct ResponseFuture<S, ReqBody, R>
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
            response: Option<Response<Full<Bytes>>>,
        },
    }
}

impl<S, ReqBody, R> ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn rejected(response: Response<Full<Bytes>>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    fn calling(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Calling { future },
        }
    }
}

impl<S, ReqBody, R> fmt::Debug for ResponseFuture<S, ReqBody, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody, R> Future for ResponseFuture<S, ReqBody, R>
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
                            let response = rejection.response(&error);
                            this.state.set(State::Rejected {
                                response: Some(response),
                            });
                        }
                        (Ok(_), None) => panic!("ResponseFuture polled after completion"),
                    }
                }
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(AuthBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(AuthBody::rejection)));
                }
            }
        }
    }
}

pin_project! {
    /// The response body of [`AuthService`]: the inner service's body, or a rejection's.
    pub struct AuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { body: Full<Bytes> },
    }
}

impl<B> AuthBody<B> {
    /// Wrap the inner service's body.
    pub fn inner(body: B) -> Self {
        AuthBody {
            kind: Kind::Inner { body },
        }
    }

    /// A rejection's body.
    pub fn rejection(body: Full<Bytes>) -> Self {
        AuthBody {
            kind: Kind::Rejection { body },
        }
    }
}

impl<B> fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Inner { .. } => "AuthBody::Inner",
            Kind::Rejection { .. } => "AuthBody::Rejection",
        })
    }
}

impl<B> Body for AuthBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { body } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[(&'static str, &'static str)]) -> HeaderMap {
        // As hyper builds a request's map: sized exactly to the headers it parsed.
        let mut map = HeaderMap::with_capacity(values.len());
        for (name, value) in values {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn take_removes_every_value_and_reports_repeats() {
        let mut map = headers(&[
            ("host", "example.test"),
            ("x-finout-secret-key", "first"),
            ("x-finout-secret-key", "second"),
        ]);
        let (first, repeated) = take(&mut map, &SECRET_KEY_HEADER).expect("present");
        assert_eq!(first, "first");
        assert!(repeated);
        assert!(map.get(&SECRET_KEY_HEADER).is_none());
        assert_eq!(map.len(), 1);

        let mut map = headers(&[("x-finout-secret-key", "only")]);
        let (first, repeated) = take(&mut map, &SECRET_KEY_HEADER).expect("present");
        assert_eq!((first.to_str().unwrap(), repeated), ("only", false));
        assert!(map.is_empty());

        assert!(take(&mut headers(&[("host", "h")]), &SECRET_KEY_HEADER).is_none());
    }

    #[test]
    fn take_does_not_grow_an_exactly_sized_map() {
        // `HeaderMap::entry` would reserve room for an insert first: a reallocation for
        // every request hyper hands over.
        let mut map = headers(&[
            ("host", "example.test"),
            ("x-finout-client-id", "id"),
            ("x-finout-secret-key", "secret"),
        ]);
        let capacity = map.capacity();
        assert!(take(&mut map, &SECRET_KEY_HEADER).is_some());
        assert_eq!(map.capacity(), capacity);
        assert!(take(&mut map, &SECRET_KEY_HEADER).is_none());
        assert_eq!(map.capacity(), capacity);
    }
}
