//! Issuing, listing and revoking, under Finout's rules.

mod common;

use common::Harness;
use finout_auth::{
    AdminError, NewToken, Principal, Role,
    model::{TokenKind, User},
    store::TokenFilter,
};

async fn as_principal(h: &Harness, user: &User, role: Role) -> Principal {
    let token = h.personal_token(user, role).await;
    h.authenticate(&token).await.unwrap()
}

async fn user(h: &Harness, email: &str, roles: Vec<Role>) -> User {
    h.admin.add_user(h.account.id, email, roles).await.unwrap()
}

#[tokio::test]
async fn only_a_user_holding_admin_issues_api_tokens() {
    let h = Harness::new().await;
    let admin = as_principal(&h, &h.admin_user, Role::Admin).await;
    let issued = h
        .admin
        .acting_as(&admin)
        .issue_api_token(NewToken::new("ci", Role::ReadOnly))
        .await
        .unwrap();
    assert_eq!(issued.info.kind, TokenKind::Api);
    assert_eq!(issued.info.created_by, Some(h.admin_user.id));
    h.authenticate(&issued).await.expect("the new token works");

    let basic_user = user(&h, "basic@acme.test", vec![Role::Basic]).await;
    let basic = as_principal(&h, &basic_user, Role::Basic).await;
    let api_admin = h
        .authenticate(&h.api_token(Role::Admin).await)
        .await
        .unwrap();
    // An Admin user acting through a token with a lesser role is not an Admin either.
    let admin_via_reader = as_principal(&h, &h.admin_user, Role::ReadOnly).await;
    for actor in [&basic, &api_admin, &admin_via_reader] {
        let r = h
            .admin
            .acting_as(actor)
            .issue_api_token(NewToken::new("x", Role::Basic))
            .await;
        assert!(matches!(r, Err(AdminError::Forbidden(_))), "{actor:?}");
        let r = h.admin.acting_as(actor).list_api_tokens().await;
        assert!(matches!(r, Err(AdminError::Forbidden(_))));
        let r = h
            .admin
            .acting_as(actor)
            .revoke_api_token(&issued.client_id)
            .await;
        assert!(matches!(r, Err(AdminError::Forbidden(_))));
    }
}

#[tokio::test]
async fn a_personal_token_never_holds_more_than_its_user() {
    let h = Harness::new().await;
    let erin = user(&h, "erin@acme.test", vec![Role::Basic]).await;
    let erin_p = as_principal(&h, &erin, Role::Basic).await;
    let session = h.admin.acting_as(&erin_p);
    let r = session
        .issue_personal_token(NewToken::new("up", Role::Admin))
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))));
    // Less is fine.
    let t = session
        .issue_personal_token(NewToken::new("down", Role::ReadOnly))
        .await
        .unwrap();
    assert_eq!(t.info.user_id, Some(erin.id));
    // A read-only token of an Admin user cannot mint itself an Admin token.
    let reader = as_principal(&h, &h.admin_user, Role::ReadOnly).await;
    let r = h
        .admin
        .acting_as(&reader)
        .issue_personal_token(NewToken::new("escalate", Role::Admin))
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))));
    // The trusted path checks the user's roles too.
    let r = h
        .admin
        .issue_personal_token(h.account.id, erin.id, NewToken::new("x", Role::Admin))
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))));
}

#[tokio::test]
async fn an_api_token_cannot_issue_personal_tokens() {
    let h = Harness::new().await;
    let api = h
        .authenticate(&h.api_token(Role::Admin).await)
        .await
        .unwrap();
    let r = h
        .admin
        .acting_as(&api)
        .issue_personal_token(NewToken::new("x", Role::Basic))
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))));
}

#[tokio::test]
async fn listings_never_show_a_secret_or_hash() {
    let h = Harness::new().await;
    let admin = as_principal(&h, &h.admin_user, Role::Admin).await;
    let session = h.admin.acting_as(&admin);
    let api = session
        .issue_api_token(NewToken::new("ci", Role::Basic).expires_in_minutes(30))
        .await
        .unwrap();
    let personal = session
        .issue_personal_token(NewToken::new("laptop", Role::Admin))
        .await
        .unwrap();
    let listed = session.list_api_tokens().await.unwrap();
    assert_eq!(listed, vec![api.info.clone()]);
    let own = session.list_personal_tokens().await.unwrap();
    assert!(own.iter().any(|t| t.client_id == personal.client_id));
    let json = serde_json::to_string(&(listed, own)).unwrap();
    for secret in [&api.secret_key, &personal.secret_key] {
        assert!(!json.contains(secret.expose_secret()));
    }
    assert!(!json.contains("argon2"));
    assert!(json.contains("\"expiresAt\""));
}

#[tokio::test]
async fn revoking_is_scoped_to_what_the_caller_may_touch() {
    let h = Harness::new().await;
    let frank = user(&h, "frank@acme.test", vec![Role::Basic]).await;
    let frank_token = h.personal_token(&frank, Role::Basic).await;
    let admin = as_principal(&h, &h.admin_user, Role::Admin).await;
    let admin_session = h.admin.acting_as(&admin);

    // Someone else's personal token is "not found", even for an Admin.
    let r = admin_session
        .revoke_personal_token(&frank_token.client_id)
        .await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    // A personal token is not an API token.
    let r = admin_session.revoke_api_token(&frank_token.client_id).await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    h.authenticate(&frank_token).await.expect("still valid");

    let frank_p = h.authenticate(&frank_token).await.unwrap();
    h.admin
        .acting_as(&frank_p)
        .revoke_personal_token(&frank_token.client_id)
        .await
        .unwrap();
    assert!(h.authenticate(&frank_token).await.is_err());
    let r = h
        .admin
        .revoke_token(h.account.id, &frank_token.client_id)
        .await;
    assert!(matches!(r, Err(AdminError::NotFound(_))), "revoking twice");
}

#[tokio::test]
async fn another_accounts_token_is_not_found() {
    let h = Harness::new().await;
    let other = h.admin.create_account("Other").await.unwrap();
    let theirs = h
        .admin
        .issue_api_token(other.id, None, NewToken::new("theirs", Role::Basic))
        .await
        .unwrap();
    let admin = as_principal(&h, &h.admin_user, Role::Admin).await;
    let r = h
        .admin
        .acting_as(&admin)
        .revoke_api_token(&theirs.client_id)
        .await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    let r = h.admin.revoke_token(h.account.id, &theirs.client_id).await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    assert!(
        h.admin
            .acting_as(&admin)
            .list_api_tokens()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn users_are_managed_by_admin_users_only() {
    let h = Harness::new().await;
    let admin = as_principal(&h, &h.admin_user, Role::Admin).await;
    let session = h.admin.acting_as(&admin);
    let gina = session
        .add_user("gina@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    let gina_p = as_principal(&h, &gina, Role::Basic).await;
    let r = h
        .admin
        .acting_as(&gina_p)
        .remove_user(h.admin_user.id)
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))));
    let r = h
        .admin
        .acting_as(&gina_p)
        .set_user_roles(gina.id, vec![Role::Admin])
        .await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))));
    session
        .set_user_roles(gina.id, vec![Role::ReadOnly])
        .await
        .unwrap();
    session.remove_user(gina.id).await.unwrap();
    let r = session.remove_user(gina.id).await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
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

#[tokio::test]
async fn listing_filters_by_kind_and_owner() {
    let h = Harness::new().await;
    let api = h.api_token(Role::Basic).await;
    let personal = h.personal_token(&h.admin_user, Role::Admin).await;
    let all = h
        .admin
        .list_tokens(h.account.id, TokenFilter::All)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let only_api = h
        .admin
        .list_tokens(h.account.id, TokenFilter::Api)
        .await
        .unwrap();
    assert_eq!(
        only_api.iter().map(|t| &t.client_id).collect::<Vec<_>>(),
        vec![&api.client_id]
    );
    let mine = h
        .admin
        .list_tokens(h.account.id, TokenFilter::PersonalOf(h.admin_user.id))
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|t| &t.client_id).collect::<Vec<_>>(),
        vec![&personal.client_id]
    );
}
