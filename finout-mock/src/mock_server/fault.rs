//! Fault injection for a `MockServer`: see [`Fault`].

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use finout_auth::middleware::{ErrorBody, REQUEST_ID_HEADER, RequestId};

/// Which paths a fault matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathMatch {
    Exact(String),
    Prefix(String),
}

/// A fault to inject into a [`MockServer`](super::MockServer) with
/// [`inject`](super::MockServer::inject).
///
/// It makes a route answer 500, 503 or 429 (with `Retry-After`), or answer slowly, for the
/// next N calls or for a share of calls drawn from a seeded generator: the failures a
/// client's retries must be tested against.
///
/// A fault is matched by method (or any method) and path (exact, or a prefix) against every
/// request the server receives, **before authentication**: like wiremock, whose mocks
/// answer whatever the credentials, a faulted answer needs no valid token, checks none, and
/// takes none of the rate or in-flight limits; a retry test sees its fault even with a
/// placeholder secret. A latency-only fault delays the request and then lets it through to
/// authentication and its route as usual.
///
/// Faults are consulted in the order they were injected: the first that matches the
/// request, is not used up and fires (always for [`Fault::times`] or no schedule; by a
/// draw for [`Fault::share`]) applies; one that matches but does not fire lets the next be
/// consulted. A faulted answer is in Finout's error shape (`{"error","message","requestId"}`,
/// as the mock's own errors), carries `x-request-id` (the request's own, when acceptable, or
/// a fresh one, also in the body), `Retry-After` when the fault has one, and is journaled
/// like any answer ([`ReceivedRequest::faulted`](super::ReceivedRequest::faulted)).
///
/// A share is drawn from SplitMix64 seeded with the fault's seed, one draw per matching
/// call while the fault is not used up: the same seed gives the same sequence of faulted
/// and passed calls, for calls made one after the other.
///
/// ```
/// use std::time::Duration;
/// use finout_mock::Fault;
/// use http::{Method, StatusCode};
///
/// // The next 2 GET /v1/view answer 503 with Retry-After: 1.
/// let outage = Fault::on(Method::GET, "/v1/view")
///     .status(StatusCode::SERVICE_UNAVAILABLE)
///     .retry_after(Duration::from_secs(1))
///     .times(2);
/// // A third of the V2 calls, any method, answer 500, drawn from seed 7.
/// let flaky = Fault::on_prefix(Method::GET, "/v2/")
///     .any_method()
///     .status(StatusCode::INTERNAL_SERVER_ERROR)
///     .share(1.0 / 3.0, 7);
/// // Every POST /v1/cost/query-by-view takes 2 s longer (then answers as usual).
/// let slow = Fault::on(Method::POST, "/v1/cost/query-by-view").latency(Duration::from_secs(2));
/// # let _ = (outage, flaky, slow);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Fault {
    method: Option<Method>,
    path: PathMatch,
    status: Option<StatusCode>,
    retry_after: Option<Duration>,
    latency: Duration,
    error: Option<(String, String)>,
    times: Option<u64>,
    share: Option<(f64, u64)>,
}

impl Fault {
    /// A fault on `method` requests to exactly `path` (e.g. `/v1/view`; the query is not
    /// compared). Until [`status`](Self::status) or [`latency`](Self::latency) is set it
    /// changes nothing.
    pub fn on(method: Method, path: impl Into<String>) -> Self {
        Self::new(method, PathMatch::Exact(path.into()))
    }

    /// A fault on `method` requests to every path starting with `prefix` (e.g. `/v2/`).
    pub fn on_prefix(method: Method, prefix: impl Into<String>) -> Self {
        Self::new(method, PathMatch::Prefix(prefix.into()))
    }

    fn new(method: Method, path: PathMatch) -> Self {
        Fault {
            method: Some(method),
            path,
            status: None,
            retry_after: None,
            latency: Duration::ZERO,
            error: None,
            times: None,
            share: None,
        }
    }

    /// Match every method, not only the one given.
    pub fn any_method(mut self) -> Self {
        self.method = None;
        self
    }

    /// Answer `status` (a 4xx or 5xx) in Finout's error shape instead of the route. Its code
    /// is `too_many_requests` for 429, `internal_error` for 500, `bad_gateway` for 502,
    /// `service_unavailable` for 503, `gateway_timeout` for 504, else the status's reason
    /// in snake case (see [`error`](Self::error) to choose).
    ///
    /// # Panics
    /// If `status` is not an error status (400-599).
    pub fn status(mut self, status: StatusCode) -> Self {
        assert!(
            status.is_client_error() || status.is_server_error(),
            "finout-mock: a fault answers an error status (400-599), not {status}"
        );
        self.status = Some(status);
        self
    }

    /// Send `Retry-After` with the faulted answer: `after` in whole seconds, rounded up.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Wait `latency` before answering: before the faulted answer with a
    /// [`status`](Self::status), before letting the request through to its route without.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The faulted answer's `error` code and `message`.
    pub fn error(mut self, code: impl Into<String>, message: impl Into<String>) -> Self {
        self.error = Some((code.into(), message.into()));
        self
    }

    /// Apply to the next `n` matching calls only (then the route answers as usual). With
    /// [`share`](Self::share): at most `n` calls faulted in all.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Apply to a share of the matching calls (0.0 to 1.0), each drawn from a generator
    /// seeded with `seed`: the same seed gives the same sequence.
    ///
    /// # Panics
    /// If `share` is not within 0.0-1.0.
    pub fn share(mut self, share: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&share),
            "finout-mock: a fault's share is within 0.0-1.0, not {share}"
        );
        self.share = Some((share, seed));
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && match &self.path {
                PathMatch::Exact(p) => p == path,
                PathMatch::Prefix(p) => path.starts_with(p.as_str()),
            }
    }
}

/// SplitMix64 (Steele, Lea and Flood): a 64-bit state stepped by a constant, mixed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A draw in [0, 1): the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An injected fault and what it has done.
#[derive(Debug)]
struct Active {
    fault: Fault,
    state: Mutex<ActiveState>,
    fired: AtomicU64,
}

#[derive(Debug)]
struct ActiveState {
    rng: SplitMix64,
    fired: u64,
}

/// A fault injected into a [`MockServer`](super::MockServer): how many times it fired.
#[derive(Debug, Clone)]
pub struct FaultHandle(Arc<Active>);

impl FaultHandle {
    /// How many calls it has applied to so far.
    pub fn fired(&self) -> u64 {
        self.0.fired.load(Ordering::Relaxed)
    }

    /// Whether it is used up (its [`times`](Fault::times) all fired).
    pub fn used_up(&self) -> bool {
        self.0.fault.times.is_some_and(|n| self.fired() >= n)
    }
}

/// What a fault decided for one request.
#[derive(Debug, Default)]
pub(super) struct Decision {
    /// Wait this long first.
    pub(super) latency: Duration,
    /// Then answer this instead of the route (else let the request through).
    pub(super) answer: Option<FaultAnswer>,
}

impl Decision {
    pub(super) fn applies(&self) -> bool {
        !self.latency.is_zero() || self.answer.is_some()
    }
}

/// A faulted answer to render.
#[derive(Debug)]
pub(super) struct FaultAnswer {
    status: StatusCode,
    retry_after: Option<Duration>,
    error: Option<(String, String)>,
}

impl FaultAnswer {
    /// The answer, in Finout's error shape, naming the request `id`.
    pub(super) fn render(&self, id: &RequestId) -> Response {
        let default_code = match self.status.as_u16() {
            429 => "too_many_requests".to_owned(),
            500 => "internal_error".to_owned(),
            502 => "bad_gateway".to_owned(),
            503 => "service_unavailable".to_owned(),
            504 => "gateway_timeout".to_owned(),
            _ => snake_case(self.status.canonical_reason().unwrap_or("error")),
        };
        let default_message = format!(
            "{} (a fault injected by finout-mock)",
            self.status.canonical_reason().unwrap_or("error")
        );
        let (code, message) = match &self.error {
            Some((code, message)) => (code.as_str(), message.as_str()),
            None => (default_code.as_str(), default_message.as_str()),
        };
        let mut response = (
            self.status,
            Json(ErrorBody::with_request_id(code, message, id)),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID_HEADER, id.header_value());
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn snake_case(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for c in reason.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

/// The faults injected into one server, in order.
#[derive(Debug, Default)]
pub(super) struct Faults(Mutex<Vec<Arc<Active>>>);

impl Faults {
    fn list(&self) -> MutexGuard<'_, Vec<Arc<Active>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn inject(&self, fault: Fault) -> FaultHandle {
        let seed = fault.share.map_or(0, |(_, seed)| seed);
        let active = Arc::new(Active {
            fault,
            state: Mutex::new(ActiveState {
                rng: SplitMix64(seed),
                fired: 0,
            }),
            fired: AtomicU64::new(0),
        });
        self.list().push(active.clone());
        FaultHandle(active)
    }

    pub(super) fn clear(&self) {
        self.list().clear();
    }

    /// What to do with a `method` request to `path`.
    pub(super) fn decide(&self, method: &Method, path: &str) -> Decision {
        let list = self.list();
        for active in list.iter() {
            let fault = &active.fault;
            if !fault.matches(method, path) {
                continue;
            }
            let mut state = active.state.lock().unwrap_or_else(|e| e.into_inner());
            if fault.times.is_some_and(|n| state.fired >= n) {
                continue;
            }
            let fires = match fault.share {
                Some((share, _)) => state.rng.next_f64() < share,
                None => true,
            };
            if !fires {
                continue;
            }
            state.fired += 1;
            active.fired.store(state.fired, Ordering::Relaxed);
            return Decision {
                latency: fault.latency,
                answer: fault.status.map(|status| FaultAnswer {
                    status,
                    retry_after: fault.retry_after,
                    error: fault.error.clone(),
                }),
            };
        }
        Decision::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 1234567 of the reference C implementation.
        let mut rng = SplitMix64(1234567);
        assert_eq!(
            [rng.next_u64(), rng.next_u64(), rng.next_u64()],
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn draws_are_within_zero_and_one() {
        let mut rng = SplitMix64(0);
        for _ in 0..10_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }

    #[test]
    fn matching_by_method_and_path() {
        let exact = Fault::on(Method::GET, "/v1/view");
        assert!(exact.matches(&Method::GET, "/v1/view"));
        assert!(!exact.matches(&Method::POST, "/v1/view"));
        assert!(!exact.matches(&Method::GET, "/v1/view/x"));
        let prefix = Fault::on_prefix(Method::GET, "/v2/").any_method();
        assert!(prefix.matches(&Method::DELETE, "/v2/virtual-tags/1"));
        assert!(!prefix.matches(&Method::GET, "/v1/view"));
    }

    #[test]
    fn times_then_used_up_and_the_next_fault_is_consulted() {
        let faults = Faults::default();
        let first = faults.inject(
            Fault::on(Method::GET, "/x")
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .times(1),
        );
        faults.inject(Fault::on(Method::GET, "/x").status(StatusCode::INTERNAL_SERVER_ERROR));
        let status = |d: Decision| d.answer.map(|a| a.status);
        assert_eq!(
            status(faults.decide(&Method::GET, "/x")),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(first.used_up());
        assert_eq!(
            status(faults.decide(&Method::GET, "/x")),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert_eq!(status(faults.decide(&Method::GET, "/y")), None);
    }

    #[test]
    fn codes_in_snake_case() {
        assert_eq!(snake_case("I'm a teapot"), "i_m_a_teapot");
        assert_eq!(snake_case("Bad Request"), "bad_request");
    }
}
