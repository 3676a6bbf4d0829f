//! What a dependent's test suite gets from `testing::insecure_test_preset`: 100 tokens issued
//! at once and 100 first requests at once, all answered, none `auth_busy`.
#![cfg(feature = "testing")]

use std::{sync::Arc, time::Instant};

use finout_auth::{
    Credentials, NewToken, Role, crypto::SecretHasher, store::MemoryTokenStore, testing,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tokens_and_a_hundred_first_requests_at_once_and_none_is_busy() {
    let (authenticator, admin) = testing::insecure_test_preset(Arc::new(MemoryTokenStore::new()));
    let account = admin.create_account("suite").await.unwrap();
    let started = Instant::now();
    let issued = futures_join_all((0..100).map(|i| {
        let admin = admin.clone();
        async move {
            admin
                .issue_api_token(
                    account.id,
                    None,
                    NewToken::new(format!("t{i}"), Role::Basic),
                )
                .await
        }
    }))
    .await;
    let issued: Vec<_> = issued.into_iter().map(|t| t.expect("issued")).collect();
    let answers = futures_join_all(issued.iter().map(|token| {
        let authenticator = authenticator.clone();
        let (id, secret) = (
            token.client_id.to_string(),
            token.secret_key.expose_secret().to_owned(),
        );
        async move {
            let credentials = Credentials::new(&id, &secret).unwrap();
            authenticator.authenticate(credentials).await
        }
    }))
    .await;
    let elapsed = started.elapsed();
    for (answer, token) in answers.iter().zip(&issued) {
        let principal = answer.as_ref().expect("admitted, never auth_busy");
        assert_eq!(principal.client_id(), &token.client_id);
    }
    assert_eq!(
        authenticator
            .metrics_handle()
            .snapshot()
            .secret_verifications,
        100
    );
    // The issue's bar for a debug build: well under a second (here a few tens of ms).
    println!("100 issued + 100 first requests: {elapsed:?}");
    assert!(elapsed.as_secs_f64() < 1.0, "{elapsed:?}");
}

#[test]
fn the_preset_hasher_is_argon2id_at_its_minimum_cost() {
    let hash = SecretHasher::insecure_for_tests_only()
        .hash(&finout_auth::SecretKey::new("s"))
        .unwrap();
    assert!(
        hash.as_phc().starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
        "{}",
        hash.as_phc()
    );
}

/// Run every future to completion, concurrently (tokio tasks).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
