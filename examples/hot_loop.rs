//! A tight loop over the hot path, for profilers:
//!
//! ```sh
//! cargo build --release --example hot_loop
//! valgrind --tool=callgrind --callgrind-out-file=hot.callgrind target/release/examples/hot_loop
//! callgrind_annotate hot.callgrind | head -40
//! ```
//!
//! `MODE=hot` (default) sends a cached valid token, `MODE=reject` a wrong secret for it
//! (refused from cache), `MODE=unknown` an unknown id (refused from cache),
//! `MODE=bare` the valid request to the inner service without the layer (the baseline);
//! `N` requests (default 100,000) after one warm-up request. `INNER=axum` puts an axum
//! `Router` with one route in place of the trivial inner service.

use std::{
    convert::Infallible,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use finout_auth::{
    AuthLayer, Authenticator, CLIENT_ID_HEADER, NewToken, Role, SECRET_KEY_HEADER, TokenAdmin,
    store::MemoryTokenStore,
};
use http::{HeaderMap, HeaderValue, Request, Response, header::HOST};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mode = std::env::var("MODE").unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let store = Arc::new(MemoryTokenStore::new());
    let auth = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let token = rt.block_on(async {
        let account = admin.create_account("profile").await.unwrap();
        admin
            .issue_api_token(account.id, None, NewToken::new("p", Role::Basic))
            .await
            .unwrap()
    });
    let (id, secret) = match mode.as_str() {
        "reject" => (token.client_id.as_str(), "wrong-secret"),
        "unknown" => (
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        ),
        _ => (token.client_id.as_str(), token.secret_key.expose_secret()),
    };
    let request_with = |id: &str, secret: &str| {
        // As hyper hands a request over: a host and the credentials (what wrk sends), in a
        // header map sized exactly to them.
        let values = [
            (HOST, "api.example.test"),
            (CLIENT_ID_HEADER, id),
            (SECRET_KEY_HEADER, secret),
        ];
        let mut headers = HeaderMap::with_capacity(values.len());
        for (name, value) in values {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        let mut request = Request::new(Full::<Bytes>::default());
        *request.headers_mut() = headers;
        request
    };
    let request = || request_with(id, secret);
    // Warm: the token is in use (its secret cached), and the measured attempt seen once.
    let valid = || request_with(token.client_id.as_str(), token.secret_key.expose_secret());
    if std::env::var("INNER").is_ok_and(|v| v == "axum") {
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        measure(&rt, router, &auth, &mode, valid, request, n);
    } else {
        let inner = service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
        measure(&rt, inner, &auth, &mode, valid, request, n);
    }
}

fn measure<S, B>(
    rt: &tokio::runtime::Runtime,
    inner: S,
    auth: &Authenticator,
    mode: &str,
    valid: impl Fn() -> Request<Full<Bytes>>,
    request: impl Fn() -> Request<Full<Bytes>>,
    n: usize,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let layered = AuthLayer::new(auth.clone()).layer(inner.clone());
    rt.block_on(layered.clone().oneshot(valid())).unwrap();
    rt.block_on(layered.clone().oneshot(request())).unwrap();
    if mode == "bare" {
        run(inner, request, n);
    } else {
        run(layered, request, n);
    }
}

fn run<S, B>(mut service: S, request: impl Fn() -> Request<Full<Bytes>>, n: usize)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut statuses = 0u64;
    for _ in 0..n {
        let _ = service.poll_ready(&mut cx);
        let mut future = pin!(service.call(request()));
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(response)) => statuses += u64::from(response.status().as_u16()),
            _ => panic!("the hot path must answer at once"),
        }
    }
    println!("{n} requests, mean status {}", statuses / n as u64);
}
