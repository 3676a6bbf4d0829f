//! Issuing, listing and revoking, under Finout's rules: the matrix of the admin module's
//! docs, every cell, and the cases around it.

mod common;
#[path = "admin/matrix.rs"]
mod matrix;

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

/// Issue 22's case: a Read-only personal token of an Admin user can neither revoke that
/// user's Admin token nor mint tokens, so it can never fill the user's cap: the owner's own
/// issue goes through.
#[tokio::test]
async fn a_read_only_token_neither_revokes_its_users_admin_token_nor_blocks_its_issue() {
    let h = Harness::new().await;
    let admin_token = h.personal_token(&h.admin_user, Role::Admin).await;
    let reader = as_principal(&h, &h.admin_user, Role::ReadOnly).await;
    let session = h.admin.acting_as(&reader);
    let r = session.revoke_personal_token(&admin_token.client_id).await;
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    h.authenticate(&admin_token).await.expect("still works");
    for n in 0..100 {
        let r = session
            .issue_personal_token(NewToken::new(format!("fill {n}"), Role::ReadOnly))
            .await;
        assert!(matches!(r, Err(AdminError::Forbidden(_))), "{n}: {r:?}");
    }
    let owner = h.authenticate(&admin_token).await.unwrap();
    let issued = h
        .admin
        .acting_as(&owner)
        .issue_personal_token(NewToken::new("mine", Role::Admin))
        .await
        .expect("the owner's issue is never blocked");
    h.authenticate(&issued).await.expect("works");
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
async fn revoking_outside_ones_lineage_is_an_admin_users_and_tells_others_nothing() {
    let h = Harness::new().await;
    let frank = user(&h, "frank@acme.test", vec![Role::Basic]).await;
    let frank_token = h.personal_token(&frank, Role::Basic).await;
    let admin = as_principal(&h, &h.admin_user, Role::Admin).await;
    let admin_session = h.admin.acting_as(&admin);

    // For an Admin user, a personal token is not an API token, nor an unknown id a token.
    let r = admin_session.revoke_api_token(&frank_token.client_id).await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    let r = admin_session.revoke_personal_token(&"no-such".into()).await;
    assert!(matches!(r, Err(AdminError::NotFound(_))));
    h.authenticate(&frank_token).await.expect("still valid");

    // Frank may not revoke the Admin's token, and learns nothing from trying: an id that
    // exists and one that does not are both refused.
    let frank_p = h.authenticate(&frank_token).await.unwrap();
    let frank_session = h.admin.acting_as(&frank_p);
    let admins = h.personal_token(&h.admin_user, Role::Admin).await;
    for id in [&admins.client_id, &"no-such".into()] {
        let r = frank_session.revoke_personal_token(id).await;
        assert!(matches!(r, Err(AdminError::Forbidden(_))), "{id}: {r:?}");
    }
    h.authenticate(&admins).await.expect("still valid");

    // Someone else's personal token is the Admin user's to revoke.
    admin_session
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
