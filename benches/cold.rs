//! The cold path: one argon2id verification at the default parameters, and one uncached
//! request end to end (store lookup, argon2 on the verification pool, caching).
//!
//! ```sh
//! cargo bench --bench cold
//! ```

#[path = "common/mod.rs"]
mod common;

use std::{sync::Arc, time::Duration};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use finout_auth::{AuthLayer, Authenticator, SecretKey, crypto::SecretHasher};
use tower::{Layer, ServiceExt, service_fn};

fn cold(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (fixture, token) = rt.block_on(async {
        let f = common::Fixture::new().await;
        let t = f.token().await;
        (f, t)
    });
    let hasher = SecretHasher::default();
    let secret = SecretKey::new("2b5e6c1a-7d0f-4c53-9a51-3f2e8d1c0b9a");
    let hash = hasher.hash(&secret).unwrap();

    let mut group = c.benchmark_group("cold");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| {
            assert_eq!(
                hasher.verify(secret.expose_secret().as_bytes(), &hash),
                Ok(true)
            )
        })
    });
    group.bench_function("uncached_request", |b| {
        b.to_async(&rt).iter_batched(
            // A fresh authenticator each time: nothing cached, the store already warm.
            || {
                let _guard = rt.enter();
                let auth = Authenticator::new(Arc::clone(&fixture.store) as _);
                AuthLayer::new(auth).layer(service_fn(common::ok))
            },
            |service| async {
                let r = service.oneshot(common::with_token(&token)).await.unwrap();
                assert!(r.status().is_success());
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, cold);
criterion_main!(benches);
