//! Flood harness: how valid, cached requests fare while others flood the server with wrong
//! secrets and random client ids. Loopback only, bounded in count and time.
//!
//! ```sh
//! cargo run --release -p finout-auth-tools --bin flood
//! # knobs: VALID=5000 FLOOD_CONNECTIONS=256 FLOOD_RATE=2000 RANDOM_IDS=1 LOW_PRIORITY=1 MAX_SECS=60
//! #        CACHE_TTL_MS=60000 FAILURE_WINDOW_MS=60000 (shorten both so that one run covers
//! #        several of each: CACHE_TTL_MS=2000 FAILURE_WINDOW_MS=4000 VALID=16000)
//! ```
//!
//! Two tokens are measured under the flood: a busy one (a request every millisecond) and a
//! sparse one, used once every 1.5 cache TTLs, so that each of its requests finds its cache
//! entry expired and is re-validated on the cold path while argon2 is saturated.
//!
//! The flood is open-loop at FLOOD_RATE requests per second in all (0 = as fast as the
//! connections go, which measures plain CPU saturation of this machine rather than what
//! the flood costs in argon2).
//!
//! Prints p50/p99 of the valid requests without and with the flood, argon2 runs per second
//! during the flood, the most argon2 runs seen at once, and the flood's answers by code.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use finout_auth::{
    AuthLayer, Authenticator, IssuedToken, NewToken, Role, TokenAdmin, store::MemoryTokenStore,
};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::{ServiceBuilder, service_fn};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn serve(auth: Authenticator) -> SocketAddr {
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(auth))
        .service(service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Send one request; answer its status and the error code in the body, if any.
async fn send(sender: &mut Sender, id: &str, secret: &str) -> (u16, String) {
    let request = Request::builder()
        .uri("/")
        .header("x-finout-client-id", id)
        .header("x-finout-secret-key", secret)
        .body(Empty::new())
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "ok".into());
    (status, code)
}

/// Latencies (µs, sorted) of `n` valid requests on one keep-alive connection, one `every`
/// (or right after the previous answer, if that took longer), and the refusals by code.
async fn valid_latencies(
    addr: SocketAddr,
    token: &IssuedToken,
    n: u64,
    every: Duration,
) -> (Vec<u64>, BTreeMap<String, u64>) {
    let mut sender = connect(addr).await;
    let (id, secret) = (token.client_id.as_str(), token.secret_key.expose_secret());
    let mut latencies = Vec::with_capacity(n as usize);
    let mut refused = BTreeMap::new();
    let mut pace = tokio::time::interval(every);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..n {
        pace.tick().await;
        let start = Instant::now();
        let (status, code) = send(&mut sender, id, secret).await;
        latencies.push(start.elapsed().as_micros() as u64);
        if status != 200 {
            *refused.entry(code).or_default() += 1;
        }
    }
    latencies.sort_unstable();
    (latencies, refused)
}

/// Run `f` on a thread of its own with a single-threaded runtime, as a separate client
/// process would: the server's runtime schedules only the server.
fn on_own_thread<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let valid_n = env("VALID", 5000);
    let connections = env("FLOOD_CONNECTIONS", 256);
    let rate = env("FLOOD_RATE", 2000);
    // RANDOM_IDS=0 floods only wrong secrets for the victim (throttled: no argon2 after the
    // first few), a control for what the flood's HTTP traffic alone costs.
    let random_ids = env("RANDOM_IDS", 1) == 1;
    let max_secs = env("MAX_SECS", 60);
    let ttl = Duration::from_millis(env("CACHE_TTL_MS", 60_000));
    let window = Duration::from_millis(env("FAILURE_WINDOW_MS", 60_000));

    let store = Arc::new(MemoryTokenStore::new());
    // LOW_PRIORITY=0 runs argon2 at normal priority, to see what the default buys.
    let auth = Authenticator::builder(store.clone())
        .low_priority_verification(env("LOW_PRIORITY", 1) == 1)
        .cache_ttl(ttl)
        .verdict_ttl(ttl)
        .failure_limit(20, window)
        .build();
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let account = admin.create_account("flood").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("victim", Role::Basic))
        .await
        .unwrap();
    let sparse = admin
        .issue_api_token(account.id, None, NewToken::new("sparse", Role::Basic))
        .await
        .unwrap();
    let addr = serve(auth.clone()).await;
    let ms = Duration::from_millis(1);

    // Warm the cache, then the baseline.
    let (valid, sparse_token) = (token.clone(), sparse.clone());
    let (baseline, _) = tokio::task::spawn_blocking(move || {
        on_own_thread(async move {
            valid_latencies(addr, &valid, 100, ms).await;
            valid_latencies(addr, &sparse_token, 1, ms).await;
            valid_latencies(addr, &valid, valid_n, ms).await
        })
        .join()
        .unwrap()
    })
    .await
    .unwrap();

    // The flood: half wrong secrets for the victim's id, half random ids.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (auth, stop, peak) = (auth.clone(), stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(auth.metrics().verifications_in_flight, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let flood = {
        let (stop, victim) = (stop.clone(), token.client_id.to_string());
        on_own_thread(async move {
            let flooders: Vec<_> = (0..connections)
                .map(|i| {
                    let (stop, victim) = (stop.clone(), victim.clone());
                    tokio::spawn(async move {
                        let mut sender = connect(addr).await;
                        let mut codes = BTreeMap::<String, u64>::new();
                        let mut n = 0u64;
                        // Each connection sends its share of the rate, on a fixed schedule.
                        let mut tick = (rate > 0).then(|| {
                            let every = Duration::from_secs_f64(connections as f64 / rate as f64);
                            let mut t = tokio::time::interval(every);
                            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                            t
                        });
                        while !stop.load(Ordering::Relaxed) {
                            if let Some(tick) = tick.as_mut() {
                                tick.tick().await;
                            }
                            let secret = uuid::Uuid::new_v4().to_string();
                            let id = if !random_ids || (i + n).is_multiple_of(2) {
                                victim.clone()
                            } else {
                                uuid::Uuid::new_v4().to_string()
                            };
                            let (_, code) = send(&mut sender, &id, &secret).await;
                            *codes.entry(code).or_default() += 1;
                            n += 1;
                        }
                        codes
                    })
                })
                .collect();
            let mut codes = BTreeMap::<String, u64>::new();
            for f in flooders {
                for (code, n) in f.await.unwrap() {
                    *codes.entry(code).or_default() += n;
                }
            }
            codes
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // let the flood reach its steady state
    let before = auth.metrics();
    let flood_started = Instant::now();
    let valid = token.clone();
    // The sparse token: once every 1.5 TTLs for as long as the busy one runs.
    let sparse_every = ttl * 3 / 2;
    let sparse_n =
        (Duration::from_millis(valid_n).as_nanos() / sparse_every.as_nanos()).max(1) as u64;
    let sparse_run =
        on_own_thread(async move { valid_latencies(addr, &sparse, sparse_n, sparse_every).await });
    let (under_flood, refused) = tokio::task::spawn_blocking(move || {
        on_own_thread(async move {
            tokio::time::timeout(
                Duration::from_secs(max_secs),
                valid_latencies(addr, &valid, valid_n, ms),
            )
            .await
            .expect("valid requests finished within MAX_SECS")
        })
        .join()
        .unwrap()
    })
    .await
    .unwrap();
    let elapsed = flood_started.elapsed();
    let (sparse_latencies, sparse_refused) =
        tokio::task::spawn_blocking(move || sparse_run.join().unwrap())
            .await
            .unwrap();
    let after = auth.metrics();
    stop.store(true, Ordering::Relaxed);
    let codes = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    sampler.await.unwrap();

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let flood_total: u64 = codes.values().sum();
    println!(
        "flood harness: {cpus} CPUs, {connections} flood connections at {} req/s ({}), {valid_n} valid requests per phase\n",
        if rate == 0 {
            "unlimited".to_owned()
        } else {
            rate.to_string()
        },
        if random_ids {
            "half random ids, half wrong secrets for one id"
        } else {
            "wrong secrets for one id only"
        }
    );
    println!(
        "flood phase: {:.1} s = {:.1} cache TTLs of {} ms = {:.1} failure windows of {} ms\n",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / ttl.as_secs_f64(),
        ttl.as_millis(),
        elapsed.as_secs_f64() / window.as_secs_f64(),
        window.as_millis()
    );
    println!("| valid requests | n | p50 (µs) | p99 (µs) | max (µs) | refused |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let none = BTreeMap::new();
    for (what, l, r) in [
        ("busy token, without flood", &baseline, &none),
        ("busy token, under flood", &under_flood, &refused),
        (
            "sparse token (cold each time), under flood",
            &sparse_latencies,
            &sparse_refused,
        ),
    ] {
        println!(
            "| {what} | {} | {} | {} | {} | {:?} |",
            l.len(),
            pct(l, 0.5),
            pct(l, 0.99),
            l[l.len() - 1],
            r
        );
    }
    println!(
        "\np99 ratio under flood / without: {:.2}x",
        pct(&under_flood, 0.99) as f64 / pct(&baseline, 0.99).max(1) as f64
    );
    let runs = after.secret_verifications - before.secret_verifications;
    println!(
        "argon2 runs during the flood: {} (the flood's wrong secrets for the victim's id, at most 20 per failure window; unknown ids run none: {} checked; the valid tokens' were re-validated {} times and refreshed {} times without argon2)",
        runs,
        after.unknown_ids - before.unknown_ids,
        after.revalidations - before.revalidations,
        after.refreshes - before.refreshes,
    );
    println!(
        "argon2 runs during the flood: {runs} in {:.1} s = {:.1}/s; most at once: {} (configured limit: {})",
        elapsed.as_secs_f64(),
        runs as f64 / elapsed.as_secs_f64(),
        peak.load(Ordering::Relaxed),
        cpus.saturating_sub(1).max(1),
    );
    println!(
        "flood requests answered: {flood_total} ({:.0}/s)",
        flood_total as f64 / elapsed.as_secs_f64()
    );
    println!("\n| flood answer | count |\n| --- | --- |");
    for (code, n) in &codes {
        println!("| {code} | {n} |");
    }
}
