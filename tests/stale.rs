//! The store cut off for longer than `cache_ttl`, under traffic: tokens verified before the
//! cut keep working throughout (stale, for at most `stale_if_unavailable` past their TTL,
//! expiry still checked), a token never verified gets 503 `auth_unavailable`, and the store
//! serves again within seconds of its return. PostgreSQL is cut through a TCP proxy this test
//! controls (never the machine's server itself), with the TTLs scaled down: a 2 s TTL and a
//! 3 s cut.
//!
//! Runs when `FINOUT_AUTH_TEST_DATABASE_URL` is set (`.ci/run` sets it).

mod common;
#[path = "support/proxy.rs"]
mod proxy;

use std::{sync::Arc, time::Duration};

use common::authenticate;
use finout_auth::{
    Authenticator, ErrorCode, NewToken, Role, TokenAdmin, store::PostgresTokenStore,
};
use tokio::time::Instant;

/// `url` with its `host:port` replaced by `addr`, and that `host:port`.
fn through(url: &str, addr: std::net::SocketAddr) -> (String, String) {
    let (before, host, path) = proxy::split_url(url);
    (format!("{before}{addr}/{path}"), host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verified_before_a_store_outage_longer_than_the_ttl_keep_working() {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (no PostgreSQL to test against)"
        );
        return;
    };
    const TTL: Duration = Duration::from_secs(2);
    const CUT: Duration = Duration::from_secs(3);
    // The writer goes straight to the database; the authenticator through the proxy.
    let direct = PostgresTokenStore::connect(&url).await.expect("PostgreSQL");
    let (_, target) = through(&url, "127.0.0.1:1".parse().unwrap());
    let proxy = proxy::Proxy::start(target).await;
    let (proxied_url, _) = through(&url, proxy.addr());
    let proxied = PostgresTokenStore::connect(&proxied_url)
        .await
        .expect("PostgreSQL through the proxy");
    let auth = Authenticator::builder(Arc::new(proxied))
        .hasher(common::fast_hasher())
        .cache_ttl(TTL)
        .verdict_ttl(TTL)
        .uniform_refusals(false)
        .build();
    let admin = TokenAdmin::new(Arc::new(direct))
        .with_hasher(common::fast_hasher())
        .with_authenticator(auth.clone());
    let account = admin.create_account("Outage").await.unwrap();
    let mut tokens = Vec::new();
    for i in 0..5 {
        let token = admin
            .issue_api_token(
                account.id,
                None,
                NewToken::new(format!("t{i}"), Role::Basic),
            )
            .await
            .unwrap();
        authenticate(&auth, &token.client_id, token.secret_key.expose_secret())
            .await
            .expect("verified before the cut");
        tokens.push(token);
    }
    let never_used = admin
        .issue_api_token(account.id, None, NewToken::new("never used", Role::Basic))
        .await
        .unwrap();

    // Traffic for 1 s before the cut, through the 3 s cut (longer than the 2 s TTL), and
    // 1 s after; every 20 ms each token.
    let started = Instant::now();
    let (mut ok, mut total) = (0u32, 0u32);
    let mut cut = false;
    let mut restored = false;
    let mut unavailable_seen = false;
    while started.elapsed() < Duration::from_secs(5) {
        let elapsed = started.elapsed();
        if !cut && elapsed >= Duration::from_secs(1) {
            proxy.cut();
            cut = true;
        }
        if cut && !restored && elapsed >= Duration::from_secs(1) + CUT {
            proxy.restore();
            restored = true;
        }
        for token in &tokens {
            total += 1;
            match authenticate(&auth, &token.client_id, token.secret_key.expose_secret()).await {
                Ok(_) => ok += 1,
                Err(e) => eprintln!("at {elapsed:?}: {:?}", e.code()),
            }
        }
        if cut && !restored && elapsed >= Duration::from_secs(3) && !unavailable_seen {
            // Past the TTL, mid-cut: a token no one verified cannot be served stale.
            let r = authenticate(
                &auth,
                &never_used.client_id,
                never_used.secret_key.expose_secret(),
            )
            .await;
            assert_eq!(r.unwrap_err().code(), ErrorCode::AuthUnavailable);
            unavailable_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(unavailable_seen);
    assert!(
        auth.metrics().stale_answers > 0,
        "the cut outlasted the TTL: some answers were stale"
    );
    assert!(
        f64::from(ok) >= 0.99 * f64::from(total),
        "{ok} of {total} answered 200"
    );

    // Recovery: within 5 s of the return, a token issued now is verified through the store.
    let fresh = admin
        .issue_api_token(account.id, None, NewToken::new("after", Role::Basic))
        .await
        .unwrap();
    let back = Instant::now();
    loop {
        match authenticate(&auth, &fresh.client_id, fresh.secret_key.expose_secret()).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    back.elapsed() < Duration::from_secs(5),
                    "still {:?} 5 s after the store came back",
                    e.code()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_connect_at_start_retries_with_backoff() {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (no PostgreSQL to test against)"
        );
        return;
    };
    use finout_auth::store::{DEFAULT_MAX_CONNECTIONS, PostgresOptions};
    let (_, target) = through(&url, "127.0.0.1:1".parse().unwrap());
    let proxy = proxy::Proxy::start(target).await;
    let (proxied_url, _) = through(&url, proxy.addr());
    proxy.cut();
    // Without retries, the refusal is the answer.
    assert!(PostgresTokenStore::connect(&proxied_url).await.is_err());
    // With them, the store comes up a second later and the replica starts.
    let started = Instant::now();
    let connecting = tokio::spawn({
        let url = proxied_url.clone();
        async move {
            PostgresTokenStore::connect_with(
                &url,
                PostgresOptions::default().retry_for(Duration::from_secs(20)),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!connecting.is_finished(), "still retrying while refused");
    proxy.restore();
    let store = connecting
        .await
        .unwrap()
        .expect("connected once the server took it");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        store.pool().options().get_max_connections(),
        DEFAULT_MAX_CONNECTIONS
    );
}
