//! Scale harness: many active tokens, each used once per cache TTL for several TTLs, in
//! process (no sockets). After the warm-up (one argon2 run per token), re-validating them
//! must cost store lookups only: zero argon2 runs, whatever the number of tokens.
//!
//! ```sh
//! cargo run --release -p finout-auth-tools --bin scale
//! # knobs: TOKENS=100000 TTL_MS=2000 TTLS=10
//! ```
//!
//! Set-up issues the tokens with fast argon2 parameters (m=8 KiB, t=1); the authenticator
//! verifies with the same, since what is measured is how often it verifies, not how long a
//! verification takes. Prints argon2 runs after warm-up, store lookups per second, the CPU
//! time per re-validated request, latency percentiles and resident memory per cached token.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use finout_auth::{
    Authenticator, Credentials, IssuedToken, NewToken, Role, TokenAdmin,
    crypto::SecretHasher,
    store::{MemoryTokenStore, TokenLimits},
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A line of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) this process used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ = 100
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn use_all(auth: &Authenticator, tokens: &[IssuedToken], over: Duration) -> Vec<u64> {
    // Spread the tokens evenly over `over`, in batches of 100.
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(tokens.len());
    for (i, batch) in tokens.chunks(100).enumerate() {
        let due = over.mul_f64(i as f64 * 100.0 / tokens.len() as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        for token in batch {
            let t = Instant::now();
            let creds =
                Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret())
                    .unwrap();
            auth.authenticate(creds)
                .await
                .expect("a valid token refused");
            latencies.push(t.elapsed().as_nanos() as u64);
        }
    }
    latencies
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env("TOKENS", 100_000) as usize;
    let ttl = Duration::from_millis(env("TTL_MS", 2_000));
    let ttls = env("TTLS", 10);
    let fast = SecretHasher::with_params(8, 1, 1).unwrap();

    let store = Arc::new(MemoryTokenStore::new());
    let mut auth = Authenticator::builder(store.clone());
    // The default capacities hold 100,000 active tokens; only more need larger caches.
    if n > 100_000 {
        auth = auth
            .cache_capacity(n as u64 + n as u64 / 4)
            .known_secret_capacity(n as u64 + n as u64 / 4);
    }
    let auth = auth
        .hasher(fast.clone())
        .cache_ttl(ttl)
        .verdict_ttl(ttl)
        .no_usage_recording()
        .build();
    let admin = TokenAdmin::new(store)
        .with_hasher(fast)
        .with_token_limits(TokenLimits::unlimited())
        .with_issuance_pool(2, 4096, Duration::from_secs(60))
        .with_authenticator(auth.clone());
    let account = admin.create_account("scale").await.unwrap();
    let mut tokens = Vec::with_capacity(n);
    let indices: Vec<usize> = (0..n).collect();
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
    let rss_issued = status_kib("VmRSS:");

    // Warm-up: every token verified once (argon2).
    let warm = Instant::now();
    use_all(&auth, &tokens, Duration::ZERO).await;
    let warm_up = warm.elapsed();
    let rss_warm = status_kib("VmRSS:");
    let before = auth.metrics();
    let cpu_before = cpu_time();

    // Every token once per TTL, for TTLS TTLs.
    let run = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..ttls {
        latencies.extend(use_all(&auth, &tokens, ttl).await);
    }
    let elapsed = run.elapsed();
    let cpu = cpu_time() - cpu_before;
    let after = auth.metrics();
    latencies.sort_unstable();

    let requests = n as u64 * ttls;
    let lookups = after.store_lookups - before.store_lookups;
    let argon2 = after.secret_verifications - before.secret_verifications;
    println!(
        "scale harness: {n} tokens, cache TTL {} ms, each token used once per TTL for {ttls} TTLs ({requests} requests in {:.1} s)\n",
        ttl.as_millis(),
        elapsed.as_secs_f64()
    );
    println!("| measure | value |\n| --- | --- |");
    println!(
        "| warm-up (one argon2 run per token, m=8 KiB t=1) | {:.1} s |",
        warm_up.as_secs_f64()
    );
    println!("| argon2 runs after warm-up | {argon2} |");
    println!(
        "| store lookups | {lookups} ({:.0}/s) |",
        lookups as f64 / elapsed.as_secs_f64()
    );
    println!(
        "| re-validations + background refreshes | {} + {} |",
        after.revalidations - before.revalidations,
        after.refreshes - before.refreshes
    );
    println!(
        "| answered from cache | {} of {requests} |",
        after.cache_hits - before.cache_hits
    );
    println!(
        "| CPU time, all requests | {:.2} s = {:.2} µs per request, {:.2} µs per store lookup |",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / requests as f64,
        cpu.as_secs_f64() * 1e6 / lookups.max(1) as f64
    );
    println!(
        "| latency p50 / p99 / max | {:.1} / {:.1} / {:.1} µs |",
        pct(&latencies, 0.5) as f64 / 1e3,
        pct(&latencies, 0.99) as f64 / 1e3,
        latencies[latencies.len() - 1] as f64 / 1e3
    );
    println!(
        "| resident memory, tokens issued / after warm-up | {} / {} MiB |",
        rss_issued / 1024,
        rss_warm / 1024
    );
    println!(
        "| memory per cached token (warm-up growth / tokens) | {:.0} bytes |",
        (rss_warm.saturating_sub(rss_issued)) as f64 * 1024.0 / n as f64
    );
    println!(
        "| peak resident memory | {} MiB |",
        status_kib("VmHWM:") / 1024
    );
    assert_eq!(argon2, 0, "argon2 ran after warm-up");
}
