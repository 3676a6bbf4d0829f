//! Rotation with a grace period, and disabling and enabling, over the mock's HTTP routes
//! (`POST /admin/{api,personal}-tokens/{clientId}/{rotate,disable,enable}`), under the
//! revoke rules, with the grace's end on the mock's injected clock.

mod common;

use std::net::SocketAddr;

use common::call;
use finout_auth::clock::ManualClock;
use finout_mock::MockServer;
use http::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

type Creds<'a> = Option<(&'a str, &'a str)>;

fn creds(s: &MockServer) -> Creds<'_> {
    Some((s.client_id(), s.secret_key()))
}

/// A token issued by the owner at `path` (API or personal): its credentials.
async fn issue(a: SocketAddr, s: &MockServer, path: &str, role: &str) -> (String, String) {
    let body = json!({"description": "rotating", "role": role});
    let (status, t) = call(a, Method::POST, path, creds(s), Some(body)).await;
    assert_eq!(status, 201, "{t}");
    let field = |f: &str| t[f].as_str().unwrap().to_owned();
    (field("clientId"), field("secretKey"))
}

async fn whoami(a: SocketAddr, id: &str, secret: &str) -> (u16, Value) {
    call(a, Method::GET, "/admin/whoami", Some((id, secret)), None).await
}

#[track_caller]
fn refused(answer: (u16, Value), what: &str) {
    assert_eq!(
        (answer.0, answer.1["error"].as_str()),
        (401, Some("invalid_credentials")),
        "{what}: {}",
        answer.1
    );
}

fn listed<'v>(list: &'v Value, id: &str) -> &'v Value {
    list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["clientId"] == id)
        .expect("listed")
}

#[tokio::test]
async fn rotation_over_http_has_a_grace_and_a_second_rotation_ends_it() {
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = ManualClock::new(start);
    let s = MockServer::builder().clock(clock.clone()).start().await;
    let a = s.address();
    let (id, old) = issue(a, &s, "/admin/api-tokens", "Basic").await;
    assert_eq!(whoami(a, &id, &old).await.0, 200);

    let rotate = format!("/admin/api-tokens/{id}/rotate");
    let (status, rotated) = call(
        a,
        Method::POST,
        &rotate,
        creds(&s),
        Some(json!({"graceSeconds": 3600})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["clientId"], id.as_str());
    assert_eq!(rotated["type"], "api");
    assert_eq!(rotated["role"], "Basic");
    let new = rotated["secretKey"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = OffsetDateTime::parse(
        rotated["previousSecretValidUntil"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    assert_eq!(until, start + Duration::hours(1));
    assert_eq!(whoami(a, &id, &new).await.0, 200, "the new secret");
    assert_eq!(
        whoami(a, &id, &old).await.0,
        200,
        "the old one, in its grace"
    );
    let (_, list) = call(a, Method::GET, "/admin/api-tokens", creds(&s), None).await;
    let token = listed(&list, &id);
    assert!(token["previousSecretValidUntil"].is_string(), "{token}");
    assert!(token.get("disabledAt").is_none(), "{token}");

    // The grace ends on the mock's clock.
    clock.advance(Duration::hours(1));
    refused(whoami(a, &id, &old).await, "old, past its grace");
    assert_eq!(whoami(a, &id, &new).await.0, 200);

    // Rotate twice: the second ends the first one's grace; no grace stops at once.
    let grace = Some(json!({"graceSeconds": 60}));
    let (status, r) = call(a, Method::POST, &rotate, creds(&s), grace.clone()).await;
    assert_eq!(status, 200, "{r}");
    let newer = r["secretKey"].as_str().unwrap().to_owned();
    assert_eq!(whoami(a, &id, &new).await.0, 200, "new, in its grace");
    let (status, r) = call(a, Method::POST, &rotate, creds(&s), Some(json!({}))).await;
    assert_eq!(status, 200, "{r}");
    assert!(r["previousSecretValidUntil"].is_null(), "{r}");
    let newest = r["secretKey"].as_str().unwrap().to_owned();
    refused(whoami(a, &id, &new).await, "new, after two rotations");
    refused(
        whoami(a, &id, &newer).await,
        "newer, rotated without a grace",
    );
    assert_eq!(whoami(a, &id, &newest).await.0, 200);

    // Past 7 days: 400 naming the cap; unknown fields: 400.
    let (status, body) = call(
        a,
        Method::POST,
        &rotate,
        creds(&s),
        Some(json!({"graceSeconds": 604_801})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("7 days"),
        "{body}"
    );
    let (status, _) = call(
        a,
        Method::POST,
        &rotate,
        creds(&s),
        Some(json!({"grace": 1})),
    )
    .await;
    assert_eq!(status, 400);
    // A personal token is not found under the API routes.
    let owner = format!("/admin/api-tokens/{}/rotate", s.client_id());
    let (status, body) = call(a, Method::POST, &owner, creds(&s), Some(json!({}))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn disable_and_enable_over_http() {
    let s = MockServer::start().await;
    let a = s.address();
    for (path, role) in [
        ("/admin/api-tokens", "Read-only"),
        ("/admin/personal-tokens", "Basic"),
    ] {
        let (id, secret) = issue(a, &s, path, role).await;
        assert_eq!(whoami(a, &id, &secret).await.0, 200);
        let (status, _) = call(
            a,
            Method::POST,
            &format!("{path}/{id}/disable"),
            creds(&s),
            None,
        )
        .await;
        assert_eq!(status, 204, "{path}: disable");
        refused(whoami(a, &id, &secret).await, "disabled");
        refused(whoami(a, &id, &secret).await, "disabled, again");
        let (_, list) = call(a, Method::GET, path, creds(&s), None).await;
        assert!(listed(&list, &id)["disabledAt"].is_string(), "{list}");
        let (status, _) = call(
            a,
            Method::POST,
            &format!("{path}/{id}/enable"),
            creds(&s),
            None,
        )
        .await;
        assert_eq!(status, 204, "{path}: enable");
        assert_eq!(whoami(a, &id, &secret).await.0, 200, "{path}: enabled");
        let (_, list) = call(a, Method::GET, path, creds(&s), None).await;
        assert!(listed(&list, &id).get("disabledAt").is_none(), "{list}");
    }
    let (status, body) = call(
        a,
        Method::POST,
        "/admin/api-tokens/no-such-token/disable",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

#[tokio::test]
async fn a_read_only_token_rotates_its_own_secret_and_touches_no_other() {
    let s = MockServer::start().await;
    let a = s.address();
    let (id, secret) = issue(a, &s, "/admin/personal-tokens", "Read-only").await;
    let reader = Some((id.as_str(), secret.as_str()));
    let (status, r) = call(
        a,
        Method::POST,
        &format!("/admin/personal-tokens/{id}/rotate"),
        reader,
        Some(json!({"graceSeconds": 0})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let rotated = r["secretKey"].as_str().unwrap().to_owned();
    refused(
        whoami(a, &id, &secret).await,
        "the replaced secret, no grace",
    );
    let reader = Some((id.as_str(), rotated.as_str()));
    assert_eq!(whoami(a, &id, &rotated).await.0, 200);
    let owner = s.client_id();
    for action in ["rotate", "disable", "enable"] {
        let (status, body) = call(
            a,
            Method::POST,
            &format!("/admin/personal-tokens/{owner}/{action}"),
            reader,
            Some(json!({})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("forbidden")),
            "{action}: {body}"
        );
    }
    assert_eq!(
        whoami(a, owner, s.secret_key()).await.0,
        200,
        "the owner's token"
    );
    // A token may disable itself (and then cannot enable itself).
    let (status, _) = call(
        a,
        Method::POST,
        &format!("/admin/personal-tokens/{id}/disable"),
        reader,
        None,
    )
    .await;
    assert_eq!(status, 204);
    refused(whoami(a, &id, &rotated).await, "disabled itself");
}
