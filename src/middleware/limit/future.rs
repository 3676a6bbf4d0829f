//! [`LimitFuture`]: the response future of the limits. A limit decides at once (its own
//! state) or after a call to the shared state; then the inner service is called, or a
//! rejection answered. The in-flight slot a request took (if any) is handed to the response
//! body, which holds it until the answer has been sent.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::middleware::{
    body::{AuthBody, Guard},
    rejection::Ready,
};

/// What a limit decided.
pub(crate) enum Decided {
    /// Call the inner service, holding the guard (a slot) until the answer is sent.
    Pass(Option<Guard>),
    /// Call the inner service, adding these header fields to its answer (a rate limit's).
    PassWith(Box<HeaderMap>),
    /// Answer this rejection.
    Reject(Ready),
}

/// A decision still being made (a call to the shared state).
pub(crate) type Deciding = Pin<Box<dyn Future<Output = Decided> + Send>>;

pin_project! {
    /// The future of [`TokenConcurrencyLimit`](super::TokenConcurrencyLimit) and
    /// [`RateLimit`](crate::middleware::RateLimit).
    pub struct LimitFuture<F, S, B> {
        #[pin]
        state: LimitState<F, S, B>,
    }
}

pin_project! {
    #[project = LimitProj]
    enum LimitState<F, S, B> {
        Inner { #[pin] future: F, guard: Option<Guard>, headers: Option<Box<HeaderMap>> },
        Rejected { response: Ready },
        Deciding { decision: Deciding, inner: Option<S>, request: Option<Request<B>> },
    }
}

impl<F, S, B> LimitFuture<F, S, B> {
    /// The inner service's future, holding `guard` for the answer.
    pub(crate) fn pass(future: F, guard: Option<Guard>) -> Self {
        LimitFuture {
            state: LimitState::Inner {
                future,
                guard,
                headers: None,
            },
        }
    }

    /// The inner service's future, adding `headers` (if any) to its answer.
    pub(crate) fn pass_with(future: F, headers: Option<Box<HeaderMap>>) -> Self {
        LimitFuture {
            state: LimitState::Inner {
                future,
                guard: None,
                headers,
            },
        }
    }

    /// A rejection.
    pub(crate) fn rejected(response: Ready) -> Self {
        LimitFuture {
            state: LimitState::Rejected { response },
        }
    }

    /// Call `inner` (ready) with `request` once `decision` lets it through.
    pub(crate) fn deciding(decision: Deciding, inner: S, request: Request<B>) -> Self {
        LimitFuture {
            state: LimitState::Deciding {
                decision,
                inner: Some(inner),
                request: Some(request),
            },
        }
    }
}

impl<F, S, B> fmt::Debug for LimitFuture<F, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitFuture").finish_non_exhaustive()
    }
}

impl<F, S, B, ResBody, E> Future for LimitFuture<F, S, B>
where
    S: Service<Request<B>, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                LimitProj::Inner {
                    future,
                    guard,
                    headers,
                } => {
                    let output = ready!(future.poll(cx));
                    let (guard, headers) = (guard.take(), headers.take());
                    return Poll::Ready(output.map(|mut response| {
                        if let Some(headers) = headers {
                            // Ours replace the inner service's fields of the same names.
                            response.headers_mut().extend(*headers);
                        }
                        response.map(|b| AuthBody::guarded(b, guard))
                    }));
                }
                LimitProj::Rejected { response } => return Poll::Ready(Ok(response.take())),
                LimitProj::Deciding {
                    decision,
                    inner,
                    request,
                } => {
                    let (guard, headers) = match ready!(decision.as_mut().poll(cx)) {
                        Decided::Pass(guard) => (guard, None),
                        Decided::PassWith(headers) => (None, Some(headers)),
                        Decided::Reject(response) => {
                            state.set(LimitState::Rejected { response });
                            continue;
                        }
                    };
                    // Polled only once: `Deciding` is left for `Inner` right here.
                    let (Some(mut inner), Some(request)) = (inner.take(), request.take()) else {
                        unreachable!("a decision is made once");
                    };
                    let future = inner.call(request);
                    state.set(LimitState::Inner {
                        future,
                        guard,
                        headers,
                    });
                }
            }
        }
    }
}
