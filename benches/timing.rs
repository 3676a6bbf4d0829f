//! Does a response's timing tell whether a client id exists? Unknown ids against wrong
//! secrets for a real id, through the layer, cold (a new secret each time: an argon2 run for
//! the real id, none for the unknown one; both answered at the refusal deadline, shortened
//! here to 40 ms) and cached (the same attempt repeated: answered from the verdict cache).
//!
//! ```sh
//! cargo bench --bench timing
//! ```
//!
//! The failure throttle is off here, so that every attempt reaches the code under test.
//!
//! `timing/cold_interleaved` measures the two cold cases in alternation (unknown id, then
//! wrong secret, then the other order), so that the host's drift over the run affects both
//! alike; criterion reports the time of a pair, and the bench prints each case's median
//! per-attempt time over the samples and their ratio.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

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
        .verification_wait(Duration::from_millis(40))
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

    // Both cold cases in alternation: per sample, the mean time of each.
    let samples = Arc::new(Mutex::new(Vec::<(f64, f64)>::new()));
    let mut interleaved = c.benchmark_group("timing/cold_interleaved");
    interleaved
        .sample_size(20)
        .measurement_time(Duration::from_secs(20));
    interleaved.bench_function("unknown_id+wrong_secret", |b| {
        b.iter_custom(|iters| {
            let (mut unknown, mut wrong) = (Duration::ZERO, Duration::ZERO);
            for i in 0..iters {
                let time = |id: String| {
                    let started = Instant::now();
                    rt.block_on(run(id, fresh()));
                    started.elapsed()
                };
                if i % 2 == 0 {
                    unknown += time(fresh());
                    wrong += time(known.clone());
                } else {
                    wrong += time(known.clone());
                    unknown += time(fresh());
                }
            }
            let per = |d: Duration| d.as_secs_f64() / iters as f64;
            samples.lock().unwrap().push((per(unknown), per(wrong)));
            unknown + wrong
        })
    });
    interleaved.finish();
    let mut samples = samples.lock().unwrap().clone();
    if !samples.is_empty() {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mut unknown: Vec<f64> = samples.iter().map(|s| s.0).collect();
        let mut wrong: Vec<f64> = samples.drain(..).map(|s| s.1).collect();
        let (u, w) = (median(&mut unknown), median(&mut wrong));
        println!(
            "timing/cold_interleaved: unknown id {:.2} ms, wrong secret {:.2} ms (medians over {} interleaved calls, warm-up included); wrong / unknown = {:.3}",
            u * 1e3,
            w * 1e3,
            unknown.len(),
            w / u
        );
    }

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
