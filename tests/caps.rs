//! Every cap of the admin API, at its limit (accepted) and one past it (refused, naming the
//! limit, storing nothing), with the numbers the admin module documents.

mod common;

use common::Harness;
use finout_auth::{
    AdminError, InvalidRequest, NewToken, Role, TokenAdmin,
    model::{
        DataAccess, MAX_ACCOUNT_NAME_LEN, MAX_DESCRIPTION_LEN, MAX_PERMISSION_LEN,
        MAX_ROLE_NAME_LEN, MAX_ROLE_PERMISSIONS, MAX_ROLES_PER_USER, Permission,
    },
    store::{TokenLimits, UserLimits},
};

/// `n` distinct custom roles, each with one short permission.
fn roles(n: usize) -> Vec<Role> {
    (0..n)
        .map(|i| Role::custom(format!("role {i}"), [Permission::from("fin.*.read.*")]))
        .collect()
}

/// A custom role with `n` permissions of `len` bytes each.
fn role_with(n: usize, len: usize) -> Role {
    let permission = |i: usize| {
        let head = format!("fin.p{i}.read.");
        Permission::from(format!("{head}{}", "x".repeat(len - head.len())).as_str())
    };
    Role::custom("Wide", (0..n).map(permission))
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, AdminError>, why: InvalidRequest, limit: usize) {
    match r {
        Err(AdminError::Invalid(got)) if got == why => {
            let limit = limit.to_string();
            let text = why.to_string().replace(',', "");
            assert!(text.contains(&limit), "{text:?} does not name {limit}");
        }
        other => panic!("expected Invalid({why:?}), got {other:?}"),
    }
}

#[test]
fn the_documented_numbers() {
    assert_eq!(UserLimits::default().per_account, 10_000);
    let tokens = TokenLimits::default();
    assert_eq!((tokens.per_user, tokens.per_account), (100, 5_000));
    let kept = (tokens.retained_per_user, tokens.retained_per_account);
    assert_eq!(kept, (1_000, 50_000));
    assert_eq!(MAX_ROLES_PER_USER, 16);
    assert_eq!((MAX_ROLE_PERMISSIONS, MAX_PERMISSION_LEN), (100, 128));
    assert_eq!(MAX_ROLE_NAME_LEN, 64);
    assert_eq!((MAX_ACCOUNT_NAME_LEN, MAX_DESCRIPTION_LEN), (256, 1_024));
    let thirty_days = std::time::Duration::from_secs(30 * 86_400);
    assert_eq!(TokenAdmin::DEFAULT_EXPIRED_RETENTION, thirty_days);
}

#[tokio::test]
async fn an_account_holds_10_000_users_and_not_one_more() {
    let h = Harness::new().await; // one user already: the Admin
    for n in 1..10_000 {
        h.admin
            .add_user(h.account.id, format!("u{n}@acme.test"), vec![Role::Basic])
            .await
            .unwrap_or_else(|e| panic!("user {n}: {e}"));
    }
    let r = h
        .admin
        .add_user(h.account.id, "over@acme.test", vec![Role::Basic])
        .await;
    let err = r.unwrap_err();
    assert!(matches!(err, AdminError::LimitReached("users per account")));
    assert_eq!(err.to_string(), "limit reached: users per account");
    // Another account has its own 10,000; a removal makes room.
    let other = h.admin.create_account("Other").await.unwrap();
    h.admin
        .add_user(other.id, "over@acme.test", vec![Role::Basic])
        .await
        .expect("another account");
    let users = h.admin.store().list_users(h.account.id).await.unwrap();
    assert_eq!(users.len(), 10_000);
    h.admin
        .remove_user(h.account.id, users[0].id)
        .await
        .unwrap();
    h.admin
        .add_user(h.account.id, "over@acme.test", vec![Role::Basic])
        .await
        .expect("room after a removal");
}

#[tokio::test]
async fn the_user_cap_is_configurable() {
    let h = Harness::new().await;
    let admin = h
        .admin
        .clone()
        .with_user_limits(UserLimits::default().per_account(2));
    admin
        .add_user(h.account.id, "second@acme.test", vec![Role::Basic])
        .await
        .expect("two of two");
    let r = admin
        .add_user(h.account.id, "third@acme.test", vec![Role::Basic])
        .await;
    assert!(matches!(r, Err(AdminError::LimitReached(_))), "{r:?}");
}

#[tokio::test]
async fn a_user_holds_at_most_16_roles() {
    let h = Harness::new().await;
    let id = h.account.id;
    h.admin
        .add_user(id, "a@acme.test", roles(16))
        .await
        .expect("16 roles");
    let r = h.admin.add_user(id, "b@acme.test", roles(17)).await;
    assert_invalid(r, InvalidRequest::TooManyRoles, 16);
    let u = h
        .admin
        .add_user(id, "c@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    let r = h.admin.set_user_roles(id, u.id, roles(17)).await;
    assert_invalid(r, InvalidRequest::TooManyRoles, 16);
    let stored = h.admin.store().get_user(id, u.id).await.unwrap().unwrap();
    assert_eq!(stored.roles, vec![Role::Basic], "nothing stored");
}

#[tokio::test]
async fn a_custom_role_lists_at_most_100_permissions_of_128_bytes() {
    let h = Harness::new().await;
    let id = h.account.id;
    let add = |email: &str, role: Role| h.admin.add_user(id, email.to_owned(), vec![role]);
    add("a@acme.test", role_with(100, 128))
        .await
        .expect("at both limits");
    let r = add("b@acme.test", role_with(101, 16)).await;
    assert_invalid(r, InvalidRequest::TooManyPermissions, 100);
    let r = add("c@acme.test", role_with(1, 129)).await;
    assert_invalid(r, InvalidRequest::Permission, 128);
    for bad in [
        "",
        "fin..write",
        "fin.mega bill.write.views",
        ".fin",
        "fin.\u{e9}",
    ] {
        let r = add("d@acme.test", Role::custom("Bad", [Permission::from(bad)])).await;
        assert!(
            matches!(r, Err(AdminError::Invalid(InvalidRequest::Permission))),
            "{bad:?}"
        );
    }
    // A token's custom role is held to the same caps.
    let r = h
        .admin
        .issue_api_token(id, None, NewToken::new("t", role_with(101, 16)))
        .await;
    assert_invalid(r, InvalidRequest::TooManyPermissions, 100);
}

#[tokio::test]
async fn a_custom_role_name_is_1_to_64_bytes_and_not_a_predefined_name() {
    let h = Harness::new().await;
    let id = h.account.id;
    let named = |name: String| Role::custom(name, [Permission::from("fin.*.read.*")]);
    h.admin
        .add_user(id, "a@acme.test", vec![named("n".repeat(64))])
        .await
        .expect("64 bytes");
    let r = h
        .admin
        .add_user(id, "b@acme.test", vec![named("n".repeat(65))])
        .await;
    assert_invalid(r, InvalidRequest::RoleName, 64);
    for bad in ["", "   ", "Admin", "Read-only", "tab\there"] {
        let r = h
            .admin
            .add_user(id, "c@acme.test", vec![named(bad.into())])
            .await;
        assert!(
            matches!(r, Err(AdminError::Invalid(InvalidRequest::RoleName))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn an_account_name_is_1_to_256_bytes() {
    let h = Harness::new().await;
    h.admin
        .create_account("n".repeat(256))
        .await
        .expect("256 bytes");
    let r = h.admin.create_account("n".repeat(257)).await;
    assert_invalid(r, InvalidRequest::AccountName, 256);
    let r = h.admin.create_account("  ").await;
    assert!(matches!(
        r,
        Err(AdminError::Invalid(InvalidRequest::AccountName))
    ));
}

#[tokio::test]
async fn descriptions_emails_and_data_access_at_their_limits() {
    let h = Harness::new().await;
    let id = h.account.id;
    h.admin
        .issue_api_token(id, None, NewToken::new("d".repeat(1_024), Role::Basic))
        .await
        .expect("1,024 bytes");
    let r = h
        .admin
        .issue_api_token(id, None, NewToken::new("d".repeat(1_025), Role::Basic))
        .await;
    assert_invalid(r, InvalidRequest::Description, 1_024);

    let label = "d".repeat(63);
    let email = |last: &str| format!("{}@{label}.{label}.{label}.{last}", "l".repeat(64));
    assert_eq!(email(&"d".repeat(63)).len(), 320);
    h.admin
        .add_user(id, email(&"d".repeat(63)), vec![Role::Basic])
        .await
        .expect("320 bytes");
    let r = h.admin.add_user(
        id,
        email(&format!("{}.d", "d".repeat(62))),
        vec![Role::Basic],
    );
    assert_invalid(r.await, InvalidRequest::Email, 320);

    let ids = |n: usize, len: usize| DataAccess::only((0..n).map(|i| format!("{i:0>len$}")));
    h.admin
        .add_user_with_access(id, "a@acme.test", vec![Role::Basic], ids(1_000, 256))
        .await
        .expect("1,000 ids of 256 bytes");
    let r = h
        .admin
        .add_user_with_access(id, "b@acme.test", vec![Role::Basic], ids(1_001, 8))
        .await;
    assert_invalid(r, InvalidRequest::TooManyDataAccessIds, 1_000);
    let r = h
        .admin
        .add_user_with_access(id, "c@acme.test", vec![Role::Basic], ids(1, 257))
        .await;
    assert_invalid(r, InvalidRequest::DataAccessId, 256);
}

#[tokio::test]
async fn a_user_holds_100_live_personal_tokens_and_not_one_more() {
    let h = Harness::new().await;
    for n in 0..100 {
        h.admin
            .issue_personal_token(
                h.account.id,
                h.admin_user.id,
                NewToken::new(format!("{n}"), Role::Admin),
            )
            .await
            .unwrap_or_else(|e| panic!("token {n}: {e}"));
    }
    let r = h
        .admin
        .issue_personal_token(
            h.account.id,
            h.admin_user.id,
            NewToken::new("over", Role::Admin),
        )
        .await;
    assert!(
        matches!(r, Err(AdminError::LimitReached("personal tokens per user"))),
        "{r:?}"
    );
}
#[tokio::test]
async fn bad_requests_are_invalid_not_panics() {
    let h = Harness::new().await;
    let id = h.account.id;
    let cases = [
        NewToken::new("", Role::Basic),
        NewToken::new("   ", Role::Basic),
        NewToken::new("x".repeat(1025), Role::Basic),
        NewToken::new("d", Role::Basic).expires_in(time::Duration::ZERO),
        NewToken::new("d", Role::Basic).expires_in(time::Duration::minutes(-5)),
        NewToken::new("d", Role::Basic).expires_in(time::Duration::MAX),
    ];
    for new in cases {
        let r = h.admin.issue_api_token(id, None, new.clone()).await;
        assert!(matches!(r, Err(AdminError::Invalid(_))), "{new:?}: {r:?}");
    }
    let r = h.admin.add_user(id, "", vec![Role::Basic]).await;
    assert!(matches!(r, Err(AdminError::Invalid(_))));
    let r = h.admin.add_user(id, "x@acme.test", vec![]).await;
    assert!(matches!(r, Err(AdminError::Invalid(_))));
    let r = h
        .admin
        .add_user(id, "admin@acme.test", vec![Role::Basic])
        .await;
    assert!(
        matches!(r, Err(AdminError::Store(_))),
        "duplicate email: {r:?}"
    );
    let nowhere = finout_auth::AccountId::new_v4();
    let r = h
        .admin
        .add_user(nowhere, "y@acme.test", vec![Role::Basic])
        .await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    let r = h
        .admin
        .issue_api_token(nowhere, None, NewToken::new("d", Role::Basic))
        .await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
}
