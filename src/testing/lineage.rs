//! Conformance checks for lineage (a token issued by another is deleted with it), the caps
//! on tokens per user and per account, and conditional user updates.

use std::collections::BTreeSet;

use super::{Store, account, api_record, insert, personal_record, user};
use crate::{
    error::StoreError,
    model::{ClientId, DataAccess, Role},
    store::{TokenLimits, UserUpdate},
};

fn ids<'a>(ids: impl IntoIterator<Item = &'a ClientId>) -> BTreeSet<ClientId> {
    ids.into_iter().cloned().collect()
}

async fn exists(store: &Store, id: &ClientId) -> bool {
    store.find_token(id).await.expect("find").is_some()
}

/// Revoking a token deletes every token it issued, directly or not, and reports them; its
/// issuer and unrelated tokens stay. An issuer must exist in the token's account.
pub async fn revoke_deletes_what_the_token_issued(store: Store) {
    let a = account(&store).await;
    let root = api_record(a.id, 1);
    let child = api_record(a.id, 2).with_issuer(Some(root.client_id.clone()));
    let grandchild = api_record(a.id, 3).with_issuer(Some(child.client_id.clone()));
    let sibling = api_record(a.id, 4).with_issuer(Some(root.client_id.clone()));
    let unrelated = api_record(a.id, 5);
    for t in [&root, &child, &grandchild, &sibling, &unrelated] {
        insert(&store, t).await;
    }
    let found = store.find_token(&grandchild.client_id).await.unwrap();
    assert_eq!(
        found.map(|t| t.record.issued_by),
        Some(Some(child.client_id.clone())),
        "issued_by reads back"
    );

    let revoked = store
        .delete_token(a.id, &child.client_id)
        .await
        .unwrap()
        .expect("revoked");
    assert_eq!(revoked.record, child);
    assert_eq!(ids(&revoked.issued), ids([&grandchild.client_id]));
    assert!(!exists(&store, &grandchild.client_id).await);
    for kept in [&root, &sibling, &unrelated] {
        assert!(exists(&store, &kept.client_id).await, "{kept:?}");
    }

    // An issuer that is gone, or in another account, is refused.
    let orphan = api_record(a.id, 6).with_issuer(Some(child.client_id.clone()));
    let r = store.insert_token(orphan, TokenLimits::default()).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    let other = account(&store).await;
    let across = api_record(other.id, 7).with_issuer(Some(root.client_id.clone()));
    let r = store.insert_token(across, TokenLimits::default()).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");

    let revoked = store.delete_token(a.id, &root.client_id).await.unwrap();
    assert_eq!(
        revoked.map(|r| ids(&r.issued)),
        Some(ids([&sibling.client_id]))
    );
    assert!(exists(&store, &unrelated.client_id).await);
}

/// Removing a user deletes their personal tokens and every token those issued (an API
/// token minted with a personal token, say), and reports them all.
pub async fn user_removal_deletes_what_their_tokens_issued(store: Store) {
    let a = account(&store).await;
    let admin = user(&store, a.id, vec![Role::Admin]).await;
    let personal = personal_record(&admin, 1);
    let minted = api_record(a.id, 2).with_issuer(Some(personal.client_id.clone()));
    let minted_again = api_record(a.id, 3).with_issuer(Some(minted.client_id.clone()));
    let unrelated = api_record(a.id, 4);
    for t in [&personal, &minted, &minted_again, &unrelated] {
        insert(&store, t).await;
    }
    let removed = store
        .remove_user(a.id, admin.id)
        .await
        .unwrap()
        .expect("removed");
    assert_eq!(
        ids(&removed),
        ids([
            &personal.client_id,
            &minted.client_id,
            &minted_again.client_id
        ])
    );
    for gone in [&personal, &minted, &minted_again] {
        assert!(!exists(&store, &gone.client_id).await);
    }
    assert!(exists(&store, &unrelated.client_id).await);
}

/// The caps: `per_user` personal tokens per user and `per_account` tokens per account,
/// refused with `LimitReached`; a revoke makes room again.
pub async fn limits(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Basic]).await;
    let limits = TokenLimits::default().per_user(2).per_account(3);
    for n in 0..2 {
        store
            .insert_token(personal_record(&u, n), limits)
            .await
            .expect("within the cap");
    }
    let r = store.insert_token(personal_record(&u, 2), limits).await;
    assert!(matches!(r, Err(StoreError::LimitReached(_))), "{r:?}");
    let api = api_record(a.id, 3);
    store.insert_token(api.clone(), limits).await.unwrap();
    let r = store.insert_token(api_record(a.id, 4), limits).await;
    assert!(matches!(r, Err(StoreError::LimitReached(_))), "{r:?}");
    // Another account is not counted.
    let b = account(&store).await;
    store
        .insert_token(api_record(b.id, 5), limits)
        .await
        .unwrap();
    // Room again after a revoke.
    store.delete_token(a.id, &api.client_id).await.unwrap();
    store
        .insert_token(api_record(a.id, 6), limits)
        .await
        .expect("room after a revoke");
}

/// Issuing with a token while it is revoked: the new token is either refused or deleted
/// (and reported) with its issuer; never left behind.
pub async fn concurrent_issue_and_revoke(store: Store) {
    let a = account(&store).await;
    for round in 0..20 {
        let parent = api_record(a.id, round);
        insert(&store, &parent).await;
        let child = api_record(a.id, round + 1000).with_issuer(Some(parent.client_id.clone()));
        let issue = tokio::spawn({
            let (store, child) = (store.clone(), child.clone());
            async move { store.insert_token(child, TokenLimits::default()).await }
        });
        let revoke = tokio::spawn({
            let (store, id) = (store.clone(), parent.client_id.clone());
            async move { store.delete_token(a.id, &id).await }
        });
        let issued = issue.await.unwrap();
        let revoked = revoke.await.unwrap().unwrap().expect("revoked");
        let reported = revoked.issued.contains(&child.client_id);
        match issued {
            Ok(()) => assert!(reported, "round {round}: issued, not reported"),
            Err(StoreError::NotFound(_)) => assert!(!reported),
            Err(e) => panic!("round {round}: {e:?}"),
        }
        assert!(!exists(&store, &child.client_id).await, "round {round}");
    }
}

/// A user update conditioned on the user as read (`if_unchanged_from`) applies only while the
/// user is so; once another update changed them, `Conflict` and nothing changes.
pub async fn conditional_user_update(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Admin]).await;
    let read = store.get_user(a.id, u.id).await.unwrap().unwrap();
    // Another writer demotes the user after `read`.
    store
        .update_user(
            a.id,
            u.id,
            UserUpdate::default().roles(vec![Role::ReadOnly]),
        )
        .await
        .unwrap()
        .expect("user exists");
    let stale = UserUpdate::default()
        .data_access(DataAccess::only(["v1"]))
        .if_unchanged_from(&read);
    let r = store.update_user(a.id, u.id, stale).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let now = store.get_user(a.id, u.id).await.unwrap().unwrap();
    assert_eq!(
        (now.roles.clone(), now.data_access.clone()),
        (vec![Role::ReadOnly], DataAccess::All)
    );
    // Conditioned on the user as they are now: applies.
    let fresh = UserUpdate::default()
        .data_access(DataAccess::only(["v1"]))
        .if_unchanged_from(&now);
    assert!(
        store
            .update_user(a.id, u.id, fresh)
            .await
            .unwrap()
            .is_some()
    );
    let after = store.get_user(a.id, u.id).await.unwrap().unwrap();
    assert_eq!(after.data_access, DataAccess::only(["v1"]));
}
