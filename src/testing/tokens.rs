//! Conformance checks for revoking (scoped, idempotent, atomic), removing a user with exactly
//! their tokens, listings, concurrent inserts and usage.

use std::collections::BTreeSet;

use time::Duration;

use super::{Store, T0, account, api_record, insert, personal_record, user};
use crate::{
    error::StoreError,
    model::{Role, TokenInfo},
    store::{TokenFilter, TokenLimits},
};

/// Revoking returns the token once, is scoped to its account, and is idempotent.
pub async fn revoke_is_idempotent_and_scoped(store: Store) {
    let a = account(&store).await;
    let other = account(&store).await;
    let t = api_record(a.id, 1);
    insert(&store, &t).await;
    assert!(
        store
            .delete_token(other.id, &t.client_id)
            .await
            .unwrap()
            .is_none()
    );
    let revoked = store.delete_token(a.id, &t.client_id).await.unwrap();
    assert_eq!(
        revoked.map(|r| (r.record, r.issued)),
        Some((t.clone(), vec![]))
    );
    assert!(
        store
            .delete_token(a.id, &t.client_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.find_token(&t.client_id).await.unwrap().is_none());
}

/// Concurrent revokes of one token: exactly one of them deletes it.
pub async fn revoke_is_atomic(store: Store) {
    let a = account(&store).await;
    let t = api_record(a.id, 1);
    insert(&store, &t).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, id) = (store.clone(), t.client_id.clone());
            tokio::spawn(async move { store.delete_token(a.id, &id).await })
        })
        .collect();
    let mut deleted = 0;
    for task in tasks {
        if task.await.unwrap().expect("delete").is_some() {
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1);
}

/// Removing a user deletes exactly their personal tokens (not other users', not API
/// tokens), returns their ids, and the user is gone.
pub async fn remove_user_deletes_exactly_their_tokens(store: Store) {
    let a = account(&store).await;
    let leaving = user(&store, a.id, vec![Role::Basic]).await;
    let staying = user(&store, a.id, vec![Role::Basic]).await;
    let theirs = [personal_record(&leaving, 1), personal_record(&leaving, 2)];
    let kept = [personal_record(&staying, 3), api_record(a.id, 4)];
    for t in theirs.iter().chain(&kept) {
        insert(&store, t).await;
    }
    let other = account(&store).await;
    assert!(
        store
            .remove_user(other.id, leaving.id)
            .await
            .unwrap()
            .is_none()
    );

    let removed: BTreeSet<_> = store
        .remove_user(a.id, leaving.id)
        .await
        .unwrap()
        .expect("user exists")
        .into_iter()
        .collect();
    let expected: BTreeSet<_> = theirs.iter().map(|t| t.client_id.clone()).collect();
    assert_eq!(removed, expected);
    for t in &theirs {
        assert!(store.find_token(&t.client_id).await.unwrap().is_none());
    }
    for t in &kept {
        assert!(store.find_token(&t.client_id).await.unwrap().is_some());
    }
    assert!(store.get_user(a.id, leaving.id).await.unwrap().is_none());
    assert!(store.remove_user(a.id, leaving.id).await.unwrap().is_none());
}

/// Listings filter by kind and owner, come oldest first, and never carry a hash.
pub async fn listing(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Basic]).await;
    let api = [api_record(a.id, 2), api_record(a.id, 1)];
    let personal = personal_record(&u, 3);
    for t in api.iter().chain([&personal]) {
        insert(&store, t).await;
    }
    insert(&store, &api_record(account(&store).await.id, 0)).await; // another account

    let all = store.list_tokens(a.id, TokenFilter::All).await.unwrap();
    let ids = |v: &[TokenInfo]| v.iter().map(|t| t.client_id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&all),
        vec![
            api[1].client_id.clone(),
            api[0].client_id.clone(),
            personal.client_id.clone()
        ]
    );
    assert_eq!(all[2], personal.info());
    let only_api = store.list_tokens(a.id, TokenFilter::Api).await.unwrap();
    assert_eq!(
        ids(&only_api),
        vec![api[1].client_id.clone(), api[0].client_id.clone()]
    );
    let mine = store
        .list_tokens(a.id, TokenFilter::PersonalOf(u.id))
        .await
        .unwrap();
    assert_eq!(ids(&mine), vec![personal.client_id.clone()]);
    let json = serde_json::to_string(&all).unwrap();
    assert!(!json.contains("argon2"), "a listing carries a hash: {json}");
}

/// Concurrent inserts: one winner per client id, and distinct ids all succeed.
pub async fn concurrent_inserts(store: Store) {
    let a = account(&store).await;
    let contested = api_record(a.id, 1);
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = store.clone();
            let record = api_record(a.id, n).with_client_id(&contested.client_id);
            tokio::spawn(async move { store.insert_token(record, TokenLimits::default()).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(ok, 1);

    let distinct: Vec<_> = (0..32).map(|n| api_record(a.id, n)).collect();
    let tasks: Vec<_> = distinct
        .iter()
        .cloned()
        .map(|record| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_token(record, TokenLimits::default()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("distinct ids never collide");
    }
    let listed = store.list_tokens(a.id, TokenFilter::Api).await.unwrap();
    assert_eq!(listed.len(), 33);
}

/// `record_usage` sets `last_used_at`, never moves it back, and ignores unknown ids.
pub async fn usage(store: Store) {
    let a = account(&store).await;
    let t = api_record(a.id, 1);
    insert(&store, &t).await;
    let later = T0 + Duration::hours(1);
    store
        .record_usage(&[(t.client_id.clone(), later), ("unknown".into(), later)])
        .await
        .unwrap();
    store
        .record_usage(&[(t.client_id.clone(), T0)])
        .await
        .unwrap();
    let found = store.find_token(&t.client_id).await.unwrap().unwrap();
    if let Some(at) = found.record.last_used_at {
        // A store may not track usage at all; if it does, it must keep the latest.
        assert_eq!(at, later);
        let listed = store.list_tokens(a.id, TokenFilter::All).await.unwrap();
        assert_eq!(listed[0].last_used_at, Some(later));
    }
}
