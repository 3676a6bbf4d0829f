//! What one limited request costs: a request with a principal through a `RateLimitLayer`
//! (one quota, keyed by account) and through a `TokenConcurrencyLimitLayer`, each with the
//! process's own state and shared through Redis, beside the bare inner service. The shared
//! rate limit is one script call (one round trip); the shared in-flight limit is two (acquire,
//! then the release its guard sends when the answer is dropped) plus a renewal task.
//!
//! ```sh
//! FINOUT_AUTH_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench limits --features redis
//! ```
//!
//! Without `FINOUT_AUTH_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`) reachable, the
//! shared benches measure the fall back instead: the bench refuses to run rather than report
//! that.

use std::{convert::Infallible, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use finout_auth::{
    AccountId, ClientId, Principal, Role,
    middleware::{Quota, RateLimitLayer, TokenConcurrencyLimitLayer},
    shared::{RedisShared, Shared},
};
use http::{Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt, service_fn};

fn request() -> Request<()> {
    let mut request = Request::new(());
    request.extensions_mut().insert(Principal::account(
        AccountId(uuid::uuid!("00000000-0000-4000-8000-0000000000a1")),
        Role::ReadOnly,
        ClientId::from("bench-client"),
    ));
    request
}

async fn ok(_: Request<()>) -> Result<Response<()>, Infallible> {
    Ok(Response::new(()))
}

fn limits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let url = std::env::var("FINOUT_AUTH_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("finout-auth-bench:{}:", uuid::Uuid::new_v4());
    let shared = Shared::new(RedisShared::new(&url).unwrap().prefix(prefix));
    // Never refuses within a bench: the refusal path is not what is measured.
    let quota = || RateLimitLayer::new([Quota::new(u32::MAX, Duration::from_secs(1))]);
    let services = [
        ("bare", service_fn(ok).boxed_clone()),
        (
            "rate_local",
            quota()
                .layer(service_fn(ok))
                .map_response(|r| r.map(|_| ()))
                .boxed_clone(),
        ),
        (
            "rate_shared",
            quota()
                .shared(shared.clone(), "bench")
                .layer(service_fn(ok))
                .map_response(|r| r.map(|_| ()))
                .boxed_clone(),
        ),
        (
            "in_flight_local",
            TokenConcurrencyLimitLayer::new(1_000)
                .layer(service_fn(ok))
                .map_response(|r| r.map(|_| ()))
                .boxed_clone(),
        ),
        (
            "in_flight_shared",
            TokenConcurrencyLimitLayer::new(1_000)
                .shared(shared.clone())
                .layer(service_fn(ok))
                .map_response(|r| r.map(|_| ()))
                .boxed_clone(),
        ),
    ];
    // Warm (the scripts loaded, the connection made), and make sure Redis answers: a bench
    // of the fall back would be mislabelled.
    rt.block_on(async {
        for (_, service) in &services {
            let response = service.clone().oneshot(request()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    assert!(
        shared.is_available(),
        "Redis at {url} does not answer: set FINOUT_AUTH_BENCH_REDIS_URL"
    );
    let mut group = c.benchmark_group("limits");
    for (name, service) in services {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut service = service.clone();
                async move {
                    let response = service
                        .ready()
                        .await
                        .unwrap()
                        .call(request())
                        .await
                        .unwrap();
                    std::hint::black_box(response);
                }
            });
        });
    }
    group.finish();
    assert!(shared.is_available(), "Redis stayed available throughout");
}

criterion_group!(benches, limits);
criterion_main!(benches);
