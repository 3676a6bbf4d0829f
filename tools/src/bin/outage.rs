//! A store outage longer than `cache_ttl`, at the defaults: tokens verified before it are used
//! steadily while PostgreSQL is cut off (through a TCP proxy this harness runs, never the
//! server itself) for longer than the 60 s TTL; counts how many of their requests answered
//! 200 during the cut, and how long after it a token never seen before is verified again.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p finout-auth-tools --bin outage
//! # knobs: TOKENS=100 RATE=100 BEFORE_SECS=10 CUT_SECS=75
//! ```
//!
//! It creates a database of its own on that server (dropped at the end) and opens its token
//! store through the proxy; the authenticator runs with every default (`cache_ttl` 60 s,
//! `stale_if_unavailable` 5 min).

#[path = "../../../tests/support/proxy.rs"]
mod proxy;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use finout_auth::{
    Authenticator, Credentials, ErrorCode, IssuedToken, NewToken, Role, TokenAdmin,
    sqlx::{self, Connection},
    store::PostgresTokenStore,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn use_token(auth: &Authenticator, token: &IssuedToken) -> Result<(), ErrorCode> {
    let credentials =
        Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret()).unwrap();
    auth.authenticate(credentials)
        .await
        .map(drop)
        .map_err(|e| e.code())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL=postgres://...");
    let n = env("TOKENS", 100) as usize;
    let rate = env("RATE", 100);
    let before = Duration::from_secs(env("BEFORE_SECS", 10));
    let cut = Duration::from_secs(env("CUT_SECS", 75));

    let (prefix, host, database) = proxy::split_url(&url);
    let database = if database.is_empty() {
        "postgres".to_owned()
    } else {
        database
    };
    let own = format!("finout_auth_outage_{}", std::process::id());
    let mut admin_db = sqlx::PgConnection::connect(&format!("{prefix}{host}/{database}"))
        .await
        .expect("PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {own}"))
        .execute(&mut admin_db)
        .await
        .unwrap();

    let proxy = proxy::Proxy::start(host.clone()).await;
    let direct = PostgresTokenStore::connect(&format!("{prefix}{host}/{own}"))
        .await
        .unwrap();
    let proxied = PostgresTokenStore::connect(&format!("{prefix}{}/{own}", proxy.addr()))
        .await
        .unwrap();
    let auth = Authenticator::new(Arc::new(proxied.clone()));
    let admin = TokenAdmin::new(Arc::new(direct.clone())).with_authenticator(auth.clone());
    let account = admin.create_account("outage").await.unwrap();
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let token = admin
            .issue_api_token(
                account.id,
                None,
                NewToken::new(format!("t{i}"), Role::Basic),
            )
            .await
            .unwrap();
        use_token(&auth, &token)
            .await
            .expect("verified before the cut");
        tokens.push(token);
    }
    let fresh = admin
        .issue_api_token(account.id, None, NewToken::new("fresh", Role::Basic))
        .await
        .unwrap();

    let every = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let started = Instant::now();
    let cut_at = started + before;
    let back_at = cut_at + cut;
    let (mut during, mut ok_during, mut before_ok, mut before_total) = (0u64, 0u64, 0u64, 0u64);
    let mut codes = std::collections::BTreeMap::new();
    let mut next = started;
    let mut i = 0usize;
    let mut is_cut = false;
    while next < back_at {
        tokio::time::sleep_until(next.into()).await;
        if !is_cut && Instant::now() >= cut_at {
            proxy.cut();
            is_cut = true;
        }
        let outcome = use_token(&auth, &tokens[i % n]).await;
        if is_cut {
            during += 1;
            match outcome {
                Ok(()) => ok_during += 1,
                Err(code) => *codes.entry(code.as_str()).or_insert(0u64) += 1,
            }
        } else {
            before_total += 1;
            before_ok += u64::from(outcome.is_ok());
        }
        i += 1;
        next += every;
    }
    // A token never seen during the cut answers 503; after the return, how long until it
    // is verified.
    let unseen_during_cut = use_token(&auth, &fresh).await;
    proxy.restore();
    let back = Instant::now();
    let recovered = loop {
        if use_token(&auth, &fresh).await.is_ok() {
            break back.elapsed();
        }
        if back.elapsed() > Duration::from_secs(60) {
            break Duration::MAX;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let metrics = auth.metrics();

    println!(
        "outage harness: {n} tokens used at {rate} req/s, PostgreSQL cut off for {} s after {} s, every default (cache_ttl 60 s, stale_if_unavailable 5 min)\n",
        cut.as_secs(),
        before.as_secs()
    );
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| before the cut: 200 | {before_ok} of {before_total} |");
    println!(
        "| during the cut: 200 | {ok_during} of {during} ({:.2} %) |",
        100.0 * ok_during as f64 / during.max(1) as f64
    );
    println!("| during the cut: refusals by code | {codes:?} |");
    println!("| stale answers | {} |", metrics.stale_answers);
    println!(
        "| a token not verified before, during the cut | {:?} |",
        unseen_during_cut.err()
    );
    println!(
        "| verified again after the return within | {:.2} s |",
        recovered.as_secs_f64()
    );

    drop((auth, admin, proxied, direct));
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {own} WITH (FORCE)"))
        .execute(&mut admin_db)
        .await
        .unwrap();
}
