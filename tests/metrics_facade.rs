//! With the `metrics` feature, the counters also reach the `metrics` facade.
#![cfg(feature = "metrics")]

mod common;

use std::{sync::Arc, time::Duration};

use common::{FlakyStore, Harness, authenticate};
use finout_auth::{NewToken, Role, crypto::SecretHasher, store::MemoryTokenStore};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// A counter's name, labels and value.
type Counter = (String, Vec<(String, String)>, u64);

#[tokio::test(flavor = "current_thread")]
async fn counters_are_reported_through_the_metrics_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("first recorder in this test binary");

    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    h.authenticate(&token).await.unwrap();
    let _ = authenticate(&h.auth, &token.client_id, "wrong").await;

    let snapshot = snapshotter.snapshot().into_vec();
    // The cold path's latency by outcome, and the in-flight gauges back at zero.
    let histogram = |outcome: &str| {
        snapshot.iter().find_map(|(key, _, _, value)| match value {
            DebugValue::Histogram(values)
                if key.key().name() == "finout_auth_cold_path_seconds"
                    && key.key().labels().any(|l| l.value() == outcome) =>
            {
                Some(values.len())
            }
            _ => None,
        })
    };
    assert_eq!(
        histogram("ok"),
        Some(1),
        "the first request took the cold path"
    );
    assert_eq!(histogram("invalid_credentials"), Some(1));
    for gauge in [
        "finout_auth_verifications_in_flight",
        "finout_auth_cold_in_flight",
    ] {
        let value = snapshot.iter().find_map(|(key, _, _, value)| match value {
            DebugValue::Gauge(v) if key.key().name() == gauge => Some(v.into_inner()),
            _ => None,
        });
        assert_eq!(value, Some(0.0), "{gauge}");
    }
    let counters: Vec<Counter> = snapshot
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                Some((key.key().name().to_owned(), labels, n))
            }
            _ => None,
        })
        .collect();
    let get = |name: &str, labels: &[(&str, &str)]| {
        counters
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .eq(labels.iter().copied())
            })
            .map(|(_, _, v)| *v)
    };
    assert_eq!(
        get("finout_auth_requests_total", &[("outcome", "ok")]),
        Some(2)
    );
    assert_eq!(
        get(
            "finout_auth_requests_total",
            &[("outcome", "invalid_credentials")]
        ),
        Some(1)
    );
    assert_eq!(get("finout_auth_cache_hits_total", &[]), Some(1));
    assert_eq!(get("finout_auth_cache_misses_total", &[]), Some(2));
    assert_eq!(get("finout_auth_store_lookups_total", &[]), Some(1));
    assert_eq!(get("finout_auth_secret_verifications_total", &[]), Some(2));

    // The gauges while work is in flight: a cold request waiting on a slow store, then a
    // slow argon2 run (t=8: tens of milliseconds), each seen at 1 and back at 0 after. The
    // debugging recorder's snapshot hands out a gauge's changes since the last snapshot (it
    // swaps the value to 0), so the levels are their sum.
    const GAUGES: [&str; 2] = [
        "finout_auth_cold_in_flight",
        "finout_auth_verifications_in_flight",
    ];
    let mut levels = [0.0_f64; 2];
    let mut read_levels = || {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            if let (DebugValue::Gauge(v), Some(i)) =
                (value, GAUGES.iter().position(|g| *g == key.key().name()))
            {
                levels[i] += v.into_inner();
            }
        }
        levels
    };
    let slow_hasher = SecretHasher::with_params(19456, 8, 1).unwrap();
    let memory = Arc::new(MemoryTokenStore::new());
    let slow_store = FlakyStore::new(memory.clone(), Duration::from_millis(500));
    let slow = Harness::wrapped(memory, slow_store, |b| {
        b.hasher(slow_hasher.clone())
            .verification_wait(Duration::from_secs(5))
    })
    .await;
    let token = slow
        .admin
        .clone()
        .with_hasher(slow_hasher)
        .issue_api_token(slow.account.id, None, NewToken::new("slow", Role::Basic))
        .await
        .unwrap();
    let auth = slow.auth.clone();
    let request = tokio::spawn(async move {
        let credentials = finout_auth::Credentials::new(
            token.client_id.as_str(),
            token.secret_key.expose_secret(),
        )
        .unwrap();
        auth.authenticate(credentials).await.map(|_| ())
    });
    for (i, name) in GAUGES.iter().enumerate() {
        let mut seen = false;
        for _ in 0..2_000 {
            if read_levels()[i] == 1.0 {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        assert!(seen, "{name} never rose to 1 while its work was in flight");
    }
    request
        .await
        .unwrap()
        .expect("the slow request is admitted");
    assert_eq!(read_levels(), [0.0, 0.0], "{GAUGES:?} back at 0");
}
