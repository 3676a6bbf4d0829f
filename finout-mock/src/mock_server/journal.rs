//! The journal of a `MockServer`: see [`ReceivedRequest`] and [`JournalLimits`].

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, Method, StatusCode},
    middleware::Next,
    response::Response,
};
use finout_auth::{AccountId, Principal, SECRET_KEY_HEADER, UserId};

/// The requests a journal keeps by default.
pub const DEFAULT_JOURNAL_REQUESTS: usize = 10_000;
/// The bytes of one body a journal keeps by default.
pub const DEFAULT_JOURNAL_BODY_BYTES: usize = 64 * 1024;
/// The bytes a journal keeps in all by default.
pub const DEFAULT_JOURNAL_TOTAL_BYTES: usize = 64 * 1024 * 1024;

/// How much a [`MockServer`](super::MockServer)'s journal of the requests it received
/// keeps (see
/// [`MockServerBuilder::journal_limits`](super::MockServerBuilder::journal_limits)).
///
/// Every request that reaches the server is recorded once its answer's head is produced (or
/// when the client goes away first), whatever answered it: a route, a refusal (401, 404,
/// 413, 429...) or an injected [`Fault`](super::Fault). The `x-finout-secret-key` header is
/// never recorded, not even hashed.
///
/// Bounds: the last [`JournalLimits::max_requests`] requests (10,000 by default), at most
/// [`JournalLimits::max_body_bytes`] of each body (64 KiB by default; past it the body is cut
/// and [`ReceivedRequest::body_truncated`] says so), and at most
/// [`JournalLimits::max_total_bytes`] in all (64 MiB by default: bodies, header names and
/// values, paths and queries). Past either bound the oldest requests are dropped, and
/// [`MockServer::dropped_requests`](super::MockServer::dropped_requests) counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalLimits {
    /// The most requests kept ([`DEFAULT_JOURNAL_REQUESTS`]); 0 keeps none.
    pub max_requests: usize,
    /// The most bytes of one request's body kept ([`DEFAULT_JOURNAL_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// The most bytes kept in all ([`DEFAULT_JOURNAL_TOTAL_BYTES`]).
    pub max_total_bytes: usize,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits {
            max_requests: DEFAULT_JOURNAL_REQUESTS,
            max_body_bytes: DEFAULT_JOURNAL_BODY_BYTES,
            max_total_bytes: DEFAULT_JOURNAL_TOTAL_BYTES,
        }
    }
}

impl JournalLimits {
    /// Keep at most `n` requests.
    #[must_use]
    pub fn max_requests(mut self, n: usize) -> Self {
        self.max_requests = n;
        self
    }

    /// Keep at most `bytes` of each body.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Keep at most `bytes` in all.
    #[must_use]
    pub fn max_total_bytes(mut self, bytes: usize) -> Self {
        self.max_total_bytes = bytes;
        self
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceivedPrincipal {
    /// The token's client id.
    pub client_id: String,
    /// Its account.
    pub account_id: AccountId,
    /// Its user, for a personal token.
    pub user_id: Option<UserId>,
}

/// A request a [`MockServer`](super::MockServer) received.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceivedRequest {
    /// Its place in the order requests arrived, from 0.
    pub sequence: u64,
    /// The method.
    pub method: Method,
    /// The path, e.g. `/v1/view`.
    pub path: String,
    /// The query string without the `?`, if any.
    pub query: Option<String>,
    /// The headers, without `x-finout-secret-key` (never recorded).
    pub headers: HeaderMap,
    /// The body as far as the server read it, cut at
    /// [`JournalLimits::max_body_bytes`]. A request answered before its body was read (a
    /// 401, say) may show less than was sent, often nothing.
    pub body: Bytes,
    /// Whether more of the body was read than [`body`](Self::body) keeps.
    pub body_truncated: bool,
    /// Who it was authenticated as, if it was (not for a 401, nor for an answer of an
    /// injected fault, which comes before authentication).
    pub principal: Option<ReceivedPrincipal>,
    /// The answer's status; `None` if the client went away before the answer.
    pub status: Option<StatusCode>,
    /// Whether an injected [`Fault`](super::Fault) answered it (its status) or delayed it.
    pub faulted: bool,
}

impl ReceivedRequest {
    /// Whether it was `method` on exactly `path`.
    pub fn is(&self, method: &Method, path: &str) -> bool {
        self.method == method && self.path == path
    }

    /// The body as UTF-8 text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, if it is JSON (and was not cut).
    pub fn body_json(&self) -> Option<serde_json::Value> {
        if self.body_truncated {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// What it weighs against [`JournalLimits::max_total_bytes`].
    fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        self.body.len() + headers + self.path.len() + self.query.as_ref().map_or(0, String::len)
    }
}

/// The bounded record.
#[derive(Debug)]
pub(super) struct Journal {
    limits: JournalLimits,
    entries: Mutex<Entries>,
    next_sequence: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    kept: VecDeque<(usize, ReceivedRequest)>,
    bytes: usize,
    dropped: u64,
}

impl Journal {
    pub(super) fn new(limits: JournalLimits) -> Self {
        Journal {
            limits,
            entries: Mutex::default(),
            next_sequence: AtomicU64::new(0),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, request: ReceivedRequest) {
        let weight = request.weight();
        let mut entries = self.entries();
        entries.kept.push_back((weight, request));
        entries.bytes += weight;
        while entries.kept.len() > self.limits.max_requests
            || entries.bytes > self.limits.max_total_bytes
        {
            let Some((weight, _)) = entries.kept.pop_front() else {
                break;
            };
            entries.bytes -= weight;
            entries.dropped += 1;
        }
    }

    /// What it keeps, in the order the requests arrived.
    pub(super) fn requests(&self) -> Vec<ReceivedRequest> {
        let mut requests: Vec<_> = self.entries().kept.iter().map(|(_, r)| r.clone()).collect();
        requests.sort_by_key(|r| r.sequence);
        requests
    }

    pub(super) fn dropped(&self) -> u64 {
        self.entries().dropped
    }

    pub(super) fn clear(&self) {
        let mut entries = self.entries();
        entries.kept.clear();
        entries.bytes = 0;
    }
}

/// Where the layer inside authentication leaves the principal for the journal.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrincipalSlot(Arc<Mutex<Option<ReceivedPrincipal>>>);

impl PrincipalSlot {
    fn take(&self) -> Option<ReceivedPrincipal> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The layer inside authentication: note who the request was authenticated as, for the
/// journal of a [`MockServer`](super::MockServer) (nothing to do for a router served
/// otherwise).
pub(crate) async fn note_principal(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(principal)) = (
        request.extensions().get::<PrincipalSlot>(),
        request.extensions().get::<Principal>(),
    ) {
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(ReceivedPrincipal {
            client_id: principal.client_id().to_string(),
            account_id: principal.account_id(),
            user_id: principal.user_id(),
        });
    }
    next.run(request).await
}

/// The body read so far (its first bytes), shared by the body and the record.
#[derive(Debug, Default)]
struct Seen {
    bytes: Vec<u8>,
    truncated: bool,
}

/// A request body that keeps a copy of its first bytes as they are read.
struct Tee {
    inner: Body,
    seen: Arc<Mutex<Seen>>,
    cap: usize,
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let cap = self.cap;
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let room = cap.saturating_sub(seen.bytes.len());
            if data.len() > room {
                seen.truncated = true;
            }
            seen.bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request on its way through the server: recorded when [`finish`](Self::finish)ed, or
/// when dropped unfinished (the client went away).
pub(super) struct Pending {
    journal: Arc<Journal>,
    request: Option<ReceivedRequest>,
    seen: Arc<Mutex<Seen>>,
    slot: PrincipalSlot,
}

impl Pending {
    /// Start recording `request`: its head copied (without the secret), its body teed, a
    /// slot for its principal in its extensions.
    pub(super) fn start(journal: &Arc<Journal>, request: Request) -> (Self, Request) {
        let (mut parts, body) = request.into_parts();
        let mut headers = parts.headers.clone();
        headers.remove(SECRET_KEY_HEADER);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let slot = PrincipalSlot::default();
        parts.extensions.insert(slot.clone());
        let body = Body::new(Tee {
            inner: body,
            seen: seen.clone(),
            cap: journal.limits.max_body_bytes,
        });
        let received = ReceivedRequest {
            sequence: journal.next_sequence.fetch_add(1, Ordering::Relaxed),
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers,
            body: Bytes::new(),
            body_truncated: false,
            principal: None,
            status: None,
            faulted: false,
        };
        let pending = Pending {
            journal: journal.clone(),
            request: Some(received),
            seen,
            slot,
        };
        (pending, Request::from_parts(parts, body))
    }

    /// Mark it as answered or delayed by a fault.
    pub(super) fn faulted(&mut self) {
        if let Some(request) = &mut self.request {
            request.faulted = true;
        }
    }

    /// Record it with the answer's status.
    pub(super) fn finish(mut self, status: StatusCode) {
        if let Some(request) = &mut self.request {
            request.status = Some(status);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut request) = self.request.take() else {
            return;
        };
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        request.body = Bytes::from(seen.bytes);
        request.body_truncated = seen.truncated;
        request.principal = self.slot.take();
        self.journal.record(request);
    }
}
