//! Cached rejections: a wrong secret for a cached token, an unknown id seen before, and a
//! malformed header. Each is answered without argon2 and without the store. `bare`, a
//! valid request through the inner service alone, is the baseline of the same run.
//!
//! ```sh
//! cargo bench --bench reject
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use finout_auth::{AuthLayer, CLIENT_ID_HEADER};
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};

fn reject(c: &mut Criterion) {
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
    let mut layered = AuthLayer::new(fixture.auth.clone()).layer(service_fn(common::ok));
    let id = token.client_id.as_str();
    let wrong = || common::request(id, "00000000-0000-4000-8000-000000000000");
    let unknown = || {
        common::request(
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        )
    };
    let malformed = || {
        let mut r = common::with_token(&token);
        r.headers_mut()
            .append(CLIENT_ID_HEADER, "again".parse().unwrap());
        r
    };
    // Warm: the token is cached, and each failing attempt has been seen once.
    rt.block_on(async {
        let right = layered
            .clone()
            .oneshot(common::with_token(&token))
            .await
            .unwrap();
        assert_eq!(right.status(), StatusCode::OK);
        for r in [wrong(), unknown(), malformed()] {
            let answer = layered.clone().oneshot(r).await.unwrap();
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        }
    });
    let runs = fixture.auth.metrics().secret_verifications;

    let mut group = c.benchmark_group("reject");
    group.measurement_time(Duration::from_secs(5));
    type MakeRequest<'a> = &'a dyn Fn() -> Request<Full<Bytes>>;
    let cases: [(&str, MakeRequest<'_>); 3] = [
        ("cached_wrong_secret", &wrong),
        ("cached_unknown_id", &unknown),
        ("malformed_header", &malformed),
    ];
    // The baseline of this run: a valid request through the bare inner service.
    let mut bare = service_fn(common::ok);
    group.bench_function("bare", |b| {
        b.iter(|| common::call_now(&mut bare, common::with_token(&token)))
    });
    for (name, make) in cases {
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = common::call_now(&mut layered, make());
                debug_assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
                r
            })
        });
    }
    group.finish();
    assert_eq!(
        fixture.auth.metrics().secret_verifications,
        runs,
        "no measured rejection ran argon2"
    );
}

criterion_group!(benches, reject);
criterion_main!(benches);
