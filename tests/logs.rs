//! What the crate logs: outcome, client id and latency, never a secret, and never a header
//! value that was not verified (a fingerprint instead); security events at WARN. Alone in its
//! own test binary because it installs a global subscriber.

mod common;

use std::{sync::Arc, time::Duration};

use common::{FlakyStore, Harness};
use finout_auth::{
    ClientId, Credentials, ErrorCode, NewToken, Role, crypto::SecretHasher, store::MemoryTokenStore,
};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn trace_logs_name_the_client_id_but_never_the_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // Global, and alone in this test binary: tracing caches per-callsite interest
    // process-wide, which a thread-local subscriber in a parallel test can race with.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let secret = token.secret_key.expose_secret().to_owned();
    h.authenticate(&token).await.unwrap(); // cold
    h.authenticate(&token).await.unwrap(); // cached
    let _ = common::authenticate(&h.auth, &token.client_id, "wrong-secret-value").await;
    h.admin
        .revoke_token(h.account.id, &token.client_id)
        .await
        .unwrap();
    let _ = h.authenticate(&token).await;

    // Swapped headers: the secret in the client-id header. And an id nobody issued.
    let other = h.api_token(Role::Basic).await;
    let other_secret = other.secret_key.expose_secret().to_owned();
    let swapped = Credentials::new(&other_secret, other.client_id.as_str()).unwrap();
    assert!(h.auth.authenticate(swapped).await.is_err());
    let unknown = "unknown-client-id-value";
    let _ = common::authenticate(&h.auth, &unknown.into(), "some-secret-value").await;
    // A store that fails: its cause reaches the log, the presented id does not.
    let memory = Arc::new(MemoryTokenStore::new());
    let flaky = FlakyStore::new(memory.clone(), Duration::ZERO);
    flaky.set_down(true);
    let down = Harness::wrapped(memory, flaky, |b| b).await;
    let during_outage = "id-presented-during-an-outage";
    let _ = common::authenticate(&down.auth, &during_outage.into(), "s3cret-value").await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for unverified in [other_secret.as_str(), unknown, during_outage] {
        assert!(
            !logs.contains(unverified),
            "unverified {unverified:?} in logs: {logs}"
        );
    }
    assert!(logs.contains("client_fingerprint"), "{logs}");
    assert!(logs.contains("token store lookup failed"), "{logs}");
    assert!(
        logs.contains("connection refused (test)"),
        "the cause: {logs}"
    );
    assert!(logs.contains(token.client_id.as_str()), "{logs}");
    assert!(
        logs.contains("outcome=\"ok\"") || logs.contains("outcome=ok"),
        "{logs}"
    );
    assert!(logs.contains("invalid_credentials"), "{logs}");
    assert!(logs.contains("latency_us"), "{logs}");
    assert!(!logs.contains(&secret), "secret in logs: {logs}");
    assert!(
        !logs.contains("wrong-secret-value"),
        "presented secret in logs: {logs}"
    );

    // Security events are WARN: the store failure above, a stored hash refused (outside the
    // cost caps: 4 GiB if anyone ran it), and a real token answered auth_busy.
    let tampered = ClientId::from("tampered-row-id");
    h.insert_greedy_hash(&tampered).await;
    let refused = common::authenticate(&h.auth, &tampered, "anything-at-all").await;
    assert_eq!(refused.unwrap_err().code(), ErrorCode::InvalidCredentials);

    let slow_hasher = SecretHasher::with_params(19456, 8, 1).unwrap();
    let busy = Harness::with(|b| {
        b.hasher(slow_hasher.clone())
            .max_concurrent_verifications(1)
            .max_waiting_verifications(0)
            .low_priority_verification(false)
    })
    .await;
    let admin = busy.admin.clone().with_hasher(slow_hasher);
    let mut tokens = Vec::new();
    for name in ["a", "b"] {
        let token = admin
            .issue_api_token(busy.account.id, None, NewToken::new(name, Role::Basic))
            .await
            .unwrap();
        tokens.push(token);
    }
    let (a, b) = tokio::join!(busy.authenticate(&tokens[0]), busy.authenticate(&tokens[1]));
    let busy_id = match (a, b) {
        (Ok(_), Err(e)) if e.code() == ErrorCode::AuthBusy => &tokens[1].client_id,
        (Err(e), Ok(_)) if e.code() == ErrorCode::AuthBusy => &tokens[0].client_id,
        other => panic!("one admitted, one auth_busy: {other:?}"),
    };

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = |message: &str| -> String {
        logs.lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} in {logs}"))
            .to_owned()
    };
    let store_failed = line("token store lookup failed");
    assert!(store_failed.contains(" WARN "), "{store_failed}");
    let hash_refused = line("stored secret hash refused");
    assert!(hash_refused.contains(" WARN "), "{hash_refused}");
    assert!(
        hash_refused.contains("client_fingerprint"),
        "{hash_refused}"
    );
    assert!(
        !logs.contains("tampered-row-id"),
        "unverified id in logs: {logs}"
    );
    let auth_busy = line("no argon2 capacity");
    assert!(auth_busy.contains(" WARN "), "{auth_busy}");
    assert!(auth_busy.contains(busy_id.as_str()), "{auth_busy}");
    for token in &tokens {
        assert!(!logs.contains(token.secret_key.expose_secret()), "{logs}");
    }
}
