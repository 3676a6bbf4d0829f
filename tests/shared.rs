//! Replicas sharing one Redis: for the same arrivals, three replicas together admit what one
//! admits alone (rate limit, in-flight limit, failure throttle), a restart hands out no
//! fresh allowance, a secret one replica verified is admitted by another without argon2,
//! and a Redis cut off (through a proxy this test controls) answers no 5xx, falls back to
//! each process's own limits, and is shared again within seconds of its return.
//!
//! Runs when `FINOUT_AUTH_TEST_REDIS_URL` is set, the failure-window test also needing
//! `FINOUT_AUTH_TEST_DATABASE_URL` (its replicas share PostgreSQL; `.ci/run` sets both);
//! every test uses keys of its own (a random prefix), so runs and tests never see each
//! other's state.

mod common;
#[path = "support/proxy.rs"]
mod proxy;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Harness, authenticate};
use finout_auth::{
    AccountId, ClientId, ErrorCode, NewToken, Principal, Role, TokenAdmin,
    middleware::{Quota, RateLimitLayer, TokenConcurrencyLimitLayer},
    shared::{RedisShared, Shared, VerifiedSecretKey, VerifiedSecrets},
    store::PostgresTokenStore,
};
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt, service_fn};

fn redis_url() -> Option<String> {
    match std::env::var("FINOUT_AUTH_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!("skipped: FINOUT_AUTH_TEST_REDIS_URL is not set (no Redis to test against)");
            None
        }
    }
}

/// A replica's connection to Redis (its own, as a process would have), under `prefix`.
fn replica(url: &str, prefix: &str) -> Shared {
    Shared::new(RedisShared::new(url).expect("a Redis URL").prefix(prefix))
}

fn prefix() -> String {
    format!("finout-auth-test:{}:", uuid::Uuid::new_v4())
}

fn principal(client_id: &str) -> Principal {
    Principal::account(
        AccountId(uuid::uuid!("00000000-0000-4000-8000-0000000000a1")),
        Role::ReadOnly,
        ClientId::from(client_id),
    )
}

fn request(client_id: &str) -> Request<()> {
    let mut request = Request::new(());
    request.extensions_mut().insert(principal(client_id));
    request
}

async fn status(layer: &RateLimitLayer) -> StatusCode {
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    service.oneshot(request("a")).await.unwrap().status()
}

/// How many of `n` requests, sent at once round robin over `layers`, are admitted.
async fn admitted(layers: &[RateLimitLayer], n: usize) -> usize {
    let mut answers = Vec::new();
    for i in 0..n {
        let layer = layers[i % layers.len()].clone();
        answers.push(tokio::spawn(async move { status(&layer).await }));
    }
    let mut ok = 0;
    for answer in answers {
        match answer.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("answered {other}"),
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_admit_what_one_admits_per_account_and_a_restart_gives_nothing_afresh() {
    let Some(url) = redis_url() else { return };
    let quota = || RateLimitLayer::new([Quota::per_minute(50)]);
    let alone = [quota().shared(replica(&url, &prefix()), "generate")];
    let one = admitted(&alone, 200).await;
    let prefix = prefix();
    let three: Vec<_> = (0..3)
        .map(|_| quota().shared(replica(&url, &prefix), "generate"))
        .collect();
    let together = admitted(&three, 200).await;
    assert!(one >= 50, "one replica admits its burst: {one}");
    assert!(
        together as f64 <= 1.05 * one as f64 + 1.0,
        "three admitted {together}, one {one}"
    );
    // A replica restarted (a new process: new layer, new connection) starts from the same
    // counts.
    let restarted = [quota().shared(replica(&url, &prefix), "generate")];
    assert_eq!(admitted(&restarted, 20).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hold_five_in_flight_per_token_together() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix();
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(AtomicUsize::new(0));
    let services: Vec<_> = (0..3)
        .map(|_| {
            let (release, entered) = (release.clone(), entered.clone());
            TokenConcurrencyLimitLayer::new(5)
                .shared(replica(&url, &prefix))
                .layer(service_fn(move |_: Request<()>| {
                    let (release, entered) = (release.clone(), entered.clone());
                    async move {
                        entered.fetch_add(1, Ordering::AcqRel);
                        release.notified().await;
                        Ok::<_, Infallible>(Response::new(()))
                    }
                }))
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..15 {
        let service = services[i % 3].clone();
        let mut call = tokio::spawn(service.oneshot(request("a")));
        // A refusal comes within a round trip; an admitted request is held until released.
        match tokio::time::timeout(Duration::from_millis(500), &mut call).await {
            Ok(answer) => {
                assert_eq!(
                    answer.unwrap().unwrap().status(),
                    StatusCode::TOO_MANY_REQUESTS
                );
                refused += 1;
            }
            Err(_) => held.push(call),
        }
    }
    assert_eq!(entered.load(Ordering::Acquire), 5, "five in flight in all");
    assert_eq!((held.len(), refused), (5, 10));
    // Answered and dropped: the slots come back, to any replica.
    release.notify_waiters();
    for call in held {
        drop(call.await.unwrap().unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let release_one = release.clone();
    let next = tokio::spawn(services[1].clone().oneshot(request("a")));
    tokio::time::sleep(Duration::from_millis(50)).await;
    release_one.notify_waiters();
    assert_eq!(next.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_authenticators_share_one_failure_window_and_a_restart_gives_nothing_afresh() {
    let Some(url) = redis_url() else { return };
    let Ok(database) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (the replicas share PostgreSQL)"
        );
        return;
    };
    // Three replicas on one PostgreSQL and one Redis.
    let store = Arc::new(
        PostgresTokenStore::connect(&database)
            .await
            .expect("PostgreSQL"),
    );
    let prefix = prefix();
    let key = VerifiedSecretKey::random();
    let replica_of = || {
        let verified = VerifiedSecrets::new(replica(&url, &prefix), key.clone());
        finout_auth::Authenticator::builder(store.clone())
            .hasher(common::fast_hasher())
            .failure_limit(20, Duration::from_secs(60))
            .shared(replica(&url, &prefix))
            .verified_secrets(verified)
            .uniform_refusals(false)
            .build()
    };
    let first = replica_of();
    let admin = TokenAdmin::new(store.clone())
        .with_hasher(common::fast_hasher())
        .with_authenticator(first.clone());
    let account = admin.create_account("Replicas").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("shared", Role::Basic))
        .await
        .unwrap();
    // The owner uses its token before the attack: its secret is known good (and shared).
    authenticate(&first, &token.client_id, token.secret_key.expose_secret())
        .await
        .expect("the owner's secret");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let replicas: Vec<_> = (0..2).map(|_| replica_of()).collect();
    let all = [&first, &replicas[0], &replicas[1]];
    let (mut wrong, mut throttled) = (0, 0);
    for i in 0..60 {
        let r = authenticate(all[i % 3], &token.client_id, &format!("wrong-{i}")).await;
        match r.unwrap_err().code() {
            ErrorCode::InvalidCredentials => wrong += 1,
            ErrorCode::TooManyAttempts => throttled += 1,
            other => panic!("answered {other:?}"),
        }
    }
    assert!(
        wrong <= 21,
        "{wrong} wrong secrets checked by three replicas"
    );
    assert_eq!(wrong + throttled, 60);
    let restarted = replica_of();
    let r = authenticate(&restarted, &token.client_id, "wrong-after-restart").await;
    assert_eq!(r.unwrap_err().code(), ErrorCode::TooManyAttempts);
    // The owner's secret, verified before, is not locked out by it, on a replica that never
    // saw it either.
    authenticate(
        &restarted,
        &token.client_id,
        token.secret_key.expose_secret(),
    )
    .await
    .expect("the right secret passes");
    assert_eq!(restarted.metrics().secret_verifications, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_one_replica_verified_is_admitted_by_a_new_one_without_argon2() {
    let Some(url) = redis_url() else { return };
    let prefix = prefix();
    let key = VerifiedSecretKey::random();
    let verified = || VerifiedSecrets::new(replica(&url, &prefix), key.clone());
    let first = Harness::with(|b| b.verified_secrets(verified())).await;
    let token = first.api_token(Role::Basic).await;
    first.authenticate(&token).await.expect("verified once");
    assert_eq!(first.auth.metrics().secret_verifications, 1);
    // Written in the background: let it land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let build = |verified: Option<VerifiedSecrets>| {
        let b = finout_auth::Authenticator::builder(first.store.clone())
            .hasher(common::fast_hasher())
            .clock(first.clock.clone());
        match verified {
            Some(v) => b.verified_secrets(v).build(),
            None => b.build(),
        }
    };
    let new_replica = build(Some(verified()));
    // Its connection to Redis first (an unknown id asks the shared state too, and runs no
    // argon2): a first call that also connects may miss its deadline on a loaded machine and
    // fall back to the process's own state, which is not what this test is about.
    let unknown = ClientId::from(format!("unknown-{}", uuid::Uuid::new_v4()));
    let _ = authenticate(&new_replica, &unknown, "x").await;
    assert_eq!(new_replica.metrics().secret_verifications, 0);
    authenticate(
        &new_replica,
        &token.client_id,
        token.secret_key.expose_secret(),
    )
    .await
    .expect("admitted");
    assert_eq!(
        new_replica.metrics().secret_verifications,
        0,
        "no argon2 for a secret verified before"
    );
    // A wrong secret is still checked (and refused).
    let wrong = authenticate(&new_replica, &token.client_id, "wrong").await;
    assert_eq!(wrong.unwrap_err().code(), ErrorCode::InvalidCredentials);
    // Under another key, the tags mean nothing: argon2 again.
    let other_key = build(Some(VerifiedSecrets::new(
        replica(&url, &prefix),
        VerifiedSecretKey::random(),
    )));
    authenticate(
        &other_key,
        &token.client_id,
        token.secret_key.expose_secret(),
    )
    .await
    .unwrap();
    assert_eq!(other_key.metrics().secret_verifications, 1);
    // Its tag is written in the background: let it land before the revoke. (One still in
    // flight when a token is revoked may land after it; it admits nothing, the token being
    // gone from the store, and expires with its TTL.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Revoked: gone from the shared state too.
    first
        .admin
        .revoke_token(first.account.id, &token.client_id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{prefix}verified:{}", token.client_id.as_str()))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(exists, 0, "revoking forgets the verified secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_off_answers_no_5xx_falls_back_and_is_shared_again_when_back() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    let proxy = proxy::Proxy::start(target).await;
    let through_proxy = format!("redis://{}", proxy.addr());
    let shared = replica(&through_proxy, &prefix()).deadline(Duration::from_millis(200));
    let layer = RateLimitLayer::new([Quota::per_minute(10)]).shared(shared.clone(), "route");
    // Five of the ten counted in Redis.
    assert_eq!(admitted(std::slice::from_ref(&layer), 5).await, 5);
    proxy.cut();
    // Cut off: this process's own counts (fresh: ten), then refusals; never a 5xx.
    let mut during = 0;
    for _ in 0..15 {
        match status(&layer).await {
            StatusCode::OK => during += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("answered {other} with Redis cut off"),
        }
    }
    assert_eq!(during, 10, "the local limit held while Redis was away");
    assert!(!shared.is_available(), "the breaker opened");
    proxy.restore();
    // Back: within seconds the shared counts decide again: five were left there (the local
    // counts have none, and refill one in six seconds).
    let back = tokio::time::Instant::now();
    let mut after = 0;
    while after < 5 && back.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if status(&layer).await == StatusCode::OK {
            after += 1;
        }
    }
    assert_eq!(after, 5, "the shared counts decide again within 5 s");
    assert!(shared.is_available());
    assert_eq!(status(&layer).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_across_several_shared_windows_checks_at_most_the_limit_in_each() {
    let Some(url) = redis_url() else { return };
    const LIMIT: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(1);
    let prefix = prefix();
    let key = VerifiedSecretKey::random();
    let configure = |b: finout_auth::AuthenticatorBuilder| {
        b.failure_limit(LIMIT, WINDOW)
            .shared(replica(&url, &prefix))
            .verified_secrets(VerifiedSecrets::new(replica(&url, &prefix), key.clone()))
            .uniform_refusals(false)
    };
    let first = Harness::with(configure).await;
    let token = first.api_token(Role::Basic).await;
    first
        .authenticate(&token)
        .await
        .expect("the owner's secret");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let replicas: Vec<_> = (0..3)
        .map(|_| {
            configure(
                finout_auth::Authenticator::builder(first.store.clone())
                    .hasher(common::fast_hasher())
                    .clock(first.clock.clone()),
            )
            .build()
        })
        .collect();
    // 3.5 windows of guesses from three replicas, as fast as they are answered, while the
    // owner (on replicas that never saw its secret) keeps using its token.
    let started = tokio::time::Instant::now();
    let (mut checked, mut throttled, mut owner_ok) = (0u32, 0u32, 0u32);
    let mut i = 0usize;
    while started.elapsed() < WINDOW * 7 / 2 {
        let replica = &replicas[i % 3];
        match authenticate(replica, &token.client_id, &format!("guess-{i}")).await {
            Err(e) if e.code() == ErrorCode::InvalidCredentials => checked += 1,
            Err(e) if e.code() == ErrorCode::TooManyAttempts => throttled += 1,
            other => panic!("a guess answered {other:?}"),
        }
        let owner = &replicas[(i + 1) % 3];
        authenticate(owner, &token.client_id, token.secret_key.expose_secret())
            .await
            .expect("the owner is never refused");
        owner_ok += 1;
        i += 1;
    }
    // At most LIMIT checks in each of the (at most) 4 windows the run touched.
    assert!(
        checked <= LIMIT * 4,
        "{checked} guesses checked in 3.5 windows"
    );
    assert!(
        checked >= LIMIT * 3,
        "each window let its {LIMIT} in: {checked}"
    );
    assert!(throttled > checked, "the rest were throttled: {throttled}");
    assert!(owner_ok > 0);
    let argon2: u64 = replicas
        .iter()
        .map(|r| r.metrics().secret_verifications)
        .sum();
    assert_eq!(
        u64::from(checked),
        argon2,
        "argon2 ran once per checked guess, never for the owner"
    );
}
