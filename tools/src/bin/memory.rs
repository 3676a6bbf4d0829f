//! Bounded memory: push 1,000,000 requests with distinct random client ids through the
//! layer (in process, no sockets) and watch resident memory. Every cache the authenticator
//! keeps has a capacity, so memory must level off however many ids an attacker invents.
//!
//! ```sh
//! cargo run --release -p finout-auth-tools --bin memory
//! # knobs: REQUESTS=1000000 IN_FLIGHT=16384 UNIFORM=1
//! ```
//!
//! `UNIFORM=0 IN_FLIGHT=32` answers refusals when decided, a baseline for what the caches
//! alone take.
//!
//! Unknown ids run no argon2; each is answered at the refusal deadline (1 s), so the
//! requests are kept 16,384 in flight (a million take about a minute): what is measured is
//! the caches and the refusals held until their deadline.
//!
//! `ISSUES=128` measures issuing instead: that many concurrent issues through `TokenAdmin`
//! with the default argon2 parameters (m=19456 KiB), and the peak resident memory they
//! cause (`VmHWM`), which the issuance pool bounds to about one hash's memory.

use std::{collections::BTreeMap, convert::Infallible, sync::Arc};

use bytes::Bytes;
use finout_auth::{
    AuthLayer, Authenticator, CLIENT_ID_HEADER, SECRET_KEY_HEADER, crypto::SecretHasher,
    store::MemoryTokenStore,
};
use http::{Request, Response};
use http_body_util::Full;
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt, service_fn};

/// Peak resident set size of this process so far, in KiB.
fn hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `n` concurrent issues with the default argon2 parameters: answers and peak memory.
async fn issues(n: u64) {
    use finout_auth::{AdminError, NewToken, Role, TokenAdmin, store::TokenLimits};
    let admin = TokenAdmin::new(Arc::new(MemoryTokenStore::new()))
        .with_token_limits(TokenLimits::unlimited());
    let account = admin.create_account("issues").await.unwrap();
    let before = hwm_kib();
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let admin = admin.clone();
        tasks.spawn(async move {
            admin
                .issue_api_token(
                    account.id,
                    None,
                    NewToken::new(format!("t{i}"), Role::Basic),
                )
                .await
        });
    }
    let (mut issued, mut busy) = (0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            Ok(_) => issued += 1,
            Err(AdminError::Busy { .. }) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    println!(
        "{n} concurrent issues in {:.2} s: {issued} issued, {busy} auth_busy; peak RSS {:.1} MiB before, {:.1} MiB after",
        started.elapsed().as_secs_f64(),
        before as f64 / 1024.0,
        hwm_kib() as f64 / 1024.0
    );
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if let Ok(n) = std::env::var("ISSUES") {
        return issues(n.parse().expect("ISSUES is a number")).await;
    }
    let total = env("REQUESTS", 1_000_000);
    let in_flight = env("IN_FLIGHT", 16_384) as usize;
    let auth = Authenticator::builder(Arc::new(MemoryTokenStore::new()))
        .hasher(SecretHasher::with_params(8, 1, 1).unwrap())
        .uniform_refusals(env("UNIFORM", 1) == 1)
        .build();
    let service = AuthLayer::new(auth.clone()).layer(service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));

    let start_rss = rss_kib();
    let mut peak = start_rss;
    let mut codes = BTreeMap::<u16, u64>::new();
    let mut tasks = JoinSet::new();
    let started = std::time::Instant::now();
    println!(
        "| requests | RSS (MiB) |\n| --- | --- |\n| 0 | {:.1} |",
        start_rss as f64 / 1024.0
    );
    for i in 1..=total {
        if tasks.len() >= in_flight {
            let status = tasks.join_next().await.unwrap().unwrap();
            *codes.entry(status).or_default() += 1;
        }
        let service = service.clone();
        tasks.spawn(async move {
            let request = Request::builder()
                .header(CLIENT_ID_HEADER, uuid::Uuid::new_v4().to_string())
                .header(SECRET_KEY_HEADER, uuid::Uuid::new_v4().to_string())
                .body(Full::<Bytes>::default())
                .unwrap();
            service.oneshot(request).await.unwrap().status().as_u16()
        });
        if i % (total / 10).max(1) == 0 {
            let rss = rss_kib();
            peak = peak.max(rss);
            println!("| {i} | {:.1} |", rss as f64 / 1024.0);
        }
    }
    while let Some(status) = tasks.join_next().await {
        *codes.entry(status.unwrap()).or_default() += 1;
    }
    let m = auth.metrics();
    println!(
        "\n{total} requests in {:.1} s, {in_flight} in flight; peak RSS {:.1} MiB (start {:.1} MiB); answers by status: {codes:?}; argon2 runs: {}; unknown ids checked: {}; store lookups: {}",
        started.elapsed().as_secs_f64(),
        peak as f64 / 1024.0,
        start_rss as f64 / 1024.0,
        m.secret_verifications,
        m.unknown_ids,
        m.store_lookups,
    );
}
