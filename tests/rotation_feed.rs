//! Rotation and disabling reach every replica through the PostgreSQL change feed, as a
//! revoke does: with hour-long cache TTLs, only the feed can explain another replica seeing
//! them within a second. Runs when `FINOUT_AUTH_TEST_DATABASE_URL` is set.

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use finout_auth::{
    Authenticator, ClientId, NewToken, Role, SecretKey, TokenAdmin, clock::ManualClock,
    store::PostgresTokenStore,
};

async fn postgres() -> Option<PostgresTokenStore> {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!("skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set");
        return None;
    };
    Some(PostgresTokenStore::connect(&url).await.expect("connect"))
}

async fn admits(auth: &Authenticator, id: &ClientId, secret: &SecretKey) -> bool {
    common::authenticate(auth, id, secret.expose_secret())
        .await
        .is_ok()
}

/// Ask until `auth` answers `admit`, at most a second: how long it took.
async fn within_a_second(
    auth: &Authenticator,
    id: &ClientId,
    secret: &SecretKey,
    admit: bool,
) -> Duration {
    let started = Instant::now();
    while admits(auth, id, secret).await != admit {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still {} after a second",
            if admit { "refused" } else { "admitted" }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rotation_disable_and_enable_reach_the_other_replica_within_a_second() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let build = |store: &PostgresTokenStore| {
        Authenticator::builder(Arc::new(store.clone()))
            .hasher(common::fast_hasher())
            .clock(clock.clone())
            .cache_ttl(Duration::from_secs(3600))
            .uniform_refusals(false)
            .build()
    };
    let (auth_one, auth_two) = (build(&one), build(&two));
    let _feed = two.listen([auth_two.clone()]).await.unwrap();
    let admin = TokenAdmin::new(Arc::new(one.clone()))
        .with_hasher(common::fast_hasher())
        .with_authenticator(auth_one.clone());
    let account = admin.create_account("Rotation feed").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("fleet", Role::Basic))
        .await
        .unwrap();
    let (id, old) = (token.client_id, token.secret_key);
    assert!(admits(&auth_one, &id, &old).await && admits(&auth_two, &id, &old).await);

    // A rotation with a grace: both secrets on both replicas, until the grace ends.
    let rotated = admin
        .rotate_secret(account.id, &id, Duration::from_secs(600))
        .await
        .unwrap();
    let new = rotated.secret_key;
    assert!(admits(&auth_one, &id, &new).await);
    within_a_second(&auth_two, &id, &new, true).await;
    assert!(admits(&auth_two, &id, &old).await, "old, in its grace");
    clock.advance(time::Duration::minutes(10));
    assert!(!admits(&auth_one, &id, &old).await, "one: past the grace");
    assert!(!admits(&auth_two, &id, &old).await, "two: past the grace");

    // A rotation without a grace: the replaced secret stops on the other replica too.
    let last = admin
        .rotate_secret(account.id, &id, Duration::ZERO)
        .await
        .unwrap()
        .secret_key;
    assert!(!admits(&auth_one, &id, &new).await);
    within_a_second(&auth_two, &id, &new, false).await;
    within_a_second(&auth_two, &id, &last, true).await;

    // Disabled and enabled: at once here, within a second there.
    admin.disable_token(account.id, &id).await.unwrap();
    assert!(
        !admits(&auth_one, &id, &last).await,
        "one: disabled at once"
    );
    within_a_second(&auth_two, &id, &last, false).await;
    admin.enable_token(account.id, &id).await.unwrap();
    assert!(admits(&auth_one, &id, &last).await, "one: enabled at once");
    within_a_second(&auth_two, &id, &last, true).await;
}
