//! Many replicas: active tokens in use at a steady rate through the replicas of a service
//! (authenticators on one token store, in process), then one replica restarted (`EVENT=restart`:
//! a new authenticator with empty caches takes its place) or a cold replica joining
//! (`EVENT=join`: a new authenticator takes its share of the requests). With a shared state
//! (Redis, `SHARED=1`, the default) and verified secrets on, the new replica admits every
//! token after a store lookup, without argon2; `SHARED=0` is the baseline, where it runs
//! argon2 once per token while the requests keep coming.
//!
//! ```sh
//! cargo run --release -p finout-auth-tools --bin replicas
//! # knobs: EVENT=restart|join TOKENS=1000 RATE=500 BEFORE_SECS=5 AFTER_SECS=20 SHARED=1
//! #        REDIS=redis://127.0.0.1:6379
//! ```
//!
//! Tokens are issued and first verified with argon2 at the default parameters (m=19456 KiB,
//! t=2), each replica verifying on its default threads. Prints, for the requests after the
//! event: how many answered 503 `auth_busy` (or anything but 200), latency percentiles, and
//! the argon2 runs of the new replica.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use finout_auth::{
    Authenticator, Credentials, IssuedToken, NewToken, Role, TokenAdmin,
    shared::{RedisShared, Shared, VerifiedSecretKey, VerifiedSecrets},
    store::{MemoryTokenStore, TokenLimits},
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A replica's authenticator: sharing through Redis under `prefix` with `key`, or not.
fn replica(
    store: &Arc<MemoryTokenStore>,
    shared: Option<(&str, &str, &VerifiedSecretKey)>,
) -> Authenticator {
    let builder = Authenticator::builder(store.clone()).no_usage_recording();
    match shared {
        Some((url, prefix, key)) => {
            // Each replica its own connection, as a process would have.
            let shared = Shared::new(RedisShared::new(url).expect("a Redis URL").prefix(prefix));
            builder
                .shared(shared.clone())
                .verified_secrets(VerifiedSecrets::new(shared, key.clone()))
                .build()
        }
        None => builder.build(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let event = std::env::var("EVENT").unwrap_or_else(|_| "restart".into());
    assert!(
        event == "restart" || event == "join",
        "EVENT=restart or join"
    );
    let n = env("TOKENS", 1_000) as usize;
    let rate = env("RATE", 500);
    let before = Duration::from_secs(env("BEFORE_SECS", 5));
    let after = Duration::from_secs(env("AFTER_SECS", 20));
    let shared_on = env("SHARED", 1) == 1;
    let url = std::env::var("REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("finout-auth-replicas:{}:", uuid::Uuid::new_v4());
    let key = VerifiedSecretKey::random();
    let sharing = shared_on.then_some((url.as_str(), prefix.as_str(), &key));

    let store = Arc::new(MemoryTokenStore::new());
    let first = replica(&store, sharing);
    let admin = TokenAdmin::new(store.clone())
        .with_token_limits(TokenLimits::unlimited())
        .with_issuance_pool(2, 4096, Duration::from_secs(600))
        .with_authenticator(first.clone());
    let account = admin.create_account("replicas").await.unwrap();
    let mut tokens: Vec<IssuedToken> = Vec::with_capacity(n);
    let indices: Vec<usize> = (0..n).collect();
    // In chunks the issuance pool's line holds.
    for chunk in indices.chunks(1024) {
        let issues: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let admin = admin.clone();
                tokio::spawn(async move {
                    admin
                        .issue_api_token(
                            account.id,
                            None,
                            NewToken::new(format!("t{i}"), Role::Basic),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        for issue in issues {
            tokens.push(issue.await.unwrap());
        }
    }
    // Warm-up: each token verified once by the first replica (one argon2 run each), one at
    // a time so that none is refused for want of a thread.
    let warm = Instant::now();
    for token in &tokens {
        let credentials =
            Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret()).unwrap();
        first.authenticate(credentials).await.expect("warm-up");
    }
    let warm_up = warm.elapsed();
    // The tags are written in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The replicas the requests go to, round robin: two from the start, so that a restart
    // replaces one of two and a join adds a third.
    let second = replica(&store, sharing);
    for token in &tokens {
        let credentials =
            Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret()).unwrap();
        second.authenticate(credentials).await.expect("warm-up");
    }
    let replicas = Arc::new(RwLock::new(vec![first, second]));
    let tokens = Arc::new(tokens);
    let started = Instant::now();
    let event_at = started + before;
    let mut newcomer: Option<Authenticator> = None;
    let mut answers = Vec::new();
    let every = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let mut next = started;
    let mut i = 0usize;
    while next < event_at + after {
        tokio::time::sleep_until(next.into()).await;
        if newcomer.is_none() && Instant::now() >= event_at {
            let fresh = replica(&store, sharing);
            let mut list = replicas.write().unwrap();
            if event == "restart" {
                list[0] = fresh.clone();
            } else {
                list.push(fresh.clone());
            }
            newcomer = Some(fresh);
        }
        let auth = {
            let list = replicas.read().unwrap();
            list[i % list.len()].clone()
        };
        let tokens = tokens.clone();
        let token = i % tokens.len();
        answers.push(tokio::spawn(async move {
            let sent = Instant::now();
            let token = &tokens[token];
            let credentials =
                Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret())
                    .unwrap();
            let outcome = auth.authenticate(credentials).await;
            (sent, sent.elapsed(), outcome.err().map(|e| e.code()))
        }));
        i += 1;
        next += every;
    }
    let mut latencies = Vec::new();
    let (mut total, mut refused, mut busy) = (0u64, 0u64, 0u64);
    for answer in answers {
        let (sent, latency, error) = answer.await.unwrap();
        if sent < event_at {
            continue;
        }
        total += 1;
        latencies.push(latency);
        match error {
            None => {}
            Some(finout_auth::ErrorCode::AuthBusy) => busy += 1,
            Some(_) => refused += 1,
        }
    }
    latencies.sort_unstable();
    let argon2 = newcomer.map_or(0, |n| n.metrics().secret_verifications);
    println!(
        "replicas harness: EVENT={event}, {n} tokens at {rate} req/s, shared state {}; warm-up {:.1} s\n",
        if shared_on {
            "on (Redis, verified secrets)"
        } else {
            "off"
        },
        warm_up.as_secs_f64()
    );
    println!("| after the event ({} s) | value |", after.as_secs());
    println!("| --- | --- |");
    println!("| requests | {total} |");
    println!("| 503 `auth_busy` | {busy} |");
    println!("| other refusals | {refused} |");
    println!(
        "| latency p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("| argon2 runs of the new replica | {argon2} |");
}
