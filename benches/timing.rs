//! Does a response's timing tell whether a client id exists? Unknown ids against wrong
//! secrets for a real id, through the layer, cold (a new secret each time: one argon2 run,
//! dummy or real) and cached (the same attempt repeated: answered from the verdict cache).
//!
//! ```sh
//! cargo bench --bench timing
//! ```
//!
//! The failure throttle is off here, so that every attempt reaches the code under test.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use finout_auth::{
    AuthLayer, Authenticator, CLIENT_ID_HEADER, NewToken, Role, SECRET_KEY_HEADER, TokenAdmin,
    store::MemoryTokenStore,
};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};

fn request(id: &str, secret: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .header(CLIENT_ID_HEADER, id)
        .header(SECRET_KEY_HEADER, secret)
        .body(Full::default())
        .unwrap()
}

fn timing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    let auth = Authenticator::builder(store.clone())
        .no_failure_limit()
        .build();
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let token = rt.block_on(async {
        let account = admin.create_account("timing").await.unwrap();
        admin
            .issue_api_token(account.id, None, NewToken::new("t", Role::Basic))
            .await
            .unwrap()
    });
    let known = token.client_id.to_string();
    let service = AuthLayer::new(auth).layer(service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    let run = |id: String, secret: String| {
        let service = service.clone();
        async move {
            let response = service.oneshot(request(&id, &secret)).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    };
    let fresh = || uuid::Uuid::new_v4().to_string();

    let mut cold = c.benchmark_group("timing/cold");
    cold.sample_size(30)
        .measurement_time(Duration::from_secs(15));
    cold.bench_function("unknown_id", |b| {
        b.to_async(&rt).iter(|| run(fresh(), fresh()))
    });
    cold.bench_function("wrong_secret", |b| {
        b.to_async(&rt).iter(|| run(known.clone(), fresh()))
    });
    cold.finish();

    let (unknown, wrong) = (fresh(), fresh());
    let mut cached = c.benchmark_group("timing/cached");
    cached.measurement_time(Duration::from_secs(5));
    cached.bench_function("unknown_id", |b| {
        b.to_async(&rt).iter(|| run(unknown.clone(), wrong.clone()))
    });
    cached.bench_function("wrong_secret", |b| {
        b.to_async(&rt).iter(|| run(known.clone(), wrong.clone()))
    });
    cached.finish();
}

criterion_group!(benches, timing);
criterion_main!(benches);
