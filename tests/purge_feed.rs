//! A purge reaches every replica: the PostgreSQL store announces what it purges (with the
//! tokens those issued) on its change feed, as a revoke does. Runs when
//! `FINOUT_AUTH_TEST_DATABASE_URL` is set; in a test binary of its own, since a purge is
//! store-wide and the conformance checks sharing the database assert about their own expired
//! tokens.

mod common;

use std::{sync::Arc, time::Duration};

use finout_auth::{
    Authenticator, ClientId, ErrorCode, NewToken, Role, SecretKey, TokenAdmin,
    clock::ManualClock,
    model::{TokenKind, TokenRecord},
    store::{Batch, PostgresTokenStore},
};
use time::macros::datetime;

async fn postgres() -> Option<PostgresTokenStore> {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!("skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set");
        return None;
    };
    Some(PostgresTokenStore::connect(&url).await.expect("connect"))
}

async fn refused(auth: &Authenticator, id: &ClientId, secret: &SecretKey) -> Option<ErrorCode> {
    common::authenticate(auth, id, secret.expose_secret())
        .await
        .err()
        .map(|e| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_purge_on_one_replica_is_seen_by_the_other_within_a_second() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    // Long cache TTLs: only the change feed can explain a quick refusal.
    let build = |store: &PostgresTokenStore| {
        Authenticator::builder(Arc::new(store.clone()))
            .hasher(common::fast_hasher())
            .cache_ttl(Duration::from_secs(3600))
            .build()
    };
    let (auth_one, auth_two) = (build(&one), build(&two));
    let _feed_two = two.listen([auth_two.clone()]).await.unwrap();
    // Decades ago, so that this purge meets no token of a test running now.
    let clock = ManualClock::new(datetime!(1985-06-01 0:00 UTC));
    let admin = TokenAdmin::new(Arc::new(one.clone()))
        .with_hasher(common::fast_hasher())
        .with_authenticator(auth_one.clone())
        .with_clock(clock.clone());
    let account = admin.create_account("Purge").await.unwrap();
    let parent = admin
        .issue_api_token(
            account.id,
            None,
            NewToken::new("parent", Role::Basic).expires_in_minutes(1),
        )
        .await
        .unwrap();
    // A set-up gave it a child that outlives it: the purge takes it along.
    let secret = SecretKey::new(uuid::Uuid::new_v4().to_string());
    let child = TokenRecord::new(
        ClientId::from(uuid::Uuid::new_v4().to_string()),
        TokenKind::Api,
        account.id,
        None,
        "child",
        Role::Basic,
        common::fast_hasher().hash(&secret).unwrap(),
        datetime!(1985-06-01 0:00 UTC),
        None,
        None,
    )
    .with_issuer(Some(parent.client_id.clone()));
    admin
        .insert_batch(Batch::new().token(child.clone()))
        .await
        .unwrap();
    for auth in [&auth_one, &auth_two] {
        assert_eq!(
            refused(auth, &child.client_id, &secret).await,
            None,
            "cached"
        );
    }

    clock.advance(time::Duration::days(31));
    assert!(admin.purge_expired().await.unwrap() >= 2);
    assert_eq!(
        refused(&auth_one, &child.client_id, &secret).await,
        Some(ErrorCode::InvalidCredentials),
        "this process's cache is told at once"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while refused(&auth_two, &child.client_id, &secret).await != Some(ErrorCode::InvalidCredentials)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other replica still admits a purged token after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
