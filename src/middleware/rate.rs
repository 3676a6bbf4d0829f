//! [`RateLimitLayer`]: at most N requests per period per account (or per token), as Finout
//! limits its V2 routes ("applied per route, per account": e.g. 50 a minute, and 10,000 a
//! day for one of them); past it, 429 `too_many_requests` with `Retry-After` saying when
//! the next request will be accepted.
//!
//! Put it inside an [`AuthLayer`](crate::AuthLayer): it keys on the [`Principal`]. A
//! request without one passes untouched (the authentication layer decides about it).
//!
//! Each quota is a GCRA (a leaky bucket holding one timestamp): `limit` requests may come at
//! once, then one every `period / limit` — the semantics of the `governor` crate's quotas:
//! `limit` per period sustained, at most `2 * limit - 1` within any one period (the burst,
//! then the refill). A refused request uses nothing up. The state of a
//! key is at most one timestamp per quota; a key unused for the longest period (and at least
//! a minute) is forgotten (its bucket is empty by then, so forgetting changes nothing), and at most
//! [`max_keys`](RateLimitLayer::max_keys) keys are kept (default [`DEFAULT_MAX_KEYS`]).
//! Keys come only from authenticated principals, so an unauthenticated flood creates none;
//! past the cap, the least recently used keys are forgotten (their callers get a fresh
//! quota: a loosened limit, never a refusal of someone else).
//!
//! One layer (and its clones) is one set of counters: build one per route to limit routes
//! separately.
//!
//! With [`shared`](RateLimitLayer::shared), the counts are shared by every replica: one
//! script in the shared state decides all quotas of a request at once (so a refused request
//! still uses nothing up), timed by the shared state's clock. If it does not answer, the
//! process's own counts decide (see [`shared`](crate::shared)).
//!
//! With [`headers`](RateLimitLayer::headers), every answer of the route says where its key
//! stands: `RateLimit-Policy` and `RateLimit` of draft-ietf-httpapi-ratelimit-headers-10, or
//! the `x-ratelimit-*` trio ([`RateLimitHeaders`]), from the state the decision left, of the
//! quota with the least remaining; `reset` is the seconds until its remaining grows
//! ([`RateLimitHeaders`] defines each value).
//!
//! ```
//! use finout_auth::middleware::{Quota, RateKey, RateLimitLayer};
//! // Finout's `POST /v2/data/cost-usage/generate-query`: 50 a minute and 10,000 a day,
//! // per account.
//! let layer = RateLimitLayer::new([Quota::per_minute(50), Quota::per_day(10_000)])
//!     .key(RateKey::Account);
//! # let _ = layer;
//! ```

use std::{
    fmt,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    limit::{LimitFuture, future::Decided},
    rejection::{JsonRejection, Ready, RejectionResponse, counter},
    request_id::RequestId,
};
use crate::{
    clock::{Clock, SystemClock},
    error::AuthError,
    metrics::Metrics,
    model::{AccountId, ClientId, Principal},
    shared::Shared,
};

pub(super) mod headers;
mod quota;

pub use headers::RateLimitHeaders;
use headers::{Report, Standing};
pub use quota::{MAX_PERIOD, Quota};

/// How many keys a [`RateLimitLayer`] remembers by default.
pub const DEFAULT_MAX_KEYS: u64 = 100_000;

/// What a [`RateLimitLayer`] counts requests of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RateKey {
    /// All tokens of an account together (Finout's V2 routes).
    #[default]
    Account,
    /// Each token (client id) on its own.
    Token,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(AccountId),
    Token(ClientId),
}

/// Per key, the theoretical arrival time of each quota's next request (in the quota's scaled
/// time: ns since the epoch times its limit).
type Buckets = moka::sync::Cache<Key, Arc<Mutex<Vec<i128>>>>;

/// Limits requests per account (or token) and period. Clones share the counts.
#[derive(Clone)]
#[must_use]
pub struct RateLimitLayer<R = JsonRejection> {
    quotas: Arc<[Quota]>,
    key: RateKey,
    max_keys: u64,
    buckets: Buckets,
    clock: Arc<dyn Clock>,
    /// Whether `clock` was set (then it times the shared counts too).
    clock_set: bool,
    /// The shared state and the name of this layer's counts in it.
    shared: Option<(Shared, Arc<str>)>,
    rejection: R,
    metrics: Option<Metrics>,
    /// The header fields to add, when asked for.
    report: Option<Arc<Report>>,
}

impl<R> fmt::Debug for RateLimitLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("quotas", &self.quotas)
            .field("key", &self.key)
            .field("max_keys", &self.max_keys)
            .field("shared", &self.shared.as_ref().map(|(_, name)| name))
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

fn buckets(quotas: &[Quota], max_keys: u64) -> Buckets {
    // Idle for its longest period, a key's buckets are empty: forgetting it changes nothing.
    // At least a minute of real time, so that an injected clock that moves slower than
    // real time (a test's) does not see short-period keys forgotten under it.
    let idle = quotas
        .iter()
        .map(Quota::period)
        .max()
        .unwrap_or_default()
        .max(Duration::from_secs(60));
    moka::sync::Cache::builder()
        .max_capacity(max_keys)
        .time_to_idle(idle)
        // Past the cap the least recently used key goes (TinyLFU would instead refuse to
        // remember new keys, leaving them unlimited).
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .build()
}

impl RateLimitLayer {
    /// Every quota in `quotas` must allow a request for it to pass (none: every request
    /// passes). Keyed by account, on the system clock.
    pub fn new(quotas: impl IntoIterator<Item = Quota>) -> Self {
        let quotas: Arc<[Quota]> = quotas.into_iter().collect();
        RateLimitLayer {
            buckets: buckets(&quotas, DEFAULT_MAX_KEYS),
            quotas,
            key: RateKey::Account,
            max_keys: DEFAULT_MAX_KEYS,
            clock: Arc::new(SystemClock),
            clock_set: false,
            shared: None,
            rejection: JsonRejection,
            metrics: None,
            report: None,
        }
    }
}

impl<R> RateLimitLayer<R> {
    /// Count per account (the default) or per token. Starts the counts afresh.
    pub fn key(mut self, key: RateKey) -> Self {
        self.key = key;
        self.buckets = buckets(&self.quotas, self.max_keys);
        self
    }

    /// Remember at most `max` keys (at least 1). Starts the counts afresh.
    pub fn max_keys(mut self, max: u64) -> Self {
        self.max_keys = max.max(1);
        self.buckets = buckets(&self.quotas, self.max_keys);
        self
    }

    /// Read the time from `clock` (e.g. a [`ManualClock`](crate::clock::ManualClock) in
    /// tests). Forgetting idle keys still follows real time; it changes no answer.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self.clock_set = true;
        self
    }

    /// Share the counts with every replica through `shared`, under `name` (the same on every
    /// replica, and one per route limited separately): one script decides every quota of a
    /// request at once; see [`shared`](crate::shared) for the fall back when it does not
    /// answer.
    pub fn shared(mut self, shared: Shared, name: impl Into<String>) -> Self {
        self.shared = Some((shared, Arc::from(name.into())));
        self
    }

    /// Answer rejections with `rejection` instead.
    pub fn rejection<R2: RejectionResponse>(self, rejection: R2) -> RateLimitLayer<R2> {
        RateLimitLayer {
            quotas: self.quotas,
            key: self.key,
            max_keys: self.max_keys,
            buckets: self.buckets,
            clock: self.clock,
            clock_set: self.clock_set,
            shared: self.shared,
            rejection,
            metrics: self.metrics,
            report: self.report,
        }
    }

    /// Add rate-limit header fields to every answer of the route, admitted or refused
    /// ([`RateLimitHeaders`] has the formats and what they say).
    /// Off by default: then nothing is computed or allocated for them.
    pub fn headers(mut self, headers: RateLimitHeaders) -> Self {
        self.report = Report::new(headers, &self.quotas).map(Arc::new);
        self
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

    /// The quotas.
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    fn key_of(&self, principal: &Principal) -> Key {
        match self.key {
            RateKey::Account => Key::Account(principal.account_id()),
            RateKey::Token => Key::Token(principal.client_id().clone()),
        }
    }

    /// Take a request for `key` if every quota allows it; otherwise how long until they all
    /// would. With headers asked for, where the key stands after it.
    fn admit(&self, key: Key) -> (Result<(), Duration>, Option<Standing>) {
        let bucket = self.buckets.get_with(key, || {
            Arc::new(Mutex::new(vec![i128::MIN; self.quotas.len()]))
        });
        let now = self.clock.now_unix_nanos();
        let mut arrivals = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait: i128 = 0;
        for (quota, &arrival) in self.quotas.iter().zip(arrivals.iter()) {
            let (scale, _, tolerance) = quota.scaled();
            let now = now.saturating_mul(scale);
            let over = arrival
                .max(now)
                .saturating_sub(now)
                .saturating_sub(tolerance);
            // Back to nanoseconds, rounded up.
            wait = wait.max((over + scale - 1) / scale);
        }
        let admitted = if wait > 0 {
            Err(Duration::from_nanos(
                u64::try_from(wait).unwrap_or(u64::MAX),
            ))
        } else {
            for (quota, arrival) in self.quotas.iter().zip(arrivals.iter_mut()) {
                let (scale, interval, _) = quota.scaled();
                *arrival = (*arrival)
                    .max(now.saturating_mul(scale))
                    .saturating_add(interval);
            }
            Ok(())
        };
        // Only when asked for: a route without headers does no more than it did.
        let standing =
            self.report.as_ref().and_then(|_| {
                headers::tightest(self.quotas.iter().zip(arrivals.iter()).map(
                    |(quota, &arrival)| {
                        let (scale, interval, tolerance) = quota.scaled();
                        let now = now.saturating_mul(scale);
                        let x = now
                            .saturating_add(tolerance)
                            .saturating_sub(arrival.max(now));
                        headers::standing(x, interval, scale)
                    },
                ))
            });
        (admitted, standing)
    }

    /// The header fields of `standing`, if asked for.
    fn rendered(&self, standing: Option<Standing>) -> Option<Box<HeaderMap>> {
        let (report, standing) = (self.report.as_ref()?, standing?);
        let mut headers = HeaderMap::new();
        report.write(standing, &mut headers);
        Some(Box::new(headers))
    }
}

impl<R: RejectionResponse> RateLimitLayer<R> {
    fn rejection_response(
        &self,
        retry_after: Duration,
        standing: Option<Standing>,
        request_id: &RequestId,
        metrics: Option<&Metrics>,
    ) -> Ready {
        let error = AuthError::TooManyRequests { retry_after };
        let mut response = self.rejection.response_with_id(&error, request_id);
        if let (Some(report), Some(standing)) = (&self.report, standing) {
            report.write(standing, response.headers_mut());
        }
        Ready::counted(response, error.code(), metrics)
    }

    /// The decision for `key` through the shared state (the process's own counts when it
    /// does not answer).
    fn decide_shared(
        &self,
        shared: Shared,
        name: Arc<str>,
        key: Key,
        request_id: RequestId,
        metrics: Option<Metrics>,
    ) -> super::limit::future::Deciding {
        let limit = self.clone();
        Box::pin(async move {
            let shared_key = match &key {
                Key::Account(account) => format!("rate:{name}:account:{account}"),
                Key::Token(client_id) => format!("rate:{name}:token:{}", client_id.as_str()),
            };
            let now = limit.clock_set.then(|| limit.clock.now_unix_nanos());
            let state = shared.state();
            let decision = shared
                .call(state.rate(&shared_key, &limit.quotas, now))
                .await;
            let (admitted, standing) = match decision {
                Some(decision) => {
                    let standing = limit.report.as_ref().map(|_| Standing {
                        quota: decision.quota,
                        remaining: decision.remaining,
                        reset: decision.reset,
                    });
                    let admitted = decision.admitted.then_some(());
                    (admitted.ok_or(decision.retry_after), standing)
                }
                None => limit.admit(key),
            };
            match admitted {
                Ok(()) => match limit.rendered(standing) {
                    None => Decided::Pass(None),
                    Some(headers) => Decided::PassWith(headers),
                },
                Err(retry_after) => Decided::Reject(limit.rejection_response(
                    retry_after,
                    standing,
                    &request_id,
                    metrics.as_ref(),
                )),
            }
        })
    }
}

impl<S, R: Clone> Layer<S> for RateLimitLayer<R> {
    type Service = RateLimit<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limit: self.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S, R = JsonRejection> {
    inner: S,
    limit: RateLimitLayer<R>,
}

impl<S, R> RateLimit<S, R> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug, R> fmt::Debug for RateLimit<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RejectionResponse,
{
    type Response = Response<super::AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = LimitFuture<S::Future, S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some(key) = request
            .extensions()
            .get::<Principal>()
            .map(|p| self.limit.key_of(p))
        else {
            return LimitFuture::pass(self.inner.call(request), None);
        };
        if let (Some((shared, name)), false) = (&self.limit.shared, self.limit.quotas.is_empty()) {
            let request_id = RequestId::of(request.headers());
            let metrics = counter(self.limit.metrics.as_ref(), &request).cloned();
            let decision =
                self.limit
                    .decide_shared(shared.clone(), name.clone(), key, request_id, metrics);
            // The service polled ready goes with the request; its clone stays for the next.
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return LimitFuture::deciding(decision, inner, request);
        }
        match self.limit.admit(key) {
            (Ok(()), None) => LimitFuture::pass(self.inner.call(request), None),
            (Ok(()), standing) => {
                let headers = self.limit.rendered(standing);
                LimitFuture::pass_with(self.inner.call(request), headers)
            }
            (Err(retry_after), standing) => LimitFuture::rejected(self.limit.rejection_response(
                retry_after,
                standing,
                &RequestId::of(request.headers()),
                counter(self.limit.metrics.as_ref(), &request),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
