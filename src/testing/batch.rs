//! Conformance checks for [`TokenAdminStore::insert_batch`](crate::store::TokenAdminStore::insert_batch)
//! (all or nothing) and [`find_user`](crate::store::TokenAdminStore::find_user).

use super::{Store, account, api_record, insert, personal_record, user};
use crate::{
    error::StoreError,
    model::{Account, AccountId, ClientId, Role, TokenRecord, User, UserId},
    store::{Batch, TokenFilter},
};

fn new_account() -> Account {
    Account {
        id: AccountId::new_v4(),
        name: "Batch".into(),
    }
}

fn new_user(account: AccountId, roles: Vec<Role>) -> User {
    let id = UserId::new_v4();
    User::new(id, account, format!("{id}@batch.test"), roles)
}

/// For each element of `batch`, whether the store holds exactly it.
async fn held(store: &Store, batch: &Batch) -> Vec<bool> {
    let mut held = Vec::new();
    for a in &batch.accounts {
        held.push(store.get_account(a.id).await.unwrap().as_ref() == Some(a));
    }
    for u in &batch.users {
        held.push(store.find_user(u.id).await.unwrap().as_ref() == Some(u));
    }
    for t in &batch.tokens {
        let found = store.find_token(&t.client_id).await.unwrap();
        held.push(found.is_some_and(|f| f.record == *t));
    }
    held
}

/// The refusal `batch` meets; panics if any of it is stored.
async fn refused(store: &Store, batch: Batch) -> StoreError {
    let before = held(store, &batch).await;
    let outcome = store.insert_batch(batch.clone()).await;
    assert_eq!(
        held(store, &batch).await,
        before,
        "part of {batch:?} stored"
    );
    match outcome {
        Err(e) => e,
        Ok(()) => panic!("{batch:?} stored"),
    }
}

/// A batch stores its accounts, users (found by id in any account) and tokens, which may
/// name users and issuers of the same batch.
pub async fn batch_stores_everything(store: Store) {
    let a = new_account();
    let admin = new_user(a.id, vec![Role::Admin]);
    let api = api_record(a.id, 1);
    let personal = personal_record(&admin, 2);
    let issued = api_record(a.id, 3).with_issuer(Some(personal.client_id.clone()));
    let batch = Batch::new()
        .account(a.clone())
        .user(admin.clone())
        .token(api.clone())
        .token(personal.clone())
        .token(issued.clone());
    store.insert_batch(batch).await.expect("insert batch");
    assert_eq!(store.get_account(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.find_user(admin.id).await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(store.find_user(UserId::new_v4()).await.unwrap(), None);
    for t in [&api, &personal, &issued] {
        let found = store
            .find_token(&t.client_id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(found.record, *t);
    }
    let listed = store.list_tokens(a.id, TokenFilter::All).await.unwrap();
    assert_eq!(listed.len(), 3);

    // Into an existing account, with an existing user.
    let more = api_record(a.id, 4);
    let mine = personal_record(&admin, 5);
    let b = new_user(a.id, vec![Role::Basic]);
    store
        .insert_batch(Batch::new().user(b.clone()).token(more).token(mine))
        .await
        .expect("insert into an existing account");
    assert_eq!(store.get_user(a.id, b.id).await.unwrap(), Some(b));
    store
        .insert_batch(Batch::new())
        .await
        .expect("an empty batch");
}

/// A batch is written whole or not at all: any conflict or missing reference, even in its
/// last element, stores nothing of it.
pub async fn batch_is_all_or_nothing(store: Store) {
    let existing = account(&store).await;
    let owner = user(&store, existing.id, vec![Role::Basic]).await;
    let taken = api_record(existing.id, 1);
    insert(&store, &taken).await;

    let a = new_account();
    let u = new_user(a.id, vec![Role::Admin]);
    let good = || {
        Batch::new()
            .account(a.clone())
            .user(u.clone())
            .token(api_record(a.id, 2))
            .token(personal_record(&u, 3))
    };
    let with = |last: TokenRecord| good().token(last);
    let client_id = |id: &ClientId| api_record(a.id, 4).with_client_id(id);

    // The last token's client id exists, in the store or earlier in the batch.
    let e = refused(&store, with(client_id(&taken.client_id))).await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let first = good().tokens[0].client_id.clone();
    let mut repeated = good();
    repeated.tokens[0].client_id = first.clone();
    let e = refused(&store, repeated.token(client_id(&first))).await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // The last token's user, account or issuer is nowhere.
    let e = refused(&store, with(personal_record(&new_user(a.id, vec![]), 5))).await;
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    let mut cross = personal_record(&owner, 6);
    cross.account_id = a.id;
    let e = refused(&store, with(cross)).await;
    assert!(
        matches!(e, StoreError::NotFound(_)),
        "another account's user: {e:?}"
    );
    let e = refused(&store, with(api_record(AccountId::new_v4(), 7))).await;
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    let orphan = api_record(a.id, 8).with_issuer(Some(ClientId::from("nowhere")));
    let e = refused(&store, with(orphan)).await;
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    let e = refused(
        &store,
        with(api_record(a.id, 9).with_issuer(Some(taken.client_id.clone()))),
    )
    .await;
    assert!(
        matches!(e, StoreError::NotFound(_)),
        "another account's issuer: {e:?}"
    );

    // A user whose id or email is taken, or whose account is nowhere.
    let e = refused(&store, good().user(owner.clone())).await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let e = refused(
        &store,
        good().user(User {
            id: UserId::new_v4(),
            ..u.clone()
        }),
    )
    .await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let e = refused(&store, good().user(u.clone())).await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let e = refused(&store, good().user(new_user(AccountId::new_v4(), vec![]))).await;
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    // An account that exists, or is listed twice.
    let e = refused(&store, good().account(existing.clone())).await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    let e = refused(&store, good().account(a.clone())).await;
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");

    // What was there is untouched, and the good batch still goes in whole.
    assert_eq!(
        store
            .find_token(&taken.client_id)
            .await
            .unwrap()
            .unwrap()
            .record,
        taken
    );
    assert_eq!(store.find_user(owner.id).await.unwrap(), Some(owner));
    store.insert_batch(good()).await.expect("the good batch");
    assert_eq!(
        store
            .list_tokens(a.id, TokenFilter::All)
            .await
            .unwrap()
            .len(),
        2
    );
}
