//! Finout's rules for token administration over HTTP: who may revoke and issue which token
//! (403 `forbidden`), the caps (409 `conflict` naming the cap, 400 `invalid_request` naming
//! the limit), and expired tokens (listed as expired, never counted), each answered in
//! Finout's error shape.

mod common;

use std::net::SocketAddr;

use common::{Connection, call};
use finout_auth::{
    ClientId, NewToken, Role,
    model::{SecretHash, TokenKind, TokenRecord},
    store::Batch,
};
use finout_mock::MockServer;
use http::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

/// Assert an error answer: `want` with `code`, in Finout's shape, its message naming `names`.
#[track_caller]
fn assert_error(status: u16, body: &Value, want: u16, code: &str, names: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want, Some(code)),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(names),
        "{message:?} does not name {names:?}"
    );
    assert!(body["requestId"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

/// The owner's token issues a token of `role`: its credentials.
async fn issue(a: SocketAddr, s: &MockServer, role: &str) -> (String, String) {
    let body = json!({"description": "issued", "role": role});
    let (status, t) = call(
        a,
        Method::POST,
        "/admin/personal-tokens",
        creds(s),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let field = |f: &str| t[f].as_str().unwrap().to_owned();
    (field("clientId"), field("secretKey"))
}

#[tokio::test]
async fn a_read_only_token_neither_revokes_its_users_admin_token_nor_blocks_its_issue() {
    let s = MockServer::start().await;
    let a = s.address();
    let (id, secret) = issue(a, &s, "Read-only").await;
    let reader = Some((id.as_str(), secret.as_str()));
    let owner_path = format!("/admin/personal-tokens/{}", s.client_id());
    let (status, body) = call(a, Method::DELETE, &owner_path, reader, None).await;
    assert_error(status, &body, 403, "forbidden", "revokes only itself");
    let mut connection = Connection::open(a).await;
    let mint = json!({"description": "fill", "role": "Read-only"});
    for _ in 0..100 {
        let (status, _, body) = connection
            .send(Method::POST, "/admin/personal-tokens", reader, Some(&mint))
            .await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_error(status, &body, 403, "forbidden", "write");
    }
    issue(a, &s, "Admin").await; // the owner's issue goes through
    let (status, _) = call(a, Method::GET, "/admin/whoami", creds(&s), None).await;
    assert_eq!(status, 200, "the owner's token still works");
}

#[tokio::test]
async fn past_the_users_cap_adding_one_answers_409() {
    let s = MockServer::start().await;
    let a = s.address();
    for n in 1..10_000 {
        s.admin()
            .add_user(s.account_id(), format!("u{n}@acme.test"), vec![Role::Basic])
            .await
            .unwrap();
    }
    let body = json!({"email": "over@acme.test", "roles": ["Basic"]});
    let (status, answer) = call(a, Method::POST, "/admin/users", creds(&s), Some(body)).await;
    assert_error(status, &answer, 409, "conflict", "users per account");
}

#[tokio::test]
async fn past_the_live_token_cap_issuing_answers_409() {
    let s = MockServer::start().await;
    for n in 1..100 {
        let new = NewToken::new(format!("{n}"), Role::Basic);
        s.admin()
            .issue_personal_token(s.account_id(), s.user_id(), new)
            .await
            .unwrap();
    }
    let body = json!({"description": "over", "role": "Basic"});
    let (status, answer) = call(
        s.address(),
        Method::POST,
        "/admin/personal-tokens",
        creds(&s),
        Some(body),
    )
    .await;
    assert_error(status, &answer, 409, "conflict", "personal tokens per user");
}

#[tokio::test]
async fn fields_past_their_limits_answer_400_naming_the_limit() {
    let s = MockServer::start().await;
    let a = s.address();
    let role =
        |name: String, permissions: Vec<String>| json!({"name": name, "permissions": permissions});
    let reads = |n: usize| {
        (0..n)
            .map(|i| format!("fin.p{i}.read.*"))
            .collect::<Vec<_>>()
    };
    let roles = |n: usize| {
        (0..n)
            .map(|i| role(format!("r{i}"), reads(1)))
            .collect::<Vec<_>>()
    };
    let user = |roles: Vec<Value>| json!({"email": "new@acme.test", "roles": roles});
    for (body, names) in [
        (user(roles(17)), "16 roles"),
        (
            user(vec![role("wide".into(), reads(101))]),
            "100 permissions",
        ),
        (
            user(vec![role("long".into(), vec!["f".repeat(129)])]),
            "1-128 bytes",
        ),
        (user(vec![role("n".repeat(65), reads(1))]), "1-64 bytes"),
    ] {
        let (status, answer) = call(a, Method::POST, "/admin/users", creds(&s), Some(body)).await;
        assert_error(status, &answer, 400, "invalid_request", names);
    }
    let (status, answer) = call(
        a,
        Method::POST,
        "/admin/users",
        creds(&s),
        Some(user(roles(16))),
    )
    .await;
    assert_eq!(status, 201, "16 roles: {answer}");
    let long = json!({"description": "d".repeat(1_025), "role": "Basic"});
    let (status, answer) = call(a, Method::POST, "/admin/api-tokens", creds(&s), Some(long)).await;
    assert_error(status, &answer, 400, "invalid_request", "1-1024 bytes");
}

#[tokio::test]
async fn expired_tokens_are_listed_as_expired_and_never_counted() {
    let s = MockServer::start().await;
    let now = OffsetDateTime::now_utc();
    let mut batch = Batch::new();
    for n in 0..99 {
        batch = batch.token(TokenRecord::new(
            ClientId::from(format!("expired-{n}")),
            TokenKind::Personal,
            s.account_id(),
            Some(s.user_id()),
            "expired",
            Role::Basic,
            SecretHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"),
            now - Duration::days(2),
            Some(now - Duration::days(1)),
            None,
        ));
    }
    s.admin().insert_batch(batch).await.unwrap();
    // One live (the mock's own) and 99 expired: a new one is issued.
    issue(s.address(), &s, "Basic").await;
    let (status, listed) = call(
        s.address(),
        Method::GET,
        "/admin/personal-tokens",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let tokens = listed["tokens"].as_array().unwrap();
    let expired = tokens.iter().filter(|t| t["expired"] == true).count();
    assert_eq!((tokens.len(), expired), (101, 99), "{listed}");
    let own = tokens
        .iter()
        .find(|t| t["clientId"] == s.client_id())
        .unwrap();
    assert_eq!(own["expired"], false);
}
