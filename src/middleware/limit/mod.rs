//! [`TokenConcurrencyLimitLayer`]: at most N requests in flight per token (Finout allows 5
//! per API key); the next one answers 429 `too_many_requests` with `Retry-After`.
//!
//! Put it inside an [`AuthLayer`](crate::AuthLayer): it keys on the [`Principal`]'s client
//! id. A request holds its slot until its answer has been sent (the response body is done
//! or dropped). Memory is bounded by the requests in flight: a token's counter exists only
//! while it has one.
//!
//! With [`shared`](TokenConcurrencyLimitLayer::shared), the slots are shared by every
//! replica: each is a lease in the shared state that expires unless renewed (a request
//! renews its lease every third of it while in flight), so the slots of a replica that
//! crashed come back within a lease. If the shared state does not answer, the process's
//! own slots decide (see [`shared`](crate::shared)).
//!
//! ```
//! use finout_auth::middleware::TokenConcurrencyLimitLayer;
//! let layer = TokenConcurrencyLimitLayer::new(5);
//! # let _ = layer;
//! ```

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    body::{AuthBody, Guard},
    rejection::{JsonRejection, Ready, RejectionResponse, counter},
    request_id::RequestId,
};
use crate::{
    error::AuthError,
    metrics::Metrics,
    model::{ClientId, Principal},
    shared::{DEFAULT_SLOT_LEASE, Shared, random_id},
};

pub(crate) mod future;

use future::Decided;
pub use future::LimitFuture;

/// When `too_many_requests` tells the client to retry.
const RETRY_AFTER: Duration = Duration::from_secs(1);

type InFlight = Arc<Mutex<HashMap<ClientId, usize>>>;

/// Limits concurrent requests per client id. Clones share the counts.
#[derive(Clone)]
#[must_use]
pub struct TokenConcurrencyLimitLayer<R = JsonRejection> {
    max: usize,
    in_flight: InFlight,
    shared: Option<Shared>,
    lease: Duration,
    rejection: R,
    metrics: Option<Metrics>,
}

impl<R> fmt::Debug for TokenConcurrencyLimitLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConcurrencyLimitLayer")
            .field("max", &self.max)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenConcurrencyLimitLayer {
    /// At most `max` (at least 1) requests in flight per token.
    pub fn new(max: usize) -> Self {
        TokenConcurrencyLimitLayer {
            max: max.max(1),
            in_flight: Arc::default(),
            shared: None,
            lease: DEFAULT_SLOT_LEASE,
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
            shared: self.shared,
            lease: self.lease,
            rejection,
            metrics: self.metrics,
        }
    }

    /// Count every rejection it answers into `metrics` instead of the authenticator's.
    ///
    /// Not needed inside an [`AuthLayer`](crate::AuthLayer): without a handle of its own, it
    /// counts into that of the authenticator that let the request in
    /// ([`Authenticator::metrics_handle`](crate::Authenticator::metrics_handle)), found
    /// through the request.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Share the slots with every replica through `shared` (see [`shared`](crate::shared): leased slots, and the fall back when it does not answer).
    pub fn shared(mut self, shared: Shared) -> Self {
        self.shared = Some(shared);
        self
    }

    /// How long a shared slot's lease lasts without renewal (default
    /// [`DEFAULT_SLOT_LEASE`](crate::shared::DEFAULT_SLOT_LEASE), at least 30 ms): how long
    /// a crashed replica's slots stay taken.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }
}

impl<S, R: Clone> Layer<S> for TokenConcurrencyLimitLayer<R> {
    type Service = TokenConcurrencyLimit<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenConcurrencyLimit {
            inner,
            limit: self.clone(),
        }
    }
}

/// The service of [`TokenConcurrencyLimitLayer`].
#[derive(Clone)]
pub struct TokenConcurrencyLimit<S, R = JsonRejection> {
    inner: S,
    limit: TokenConcurrencyLimitLayer<R>,
}

impl<S, R> TokenConcurrencyLimit<S, R> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug, R> fmt::Debug for TokenConcurrencyLimit<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConcurrencyLimit")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

/// Holds one of a token's slots in this process; gives it back on drop.
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

/// Holds a shared slot: renews its lease while held, releases it on drop.
struct SharedSlot {
    renewal: tokio::task::JoinHandle<()>,
    release: Option<(Shared, String, String)>,
}

impl SharedSlot {
    fn new(shared: Shared, key: String, slot: String, lease: Duration) -> Self {
        let renewal = {
            let (shared, key, slot) = (shared.clone(), key.clone(), slot.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let state = shared.state();
                    shared
                        .call(state.renew_slot(&key, &slot, lease, None))
                        .await;
                }
            })
        };
        SharedSlot {
            renewal,
            release: Some((shared, key, slot)),
        }
    }
}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        self.renewal.abort();
        if let Some((shared, key, slot)) = self.release.take() {
            shared
                .spawn(move |shared| async move { shared.state().release_slot(&key, &slot).await });
        }
    }
}

impl<R: RejectionResponse> TokenConcurrencyLimitLayer<R> {
    /// The rejection, counted into `metrics` ([`counter`] of the request).
    fn rejection_response(&self, request_id: &RequestId, metrics: Option<&Metrics>) -> Ready {
        let error = AuthError::TooManyRequests {
            retry_after: RETRY_AFTER,
        };
        let response = self.rejection.response_with_id(&error, request_id);
        Ready::counted(response, error.code(), metrics)
    }

    /// The decision for `client_id` through the shared state (the process's own slots when
    /// it does not answer).
    fn decide_shared(
        &self,
        shared: Shared,
        client_id: ClientId,
        request_id: RequestId,
        metrics: Option<Metrics>,
    ) -> future::Deciding {
        let limit = self.clone();
        Box::pin(async move {
            let key = format!("slots:{}", client_id.as_str());
            let slot = random_id();
            let max = u32::try_from(limit.max).unwrap_or(u32::MAX);
            let state = shared.state();
            let taken = shared
                .call(state.acquire_slot(&key, &slot, max, limit.lease, None))
                .await;
            let guard: Option<Guard> = match taken {
                Some(true) => Some(Box::new(SharedSlot::new(
                    shared.clone(),
                    key,
                    slot,
                    limit.lease,
                ))),
                Some(false) => None,
                None => acquire(&limit.in_flight, &client_id, limit.max)
                    .map(|slot| Box::new(slot) as Guard),
            };
            match guard {
                Some(guard) => Decided::Pass(Some(guard)),
                None => Decided::Reject(limit.rejection_response(&request_id, metrics.as_ref())),
            }
        })
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for TokenConcurrencyLimit<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RejectionResponse,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = LimitFuture<S::Future, S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Without a principal there is nothing to key on: the auth layer decides.
        let Some(client_id) = request
            .extensions()
            .get::<Principal>()
            .map(|p| p.client_id().clone())
        else {
            return LimitFuture::pass(self.inner.call(request), None);
        };
        if let Some(shared) = &self.limit.shared {
            let decision = self.limit.decide_shared(
                shared.clone(),
                client_id,
                RequestId::of(request.headers()),
                counter(self.limit.metrics.as_ref(), &request).cloned(),
            );
            // The service polled ready goes with the request; its clone stays for the next.
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return LimitFuture::deciding(decision, inner, request);
        }
        match acquire(&self.limit.in_flight, &client_id, self.limit.max) {
            Some(slot) => LimitFuture::pass(self.inner.call(request), Some(Box::new(slot))),
            None => LimitFuture::rejected(self.limit.rejection_response(
                &RequestId::of(request.headers()),
                counter(self.limit.metrics.as_ref(), &request),
            )),
        }
    }
}
