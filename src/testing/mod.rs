//! The store conformance suite (feature `testing`): every behaviour the authenticator and
//! the admin rely on, as async checks that panic on failure. Run it against your own
//! [`TokenAdminStore`] with [`token_store_conformance!`](crate::token_store_conformance):
//!
//! ```
//! use std::sync::Arc;
//! use finout_auth::store::{MemoryTokenStore, TokenAdminStore};
//!
//! finout_auth::token_store_conformance!(memory, async {
//!     Some(Arc::new(MemoryTokenStore::new()) as Arc<dyn TokenAdminStore>)
//! });
//! # fn main() {}
//! ```
//!
//! The factory returns `None` to skip (e.g. when a database is not configured). Every
//! check uses fresh random ids, so one database can serve them all at once.

mod batch;
mod expiry;
mod lineage;
mod preset;
mod rotation;
mod tokens;

use std::sync::Arc;

use time::{Duration, OffsetDateTime, macros::datetime};

use crate::{
    error::StoreError,
    model::{
        Account, AccountId, ClientId, DataAccess, Permission, Role, SecretHash, TokenKind,
        TokenRecord, User, UserId,
    },
    store::{TokenAdminStore, TokenLimits, UserUpdate},
};

pub use batch::{batch_is_all_or_nothing, batch_stores_everything};
pub use expiry::{
    expired_tokens_do_not_count_toward_the_caps, insert_makes_room_among_expired_tokens,
    purge_deletes_what_expired_by_the_cutoff, purge_takes_the_longest_expired_first,
    users_per_account_are_capped,
};
pub use lineage::{
    concurrent_issue_and_revoke, conditional_user_update, limits,
    revoke_deletes_what_the_token_issued, user_removal_deletes_what_their_tokens_issued,
};
pub use preset::insecure_test_preset;
pub use rotation::{disable_and_enable_on_every_replica, rotation_has_a_grace_on_every_replica};
pub use tokens::{
    concurrent_inserts, listing, remove_user_deletes_exactly_their_tokens, revoke_is_atomic,
    revoke_is_idempotent_and_scoped, usage,
};

/// A store under test.
pub type Store = Arc<dyn TokenAdminStore>;

const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00.123456 UTC);

fn hash(n: u32) -> SecretHash {
    SecretHash::from_phc(format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ${n:0>43}"))
}

pub(super) async fn account(store: &Store) -> Account {
    let account = Account {
        id: AccountId::new_v4(),
        name: "Conformance".into(),
    };
    store
        .insert_account(account.clone())
        .await
        .expect("insert account");
    account
}

pub(super) async fn user(store: &Store, account: AccountId, roles: Vec<Role>) -> User {
    let id = UserId::new_v4();
    let user = User::new(id, account, format!("{id}@conformance.test"), roles);
    store.insert_user(user.clone()).await.expect("insert user");
    user
}

pub(super) fn api_record(account: AccountId, n: u32) -> TokenRecord {
    TokenRecord::new(
        ClientId::from(uuid::Uuid::new_v4().to_string()),
        TokenKind::Api,
        account,
        None,
        format!("api token {n}"),
        Role::ReadOnly,
        hash(n),
        T0 + Duration::seconds(i64::from(n)),
        None,
        None,
    )
}

pub(super) fn personal_record(user: &User, n: u32) -> TokenRecord {
    TokenRecord::new(
        ClientId::from(uuid::Uuid::new_v4().to_string()),
        TokenKind::Personal,
        user.account_id,
        Some(user.id),
        format!("personal token {n}"),
        Role::Basic,
        hash(n),
        T0 + Duration::seconds(i64::from(n)),
        Some(T0 + Duration::days(30)),
        Some(user.id),
    )
}

pub(super) async fn insert(store: &Store, record: &TokenRecord) {
    store
        .insert_token(record.clone(), TokenLimits::default())
        .await
        .expect("insert token");
}

/// Accounts: insert, read back, duplicate id refused.
pub async fn accounts(store: Store) {
    let a = account(&store).await;
    assert_eq!(store.get_account(a.id).await.unwrap(), Some(a.clone()));
    assert!(
        store
            .get_account(AccountId::new_v4())
            .await
            .unwrap()
            .is_none()
    );
    let again = store.insert_account(a).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

/// Users: insert, read, list (sorted by email), duplicates and missing accounts refused,
/// custom roles kept.
pub async fn users(store: Store) {
    let a = account(&store).await;
    let custom = Role::custom("FinOps", [Permission::from("fin.megabill.write.views")]);
    let u = user(&store, a.id, vec![Role::Basic, custom]).await;
    assert_eq!(store.get_user(a.id, u.id).await.unwrap(), Some(u.clone()));
    let other = account(&store).await;
    assert!(
        store.get_user(other.id, u.id).await.unwrap().is_none(),
        "scoped to the account"
    );

    let dup_id = store.insert_user(u.clone()).await;
    assert!(matches!(dup_id, Err(StoreError::Conflict(_))), "{dup_id:?}");
    let dup_email = User {
        id: UserId::new_v4(),
        ..u.clone()
    };
    let r = store.insert_user(dup_email.clone()).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    // The same email in another account is another user.
    store
        .insert_user(User {
            account_id: other.id,
            ..dup_email
        })
        .await
        .expect("same email, other account");
    let nowhere = store
        .insert_user(User::new(
            UserId::new_v4(),
            AccountId::new_v4(),
            "x@y.test",
            vec![Role::Basic],
        ))
        .await;
    assert!(
        matches!(nowhere, Err(StoreError::NotFound(_))),
        "{nowhere:?}"
    );

    let second = user(&store, a.id, vec![Role::Admin]).await;
    // Data access reads back as written: a list (even empty), or everything.
    let mut narrow = User::new(
        UserId::new_v4(),
        a.id,
        "narrow@conformance.test",
        vec![Role::Basic],
    );
    narrow.data_access = DataAccess::only(["view-2", "view-1"]);
    store
        .insert_user(narrow.clone())
        .await
        .expect("insert user");
    let mut none = User::new(
        UserId::new_v4(),
        a.id,
        "none@conformance.test",
        vec![Role::Basic],
    );
    none.data_access = DataAccess::only(Vec::<String>::new());
    store.insert_user(none.clone()).await.expect("insert user");
    assert_eq!(
        store.get_user(a.id, narrow.id).await.unwrap(),
        Some(narrow.clone())
    );
    assert_eq!(
        store.get_user(a.id, none.id).await.unwrap(),
        Some(none.clone())
    );
    let listed = store.list_users(a.id).await.unwrap();
    let mut expected = vec![u, second, narrow, none];
    expected.sort_by(|x, y| x.email.cmp(&y.email));
    assert_eq!(listed, expected);
}

/// A token reads back exactly as written (timestamps to the microsecond, UTC).
pub async fn token_round_trip(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Basic]).await;
    let mut api = api_record(a.id, 1);
    api.role = Role::custom("Exporter", [Permission::from("fin.*.read.*")]);
    let personal = personal_record(&u, 2);
    insert(&store, &api).await;
    insert(&store, &personal).await;

    let found = store
        .find_token(&api.client_id)
        .await
        .unwrap()
        .expect("api token");
    assert_eq!(found.record, api);
    assert_eq!(found.user, None);
    let found = store
        .find_token(&personal.client_id)
        .await
        .unwrap()
        .expect("personal token");
    assert_eq!(found.record, personal);
    assert_eq!(found.user, Some(u));
    assert!(store.find_token(&"unknown".into()).await.unwrap().is_none());
}

/// A personal token's lookup carries its user's roles and data access as they are now;
/// an update changes only what it names, and only within the account.
pub async fn personal_lookup_has_current_roles(store: Store) {
    let a = account(&store).await;
    let u = user(&store, a.id, vec![Role::Admin]).await;
    let t = personal_record(&u, 1);
    insert(&store, &t).await;
    let ids = store
        .update_user(
            a.id,
            u.id,
            UserUpdate::default().roles(vec![Role::ReadOnly]),
        )
        .await
        .unwrap()
        .expect("user exists");
    assert_eq!(ids, vec![t.client_id.clone()]);
    let found = store.find_token(&t.client_id).await.unwrap().unwrap();
    let found = found.user.unwrap();
    assert_eq!(found.roles, vec![Role::ReadOnly]);
    assert_eq!(found.data_access, DataAccess::All);

    let ids = store
        .update_user(
            a.id,
            u.id,
            UserUpdate::default().data_access(DataAccess::only(["view-1"])),
        )
        .await
        .unwrap()
        .expect("user exists");
    assert_eq!(ids, vec![t.client_id.clone()]);
    let found = store.find_token(&t.client_id).await.unwrap().unwrap();
    let found = found.user.unwrap();
    assert_eq!(found.roles, vec![Role::ReadOnly], "roles untouched");
    assert_eq!(found.data_access, DataAccess::only(["view-1"]));

    store
        .update_user(
            a.id,
            u.id,
            UserUpdate::default()
                .roles(vec![Role::Basic])
                .data_access(DataAccess::All),
        )
        .await
        .unwrap()
        .expect("user exists");
    let mut expected = u.clone();
    expected.roles = vec![Role::Basic];
    assert_eq!(
        store.get_user(a.id, u.id).await.unwrap(),
        Some(expected.clone())
    );
    // An empty update changes nothing but still finds the user.
    let ids = store
        .update_user(a.id, u.id, UserUpdate::default())
        .await
        .unwrap()
        .expect("user exists");
    assert_eq!(ids, vec![t.client_id.clone()]);
    assert_eq!(store.get_user(a.id, u.id).await.unwrap(), Some(expected));

    let other = account(&store).await;
    let everything = UserUpdate::default()
        .roles(vec![Role::Admin])
        .data_access(DataAccess::only(["x"]));
    assert!(
        store
            .update_user(other.id, u.id, everything.clone())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .update_user(a.id, UserId::new_v4(), everything)
            .await
            .unwrap()
            .is_none()
    );
    let unchanged = store.get_user(a.id, u.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.roles,
        vec![Role::Basic],
        "another account cannot update"
    );
}

/// Inserting refuses a taken client id, a missing account, and a user of another account.
pub async fn insert_refusals(store: Store) {
    let a = account(&store).await;
    let t = api_record(a.id, 1);
    insert(&store, &t).await;
    let dup = store
        .insert_token(
            api_record(a.id, 2).with_client_id(&t.client_id),
            TokenLimits::default(),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let nowhere = store
        .insert_token(api_record(AccountId::new_v4(), 3), TokenLimits::default())
        .await;
    assert!(
        matches!(nowhere, Err(StoreError::NotFound(_))),
        "{nowhere:?}"
    );
    let other = account(&store).await;
    let stranger = user(&store, other.id, vec![Role::Basic]).await;
    let mut cross = personal_record(&stranger, 4);
    cross.account_id = a.id;
    let r = store.insert_token(cross, TokenLimits::default()).await;
    assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
    // The first token is untouched.
    assert_eq!(
        store
            .find_token(&t.client_id)
            .await
            .unwrap()
            .unwrap()
            .record,
        t
    );
}

impl TokenRecord {
    fn with_client_id(mut self, id: &ClientId) -> Self {
        self.client_id = id.clone();
        self
    }
}

/// Generates one `#[tokio::test]` per conformance check, in a module `$name`, for the
/// store the async block `$make` yields (`Option<Arc<dyn TokenAdminStore>>`; `None`
/// skips, printing why is the factory's job).
#[macro_export]
macro_rules! token_store_conformance {
    ($name:ident, $make:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            macro_rules! check {
                ($check:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $check() {
                        if let Some(store) = $make.await {
                            $crate::testing::$check(store).await;
                        }
                    }
                };
            }

            check!(accounts);
            check!(users);
            check!(token_round_trip);
            check!(personal_lookup_has_current_roles);
            check!(insert_refusals);
            check!(revoke_is_idempotent_and_scoped);
            check!(revoke_is_atomic);
            check!(remove_user_deletes_exactly_their_tokens);
            check!(listing);
            check!(concurrent_inserts);
            check!(usage);
            check!(revoke_deletes_what_the_token_issued);
            check!(user_removal_deletes_what_their_tokens_issued);
            check!(limits);
            check!(concurrent_issue_and_revoke);
            check!(conditional_user_update);
            check!(batch_stores_everything);
            check!(batch_is_all_or_nothing);
            check!(expired_tokens_do_not_count_toward_the_caps);
            check!(purge_deletes_what_expired_by_the_cutoff);
            check!(purge_takes_the_longest_expired_first);
            check!(insert_makes_room_among_expired_tokens);
            check!(users_per_account_are_capped);
            check!(rotation_has_a_grace_on_every_replica);
            check!(disable_and_enable_on_every_replica);
        }
    };
}
