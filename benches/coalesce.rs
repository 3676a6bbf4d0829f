//! Coalescing: N concurrent first requests with one new token cost one store lookup and one
//! argon2 run, so they finish in about the time of one cold request.
//!
//! ```sh
//! cargo bench --bench coalesce
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{sync::Arc, time::Duration};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use finout_auth::{AuthLayer, Authenticator};
use tower::{Layer, ServiceExt, service_fn};

fn coalesce(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (fixture, token) = rt.block_on(async {
        let f = common::Fixture::new().await;
        let t = f.token().await;
        (f, t)
    });
    let mut group = c.benchmark_group("coalesce");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for n in [1usize, 50, 200] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&rt).iter_batched(
                || {
                    let _guard = rt.enter();
                    let auth = Authenticator::new(Arc::clone(&fixture.store) as _);
                    (
                        auth.clone(),
                        AuthLayer::new(auth).layer(service_fn(common::ok)),
                    )
                },
                |(auth, service)| {
                    let token = &token;
                    async move {
                        let requests: Vec<_> = (0..n)
                            .map(|_| {
                                tokio::spawn(service.clone().oneshot(common::with_token(token)))
                            })
                            .collect();
                        for r in requests {
                            assert!(r.await.unwrap().unwrap().status().is_success());
                        }
                        let m = auth.metrics();
                        assert_eq!((m.store_lookups, m.secret_verifications), (1, 1));
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, coalesce);
criterion_main!(benches);
