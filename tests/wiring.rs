//! `Wiring`: the authenticator and the admin built together see every change at once and
//! hash alike, with nothing for the caller to forget.

use std::{sync::Arc, time::Duration};

use finout_auth::{
    AuthError, Credentials, ErrorCode, NewToken, Role, Wiring,
    crypto::SecretHasher,
    store::{MemoryTokenStore, TokenStore},
};

#[tokio::test]
async fn a_revoke_through_the_wired_admin_is_refused_at_the_next_request() {
    let store = Arc::new(MemoryTokenStore::new());
    let (authenticator, admin) = Wiring::new(store.clone())
        .authenticator(|b| {
            b.hasher(SecretHasher::insecure_for_tests_only())
                // Long enough that only an invalidation explains a refusal.
                .cache_ttl(Duration::from_secs(3_600))
        })
        .build();
    let account = admin.create_account("Acme").await.unwrap();
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("t", Role::Basic))
        .await
        .unwrap();
    // The admin hashed with the authenticator's hasher (argon2's smallest memory cost).
    let stored = store.find_token(&token.client_id).await.unwrap().unwrap();
    assert!(
        stored.record.secret_hash.as_phc().contains("m=8,"),
        "{:?}",
        stored.record.secret_hash.as_phc()
    );
    let credentials =
        || Credentials::new(token.client_id.as_str(), token.secret_key.expose_secret()).unwrap();
    authenticator.authenticate(credentials()).await.unwrap();
    authenticator.authenticate(credentials()).await.unwrap(); // cached
    admin
        .revoke_token(account.id, &token.client_id)
        .await
        .unwrap();
    let refused: AuthError = authenticator.authenticate(credentials()).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::InvalidCredentials);
}
