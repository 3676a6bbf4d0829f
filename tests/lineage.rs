//! What a token-authenticated request issues never outlives its issuer; caps on tokens;
//! data-access rules; emails as one person.

mod common;

use common::Harness;
use finout_auth::{
    AdminError, ErrorCode, InvalidRequest, NewToken, Principal, Role,
    model::{DataAccess, User},
    store::{TokenLimits, UserUpdate},
};
use time::Duration;

async fn user(h: &Harness, email: &str, roles: Vec<Role>) -> User {
    h.admin.add_user(h.account.id, email, roles).await.unwrap()
}

/// A personal token of `user` living `minutes`, and the principal it authenticates as.
async fn short_lived(
    h: &Harness,
    user: &User,
    role: Role,
    minutes: u32,
) -> (finout_auth::IssuedToken, Principal) {
    let token = h
        .admin
        .issue_personal_token(
            h.account.id,
            user.id,
            NewToken::new("short", role).expires_in_minutes(minutes),
        )
        .await
        .unwrap();
    let principal = h.authenticate(&token).await.unwrap();
    (token, principal)
}

#[tokio::test]
async fn a_token_never_outlives_the_token_that_issued_it() {
    let h = Harness::new().await;
    let (parent, admin) = short_lived(&h, &h.admin_user, Role::Admin, 1).await;
    let session = h.admin.acting_as(&admin);
    // Asked to live forever, or a day: capped at the issuer's expiry.
    let api = session
        .issue_api_token(NewToken::new("forever", Role::Admin))
        .await
        .unwrap();
    let personal = session
        .issue_personal_token(NewToken::new("a day", Role::Admin).expires_in_minutes(1440))
        .await
        .unwrap();
    // Asked to live shorter: kept.
    let shorter = session
        .issue_personal_token(
            NewToken::new("shorter", Role::Admin).expires_in(Duration::seconds(30)),
        )
        .await
        .unwrap();
    let parent_expiry = parent.info.expires_at;
    assert_eq!(api.info.expires_at, parent_expiry);
    assert_eq!(personal.info.expires_at, parent_expiry);
    assert!(shorter.info.expires_at < parent_expiry);
    assert_eq!(api.info.issued_by.as_ref(), Some(&parent.client_id));
    for child in [&api, &personal, &shorter] {
        h.authenticate(child)
            .await
            .expect("works while its issuer does");
    }

    // A Basic user's 1-minute token cannot mint a never-expiring one either.
    let basic = user(&h, "basic@acme.test", vec![Role::Basic]).await;
    let (basic_token, basic_principal) = short_lived(&h, &basic, Role::Basic, 1).await;
    let minted = h
        .admin
        .acting_as(&basic_principal)
        .issue_personal_token(NewToken::new("forever", Role::ReadOnly))
        .await
        .unwrap();
    assert_eq!(minted.info.expires_at, basic_token.info.expires_at);

    // A minute later every one of them has expired with its issuer.
    h.clock.advance(Duration::minutes(1));
    for child in [&api, &personal, &shorter, &minted] {
        assert_eq!(
            h.authenticate(child).await.unwrap_err().code(),
            ErrorCode::TokenExpired
        );
    }
    // And an expired issuer issues nothing.
    let r = h
        .admin
        .acting_as(&admin)
        .issue_api_token(NewToken::new("late", Role::Basic))
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
}

#[tokio::test]
async fn revoking_a_token_or_removing_its_user_stops_what_it_issued_at_once() {
    let h = Harness::new().await;
    let admin_user = user(&h, "root@acme.test", vec![Role::Admin]).await;
    let (parent, admin) = short_lived(&h, &admin_user, Role::Admin, 60).await;
    let child = h
        .admin
        .acting_as(&admin)
        .issue_api_token(NewToken::new("child", Role::Admin))
        .await
        .unwrap();
    h.authenticate(&child).await.unwrap();
    let grandchild = h
        .admin
        .acting_as(&admin)
        .issue_personal_token(NewToken::new("sibling", Role::Basic))
        .await
        .unwrap();
    // An API token cannot issue (not a user), so the tree grows through personal tokens:
    // a second generation from the sibling.
    let sibling_principal = h.authenticate(&grandchild).await.unwrap();
    let second = h
        .admin
        .acting_as(&sibling_principal)
        .issue_personal_token(NewToken::new("second", Role::Basic))
        .await
        .unwrap();
    for t in [&child, &grandchild, &second] {
        h.authenticate(t).await.expect("cached now");
    }

    // Revoking the sibling stops its own child at once (cached entries included).
    h.admin
        .revoke_token(h.account.id, &grandchild.client_id)
        .await
        .unwrap();
    for gone in [&grandchild, &second] {
        assert_eq!(
            h.authenticate(gone).await.unwrap_err().code(),
            ErrorCode::InvalidCredentials
        );
    }
    h.authenticate(&child)
        .await
        .expect("not issued by the sibling");

    // Removing the user deletes their personal token and the API token it minted.
    let removed = h
        .admin
        .remove_user(h.account.id, admin_user.id)
        .await
        .unwrap();
    assert!(removed.contains(&parent.client_id) && removed.contains(&child.client_id));
    assert_eq!(
        h.authenticate(&child).await.unwrap_err().code(),
        ErrorCode::InvalidCredentials
    );
}

#[tokio::test]
async fn token_caps_answer_limit_reached() {
    let h = Harness::new().await;
    let admin = h
        .admin
        .clone()
        .with_token_limits(TokenLimits::default().per_user(2).per_account(4));
    let u = user(&h, "capped@acme.test", vec![Role::Basic]).await;
    for _ in 0..2 {
        admin
            .issue_personal_token(h.account.id, u.id, NewToken::new("p", Role::Basic))
            .await
            .unwrap();
    }
    let r = admin
        .issue_personal_token(h.account.id, u.id, NewToken::new("p", Role::Basic))
        .await;
    assert!(
        matches!(r, Err(AdminError::LimitReached("personal tokens per user"))),
        "{r:?}"
    );
    // The harness issued none yet; two API tokens fill the account's four.
    for _ in 0..2 {
        admin
            .issue_api_token(h.account.id, None, NewToken::new("a", Role::Basic))
            .await
            .unwrap();
    }
    let r = admin
        .issue_api_token(h.account.id, None, NewToken::new("a", Role::Basic))
        .await;
    let err = r.unwrap_err();
    assert!(matches!(
        err,
        AdminError::LimitReached("tokens per account")
    ));
    assert_eq!(err.to_string(), "limit reached: tokens per account");
}

#[tokio::test]
async fn admin_implies_all_data_and_nobody_widens_their_own_access() {
    let h = Harness::new().await;
    let some = DataAccess::only(["v-eng"]);
    let r = h
        .admin
        .add_user_with_access(h.account.id, "a@acme.test", vec![Role::Admin], some.clone())
        .await;
    assert!(matches!(
        r,
        Err(AdminError::Invalid(InvalidRequest::AdminDataAccess))
    ));
    let analyst = h
        .admin
        .add_user_with_access(h.account.id, "b@acme.test", vec![Role::Basic], some.clone())
        .await
        .unwrap();
    // Promoting a restricted user to Admin without lifting the restriction: refused.
    let r = h
        .admin
        .update_user(
            h.account.id,
            analyst.id,
            UserUpdate::default().roles(vec![Role::Admin]),
        )
        .await;
    assert!(matches!(
        r,
        Err(AdminError::Invalid(InvalidRequest::AdminDataAccess))
    ));
    assert_eq!(
        InvalidRequest::AdminDataAccess.to_string(),
        "a user holding Admin sees all data: their data access cannot be restricted"
    );
    // Restricting an Admin: refused. Both at once (Admin, all data): fine.
    let r = h
        .admin
        .update_user(
            h.account.id,
            h.admin_user.id,
            UserUpdate::default().data_access(some.clone()),
        )
        .await;
    assert!(matches!(
        r,
        Err(AdminError::Invalid(InvalidRequest::AdminDataAccess))
    ));
    h.admin
        .update_user(
            h.account.id,
            analyst.id,
            UserUpdate::default()
                .roles(vec![Role::Admin])
                .data_access(DataAccess::All),
        )
        .await
        .unwrap();

    // An Admin acting on themselves may narrow (drop to Read-only); then they can no longer
    // manage users at all, so they cannot widen themselves back.
    let me = h
        .authenticate(&h.personal_token(&analyst, Role::Admin).await)
        .await
        .unwrap();
    h.admin
        .acting_as(&me)
        .update_user(
            analyst.id,
            UserUpdate::default().roles(vec![Role::ReadOnly]),
        )
        .await
        .unwrap();
    let narrowed = h
        .authenticate(&h.personal_token(&analyst, Role::ReadOnly).await)
        .await
        .unwrap();
    let r = h
        .admin
        .acting_as(&narrowed)
        .update_user(analyst.id, UserUpdate::default().roles(vec![Role::Admin]))
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    let other_admin = h
        .authenticate(&h.personal_token(&h.admin_user, Role::Admin).await)
        .await
        .unwrap();
    // Narrowed now: another Admin restricts their data; they cannot lift it themselves.
    h.admin
        .acting_as(&other_admin)
        .update_user(analyst.id, UserUpdate::default().data_access(some.clone()))
        .await
        .unwrap();
    let reader = h
        .authenticate(&h.personal_token(&analyst, Role::ReadOnly).await)
        .await
        .unwrap();
    assert_eq!(reader.data_access(), &some);
}

#[tokio::test]
async fn emails_are_one_person_whatever_their_case_and_spacing() {
    let h = Harness::new().await;
    let alice = user(&h, "  Alice@Acme.TEST ", vec![Role::Basic]).await;
    assert_eq!(alice.email, "alice@acme.test");
    for again in ["alice@acme.test", "ALICE@acme.test", "\talice@acme.test\n"] {
        let r = h
            .admin
            .add_user(h.account.id, again, vec![Role::Basic])
            .await;
        assert!(
            matches!(
                r,
                Err(AdminError::Store(finout_auth::StoreError::Conflict(_)))
            ),
            "{again:?}: {r:?}"
        );
    }
    for bad in [
        "alice\u{0}@acme.test",
        "аlice@acme.test",
        "alice",
        "a b@acme.test",
    ] {
        let r = h.admin.add_user(h.account.id, bad, vec![Role::Basic]).await;
        assert!(
            matches!(r, Err(AdminError::Invalid(InvalidRequest::Email))),
            "{bad:?}: {r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_never_combine_into_an_admin_with_restricted_data() {
    let h = Harness::new().await;
    for round in 0..500 {
        let u = user(&h, &format!("u{round}@acme.test"), vec![Role::Basic]).await;
        let promote = tokio::spawn({
            let (admin, account) = (h.admin.clone(), h.account.id);
            async move {
                admin
                    .update_user(
                        account,
                        u.id,
                        UserUpdate::default().roles(vec![Role::Admin]),
                    )
                    .await
            }
        });
        let restrict = tokio::spawn({
            let (admin, account) = (h.admin.clone(), h.account.id);
            async move {
                admin
                    .update_user(
                        account,
                        u.id,
                        UserUpdate::default().data_access(DataAccess::only(["v1"])),
                    )
                    .await
            }
        });
        let (promoted, restricted) = (promote.await.unwrap(), restrict.await.unwrap());
        // Exactly one of them can apply: the other is refused by the rule, seeing the first.
        assert!(
            promoted.is_ok() != restricted.is_ok(),
            "round {round}: {promoted:?} {restricted:?}"
        );
        let now = h
            .admin
            .store()
            .get_user(h.account.id, u.id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !(now.holds(&Role::Admin) && now.data_access != DataAccess::All),
            "round {round}: {now:?}"
        );
    }
}
