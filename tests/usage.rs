//! `last_used_at`: recorded off the hot path, at most once per token per interval, in
//! batches, and shown in listings.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use common::Harness;
use finout_auth::{
    ClientId, Role, StoreError,
    clock::Clock,
    store::{MemoryTokenStore, ResolvedToken, TokenFilter, TokenStore},
};
use time::OffsetDateTime;

/// Counts what the authenticator asks the store to record.
#[derive(Debug)]
struct Counting {
    inner: Arc<MemoryTokenStore>,
    calls: AtomicUsize,
    recorded: Mutex<Vec<ClientId>>,
}

#[async_trait]
impl TokenStore for Counting {
    async fn find_token(&self, id: &ClientId) -> Result<Option<ResolvedToken>, StoreError> {
        self.inner.find_token(id).await
    }

    async fn record_usage(&self, used: &[(ClientId, OffsetDateTime)]) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.recorded
            .lock()
            .unwrap()
            .extend(used.iter().map(|(id, _)| id.clone()));
        self.inner.record_usage(used).await
    }
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out");
}

async fn issue_many(h: &Harness, n: usize) -> Vec<finout_auth::IssuedToken> {
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(h.api_token(Role::Basic).await);
    }
    tokens
}

#[tokio::test]
async fn last_used_at_is_recorded_once_per_interval_in_batches_and_listed() {
    let store = Arc::new(MemoryTokenStore::new());
    let counting = Arc::new(Counting {
        inner: store.clone(),
        calls: AtomicUsize::new(0),
        recorded: Mutex::new(Vec::new()),
    });
    let h = Harness::wrapped(store, counting.clone(), |b| {
        b.usage_interval(Duration::from_secs(60))
    })
    .await;
    let tokens = issue_many(&h, 20).await;
    let listed = h
        .admin
        .list_tokens(h.account.id, TokenFilter::All)
        .await
        .unwrap();
    assert!(listed.iter().all(|t| t.last_used_at.is_none()));

    for _ in 0..10 {
        for t in &tokens {
            h.authenticate(t).await.unwrap();
        }
    }
    wait_for(|| counting.recorded.lock().unwrap().len() >= tokens.len()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // nothing more arrives
    // Each token once, despite 10 uses each; 20 tokens in one write (two, if a flush tick
    // fell in the middle).
    assert!(counting.calls.load(Ordering::SeqCst) <= 2);
    let mut recorded = counting.recorded.lock().unwrap().clone();
    recorded.sort();
    let mut expected: Vec<_> = tokens.iter().map(|t| t.client_id.clone()).collect();
    expected.sort();
    assert_eq!(recorded, expected);

    let listed = h
        .admin
        .list_tokens(h.account.id, TokenFilter::All)
        .await
        .unwrap();
    let now = h.clock.now();
    for t in &listed {
        assert_eq!(t.last_used_at, Some(now), "{t:?}");
    }
    let json = serde_json::to_value(&listed[0]).unwrap();
    assert!(json["lastUsedAt"].is_string());

    let a = &tokens[0];
    // Within the interval: nothing more. After it: one more report for the token used.
    h.authenticate(a).await.unwrap();
    h.clock.advance(time::Duration::seconds(61));
    tokio::time::sleep(Duration::from_millis(1100)).await; // the coarse clock ticks
    h.authenticate(a).await.unwrap();
    h.authenticate(a).await.unwrap();
    wait_for(|| counting.recorded.lock().unwrap().len() > tokens.len()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let recorded = counting.recorded.lock().unwrap().clone();
    assert_eq!(recorded.len(), tokens.len() + 1, "{recorded:?}");
    assert_eq!(recorded[tokens.len()], a.client_id);
}

#[tokio::test]
async fn usage_recording_can_be_turned_off() {
    let store = Arc::new(MemoryTokenStore::new());
    let counting = Arc::new(Counting {
        inner: store.clone(),
        calls: AtomicUsize::new(0),
        recorded: Mutex::new(Vec::new()),
    });
    let h = Harness::wrapped(store, counting.clone(), |b| b.no_usage_recording()).await;
    let a = h.api_token(Role::Basic).await;
    h.authenticate(&a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(counting.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn an_authenticator_built_outside_a_runtime_records_usage_all_the_same() {
    let store = Arc::new(MemoryTokenStore::new());
    let counting = Arc::new(Counting {
        inner: store.clone(),
        calls: AtomicUsize::new(0),
        recorded: Mutex::new(Vec::new()),
    });
    // Built on a plain thread, no runtime at hand.
    let authenticator = finout_auth::Authenticator::builder(counting.clone())
        .hasher(finout_auth::crypto::SecretHasher::insecure_for_tests_only())
        .build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = finout_auth::TokenAdmin::new(store)
            .with_hasher(finout_auth::crypto::SecretHasher::insecure_for_tests_only())
            .with_authenticator(authenticator.clone());
        let account = admin.create_account("Acme").await.unwrap();
        let token = admin
            .issue_api_token(
                account.id,
                None,
                finout_auth::NewToken::new("t", Role::Basic),
            )
            .await
            .unwrap();
        let credentials = finout_auth::Credentials::new(
            token.client_id.as_str(),
            token.secret_key.expose_secret(),
        )
        .unwrap();
        authenticator.authenticate(credentials).await.unwrap();
        wait_for(|| counting.recorded.lock().unwrap().len() == 1).await;
        assert_eq!(counting.recorded.lock().unwrap()[0], token.client_id);
    });
}
