//! No secret in the `Debug` of any type that holds one.

mod common;

use common::Harness;
use finout_auth::{Credentials, Role, store::TokenStore};

#[tokio::test]
async fn no_debug_output_contains_a_secret_or_hash() {
    let h = Harness::new().await;
    let token = h.personal_token(&h.admin_user, Role::Admin).await;
    let secret = token.secret_key.expose_secret().to_owned();
    h.authenticate(&token).await.unwrap();
    let creds = Credentials::new(token.client_id.as_str(), &secret).unwrap();
    let resolved = h.store.find_token(&token.client_id).await.unwrap().unwrap();
    let hash = resolved.record.secret_hash.as_phc().to_owned();
    let principal = h.authenticate(&token).await.unwrap();

    let outputs = [
        format!("{token:?}"),
        format!("{token:#?}"),
        format!("{:?}", token.secret_key),
        format!("{creds:?}"),
        format!("{resolved:?}"),
        format!("{principal:?}"),
        format!("{:?}", h.auth),
        format!("{:?}", h.admin),
        format!("{:?}", h.store),
    ];
    for out in &outputs {
        assert!(!out.contains(&secret), "secret leaked in {out}");
        assert!(!out.contains(&hash), "hash leaked in {out}");
        assert!(!out.contains("$argon2"), "hash leaked in {out}");
    }
    // The client id is not secret and helps debugging.
    assert!(outputs[0].contains(token.client_id.as_str()));
}
