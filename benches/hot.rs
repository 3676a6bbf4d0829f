//! The hot path: a request with a cached valid token through the layer, beside the same
//! request through the bare inner service. Both include building the request.
//! `layered_expiring` is the same with a token that has an expiry (one clock read more).
//! `layer_cost` is the goal's own measure, layered minus bare per request, taken from
//! alternating batches of the two within each sample, so that a host whose speed drifts
//! between benches (as a shared one does) slows both sides of each difference alike.
//! `axum_layer_cost` is the same with an axum `Router` (one route) as the inner service, the
//! typical application under the layer; a router inserts request extensions of its own.
//!
//! ```sh
//! cargo bench --bench hot
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{
    convert::Infallible,
    hint::black_box,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use finout_auth::AuthLayer;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, service_fn};

fn hot(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (fixture, token, expiring) = rt.block_on(async {
        let f = common::Fixture::new().await;
        let t = f.token().await;
        let e = f
            .admin
            .issue_api_token(
                f.account,
                None,
                finout_auth::NewToken::new("expiring", finout_auth::Role::Basic)
                    .expires_in_minutes(60),
            )
            .await
            .unwrap();
        (f, t, e)
    });
    let mut bare = service_fn(common::ok);
    let mut layered = AuthLayer::new(fixture.auth.clone()).layer(service_fn(common::ok));
    // Warm: the first request of each token runs argon2 and caches it.
    rt.block_on(async {
        use tower::ServiceExt;
        for t in [&token, &expiring] {
            let r = layered
                .clone()
                .oneshot(common::with_token(t))
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
    });

    let mut group = c.benchmark_group("hot");
    group.bench_function("bare", |b| {
        b.iter(|| common::call_now(&mut bare, common::with_token(&token)))
    });
    group.bench_function("layered", |b| {
        b.iter(|| {
            let r = common::call_now(&mut layered, common::with_token(&token));
            debug_assert!(r.status().is_success());
            r
        })
    });
    // A token with an expiry: each hit also reads the authenticator's clock.
    group.bench_function("layered_expiring", |b| {
        b.iter(|| {
            let r = common::call_now(&mut layered, common::with_token(&expiring));
            debug_assert!(r.status().is_success());
            r
        })
    });
    group.bench_function("layer_cost", |b| {
        b.iter_custom(|iters| layer_cost(iters, &mut bare, &mut layered, &token))
    });
    let mut router = axum::Router::new().route("/v1/view", axum::routing::get(|| async { "ok" }));
    let mut routed = AuthLayer::new(fixture.auth.clone()).layer(router.clone());
    assert!(
        common::call_now(&mut routed, common::with_token(&token))
            .status()
            .is_success()
    );
    group.bench_function("axum_layer_cost", |b| {
        b.iter_custom(|iters| layer_cost(iters, &mut router, &mut routed, &token))
    });
    group.finish();
    let m = fixture.auth.metrics();
    assert_eq!(
        m.secret_verifications, 2,
        "every measured request was a cache hit"
    );
}

/// `iters` requests through `layered` minus as many through `bare`, from alternating
/// batches of 128.
fn layer_cost<B, L, BB, LB>(
    iters: u64,
    bare: &mut B,
    layered: &mut L,
    token: &finout_auth::IssuedToken,
) -> Duration
where
    B: Service<Request<Full<Bytes>>, Response = Response<BB>, Error = Infallible>,
    L: Service<Request<Full<Bytes>>, Response = Response<LB>, Error = Infallible>,
{
    const BATCH: u64 = 128;
    let (mut with, mut without) = (Duration::ZERO, Duration::ZERO);
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        let started = Instant::now();
        for _ in 0..n {
            black_box(common::call_now(bare, common::with_token(token)));
        }
        without += started.elapsed();
        let started = Instant::now();
        for _ in 0..n {
            black_box(common::call_now(layered, common::with_token(token)));
        }
        with += started.elapsed();
        left -= n;
    }
    with.saturating_sub(without)
}

criterion_group!(benches, hot);
criterion_main!(benches);
