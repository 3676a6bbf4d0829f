//! The mock's Prometheus recorder (`super`: what it records and who may read it).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{extract::Request, middleware::Next, response::Response};
use finout_auth::metrics::Metrics;
use metrics::{Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

const DURATION: &str = "finout_mock_request_duration_seconds";
const IN_FLIGHT: &str = "finout_mock_requests_in_flight";
const SET_ASIDE: &str = "finout_mock_rows_set_aside";
const QUERY_BYTES: &str = "finout_mock_query_bytes";
/// Buckets of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const COUNTERS: [(&str, &str); 9] = [
    (
        "finout_auth_requests_total",
        "Answers by outcome: ok, or the error code answered.",
    ),
    (
        "finout_auth_cache_hits_total",
        "Requests answered from the authenticator's cache.",
    ),
    (
        "finout_auth_cache_misses_total",
        "Requests that took the cold path.",
    ),
    (
        "finout_auth_store_lookups_total",
        "Calls to the token store.",
    ),
    (
        "finout_auth_secret_verifications_total",
        "argon2 verifications run.",
    ),
    (
        "finout_auth_unknown_ids_total",
        "Checks of client ids no token has (refused without argon2).",
    ),
    (
        "finout_auth_revalidations_total",
        "Cold requests admitted by a known secret, without argon2.",
    ),
    (
        "finout_auth_refreshes_total",
        "Cached tokens refreshed from the store before their TTL.",
    ),
    (
        "finout_auth_stale_answers_total",
        "Tokens admitted stale while the store could not be reached.",
    ),
];

/// The mock's recorder and its handle.
#[derive(Debug, Clone)]
pub(crate) struct Prometheus {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Requests observed, to fold the histogram samples into their buckets every
    /// [`UPKEEP_EVERY`] (without it they pile up until the next scrape).
    observed: Arc<AtomicU64>,
}

/// How many requests may add histogram samples before they are folded into buckets.
const UPKEEP_EVERY: u64 = 1_024;

/// Counts a request in flight until dropped (also when the request is cancelled).
struct InFlight(metrics::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

impl Prometheus {
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        for (name, help) in COUNTERS {
            recorder.describe_counter(KeyName::from(name), None, SharedString::from(help));
        }
        recorder.describe_gauge(
            KeyName::from("finout_auth_verifications_in_flight"),
            None,
            SharedString::from("argon2 verifications running now."),
        );
        recorder.describe_gauge(
            KeyName::from(IN_FLIGHT),
            None,
            SharedString::from("Requests the mock is answering now."),
        );
        recorder.describe_gauge(
            KeyName::from(SET_ASIDE),
            None,
            SharedString::from("Rows of the mock's table it could not read at start (skipped)."),
        );
        recorder.describe_gauge(
            KeyName::from(QUERY_BYTES),
            Some(Unit::Bytes),
            SharedString::from("Bytes the V2 cost-and-usage queries of every account hold."),
        );
        recorder.describe_histogram(
            KeyName::from(DURATION),
            Some(Unit::Seconds),
            SharedString::from("Time to answer a request, by API and status."),
        );
        Prometheus {
            recorder: Arc::new(recorder),
            handle,
            observed: Arc::default(),
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>, value: u64) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .absolute(value);
    }

    /// The text, with the authenticator's counters as they are now and the rows set aside.
    pub(crate) fn render(&self, metrics: &Metrics, set_aside: u64, query_bytes: usize) -> String {
        let m = metrics.snapshot();
        let outcome = |v: &'static str| vec![Label::new("outcome", v)];
        self.counter(COUNTERS[0].0, outcome("ok"), m.authenticated);
        for (code, n) in m.rejections {
            self.counter(COUNTERS[0].0, outcome(code.as_str()), n);
        }
        for (i, value) in [
            m.cache_hits,
            m.cache_misses,
            m.store_lookups,
            m.secret_verifications,
            m.unknown_ids,
            m.revalidations,
            m.refreshes,
            m.stale_answers,
        ]
        .into_iter()
        .enumerate()
        {
            self.counter(COUNTERS[i + 1].0, Vec::new(), value);
        }
        self.recorder
            .register_gauge(
                &Key::from_name("finout_auth_verifications_in_flight"),
                &METADATA,
            )
            .set(m.verifications_in_flight as f64);
        self.recorder
            .register_gauge(&Key::from_name(SET_ASIDE), &METADATA)
            .set(set_aside as f64);
        self.recorder
            .register_gauge(&Key::from_name(QUERY_BYTES), &METADATA)
            .set(query_bytes as f64);
        self.handle.render()
    }

    /// Time the answer to `request` and count it in flight while it is answered.
    pub(crate) async fn observe(&self, request: Request, next: Next) -> Response {
        let api: &'static str = match request.uri().path().split('/').nth(1) {
            Some("v1") => "v1",
            Some("v2") => "v2",
            Some("admin") => "admin",
            _ => "other",
        };
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(IN_FLIGHT), &METADATA);
        gauge.increment(1.0);
        let in_flight = InFlight(gauge);
        let started = Instant::now();
        let response = next.run(request).await;
        drop(in_flight);
        let labels = vec![
            Label::new("api", api),
            Label::new("status", response.status().as_str().to_owned()),
        ];
        self.recorder
            .register_histogram(&Key::from_parts(DURATION, labels), &METADATA)
            .record(started.elapsed().as_secs_f64());
        if self.observed.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
        response
    }
}
