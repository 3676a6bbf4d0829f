//! Shared bench fixtures: a memory store with one account, requests, and a way to drive a
//! service future without an executor when it is ready at once (the hot path is).
#![allow(dead_code)]

use std::{
    convert::Infallible,
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use finout_auth::{
    AccountId, Authenticator, CLIENT_ID_HEADER, IssuedToken, NewToken, Role, SECRET_KEY_HEADER,
    TokenAdmin, store::MemoryTokenStore,
};
use http::{HeaderMap, HeaderValue, Request, Response, Uri, header::HOST};
use http_body_util::Full;
use tower::Service;

pub struct Fixture {
    pub store: Arc<MemoryTokenStore>,
    pub auth: Authenticator,
    pub admin: TokenAdmin,
    pub account: AccountId,
}

impl Fixture {
    /// Default (production) argon2 parameters unless `hasher` says otherwise.
    pub async fn new() -> Self {
        let store = Arc::new(MemoryTokenStore::new());
        // Caches that outlast the whole bench run (criterion's warm-ups, samples and plots
        // for every bench take minutes): every measured request must be a hit.
        let hour = std::time::Duration::from_secs(3600);
        let auth = Authenticator::builder(store.clone())
            .cache_ttl(hour)
            .verdict_ttl(hour)
            .build();
        let admin = TokenAdmin::new(store.clone()).with_authenticator(auth.clone());
        let account = admin.create_account("bench").await.unwrap().id;
        Fixture {
            store,
            auth,
            admin,
            account,
        }
    }

    pub async fn token(&self) -> IssuedToken {
        self.admin
            .issue_api_token(self.account, None, NewToken::new("bench", Role::Basic))
            .await
            .unwrap()
    }
}

/// A request as hyper hands one over: a host and the two credential headers (what wrk sends in
/// `benches/load.sh`), in a header map sized exactly to them, as hyper sizes it to the
/// headers it parsed (a map with room to spare would hide the cost of anything that grows
/// it).
pub fn request(id: &str, secret: &str) -> Request<Full<Bytes>> {
    let values = [
        (HOST, "api.example.test"),
        (CLIENT_ID_HEADER, id),
        (SECRET_KEY_HEADER, secret),
    ];
    let mut headers = HeaderMap::with_capacity(values.len());
    for (name, value) in values {
        headers.append(name, HeaderValue::from_str(value).unwrap());
    }
    let mut request = Request::new(Full::default());
    *request.uri_mut() = Uri::from_static("/v1/view");
    *request.headers_mut() = headers;
    request
}

pub fn with_token(token: &IssuedToken) -> Request<Full<Bytes>> {
    request(token.client_id.as_str(), token.secret_key.expose_secret())
}

/// The trivial inner service every bench wraps.
pub async fn ok(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::default()))
}

/// Call a service and poll its future once: the hot path and cached rejections answer at
/// once, so no executor (and none of its cost) is involved. Panics if it would wait.
pub fn call_now<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(response) => response.unwrap(),
        Poll::Pending => panic!("not answered at once"),
    }
}
