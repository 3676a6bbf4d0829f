//! Runs longer than every TTL and window they cover (shortened through the builder, so they
//! take seconds): a token in use costs one argon2 run however long it is used, its owner is
//! never locked out by someone who knows only its client id, and a flood of invented ids
//! never refuses it nor makes it wait for argon2.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Harness, authenticate};
use finout_auth::{
    AuthError, Authenticator, Credentials, ErrorCode, NewToken, Role, crypto::SecretHasher,
    store::UserUpdate,
};

const TTL: Duration = Duration::from_millis(200);

/// Use `token` every `every` for `runs` times, asserting each answer with `check`.
async fn use_for(
    h: &Harness,
    token: &finout_auth::IssuedToken,
    runs: u32,
    every: Duration,
    check: impl Fn(&Result<finout_auth::Principal, AuthError>),
) {
    for _ in 0..runs {
        check(&h.authenticate(token).await);
        tokio::time::sleep(every).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_used_for_ten_ttls_costs_one_argon2_run_and_changes_are_seen_at_once() {
    let h = Harness::with(|b| b.cache_ttl(TTL).verdict_ttl(TTL)).await;
    let user = h
        .admin
        .add_user(h.account.id, "dana@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let token = h
        .admin
        .issue_personal_token(
            h.account.id,
            user.id,
            NewToken::new("busy", Role::Admin).expires_in_minutes(60),
        )
        .await
        .unwrap();

    // Continuously (every 5 ms) for 10 TTLs: served from cache, refreshed in the background.
    use_for(&h, &token, 400, Duration::from_millis(5), |r| {
        assert!(r.as_ref().unwrap().has_role(&Role::Admin));
    })
    .await;
    // Demoted half way: seen on the very next request.
    h.admin
        .update_user(
            h.account.id,
            user.id,
            UserUpdate::default().roles(vec![Role::ReadOnly]),
        )
        .await
        .unwrap();
    let demoted = h.authenticate(&token).await.unwrap();
    assert!(!demoted.has_role(&Role::Admin) && demoted.has_role(&Role::ReadOnly));
    // Then once per 1.5 TTL for 6 more TTLs: every entry expires in between, and each
    // re-validation is one store lookup.
    use_for(&h, &token, 4, TTL * 3 / 2, |r| {
        let p = r.as_ref().unwrap();
        assert!(p.has_role(&Role::ReadOnly) && !p.has_role(&Role::Admin));
    })
    .await;

    let m = h.auth.metrics();
    assert_eq!(m.secret_verifications, 1, "{m:?}");
    assert!(m.refreshes >= 6, "refreshed in the background: {m:?}");
    assert!(m.revalidations >= 3, "re-validated without argon2: {m:?}");

    // Expiry in the middle of use: seen at once (the clock is the authenticator's).
    h.clock.advance(time::Duration::minutes(60));
    assert_eq!(
        h.authenticate(&token).await.unwrap_err().code(),
        ErrorCode::TokenExpired
    );

    // A revoke in the middle of use: seen at once, still no second argon2 run for it.
    let other = h.api_token(Role::ReadOnly).await;
    use_for(&h, &other, 100, Duration::from_millis(10), |r| {
        assert!(r.is_ok());
    })
    .await;
    h.admin
        .revoke_token(h.account.id, &other.client_id)
        .await
        .unwrap();
    assert_eq!(
        h.authenticate(&other).await.unwrap_err().code(),
        ErrorCode::InvalidCredentials
    );
    let m = h.auth.metrics();
    assert_eq!(m.secret_verifications, 2, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_who_knows_only_the_client_id_never_locks_the_owner_out() {
    const WINDOW: Duration = Duration::from_millis(300);
    let h = Harness::with(|b| {
        b.cache_ttl(Duration::from_millis(100))
            .verdict_ttl(Duration::from_millis(100))
            .failure_limit(5, WINDOW)
            // Each wrong guess is answered at the deadline: short, so that one attacker
            // fills every window.
            .verification_wait(Duration::from_millis(40))
            // The attacker's guesses must run (and fill the window) even on a busy machine.
            .low_priority_verification(false)
    })
    .await;
    let token = h.api_token(Role::ReadOnly).await;
    h.authenticate(&token).await.unwrap();

    // The attacker: distinct wrong secrets, as fast as answers come, for 4 windows.
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = tokio::spawn({
        let (auth, id, stop) = (h.auth.clone(), token.client_id.clone(), stop.clone());
        async move {
            let started = Instant::now();
            let mut throttled_in_window = std::collections::BTreeSet::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let outcome = authenticate(&auth, &id, &format!("guess-{n}")).await;
                match outcome.unwrap_err().code() {
                    ErrorCode::TooManyAttempts => {
                        throttled_in_window.insert(started.elapsed().as_millis() / 300);
                    }
                    ErrorCode::InvalidCredentials => {}
                    other => panic!("attacker got {other:?}"),
                }
                tokio::task::yield_now().await;
            }
            throttled_in_window
        }
    });

    // The owner, for 4 windows (12 cache TTLs): every 130 ms, so that each request finds
    // its cache entry expired and goes through the throttle; then every 5 ms (kept fresh by
    // background refreshes).
    let started = Instant::now();
    let mut owner_requests = 0;
    while started.elapsed() < WINDOW * 4 {
        let creds =
            Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret()).unwrap();
        let slow = started.elapsed() < WINDOW * 3;
        if slow {
            tokio::time::sleep(Duration::from_millis(130)).await;
            assert!(h.auth.authenticate_cached(creds).is_none(), "entry expired");
        }
        let outcome = h.authenticate(&token).await;
        assert!(outcome.is_ok(), "owner refused: {outcome:?}");
        owner_requests += 1;
        if !slow {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let throttled = attacker.await.unwrap();
    assert!(owner_requests >= 6 + 20, "{owner_requests}");
    assert!(
        throttled.len() >= 3,
        "the failure window was full in at least 3 windows: {throttled:?}"
    );
    // argon2 ran for the owner once, and for the attacker at most 5 times per window.
    let m = h.auth.metrics();
    assert!(m.secret_verifications <= 1 + 5 * 6, "{m:?}");
}

/// What SECURITY.md says of a process that never saw the owner's secret: while the id's
/// failure window is full, it cannot tell the owner from the attacker without argon2, and
/// argon2 for every attempt is what the throttle exists to refuse. The owner gets
/// `too_many_attempts` (with its `retry_after`) until the window closes.
#[tokio::test]
async fn a_process_that_never_saw_the_secret_throttles_the_owner_while_the_window_is_full() {
    let h = Harness::with(|b| b.failure_limit(3, Duration::from_secs(60))).await;
    let token = h.api_token(Role::ReadOnly).await;
    for n in 0..3 {
        let _ = authenticate(&h.auth, &token.client_id, &format!("guess-{n}")).await;
    }
    let err = h.authenticate(&token).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooManyAttempts);
    assert_eq!(h.auth.metrics().secret_verifications, 3, "no argon2 for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_id_flood_across_five_ttls_never_refuses_nor_delays_a_known_good_token() {
    // Real argon2 parameters for the flood, one verification thread, a short line.
    let h = Harness::with(|b| {
        b.cache_ttl(TTL)
            .verdict_ttl(TTL)
            .hasher(SecretHasher::default())
            .max_concurrent_verifications(1)
            .max_waiting_verifications(4)
            // Normal priority and a long wait: what is tested is the lanes' order, not how a
            // starved lowest-priority thread fares on a machine busy with other processes.
            .low_priority_verification(false)
            .verification_wait(Duration::from_millis(100))
    })
    .await;
    let owner = h.api_token(Role::ReadOnly).await;
    h.authenticate(&owner).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let (auth, stop, answered) = (h.auth.clone(), stop.clone(), answered.clone());
            tokio::spawn(async move { flood_random_ids(auth, stop, answered).await })
        })
        .collect();
    // Wait until every flooding task had an answer.
    while answered.load(Ordering::Relaxed) < 64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let started = Instant::now();
    let mut owner_requests = 0;
    let mut cold = 0;
    let mut first_of_a_new_token = None;
    while started.elapsed() < TTL * 5 {
        let creds =
            Credentials::new(owner.client_id.as_str(), owner.secret_key.expose_secret()).unwrap();
        if h.auth.authenticate_cached(creds).is_none() {
            cold += 1;
        }
        let outcome = h.authenticate(&owner).await;
        assert!(
            outcome.is_ok(),
            "owner refused under the flood: {outcome:?}"
        );
        owner_requests += 1;
        if first_of_a_new_token.is_none() && started.elapsed() > TTL * 2 {
            // A token nobody used yet: its first verification is not starved by the flood.
            let fresh = h.api_token(Role::ReadOnly).await;
            first_of_a_new_token = Some(
                h.authenticate(&fresh)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.code()),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }

    let m = h.auth.metrics();
    assert!(owner_requests >= 25, "{owner_requests}");
    assert_eq!(first_of_a_new_token, Some(Ok(())));
    let answered = answered.load(Ordering::Relaxed);
    assert!(
        answered >= 64 * 5 && m.unknown_ids >= answered,
        "the flood ran for 5 deadlines: {answered} answered, {m:?}"
    );
    // Two argon2 runs in all: the owner's first request and the new token's. The flood ran
    // none, and none of the owner's requests during the flood waited for argon2.
    assert_eq!(m.secret_verifications, 2, "{m:?}");
    assert!(
        cold * 10 <= owner_requests,
        "{cold} of {owner_requests} owner requests needed the store"
    );
}

/// Invented ids as fast as answers come. Every answer is `invalid_credentials` at the
/// deadline, never `auth_busy`: unknown ids cost no argon2, so they take nothing from the
/// line a real token's first verification needs.
async fn flood_random_ids(auth: Authenticator, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let id = uuid::Uuid::new_v4().to_string();
        let creds = Credentials::new(&id, "not-a-secret").unwrap();
        let code = auth.authenticate(creds).await.unwrap_err().code();
        assert_eq!(code, ErrorCode::InvalidCredentials);
        answered.fetch_add(1, Ordering::Relaxed);
    }
}

/// 64 concurrent wrong secrets for one id: 5 take the failure window's places, of which 2
/// (the id's pending checks) run argon2 and 3 answer `auth_busy`; the other 59 are throttled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_secrets_for_one_id_runs_argon2_at_most_the_limit() {
    let h = Harness::with(|b| b.failure_limit(5, Duration::from_secs(60))).await;
    let token = h.api_token(Role::ReadOnly).await;
    let burst: Vec<_> = (0..64)
        .map(|n| {
            let (auth, id) = (h.auth.clone(), token.client_id.clone());
            tokio::spawn(async move { authenticate(&auth, &id, &format!("burst-{n}")).await })
        })
        .collect();
    let (mut throttled, mut refused, mut busy) = (0, 0, 0);
    for attempt in burst {
        match attempt.await.unwrap().unwrap_err().code() {
            ErrorCode::TooManyAttempts => throttled += 1,
            ErrorCode::InvalidCredentials => refused += 1,
            ErrorCode::AuthBusy => busy += 1,
            other => panic!("{other:?}"),
        }
    }
    let m = h.auth.metrics();
    assert_eq!((throttled, refused, busy), (64 - 5, 2, 3), "{m:?}");
    assert_eq!(m.secret_verifications, 2, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_use_stays_known_past_the_known_secret_idle_time() {
    let h = Harness::with(|b| {
        b.cache_ttl(Duration::from_millis(100))
            .known_secret_ttl(Duration::from_millis(300))
            .failure_limit(3, Duration::from_secs(60))
    })
    .await;
    let token = h.api_token(Role::ReadOnly).await;
    // Busy for 1 s (3 known-secret idle times): served from cache, refreshed in the
    // background, which keeps the secret known.
    use_for(&h, &token, 200, Duration::from_millis(5), |r| {
        assert!(r.is_ok())
    })
    .await;
    // Now the attacker fills the window and the owner's entry expires.
    for n in 0..3 {
        let _ = authenticate(&h.auth, &token.client_id, &format!("guess-{n}")).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(h.authenticate(&token).await.is_ok(), "owner locked out");
    assert_eq!(h.auth.metrics().secret_verifications, 1 + 3);
}
