//! The Authenticator's contract: hot and cold paths, expiry, revocation, user changes,
//! coalescing, failures.

mod common;

use std::{sync::Arc, time::Duration};

use common::{FlakyStore, Harness, authenticate};
use finout_auth::{
    AuthError, ErrorCode, NewToken, Principal, Role, crypto::SecretHasher, model::TokenKind,
    store::MemoryTokenStore,
};

fn code<T: std::fmt::Debug>(r: Result<T, AuthError>) -> ErrorCode {
    r.expect_err("expected a rejection").code()
}

#[tokio::test]
async fn api_token_authenticates_as_its_account() {
    let h = Harness::new().await;
    let token = h.api_token(Role::ReadOnly).await;
    let p = h.authenticate(&token).await.unwrap();
    assert!(matches!(p, Principal::Account(_)));
    assert_eq!(p.account_id(), h.account.id);
    assert_eq!(p.token_role(), &Role::ReadOnly);
    assert_eq!(p.client_id(), &token.client_id);
    assert_eq!(p.token_kind(), TokenKind::Api);
    assert_eq!(p.user_id(), None);
}

#[tokio::test]
async fn personal_token_authenticates_as_its_user_with_current_roles() {
    let h = Harness::new().await;
    let token = h.personal_token(&h.admin_user, Role::Admin).await;
    let p = h.authenticate(&token).await.unwrap();
    assert_eq!(p.user_id(), Some(h.admin_user.id));
    assert_eq!(p.user_roles(), Some(&[Role::Admin][..]));
    assert!(p.is_admin_user());
}

#[tokio::test]
async fn second_request_is_served_from_cache() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    let before = h.auth.metrics();
    h.authenticate(&token).await.unwrap();
    let after = h.auth.metrics();
    assert_eq!(after.cache_hits, before.cache_hits + 1);
    assert_eq!(after.store_lookups, before.store_lookups);
    assert_eq!(after.secret_verifications, before.secret_verifications);
}

#[tokio::test]
async fn unknown_id_and_wrong_secret_are_the_same_invalid_credentials_at_the_deadline() {
    const WAIT: Duration = Duration::from_millis(300);
    let h = Harness::with(|b| b.verification_wait(WAIT)).await;
    let token = h.api_token(Role::Basic).await;
    let started = std::time::Instant::now();
    let wrong = authenticate(&h.auth, &token.client_id, "not-the-secret").await;
    let wrong_took = started.elapsed();
    let started = std::time::Instant::now();
    let unknown = authenticate(&h.auth, &"no-such-id".into(), "whatever").await;
    let unknown_took = started.elapsed();
    assert_eq!(code(wrong), ErrorCode::InvalidCredentials);
    assert_eq!(code(unknown), ErrorCode::InvalidCredentials);
    // Both answered at the deadline, not when decided; the unknown id ran no argon2.
    assert!(
        wrong_took >= WAIT && unknown_took >= WAIT,
        "{wrong_took:?} {unknown_took:?}"
    );
    let m = h.auth.metrics();
    assert_eq!((m.secret_verifications, m.unknown_ids), (1, 1), "{m:?}");
}

#[tokio::test]
async fn wrong_secret_is_never_admitted_after_the_right_one_was_cached() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    h.authenticate(&token).await.unwrap();
    for wrong in [
        "x",
        "not-the-secret",
        &token.secret_key.expose_secret()[..35],
    ] {
        let r = authenticate(&h.auth, &token.client_id, wrong).await;
        assert_eq!(code(r), ErrorCode::InvalidCredentials, "{wrong}");
    }
    // And the right one still works afterwards, from cache.
    let hits = h.auth.metrics().cache_hits;
    h.authenticate(&token).await.unwrap();
    assert_eq!(h.auth.metrics().cache_hits, hits + 1);
}

#[tokio::test]
async fn repeating_a_wrong_secret_costs_no_further_argon2() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    for _ in 0..5 {
        let r = authenticate(&h.auth, &token.client_id, "wrong").await;
        assert_eq!(code(r), ErrorCode::InvalidCredentials);
    }
    assert_eq!(h.auth.metrics().secret_verifications, 1);
}

#[tokio::test]
async fn expiry_boundary_on_the_cold_path() {
    let h = Harness::new().await;
    let new = NewToken::new("short", Role::Basic).expires_in_minutes(10);
    let token = h
        .admin
        .issue_api_token(h.account.id, None, new.clone())
        .await
        .unwrap();
    let late = h
        .admin
        .issue_api_token(h.account.id, None, new)
        .await
        .unwrap();

    h.clock
        .advance(time::Duration::minutes(10) - time::Duration::microseconds(1));
    h.authenticate(&token)
        .await
        .expect("valid just before expiry");

    h.clock.advance(time::Duration::microseconds(1));
    assert_eq!(code(h.authenticate(&late).await), ErrorCode::TokenExpired);
}

#[tokio::test]
async fn expiry_boundary_while_cached() {
    let h = Harness::new().await;
    let new = NewToken::new("short", Role::Basic).expires_in_minutes(10);
    let token = h
        .admin
        .issue_api_token(h.account.id, None, new)
        .await
        .unwrap();
    h.authenticate(&token).await.unwrap();

    h.clock
        .advance(time::Duration::minutes(10) - time::Duration::microseconds(1));
    h.authenticate(&token)
        .await
        .expect("cached and not yet expired");
    let hits = h.auth.metrics().cache_hits;

    h.clock.advance(time::Duration::microseconds(1));
    assert_eq!(code(h.authenticate(&token).await), ErrorCode::TokenExpired);
    assert_eq!(
        h.auth.metrics().cache_hits,
        hits + 1,
        "decided by the cache"
    );
}

#[tokio::test]
async fn expired_is_only_told_to_the_holder_of_the_secret() {
    let h = Harness::new().await;
    let new = NewToken::new("short", Role::Basic).expires_in_minutes(1);
    let token = h
        .admin
        .issue_api_token(h.account.id, None, new)
        .await
        .unwrap();
    h.clock.advance(time::Duration::hours(1));
    let r = authenticate(&h.auth, &token.client_id, "wrong").await;
    assert_eq!(code(r), ErrorCode::InvalidCredentials);
}

#[tokio::test]
async fn revoke_takes_effect_on_the_next_request() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    h.admin
        .revoke_token(h.account.id, &token.client_id)
        .await
        .unwrap();
    assert_eq!(
        code(h.authenticate(&token).await),
        ErrorCode::InvalidCredentials
    );
}

#[tokio::test]
async fn removed_users_tokens_are_rejected() {
    let h = Harness::new().await;
    let bob = h
        .admin
        .add_user(h.account.id, "bob@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    let token = h.personal_token(&bob, Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    let deleted = h.admin.remove_user(h.account.id, bob.id).await.unwrap();
    assert_eq!(deleted, vec![token.client_id.clone()]);
    assert_eq!(
        code(h.authenticate(&token).await),
        ErrorCode::InvalidCredentials
    );
}

#[tokio::test]
async fn demoted_users_personal_token_is_demoted_at_once() {
    let h = Harness::new().await;
    let carol = h
        .admin
        .add_user(h.account.id, "carol@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let token = h.personal_token(&carol, Role::Admin).await;
    let p = h.authenticate(&token).await.unwrap();
    assert!(p.is_admin_user());
    assert!(p.has_permission("admin.users.write"));

    h.admin
        .set_user_roles(h.account.id, carol.id, vec![Role::ReadOnly])
        .await
        .unwrap();
    let p = h.authenticate(&token).await.unwrap();
    assert_eq!(p.user_roles(), Some(&[Role::ReadOnly][..]));
    assert!(!p.is_admin_user());
    assert!(!p.has_permission("admin.users.write"));
    assert!(!p.has_permission("fin.megabill.write.views"));
    assert!(p.has_permission("fin.megabill.read.views"));
}

#[tokio::test]
async fn role_change_reuses_the_verdict_instead_of_rerunning_argon2() {
    let h = Harness::new().await;
    let token = h.personal_token(&h.admin_user, Role::Admin).await;
    h.authenticate(&token).await.unwrap();
    h.admin
        .set_user_roles(
            h.account.id,
            h.admin_user.id,
            vec![Role::Admin, Role::Basic],
        )
        .await
        .unwrap();
    h.authenticate(&token).await.unwrap();
    let m = h.auth.metrics();
    assert_eq!((m.store_lookups, m.secret_verifications), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_first_requests_cost_one_lookup_and_one_verification() {
    let store = Arc::new(MemoryTokenStore::new());
    // A slow store and real argon2 cost, so the 200 requests really overlap.
    let slow = FlakyStore::new(store.clone(), Duration::from_millis(50));
    let h = Harness::wrapped(store, slow, |b| b.hasher(SecretHasher::default())).await;
    let token = h
        .admin
        .clone()
        .with_hasher(SecretHasher::default())
        .issue_api_token(h.account.id, None, NewToken::new("hot", Role::Basic))
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (auth, barrier) = (h.auth.clone(), barrier.clone());
            let (id, secret) = (token.client_id.clone(), token.secret_key.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                authenticate(&auth, &id, secret.expose_secret()).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every request is admitted");
    }
    let m = h.auth.metrics();
    assert_eq!(m.store_lookups, 1, "{m:?}");
    assert_eq!(m.secret_verifications, 1, "{m:?}");
    assert_eq!(m.authenticated, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_finishing_after_a_revoke_does_not_readmit_the_token() {
    // Expensive parameters so the revoke lands while argon2 runs.
    let slow_hasher = SecretHasher::with_params(19456, 8, 1).unwrap();
    let h = Harness::with(|b| b.hasher(slow_hasher.clone())).await;
    let token = h
        .admin
        .clone()
        .with_hasher(slow_hasher)
        .issue_api_token(h.account.id, None, NewToken::new("racy", Role::Basic))
        .await
        .unwrap();

    let (auth, id, secret) = (
        h.auth.clone(),
        token.client_id.clone(),
        token.secret_key.clone(),
    );
    let pending =
        tokio::spawn(async move { authenticate(&auth, &id, secret.expose_secret()).await });
    while h.auth.metrics().secret_verifications == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    h.admin
        .revoke_token(h.account.id, &token.client_id)
        .await
        .unwrap();
    assert!(
        !pending.is_finished(),
        "the revoke must land during verification"
    );

    assert_eq!(code(pending.await.unwrap()), ErrorCode::InvalidCredentials);
    assert_eq!(
        code(h.authenticate(&token).await),
        ErrorCode::InvalidCredentials
    );
}

#[tokio::test]
async fn a_lookup_answered_before_a_revoke_does_not_readmit_the_token() {
    let store = Arc::new(MemoryTokenStore::new());
    let slow = FlakyStore::new(store.clone(), Duration::from_millis(100));
    // Two slow lookups fit the deadline (past it, the answer would be `auth_busy`).
    let h = Harness::wrapped(store.clone(), slow, |b| {
        b.verification_wait(Duration::from_secs(1))
    })
    .await;
    let token = h.api_token(Role::Basic).await;
    // Start a lookup, revoke while it is in flight, then let it finish.
    let (auth, id, secret) = (
        h.auth.clone(),
        token.client_id.clone(),
        token.secret_key.clone(),
    );
    let pending =
        tokio::spawn(async move { authenticate(&auth, &id, secret.expose_secret()).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.admin
        .revoke_token(h.account.id, &token.client_id)
        .await
        .unwrap();
    assert_eq!(code(pending.await.unwrap()), ErrorCode::InvalidCredentials);
    assert_eq!(
        code(h.authenticate(&token).await),
        ErrorCode::InvalidCredentials
    );
}

#[tokio::test]
async fn store_failure_fails_closed_cached_tokens_keep_working_and_it_recovers() {
    let store = Arc::new(MemoryTokenStore::new());
    let flaky = FlakyStore::new(store.clone(), Duration::ZERO);
    let h = Harness::wrapped(store, flaky.clone(), |b| b).await;
    let cached = h.api_token(Role::Basic).await;
    let uncached = h.api_token(Role::Basic).await;
    h.authenticate(&cached).await.unwrap();

    flaky.set_down(true);
    let err = h.authenticate(&uncached).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::AuthUnavailable);
    assert!(err.retry_after().is_some());
    h.authenticate(&cached)
        .await
        .expect("cached token survives the outage");

    flaky.set_down(false);
    h.authenticate(&uncached).await.expect("recovers by itself");
}

// A sleeping hasher is a `testing` feature.
#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_not_done_by_the_deadline_answers_auth_busy() {
    // Each verification holds the only thread for 300 ms: the second cannot be done by its
    // 400 ms deadline.
    let slow_hasher = SecretHasher::sleeping_for_tests(Duration::from_millis(300));
    let h = Harness::with(|b| {
        b.hasher(slow_hasher.clone())
            .max_concurrent_verifications(1)
            .verification_wait(Duration::from_millis(400))
            // Admission is tested, not how a lowest-priority thread fares on a busy machine.
            .low_priority_verification(false)
    })
    .await;
    let admin = h.admin.clone().with_hasher(slow_hasher);
    let a = admin
        .issue_api_token(h.account.id, None, NewToken::new("a", Role::Basic))
        .await
        .unwrap();
    let b = admin
        .issue_api_token(h.account.id, None, NewToken::new("b", Role::Basic))
        .await
        .unwrap();
    let (ra, rb) = tokio::join!(h.authenticate(&a), h.authenticate(&b));
    let mut codes = [ra.err().map(|e| e.code()), rb.err().map(|e| e.code())];
    codes.sort_by_key(|c| c.is_some());
    assert_eq!(codes, [None, Some(ErrorCode::AuthBusy)]);
}

#[tokio::test]
async fn too_many_failures_throttle_the_client_id_but_not_a_known_good_secret() {
    let h = Harness::with(|b| b.failure_limit(3, Duration::from_secs(60))).await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    for i in 0..3 {
        let r = authenticate(&h.auth, &token.client_id, &format!("wrong-{i}")).await;
        assert_eq!(code(r), ErrorCode::InvalidCredentials);
    }
    let throttled = authenticate(&h.auth, &token.client_id, "wrong-again").await;
    let err = throttled.unwrap_err();
    assert_eq!(err.code(), ErrorCode::TooManyAttempts);
    assert!(err.retry_after().unwrap() <= Duration::from_secs(60));
    // The owner's secret, already verified, keeps working: from cache...
    h.authenticate(&token)
        .await
        .expect("known good secret is not locked out");
    // ...and even after the cache forgot it.
    h.auth.invalidate_all();
    h.authenticate(&token)
        .await
        .expect("known good verdict is not locked out");
}

#[tokio::test]
async fn personal_token_without_its_user_in_the_store_is_invalid() {
    let h = Harness::new().await;
    let dave = h
        .admin
        .add_user(h.account.id, "dave@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    let token = h.personal_token(&dave, Role::Basic).await;
    // Remove through the store directly, bypassing cache invalidation: the cold path still
    // refuses, because the store no longer resolves the token.
    use finout_auth::store::TokenAdminStore;
    h.store.remove_user(h.account.id, dave.id).await.unwrap();
    assert_eq!(
        code(h.authenticate(&token).await),
        ErrorCode::InvalidCredentials
    );
}

// A sleeping hasher is a `testing` feature.
#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_uniform_refusals_a_full_line_answers_auth_busy_at_once() {
    let slow_hasher = SecretHasher::sleeping_for_tests(Duration::from_millis(300));
    let h = Harness::with(|b| {
        b.hasher(slow_hasher.clone())
            .max_concurrent_verifications(1)
            .max_waiting_verifications(0)
            .verification_wait(Duration::from_secs(30))
            .uniform_refusals(false)
            .low_priority_verification(false)
    })
    .await;
    let admin = h.admin.clone().with_hasher(slow_hasher);
    let a = admin
        .issue_api_token(h.account.id, None, NewToken::new("a", Role::Basic))
        .await
        .unwrap();
    let b = admin
        .issue_api_token(h.account.id, None, NewToken::new("b", Role::Basic))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(h.authenticate(&a), h.authenticate(&b));
    let mut codes = [ra.err().map(|e| e.code()), rb.err().map(|e| e.code())];
    codes.sort_by_key(|c| c.is_some());
    assert_eq!(codes, [None, Some(ErrorCode::AuthBusy)]);
    // Nobody waited the 30 s allowed: no place in line means no waiting.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_stored_hash_above_the_cost_caps_is_refused_without_running_it() {
    let h = Harness::new().await;
    // 4 GiB of memory, if anyone ran it.
    let id = finout_auth::ClientId::from("tampered-row");
    h.insert_greedy_hash(&id).await;
    let started = std::time::Instant::now();
    let r = authenticate(&h.auth, &id, "anything").await;
    assert_eq!(code(r), ErrorCode::InvalidCredentials);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "argon2 must not have run"
    );
}

#[tokio::test]
async fn uniform_refusals_can_be_turned_off() {
    let h = Harness::with(|b| {
        b.uniform_refusals(false)
            .verification_wait(Duration::from_secs(30))
    })
    .await;
    let token = h.api_token(Role::Basic).await;
    let started = std::time::Instant::now();
    let r = authenticate(&h.auth, &"no-such-id".into(), "whatever").await;
    assert_eq!(code(r), ErrorCode::InvalidCredentials);
    let r = authenticate(&h.auth, &token.client_id, "wrong").await;
    assert_eq!(code(r), ErrorCode::InvalidCredentials);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered when decided"
    );
    let m = h.auth.metrics();
    assert_eq!((m.secret_verifications, m.unknown_ids), (1, 0), "{m:?}");
}

#[tokio::test]
async fn a_failed_attempt_is_answered_from_cache_until_the_token_changes() {
    use finout_auth::Credentials;
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let creds = Credentials::new(token.client_id.as_str(), "wrong").unwrap();
    assert!(h.auth.authenticate_cached(creds).is_none(), "not seen yet");
    assert_eq!(
        code(h.auth.authenticate(creds).await),
        ErrorCode::InvalidCredentials
    );
    let cached = h
        .auth
        .authenticate_cached(creds)
        .expect("answered from cache");
    assert_eq!(code(cached), ErrorCode::InvalidCredentials);
    // Another secret for the same id is a new attempt.
    let other = Credentials::new(token.client_id.as_str(), "wrong-too").unwrap();
    assert!(h.auth.authenticate_cached(other).is_none());
    // Any change to the token forgets its failed attempts.
    h.auth.invalidate(&token.client_id).await;
    assert!(h.auth.authenticate_cached(creds).is_none());
}

#[tokio::test]
async fn a_failed_attempt_on_a_cached_token_is_answered_from_cache() {
    use finout_auth::Credentials;
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap(); // the token is cached now
    let wrong = Credentials::new(token.client_id.as_str(), "wrong").unwrap();
    assert!(h.auth.authenticate_cached(wrong).is_none(), "not seen yet");
    assert_eq!(
        code(h.auth.authenticate(wrong).await),
        ErrorCode::InvalidCredentials
    );
    let runs = h.auth.metrics().secret_verifications;
    let cached = h
        .auth
        .authenticate_cached(wrong)
        .expect("answered from cache");
    assert_eq!(code(cached), ErrorCode::InvalidCredentials);
    assert_eq!(h.auth.metrics().secret_verifications, runs);
    // The right secret is unaffected.
    h.authenticate(&token).await.unwrap();
}

/// Ids from a generator that always hands out the same client id (with random secrets).
#[derive(Debug)]
struct SameId;

impl finout_auth::crypto::CredentialGenerator for SameId {
    fn client_id(&self) -> finout_auth::ClientId {
        "same-client-id".into()
    }
    fn secret_key(&self) -> finout_auth::SecretKey {
        finout_auth::crypto::UuidV4Generator.secret_key()
    }
}

#[tokio::test]
async fn two_authenticators_on_one_thread_never_answer_for_each_other() {
    // The same client id in two stores, with different secrets, on one thread: what one
    // authenticator cached (on this thread) must not answer for the other.
    let one = Harness::new().await;
    let two = Harness::new().await;
    async fn issue(h: &Harness) -> finout_auth::IssuedToken {
        h.admin
            .clone()
            .with_generator(SameId)
            .issue_api_token(h.account.id, None, NewToken::new("same", Role::Basic))
            .await
            .unwrap()
    }
    let (first, second) = (issue(&one).await, issue(&two).await);
    assert_eq!(first.client_id, second.client_id);
    assert_eq!(
        code(one.authenticate(&second).await),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code(two.authenticate(&first).await),
        ErrorCode::InvalidCredentials
    );
    one.authenticate(&first).await.unwrap();
    two.authenticate(&second).await.unwrap();
    let misses = (
        one.auth.metrics().cache_misses,
        two.auth.metrics().cache_misses,
    );
    for _ in 0..3 {
        assert_eq!(
            one.authenticate(&first).await.unwrap().account_id(),
            one.account.id
        );
        assert_eq!(
            two.authenticate(&second).await.unwrap().account_id(),
            two.account.id
        );
        assert_eq!(
            code(one.authenticate(&second).await),
            ErrorCode::InvalidCredentials
        );
        assert_eq!(
            code(two.authenticate(&first).await),
            ErrorCode::InvalidCredentials
        );
    }
    // Alternating between them, each is answered from its own cache every time.
    let after = (
        one.auth.metrics().cache_misses,
        two.auth.metrics().cache_misses,
    );
    assert_eq!(after, misses);
}

#[tokio::test]
async fn many_cached_tokens_on_one_thread_each_answer_as_themselves() {
    // More tokens than a thread's front has slots: collisions must only cost lookups in
    // the shared cache, never a wrong principal.
    let h = Harness::new().await;
    let mut tokens = Vec::new();
    for _ in 0..150 {
        tokens.push(h.api_token(Role::Basic).await);
    }
    for _ in 0..3 {
        for token in &tokens {
            let p = h.authenticate(token).await.unwrap();
            assert_eq!(p.client_id(), &token.client_id);
        }
    }
    let m = h.auth.metrics();
    assert_eq!(
        m.secret_verifications, 150,
        "one argon2 run per token, then cache hits"
    );
    assert_eq!(m.store_lookups, 150);
}

#[tokio::test]
async fn a_cached_token_is_trusted_no_longer_than_the_cache_ttl() {
    // The store changes behind the authenticator's back (as on another replica without a
    // change feed): the cache answers until its TTL, and not a moment after, on every path
    // a repeated request takes on one thread.
    let ttl = Duration::from_millis(400);
    let h = Harness::with(|b| b.cache_ttl(ttl)).await;
    let token = h.api_token(Role::Basic).await;
    h.authenticate(&token).await.unwrap();
    let cached = std::time::Instant::now();
    use finout_auth::store::TokenAdminStore;
    h.store
        .delete_token(h.account.id, &token.client_id)
        .await
        .unwrap()
        .expect("deleted behind the cache");
    while cached.elapsed() < ttl / 2 {
        h.authenticate(&token).await.expect("cached within the TTL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep((ttl + Duration::from_millis(5)).saturating_sub(cached.elapsed())).await;
    assert_eq!(
        code(h.authenticate(&token).await),
        ErrorCode::InvalidCredentials
    );
}

#[tokio::test]
async fn a_failed_attempt_is_answered_from_cache_no_longer_than_the_verdict_ttl() {
    // A refusal is cached for the verdict TTL; the thread's front must not keep answering
    // it after the shared cache has let it go.
    use finout_auth::Credentials;
    let ttl = Duration::from_millis(400);
    let h = Harness::with(|b| b.verdict_ttl(ttl)).await;
    let token = h.api_token(Role::Basic).await;
    let wrong = Credentials::new(token.client_id.as_str(), "wrong").unwrap();
    assert_eq!(
        code(h.auth.authenticate(wrong).await),
        ErrorCode::InvalidCredentials
    );
    let cached = std::time::Instant::now();
    while cached.elapsed() < ttl / 2 {
        let refused = h
            .auth
            .authenticate_cached(wrong)
            .expect("answered from cache within the TTL");
        assert_eq!(code(refused), ErrorCode::InvalidCredentials);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep((ttl + Duration::from_millis(5)).saturating_sub(cached.elapsed())).await;
    assert!(
        h.auth.authenticate_cached(wrong).is_none(),
        "decided afresh after the TTL"
    );
}

#[tokio::test]
async fn a_cached_refusal_answers_only_for_its_own_id_and_secret() {
    use finout_auth::Credentials;
    // What is tested is the cache, not when refusals are answered.
    let h = Harness::with(|b| b.no_failure_limit().uniform_refusals(false)).await;
    let a = h.api_token(Role::Basic).await;
    let b = h.api_token(Role::Basic).await;
    // More refused attempts than a thread's refusal front has slots, on one id.
    let wrong: Vec<String> = (0..150).map(|i| format!("wrong-{i}")).collect();
    for secret in &wrong {
        let creds = Credentials::new(a.client_id.as_str(), secret).unwrap();
        assert_eq!(
            code(h.auth.authenticate(creds).await),
            ErrorCode::InvalidCredentials
        );
    }
    for secret in &wrong {
        let creds = Credentials::new(a.client_id.as_str(), secret).unwrap();
        let cached = h
            .auth
            .authenticate_cached(creds)
            .expect("refused from cache");
        assert_eq!(code(cached), ErrorCode::InvalidCredentials);
        // The same secret on another id is an attempt nobody made yet.
        let elsewhere = Credentials::new(b.client_id.as_str(), secret).unwrap();
        assert!(h.auth.authenticate_cached(elsewhere).is_none());
    }
    // The right secrets are admitted, whatever shares their slots.
    assert_eq!(h.authenticate(&a).await.unwrap().client_id(), &a.client_id);
    assert_eq!(h.authenticate(&b).await.unwrap().client_id(), &b.client_id);

    // Two ids the front's slot function cannot tell apart (same length, same last eight
    // bytes): a refusal for one never answers for the other.
    let one = "aaaaaaaa-0000-4000-8000-000000000001";
    let two = "bbbbbbbb-0000-4000-8000-000000000001";
    let tried = Credentials::new(one, "same-secret").unwrap();
    assert_eq!(
        code(h.auth.authenticate(tried).await),
        ErrorCode::InvalidCredentials
    );
    assert!(h.auth.authenticate_cached(tried).is_some());
    let untried = Credentials::new(two, "same-secret").unwrap();
    assert!(h.auth.authenticate_cached(untried).is_none());

    // An id too long for the front's slots is refused from the shared cache instead.
    let long_id = "x".repeat(200);
    let long = Credentials::new(&long_id, "whatever").unwrap();
    assert_eq!(
        code(h.auth.authenticate(long).await),
        ErrorCode::InvalidCredentials
    );
    for _ in 0..2 {
        let cached = h
            .auth
            .authenticate_cached(long)
            .expect("refused from cache");
        assert_eq!(code(cached), ErrorCode::InvalidCredentials);
    }
}
