//! [`TokenConcurrencyLimitLayer`]: at most N requests in flight per token (Finout allows 5
//! per API key); the next one answers 429 `too_many_requests` with `Retry-After`.
//!
//! Put it inside an [`AuthLayer`](crate::AuthLayer): it keys on the [`Principal`]'s client
//! id. Memory is bounded by the requests in flight: a token's counter exists only while it
//! has one.
//!
//! ```
//! use finout_auth::middleware::TokenConcurrencyLimitLayer;
//! let layer = TokenConcurrencyLimitLayer::new(5);
//! # let _ = layer;
//! ```

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    body::AuthBody,
    rejection::{JsonRejection, Ready, RejectionResponse},
    request_id::RequestId,
};
use crate::{
    error::AuthError,
    metrics::Metrics,
    model::{ClientId, Principal},
};

/// When `too_many_requests` tells the client to retry.
const RETRY_AFTER: Duration = Duration::from_secs(1);

type InFlight = Arc<Mutex<HashMap<ClientId, usize>>>;

/// Limits concurrent requests per client id. Clones share the counts.
#[derive(Clone)]
#[must_use]
pub struct TokenConcurrencyLimitLayer<R = JsonRejection> {
    max: usize,
    in_flight: InFlight,
    rejection: R,
    metrics: Option<Metrics>,
}

impl fmt::Debug for TokenConcurrencyLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConcurrencyLimitLayer")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl TokenConcurrencyLimitLayer {
    /// At most `max` (at least 1) requests in flight per token.
    pub fn new(max: usize) -> Self {
        TokenConcurrencyLimitLayer {
            max: max.max(1),
            in_flight: Arc::default(),
            rejection: JsonRejection,
            metrics: None,
        }
    }
}

impl<R> TokenConcurrencyLimitLayer<R> {
    /// Answer rejections with `rejection` instead.
    pub fn rejection<R2: RejectionResponse>(self, rejection: R2) -> TokenConcurrencyLimitLayer<R2> {
        TokenConcurrencyLimitLayer {
            max: self.max,
            in_flight: self.in_flight,
            rejection,
            metrics: self.metrics,
        }
    }

    /// Count every rejection it answers into `metrics` (e.g. the authenticator's,
    /// [`Authenticator::metrics_handle`](crate::Authenticator::metrics_handle)).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S, R: Clone> Layer<S> for TokenConcurrencyLimitLayer<R> {
    type Service = TokenConcurrencyLimit<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenConcurrencyLimit {
            inner,
            max: self.max,
            in_flight: self.in_flight.clone(),
            rejection: self.rejection.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`TokenConcurrencyLimitLayer`].
#[derive(Clone)]
pub struct TokenConcurrencyLimit<S, R = JsonRejection> {
    inner: S,
    max: usize,
    in_flight: InFlight,
    rejection: R,
    metrics: Option<Metrics>,
}

impl<S, R> TokenConcurrencyLimit<S, R> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug, R> fmt::Debug for TokenConcurrencyLimit<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConcurrencyLimit")
            .field("inner", &self.inner)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// Holds one of a token's slots; gives it back on drop.
struct Slot {
    client_id: ClientId,
    in_flight: InFlight,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.client_id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client_id);
            }
        }
    }
}

fn acquire(in_flight: &InFlight, client_id: &ClientId, max: usize) -> Option<Slot> {
    let mut map = in_flight.lock().unwrap_or_else(|e| e.into_inner());
    let n = map.entry(client_id.clone()).or_insert(0);
    if *n >= max {
        return None;
    }
    *n += 1;
    Some(Slot {
        client_id: client_id.clone(),
        in_flight: in_flight.clone(),
    })
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for TokenConcurrencyLimit<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RejectionResponse,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let slot = match request.extensions().get::<Principal>() {
            // Without a principal there is nothing to key on: the auth layer decides.
            None => None,
            Some(p) => match acquire(&self.in_flight, p.client_id(), self.max) {
                Some(slot) => Some(slot),
                None => {
                    let error = AuthError::TooManyRequests {
                        retry_after: RETRY_AFTER,
                    };
                    if let Some(metrics) = &self.metrics {
                        metrics.record_rejection(error.code());
                    }
                    return LimitFuture {
                        state: LimitState::Rejected {
                            response: Ready::new(
                                self.rejection
                                    .response_with_id(&error, &RequestId::of(request.headers())),
                            ),
                        },
                    };
                }
            },
        };
        LimitFuture {
            state: LimitState::Inner {
                future: self.inner.call(request),
                slot,
            },
        }
    }
}

pin_project! {
    /// The future of [`TokenConcurrencyLimit`] and [`RateLimit`](super::RateLimit); it
    /// holds the token's slot (if any) until the inner service has answered.
    pub struct LimitFuture<F> {
        #[pin]
        state: LimitState<F>,
    }
}

pin_project! {
    #[project = LimitProj]
    enum LimitState<F> {
        Inner { #[pin] future: F, slot: Option<Slot> },
        Rejected { response: Ready },
    }
}

impl<F> LimitFuture<F> {
    /// The inner service's future, holding no slot.
    pub(super) fn pass(future: F) -> Self {
        LimitFuture {
            state: LimitState::Inner { future, slot: None },
        }
    }

    /// A rejection.
    pub(super) fn rejected(response: Ready) -> Self {
        LimitFuture {
            state: LimitState::Rejected { response },
        }
    }
}

impl<F> fmt::Debug for LimitFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for LimitFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            LimitProj::Inner { future, slot } => {
                let output = ready!(future.poll(cx));
                drop(slot.take());
                Poll::Ready(output.map(|r| r.map(AuthBody::inner)))
            }
            LimitProj::Rejected { response } => Poll::Ready(Ok(response.take())),
        }
    }
}
