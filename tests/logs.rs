//! What the crate logs: outcome, client id and latency, never a secret, and never a header
//! value that was not verified (a fingerprint instead). Alone in its own test binary because
//! it installs a global subscriber.

mod common;

use std::{sync::Arc, time::Duration};

use common::{FlakyStore, Harness};
use finout_auth::{Credentials, Role, store::MemoryTokenStore};

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
}
