//! A tight loop over the hot path, for profilers:
//!
//! ```sh
//! cargo build --release -p finout-auth-tools --bin hot_loop
//! valgrind --tool=callgrind --callgrind-out-file=hot.callgrind target/release/hot_loop
//! callgrind_annotate hot.callgrind | head -40
//! ```
//!
//! `MODE=hot` (default) sends a cached valid token, `MODE=reject` a wrong secret for it
//! (refused from cache), `MODE=unknown` an unknown id (refused from cache),
//! `MODE=malformed` the valid request with a repeated client id, `MODE=bare` the valid request to the inner service without the layer (the baseline);
//! `N` requests (default 100,000) after one warm-up request. `INNER=axum` puts an axum
//! `Router` with one route in place of the trivial inner service.

use std::convert::Infallible;

use bytes::Bytes;
use finout_auth::AuthLayer;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};

// The benches' fixtures: the same store, token and hyper-shaped requests.
#[path = "../../../benches/common/mod.rs"]
mod common;

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
    let (fixture, token) = rt.block_on(async {
        let f = common::Fixture::new().await;
        let t = f.token().await;
        (f, t)
    });
    let (id, secret) = match mode.as_str() {
        "reject" => (token.client_id.as_str(), "wrong-secret"),
        "unknown" => (
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        ),
        _ => (token.client_id.as_str(), token.secret_key.expose_secret()),
    };
    let request = || {
        let mut request = common::request(id, secret);
        if mode == "malformed" {
            // A repeated client id: refused before the authenticator.
            request
                .headers_mut()
                .append(finout_auth::CLIENT_ID_HEADER, "again".parse().unwrap());
        }
        request
    };
    let inner_axum = std::env::var("INNER").is_ok_and(|v| v == "axum");
    if inner_axum {
        let router = axum::Router::new().route("/v1/view", axum::routing::get(|| async { "ok" }));
        measure(&rt, router, &fixture, &token, &mode, request, n);
    } else {
        measure(
            &rt,
            service_fn(common::ok),
            &fixture,
            &token,
            &mode,
            request,
            n,
        );
    }
}

fn measure<S, B>(
    rt: &tokio::runtime::Runtime,
    inner: S,
    fixture: &common::Fixture,
    token: &finout_auth::IssuedToken,
    mode: &str,
    request: impl Fn() -> Request<Full<Bytes>>,
    n: usize,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let layered = AuthLayer::new(fixture.auth.clone()).layer(inner.clone());
    // Warm: the token is in use (its secret cached), and the measured attempt seen once.
    rt.block_on(layered.clone().oneshot(common::with_token(token)))
        .unwrap();
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
    let mut statuses = 0u64;
    for _ in 0..n {
        statuses += u64::from(common::call_now(&mut service, request()).status().as_u16());
    }
    println!("{n} requests, mean status {}", statuses / n as u64);
}
