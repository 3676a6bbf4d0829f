//! The administration matrix of the admin module's docs, every cell: each kind of caller
//! tries each operation, and what it may not do changes nothing.

use finout_auth::store::Batch;
use finout_auth::{
    AdminError, AdminSession, ClientId, NewToken, Role,
    clock::Clock,
    model::{Permission, SecretHash, TokenKind, TokenRecord, User},
    store::TokenStore,
};

use super::{common::Harness, user};

/// What a caller's row of the matrix says (true: allowed; false: 403).
#[derive(Debug, Clone, Copy)]
struct Expect {
    issue_api: bool,
    list_api: bool,
    revoke_api: bool,
    issue_personal: bool,
    list_personal: Listing,
    revoke_self: bool,
    revoke_lineage: bool,
    /// `None`: an API token has no user.
    revoke_same_user: Option<bool>,
    revoke_other_user: bool,
    manage_users: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Listing {
    AllOfTheUser,
    ItselfAndItsLineage,
    Refused,
}

const ADMIN: Expect = Expect {
    issue_api: true,
    list_api: true,
    revoke_api: true,
    issue_personal: true,
    list_personal: Listing::AllOfTheUser,
    revoke_self: true,
    revoke_lineage: true,
    revoke_same_user: Some(true),
    revoke_other_user: true,
    manage_users: true,
};

const WRITER: Expect = Expect {
    issue_api: false,
    list_api: false,
    revoke_api: false,
    issue_personal: true,
    list_personal: Listing::ItselfAndItsLineage,
    revoke_self: true,
    revoke_lineage: true,
    revoke_same_user: Some(false),
    revoke_other_user: false,
    manage_users: false,
};

const READER: Expect = Expect {
    issue_personal: false,
    ..WRITER
};

const API: Expect = Expect {
    list_personal: Listing::Refused,
    revoke_same_user: None,
    ..READER
};

/// Who calls: a personal token (the user's roles when it is issued, its role, the user's
/// roles afterwards if they change) or an API token.
enum Caller {
    Personal(Vec<Role>, Role, Option<Vec<Role>>),
    Api(Role),
}

fn custom(name: &str, pattern: &str) -> Role {
    Role::custom(name, [Permission::from(pattern)])
}

/// The matrix: each caller, the role it asks for when it issues a personal token (always
/// within its own, so that a refusal is the write rule's), and its row.
fn matrix() -> Vec<(&'static str, Caller, Role, Expect)> {
    use Caller::{Api, Personal};
    let writes = custom("Views writer", "fin.megabill.write.views");
    let reads = custom("Reader", "fin.*.read.*");
    let tags = custom("Tags writer", "fin.tags.write.*");
    vec![
        (
            "Admin token, Admin user",
            Personal(vec![Role::Admin], Role::Admin, None),
            Role::Admin,
            ADMIN,
        ),
        (
            "Basic",
            Personal(vec![Role::Basic], Role::Basic, None),
            Role::Basic,
            WRITER,
        ),
        (
            "Basic token, Admin user",
            Personal(vec![Role::Admin], Role::Basic, None),
            Role::Basic,
            WRITER,
        ),
        (
            "API token role, personal",
            Personal(vec![Role::ApiToken], Role::ApiToken, None),
            Role::ApiToken,
            WRITER,
        ),
        (
            "custom role that writes",
            Personal(vec![writes.clone()], writes.clone(), None),
            writes.clone(),
            WRITER,
        ),
        (
            "Read-only",
            Personal(vec![Role::ReadOnly], Role::ReadOnly, None),
            Role::ReadOnly,
            READER,
        ),
        (
            "Read-only token, Admin user",
            Personal(vec![Role::Admin], Role::ReadOnly, None),
            Role::ReadOnly,
            READER,
        ),
        (
            "custom role that only reads",
            Personal(vec![reads.clone()], reads.clone(), None),
            reads,
            READER,
        ),
        (
            "Admin token, user demoted to Read-only",
            Personal(vec![Role::Admin], Role::Admin, Some(vec![Role::ReadOnly])),
            Role::ReadOnly,
            READER,
        ),
        (
            "writes views, user now writes only tags",
            Personal(
                vec![writes.clone(), tags.clone()],
                writes.clone(),
                Some(vec![tags]),
            ),
            writes,
            READER,
        ),
        (
            "API token, Admin role",
            Api(Role::Admin),
            Role::ReadOnly,
            API,
        ),
        (
            "API token, Read-only",
            Api(Role::ReadOnly),
            Role::ReadOnly,
            API,
        ),
    ]
}

/// A token issued by `issuer`, stored as a set-up stores it (so that callers who cannot
/// issue have a lineage too: tokens issued before a demotion, say).
async fn issued_by(h: &Harness, issuer: &ClientId, user: Option<&User>) -> ClientId {
    let id = ClientId::from(uuid::Uuid::new_v4().to_string());
    let kind = if user.is_some() {
        TokenKind::Personal
    } else {
        TokenKind::Api
    };
    let record = TokenRecord::new(
        id.clone(),
        kind,
        h.account.id,
        user.map(|u| u.id),
        "issued",
        Role::ReadOnly,
        SecretHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"),
        h.clock.now(),
        None,
        None,
    )
    .with_issuer(Some(issuer.clone()));
    h.admin
        .insert_batch(Batch::new().token(record))
        .await
        .unwrap();
    id
}

async fn exists(h: &Harness, id: &ClientId) -> bool {
    h.store.find_token(id).await.unwrap().is_some()
}

/// Allowed: done, `Ok`; refused: 403 `Forbidden`, never anything else.
#[track_caller]
fn assert_cell<T: std::fmt::Debug>(
    caller: &str,
    op: &str,
    allowed: bool,
    r: Result<T, AdminError>,
) {
    match (allowed, &r) {
        (true, Ok(_)) | (false, Err(AdminError::Forbidden(_))) => {}
        _ => panic!(
            "{caller} / {op}: expected {}, got {r:?}",
            if allowed { "Ok" } else { "403" }
        ),
    }
}

/// Revoke `id` as `session` would for a token of `kind`.
async fn revoke(
    session: &AdminSession<'_>,
    id: &ClientId,
    kind: TokenKind,
) -> Result<(), AdminError> {
    match kind {
        TokenKind::Api => session.revoke_api_token(id).await,
        TokenKind::Personal => session.revoke_personal_token(id).await,
    }
}

/// Every cell of the matrix in the admin module's docs: each caller tries each operation,
/// and what it may not do changes nothing.
#[tokio::test]
async fn every_cell_of_the_administration_matrix() {
    for (name, caller, issue_role, expect) in matrix() {
        let h = Harness::new().await;
        let other = user(&h, "other@acme.test", vec![Role::Basic]).await;
        let others_token = h.personal_token(&other, Role::Basic).await;
        let api_outside = h.api_token(Role::Basic).await;
        // The caller's token, and another token of its user outside its lineage.
        let (token, subject, sibling) = match caller {
            Caller::Personal(roles, role, then) => {
                let u = user(&h, "subject@acme.test", roles).await;
                let token = h.personal_token(&u, role.clone()).await;
                let sibling = h.personal_token(&u, role).await.client_id;
                if let Some(then) = then {
                    h.admin
                        .set_user_roles(h.account.id, u.id, then)
                        .await
                        .unwrap();
                }
                (token, Some(u), Some(sibling))
            }
            Caller::Api(role) => (h.api_token(role).await, None, None),
        };
        let kind = token.info.kind;
        let actor = h.authenticate(&token).await.unwrap();
        let session = h.admin.acting_as(&actor);
        let child = issued_by(&h, &token.client_id, subject.as_ref()).await;
        let grandchild = issued_by(&h, &child, subject.as_ref()).await;

        let r = session
            .issue_api_token(NewToken::new("minted", Role::ReadOnly))
            .await;
        assert_cell(name, "issue API", expect.issue_api, r);
        assert_cell(
            name,
            "list API",
            expect.list_api,
            session.list_api_tokens().await,
        );
        let r = session.revoke_api_token(&api_outside.client_id).await;
        assert_cell(name, "revoke API", expect.revoke_api, r);
        assert_eq!(
            exists(&h, &api_outside.client_id).await,
            !expect.revoke_api,
            "{name}"
        );
        let r = session
            .issue_personal_token(NewToken::new("minted", issue_role))
            .await;
        if let (Err(AdminError::Forbidden(why)), Some(_)) = (&r, &subject) {
            let by_the_write_rule = why.contains("write");
            assert!(by_the_write_rule, "{name}: refused for {why:?}");
        }
        assert_cell(name, "issue personal", expect.issue_personal, r);

        let listed = session.list_personal_tokens().await;
        let seen = |id: &ClientId| {
            listed
                .as_ref()
                .is_ok_and(|l| l.iter().any(|t| t.client_id == *id))
        };
        match expect.list_personal {
            Listing::Refused => {
                let refused = matches!(listed, Err(AdminError::Forbidden(_)));
                assert!(refused, "{name} / list personal: {listed:?}");
            }
            Listing::AllOfTheUser => {
                assert!(
                    seen(&token.client_id) && seen(&grandchild),
                    "{name}: {listed:?}"
                );
                assert!(sibling.as_ref().is_some_and(seen), "{name}: {listed:?}");
            }
            Listing::ItselfAndItsLineage => {
                assert!(
                    seen(&token.client_id) && seen(&grandchild),
                    "{name}: {listed:?}"
                );
                assert!(!sibling.as_ref().is_some_and(seen), "{name}: {listed:?}");
            }
        }
        assert!(
            !seen(&others_token.client_id),
            "{name}: another user's token listed"
        );

        let r = revoke(&session, &grandchild, kind).await;
        assert_cell(name, "revoke its lineage", expect.revoke_lineage, r);
        assert_eq!(
            exists(&h, &grandchild).await,
            !expect.revoke_lineage,
            "{name}"
        );
        match (expect.revoke_same_user, &sibling) {
            (Some(allowed), Some(sibling)) => {
                let r = session.revoke_personal_token(sibling).await;
                assert_cell(name, "revoke another token of its user", allowed, r);
                assert_eq!(exists(&h, sibling).await, !allowed, "{name}");
            }
            (None, None) => {}
            _ => panic!("{name}: a user's row needs a user"),
        }
        let r = session.revoke_personal_token(&others_token.client_id).await;
        assert_cell(
            name,
            "revoke another user's token",
            expect.revoke_other_user,
            r,
        );
        assert_eq!(
            exists(&h, &others_token.client_id).await,
            !expect.revoke_other_user
        );

        let added = session
            .add_user("new@acme.test", vec![Role::ReadOnly])
            .await;
        let new_id = added.as_ref().map(|u| u.id).unwrap_or(other.id);
        assert_cell(name, "add a user", expect.manage_users, added);
        let r = session.set_user_roles(new_id, vec![Role::Basic]).await;
        assert_cell(name, "update a user", expect.manage_users, r);
        assert_cell(
            name,
            "remove a user",
            expect.manage_users,
            session.remove_user(new_id).await,
        );
        assert!(exists(&h, &child).await, "{name}: untouched so far");

        let r = revoke(&session, &token.client_id, kind).await;
        assert_cell(name, "revoke itself", expect.revoke_self, r);
        assert!(h.authenticate(&token).await.is_err(), "{name}: revoked");
        assert!(
            !exists(&h, &child).await,
            "{name}: its lineage went with it"
        );
    }
}
