//! What one account may hold of the server: connections, and bytes of answers its clients
//! have not read yet. `serve` gives every request its connection's [`Connection`]; the
//! router's [`per_account`] middleware, after authentication, claims the connection for the
//! request's account and reserves its answer's bytes, each refused with 429 past the
//! account's share (the connection then closes), and reads the request's body within the
//! body deadlines (408 past them).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use finout_auth::{AccountId, ErrorCode, Principal};
use http_body_util::BodyExt;

use super::ServerLimits;
use crate::{error::MockError, limits::MAX_BODY_BYTES};

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    connections: usize,
    answer_bytes: usize,
}

/// Every account's connections and unread answer bytes, within `limits`.
#[derive(Debug)]
pub(crate) struct Tenants {
    limits: ServerLimits,
    usage: Mutex<HashMap<AccountId, Usage>>,
}

impl Tenants {
    pub(crate) fn new(limits: ServerLimits) -> Arc<Self> {
        Arc::new(Tenants {
            limits,
            usage: Mutex::default(),
        })
    }

    fn usage(&self) -> MutexGuard<'_, HashMap<AccountId, Usage>> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change `account`'s usage with `f` if it answers true; an entry back at zero is removed
    /// (the map holds only accounts holding something).
    fn update(&self, account: AccountId, f: impl FnOnce(&mut Usage) -> bool) -> bool {
        let mut usage = self.usage();
        let entry = usage.entry(account).or_default();
        let done = f(entry);
        if entry.connections == 0 && entry.answer_bytes == 0 {
            usage.remove(&account);
        }
        done
    }
}

/// One connection: the account it serves (claimed by its latest request), given back
/// when the connection and its last request are gone.
#[derive(Debug)]
pub(crate) struct Connection {
    tenants: Arc<Tenants>,
    account: Mutex<Option<AccountId>>,
}

impl Connection {
    pub(crate) fn new(tenants: Arc<Tenants>) -> Arc<Self> {
        Arc::new(Connection {
            tenants,
            account: Mutex::new(None),
        })
    }

    /// Count this connection for `account` (leaving the account of its previous request);
    /// false past the account's share of connections.
    fn claim(&self, account: AccountId) -> bool {
        let mut mine = self.account.lock().unwrap_or_else(|e| e.into_inner());
        if *mine == Some(account) {
            return true;
        }
        let cap = self.tenants.limits.max_connections_per_account;
        let claimed = self.tenants.update(account, |u| {
            let room = u.connections < cap;
            if room {
                u.connections += 1;
            }
            room
        });
        if claimed && let Some(previous) = mine.replace(account) {
            self.tenants.update(previous, |u| {
                u.connections = u.connections.saturating_sub(1);
                true
            });
        }
        claimed
    }
}

/// Reserve `bytes` of `account`'s budget of unread answers for an answer about to be built
/// on `connection` (none when the router is served some other way: nothing to reserve);
/// 429 (the connection closing) past the budget.
pub(crate) fn reserve(
    connection: Option<&Arc<Connection>>,
    account: AccountId,
    bytes: usize,
) -> Result<Option<Reserved>, Box<Response>> {
    let Some(connection) = connection else {
        return Ok(None);
    };
    Reserved::take(&connection.tenants, account, bytes)
        .map(Some)
        .ok_or_else(|| Box::new(over_budget(&connection.tenants.limits)))
}

fn over_budget(limits: &ServerLimits) -> Response {
    closing(MockError::auth_with(
        ErrorCode::TooManyRequests,
        format!(
            "this account's clients have {} bytes of answers unread; read them first",
            limits.answer_bytes_per_account
        ),
    ))
}

impl Drop for Connection {
    fn drop(&mut self) {
        let account = *self.account.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(account) = account {
            self.tenants.update(account, |u| {
                u.connections = u.connections.saturating_sub(1);
                true
            });
        }
    }
}

/// Bytes of an answer held for its account until the answer is sent or dropped.
#[derive(Debug)]
pub(crate) struct Reserved {
    tenants: Arc<Tenants>,
    account: AccountId,
    bytes: usize,
}

impl Reserved {
    fn take(tenants: &Arc<Tenants>, account: AccountId, bytes: usize) -> Option<Self> {
        let budget = tenants.limits.answer_bytes_per_account;
        let taken = tenants.update(account, |u| {
            let fits = u.answer_bytes.saturating_add(bytes) <= budget;
            if fits {
                u.answer_bytes += bytes;
            }
            fits
        });
        taken.then(|| Reserved {
            tenants: tenants.clone(),
            account,
            bytes,
        })
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.tenants.update(self.account, |u| {
            u.answer_bytes = u.answer_bytes.saturating_sub(bytes);
            true
        });
    }
}

/// An answer's body holding its reservation.
struct ReservedBody {
    body: Body,
    _reserved: Reserved,
}

impl HttpBody for ReservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A refusal that closes the connection.
fn closing(error: MockError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The request with its body read whole within the deadlines of `limits`; 408 or 413 (the
/// connection closing) otherwise.
async fn read_body(request: Request, limits: &ServerLimits) -> Result<Request, Response> {
    if request.body().is_end_stream() {
        return Ok(request);
    }
    let started = tokio::time::Instant::now();
    let (parts, mut body) = request.into_parts();
    let mut read: Vec<u8> = Vec::new();
    let too_slow = || {
        closing(MockError::v2(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body must arrive within {} s, at {} bytes a second at least",
                limits.body_read_timeout.as_secs(),
                limits.min_body_rate
            ),
        ))
    };
    loop {
        // The body is due by the total deadline, and by what the minimum rate allows for
        // the bytes read so far (after a grace second).
        let at_rate = read.len() as f64 / limits.min_body_rate.max(1) as f64;
        let by_rate = Duration::from_secs(1)
            .saturating_add(Duration::try_from_secs_f64(at_rate).unwrap_or(Duration::MAX));
        let allowed = limits.body_read_timeout.min(by_rate);
        let due = started
            .checked_add(allowed)
            .unwrap_or_else(|| started + Duration::from_secs(86_400 * 365));
        let frame = match tokio::time::timeout_at(due, body.frame()).await {
            Err(_) => return Err(too_slow()),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(closing(MockError::invalid("the body could not be read")));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if read.len().saturating_add(data.len()) > MAX_BODY_BYTES {
                return Err(closing(MockError::too_large()));
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(Request::from_parts(parts, Body::from(read)))
}

/// The per-account limits of the connection the request came on (none for a router served
/// some other way, which gets the default body deadlines only).
pub(crate) async fn per_account(request: Request, next: Next) -> Response {
    let connection = request.extensions().get::<Arc<Connection>>().cloned();
    let account = request
        .extensions()
        .get::<Principal>()
        .map(Principal::account_id);
    let limits = connection
        .as_ref()
        .map_or_else(ServerLimits::default, |c| c.tenants.limits);
    if let (Some(connection), Some(account)) = (&connection, account)
        && !connection.claim(account)
    {
        return closing(MockError::auth_with(
            ErrorCode::TooManyRequests,
            format!(
                "this account has {} connections open already; reuse them",
                limits.max_connections_per_account
            ),
        ));
    }
    let request = match read_body(request, &limits).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let response = next.run(request).await;
    let (Some(connection), Some(account)) = (connection, account) else {
        return response;
    };
    let size = response.body().size_hint();
    let bytes = usize::try_from(size.upper().unwrap_or(size.lower())).unwrap_or(usize::MAX);
    match Reserved::take(&connection.tenants, account, bytes) {
        Some(reserved) => response.map(|body| {
            Body::new(ReservedBody {
                body,
                _reserved: reserved,
            })
        }),
        None => over_budget(&limits),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{Router, http::Method};
    use finout_auth::{
        Authenticator, NewToken, Role, TokenAdmin, crypto::SecretHasher, model::Account,
        store::MemoryTokenStore,
    };
    use tower::ServiceExt;

    use super::*;
    use crate::mock::Mock;

    struct Setup {
        router: Router,
        tenants: Arc<Tenants>,
        /// Two accounts' credentials.
        creds: [(String, String); 2],
    }

    async fn setup(limits: ServerLimits) -> Setup {
        let store = Arc::new(MemoryTokenStore::new());
        let hasher = SecretHasher::insecure_for_tests_only();
        let authenticator = Authenticator::builder(store.clone())
            .hasher(hasher.clone())
            .uniform_refusals(false)
            .build();
        let admin = TokenAdmin::new(store)
            .with_hasher(hasher)
            .with_authenticator(authenticator.clone());
        let mut creds = Vec::new();
        for name in ["a", "b"] {
            let id = AccountId::new_v4();
            let account = Account {
                id,
                name: name.into(),
            };
            admin.store().insert_account(account).await.unwrap();
            let token = admin
                .issue_api_token(id, None, NewToken::new(name, Role::Admin))
                .await
                .unwrap();
            let secret = token.secret_key.expose_secret().to_owned();
            creds.push((token.client_id.to_string(), secret));
        }
        Setup {
            router: Mock::new(admin, authenticator).router(),
            tenants: Tenants::new(limits),
            creds: creds.try_into().unwrap(),
        }
    }

    fn request(creds: &(String, String), on: &Arc<Connection>, body: Body) -> Request {
        send(creds, on, Method::GET, "/v1/view", body)
    }

    fn send(
        creds: &(String, String),
        on: &Arc<Connection>,
        method: Method,
        path: &str,
        body: Body,
    ) -> Request {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("x-finout-client-id", &creds.0)
            .header("x-finout-secret-key", &creds.1)
            .body(body)
            .unwrap();
        request.extensions_mut().insert(on.clone());
        request
    }

    async fn get(s: &Setup, who: usize, on: &Arc<Connection>) -> Response {
        s.router
            .clone()
            .oneshot(request(&s.creds[who], on, Body::empty()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_accounts_connections_past_its_share_are_refused_and_closed() {
        let s = setup(ServerLimits::default().max_connections_per_account(2)).await;
        let conns: Vec<_> = (0..3).map(|_| Connection::new(s.tenants.clone())).collect();
        assert_eq!(get(&s, 0, &conns[0]).await.status(), 200);
        assert_eq!(get(&s, 0, &conns[1]).await.status(), 200);
        // A connection counts once, however many requests it carries.
        assert_eq!(get(&s, 0, &conns[1]).await.status(), 200);
        let refused = get(&s, 0, &conns[2]).await;
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()[header::CONNECTION], "close");
        // Another account's connection is not the first account's to take.
        let theirs = Connection::new(s.tenants.clone());
        assert_eq!(get(&s, 1, &theirs).await.status(), 200);
        // A closed connection gives its place back.
        let mut conns = conns;
        drop(conns.remove(0));
        assert_eq!(get(&s, 0, &conns[1]).await.status(), 200);
    }

    #[tokio::test]
    async fn unread_answers_of_one_account_are_held_to_its_budget() {
        let probe = setup(ServerLimits::default()).await;
        let on = Connection::new(probe.tenants.clone());
        let size = get(&probe, 0, &on)
            .await
            .body()
            .size_hint()
            .exact()
            .unwrap() as usize;
        // Room for two answers, not three.
        let limits = ServerLimits::default().answer_bytes_per_account(size * 2 + size / 2);
        let s = setup(limits).await;
        let on = Connection::new(s.tenants.clone());
        let first = get(&s, 0, &on).await;
        let second = get(&s, 0, &on).await;
        assert_eq!(
            (first.status().as_u16(), second.status().as_u16()),
            (200, 200)
        );
        let third = get(&s, 0, &on).await;
        assert_eq!(third.status(), 429, "two answers unread");
        // Another account has a budget of its own.
        let theirs = Connection::new(s.tenants.clone());
        assert_eq!(get(&s, 1, &theirs).await.status(), 200);
        // An answer sent gives its bytes back.
        let bytes = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), size);
        assert_eq!(get(&s, 0, &on).await.status(), 200);
        drop(second);
        let usage = s.tenants.usage();
        assert_eq!(usage.values().map(|u| u.answer_bytes).sum::<usize>(), 0);
    }

    #[tokio::test]
    async fn the_in_flight_slot_is_held_until_the_answer_is_sent() {
        let s = setup(ServerLimits::default()).await;
        let on = Connection::new(s.tenants.clone());
        let mut unread = Vec::new();
        for _ in 0..5 {
            let answer = get(&s, 0, &on).await;
            assert_eq!(answer.status(), 200);
            unread.push(answer);
        }
        assert_eq!(
            get(&s, 0, &on).await.status(),
            429,
            "5 answers of the token unread"
        );
        unread.pop().unwrap().into_body().collect().await.unwrap();
        assert_eq!(get(&s, 0, &on).await.status(), 200);
    }

    #[tokio::test]
    async fn a_tag_list_holds_what_its_tags_take_until_it_is_sent() {
        let s = setup(ServerLimits::default().answer_bytes_per_account(1_500_000)).await;
        let on = Connection::new(s.tenants.clone());
        // Two tags of ~250 KB of fields, ~500 KB each as kept (with their first version).
        for i in 0..2 {
            let value = format!("{i}{}", "v".repeat(250_000));
            let tag = serde_json::json!({"name": "big", "defaultValue": "z",
                "rules": [{"to": value, "filters": {"AND": []}}]});
            let post = send(
                &s.creds[0],
                &on,
                Method::POST,
                "/v1/virtual-tags",
                Body::from(tag.to_string()),
            );
            assert_eq!(s.router.clone().oneshot(post).await.unwrap().status(), 201);
        }
        let list = || {
            send(
                &s.creds[0],
                &on,
                Method::GET,
                "/v1/virtual-tags",
                Body::empty(),
            )
        };
        let unread = s.router.clone().oneshot(list()).await.unwrap();
        assert_eq!(unread.status(), 200);
        let second = s.router.clone().oneshot(list()).await.unwrap();
        assert_eq!(
            second.status(),
            429,
            "one list of ~1 MB pending, 1.5 MB budget"
        );
        let sent = unread.into_body().collect().await.unwrap().to_bytes();
        assert!(sent.len() > 500_000);
        assert_eq!(
            s.router.clone().oneshot(list()).await.unwrap().status(),
            200
        );
    }

    /// A body that sends one byte, then nothing.
    struct Trickle(bool);

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.0 {
                return Poll::Pending;
            }
            self.0 = true;
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{")))))
        }
    }

    #[tokio::test]
    async fn a_body_slower_than_the_minimum_rate_is_cut_after_its_first_second() {
        let s = setup(ServerLimits::default().body_deadlines(Duration::from_secs(10), 1024)).await;
        let on = Connection::new(s.tenants.clone());
        let started = tokio::time::Instant::now();
        let answer = s
            .router
            .clone()
            .oneshot(request(&s.creds[0], &on, Body::new(Trickle(false))))
            .await
            .unwrap();
        assert_eq!(answer.status(), 408);
        assert_eq!(answer.headers()[header::CONNECTION], "close");
        let waited = started.elapsed();
        // Due 1 s (the grace) + 1 byte at 1,024 bytes a second after the headers.
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }
}
