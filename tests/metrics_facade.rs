//! With the `metrics` feature, the counters also reach the `metrics` facade.
#![cfg(feature = "metrics")]

mod common;

use common::{Harness, authenticate};
use finout_auth::Role;
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
}
