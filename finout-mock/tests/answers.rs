//! How the mock signs and answers, as Finout does: `createdBy`/`updatedBy` are emails
//! whatever token wrote, a 400 names the field and what it expects (never the parser's
//! text), and every answer carries `x-request-id`.

mod common;

use common::{call, call_full};
use finout_auth::{NewToken, Role};
use finout_mock::MockServer;
use http::Method;
use serde_json::{Value, json};

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

const ADMIN_EMAIL: &str = "admin@finout-mock.local";

fn tag() -> Value {
    json!({"name": "team", "defaultValue": "none", "rules": []})
}

/// A V1 and a V2 tag written with `token`: both signatures (create, then update) as read
/// back through V1 and V2.
async fn signatures(server: &MockServer, token: (&str, &str)) -> Vec<Value> {
    let addr = server.address();
    let (status, v1) = call(
        addr,
        Method::POST,
        "/v1/virtual-tags",
        Some(token),
        Some(tag()),
    )
    .await;
    assert_eq!(status, 201, "{v1}");
    let (status, v2) = call(
        addr,
        Method::POST,
        "/v2/virtual-tags",
        Some(token),
        Some(tag()),
    )
    .await;
    assert_eq!(status, 200, "{v2}");
    let v1_id = v1["id"].as_str().unwrap();
    let v2_id = v2["data"]["id"].as_str().unwrap();
    let path = format!("/v2/virtual-tags/{v2_id}");
    let (status, _) = call(addr, Method::PUT, &path, Some(token), Some(tag())).await;
    assert_eq!(status, 200);
    let mut seen = vec![v1["createdBy"].clone(), v1["updatedBy"].clone()];
    for id in [v1_id, v2_id] {
        let (_, read) = call(
            addr,
            Method::GET,
            &format!("/v2/virtual-tags/{id}"),
            Some(token),
            None,
        )
        .await;
        seen.push(read["data"]["createdBy"].clone());
        seen.push(read["data"]["updatedBy"].clone());
        let (_, read) = call(
            addr,
            Method::GET,
            &format!("/v1/virtual-tags/{id}"),
            Some(token),
            None,
        )
        .await;
        seen.push(read["createdBy"].clone());
        seen.push(read["updatedBy"].clone());
    }
    let (_, listed) = call(addr, Method::GET, "/v2/virtual-tags", Some(token), None).await;
    for t in listed["data"]["virtualTags"].as_array().unwrap() {
        seen.push(t["createdBy"].clone());
    }
    seen
}

#[tokio::test]
async fn a_tag_written_with_an_api_token_is_signed_with_the_email_of_the_user_who_created_it() {
    let server = MockServer::start().await;
    let (status, issued) = call(
        server.address(),
        Method::POST,
        "/admin/api-tokens",
        creds(&server),
        Some(json!({"description": "writer", "role": "Basic"})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let token = (
        issued["clientId"].as_str().unwrap(),
        issued["secretKey"].as_str().unwrap(),
    );
    let seen = signatures(&server, token).await;
    assert!(seen.len() >= 12, "{seen:?}");
    for signature in seen {
        assert_eq!(signature, ADMIN_EMAIL);
    }
    // An endpoint too.
    let (status, endpoint) = call(
        server.address(),
        Method::POST,
        "/v1/endpoints",
        Some(token),
        Some(json!({"type": "email", "name": "ops", "configuration": {"to": "ops@acme.test"}})),
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    assert_eq!(endpoint["endpoint"]["createdBy"], ADMIN_EMAIL);
}

#[tokio::test]
async fn an_api_token_no_user_created_signs_with_the_documented_stand_in_address() {
    let server = MockServer::start().await;
    let account = server.account_id();
    let admin = server.admin();
    let orphan = admin
        .issue_api_token(account, None, NewToken::new("seeded", Role::Basic))
        .await
        .unwrap();
    // Created by a user who is removed since: the same stand-in.
    let dev = admin
        .add_user(account, "dev@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    let left = admin
        .issue_api_token(account, Some(dev.id), NewToken::new("left", Role::Basic))
        .await
        .unwrap();
    let stand_in = format!("api-token@{account}.finout-mock.local");
    let token = (orphan.client_id.as_str(), orphan.secret_key.expose_secret());
    for signature in signatures(&server, token).await {
        assert_eq!(signature, stand_in.as_str());
    }
    let token = (left.client_id.as_str(), left.secret_key.expose_secret());
    let (_, before) = call(
        server.address(),
        Method::POST,
        "/v1/virtual-tags",
        Some(token),
        Some(tag()),
    )
    .await;
    assert_eq!(before["createdBy"], "dev@acme.test");
    admin.remove_user(account, dev.id).await.unwrap();
    let (status, after) = call(
        server.address(),
        Method::POST,
        "/v1/virtual-tags",
        Some(token),
        Some(tag()),
    )
    .await;
    assert_eq!(status, 201, "the token outlives its creator: {after}");
    assert_eq!(after["createdBy"], stand_in.as_str());
    // A plain address: one `@`, and a domain of labels of letters, digits and hyphens.
    let (local, domain) = stand_in.split_once('@').unwrap();
    assert!(!local.is_empty() && !local.contains('@'));
    assert!(domain.split('.').all(|l| (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')));
}

#[tokio::test]
async fn a_personal_token_signs_with_its_users_email() {
    let server = MockServer::start().await;
    let seen = signatures(&server, (server.client_id(), server.secret_key())).await;
    for signature in seen {
        assert_eq!(signature, ADMIN_EMAIL);
    }
}

#[tokio::test]
async fn a_400_names_the_field_and_what_it_expects_in_the_apis_words() {
    let server = MockServer::start().await;
    let addr = server.address();
    for (method, path, body, expected) in [
        (
            Method::POST,
            "/v1/cost/query-by-view",
            Some(json!({"viewId": 5})),
            "viewId: expected a string, got a number",
        ),
        (
            Method::POST,
            "/admin/api-tokens",
            Some(json!({"description": "x", "role": "Basic", "expiresInMinutes": -1})),
            "expiresInMinutes: expected a whole number from 0 to 4294967295",
        ),
        (
            Method::POST,
            "/admin/api-tokens",
            Some(json!({"role": "Basic"})),
            "description: required",
        ),
        (
            Method::GET,
            "/v2/data/cost-usage/q/results?pageSize=many",
            None,
            "pageSize: expected a number",
        ),
    ] {
        let (status, headers, answer) = call_full(addr, method, path, creds(&server), body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"], "invalid_request");
        assert_eq!(answer["message"], expected, "{path}");
        assert_eq!(
            headers["x-request-id"].to_str().unwrap(),
            answer["requestId"].as_str().unwrap()
        );
    }
    // Text that is not JSON: no parser position.
    let text = "{\"viewId\":";
    let request = format!(
        "POST /v1/cost/query-by-view HTTP/1.1\r\nHost: mock\r\nx-finout-client-id: {}\r\n\
         x-finout-secret-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        server.client_id(),
        server.secret_key(),
        text.len()
    );
    let answer = raw(addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"message\":\"the body is not valid JSON (it breaks off at viewId)\""),
        "{answer}"
    );
}

#[tokio::test]
async fn every_answer_carries_x_request_id_404_and_405_included() {
    let server = MockServer::start().await;
    let addr = server.address();
    for (method, path, who, status) in [
        (Method::GET, "/v1/no-such-route", creds(&server), 404),
        (Method::DELETE, "/v1/view", creds(&server), 405),
        (Method::POST, "/healthz", None, 405),
        (Method::GET, "/healthz", None, 200),
        (Method::GET, "/v1/view", creds(&server), 200),
        (Method::GET, "/v1/view", None, 401),
        (Method::GET, "/v1/view", Some(("nobody", "nothing")), 401),
    ] {
        let (got, headers, answer) = call_full(addr, method.clone(), path, who, None).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        let id = headers
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{method} {path}: no x-request-id"))
            .to_str()
            .unwrap();
        assert_eq!(id.len(), 36, "{method} {path}: a UUID: {id}");
        if got >= 400 || path == "/v1/view" {
            // An error's body and a Finout answer's body name the header's id.
            assert_eq!(answer["requestId"], id, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_clients_request_id_is_echoed_on_errors_and_successes() {
    let server = MockServer::start().await;
    for (path, status) in [("/v1/no-such-route", 404), ("/v1/view", 200)] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: mock\r\nx-request-id: trace-42\r\nx-finout-client-id: {}\r\n\
             x-finout-secret-key: {}\r\nConnection: close\r\n\r\n",
            server.client_id(),
            server.secret_key()
        );
        let answer = raw(server.address(), &request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("\r\nx-request-id: trace-42\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\"requestId\":\"trace-42\""), "{answer}");
    }
}

async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}
