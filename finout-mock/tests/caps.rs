//! What one account keeps, capped, over HTTP: virtual tags (500), endpoints (100), values with
//! metadata per tag (1,000), rules per tag (1,000) and ids per `groups`/`endpoints` list
//! (1,000, also when merged through V2). Each refusal is in Finout's error shape and changes
//! nothing; the last request under each cap is accepted.

mod common;

use std::net::SocketAddr;

use common::call;
use finout_mock::MockServer;
use http::Method;
use serde_json::{Map, Value, json};

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

/// Assert `status` and `body` are the error `code` answered with `want`, in Finout's shape.
#[track_caller]
fn assert_error(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["requestId"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

fn tag(name: &str) -> Value {
    json!({"name": name, "rules": [], "defaultValue": "none"})
}

async fn create_tag(a: SocketAddr, s: &MockServer) -> String {
    let (status, body) = call(
        a,
        Method::POST,
        "/v1/virtual-tags",
        creds(s),
        Some(tag("t")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_account_keeps_at_most_500_virtual_tags() {
    let s = MockServer::builder().rate_limits(false).start().await;
    let a = s.address();
    let mut ids = Vec::new();
    for i in 0..500 {
        let (status, body) = call(
            a,
            Method::POST,
            "/v1/virtual-tags",
            creds(&s),
            Some(tag(&format!("t{i}"))),
        )
        .await;
        assert_eq!(status, 201, "tag {i}: {body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // The 501st, through either API.
    for path in ["/v1/virtual-tags", "/v2/virtual-tags"] {
        let (status, body) = call(a, Method::POST, path, creds(&s), Some(tag("over"))).await;
        assert_error(status, &body, 409, "conflict");
    }
    let (_, list) = call(a, Method::GET, "/v1/virtual-tags", creds(&s), None).await;
    assert_eq!(list["virtualTags"].as_array().unwrap().len(), 500);
    // Replacing one at the cap is no new tag.
    let path = format!("/v1/virtual-tags/{}", ids[0]);
    let (status, body) = call(a, Method::PUT, &path, creds(&s), Some(tag("renamed"))).await;
    assert_eq!(status, 200, "{body}");
    // Deleting one makes room for one.
    let (status, _) = call(a, Method::DELETE, &path, creds(&s), None).await;
    assert_eq!(status, 204);
    let (status, body) = call(
        a,
        Method::POST,
        "/v2/virtual-tags",
        creds(&s),
        Some(tag("new")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        a,
        Method::POST,
        "/v1/virtual-tags",
        creds(&s),
        Some(tag("over")),
    )
    .await;
    assert_error(status, &body, 409, "conflict");
}

#[tokio::test]
async fn an_account_keeps_at_most_100_endpoints() {
    let s = MockServer::start().await;
    let a = s.address();
    let endpoint = |i: usize| json!({"type": "email", "name": format!("e{i}"), "configuration": {"to": format!("e{i}@acme.test")}});
    for i in 0..100 {
        let (status, body) = call(
            a,
            Method::POST,
            "/v1/endpoints",
            creds(&s),
            Some(endpoint(i)),
        )
        .await;
        assert_eq!(status, 200, "endpoint {i}: {body}");
    }
    let (status, body) = call(
        a,
        Method::POST,
        "/v1/endpoints",
        creds(&s),
        Some(endpoint(100)),
    )
    .await;
    assert_error(status, &body, 409, "conflict");
    let (status, list) = call(a, Method::GET, "/v1/endpoints", creds(&s), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 100);
}

/// Metadata for `n` values, named from `first` on.
fn values(first: usize, n: usize) -> Value {
    let values: Map<String, Value> = (first..first + n)
        .map(|i| {
            (
                format!("v{i:04}"),
                json!({"customMetadata": {"owner": "ops"}}),
            )
        })
        .collect();
    Value::Object(values)
}

async fn metadata_len(a: SocketAddr, s: &MockServer, path: &str) -> usize {
    let (status, body) = call(a, Method::GET, path, creds(s), None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["metadata"].as_object().unwrap().len()
}

#[tokio::test]
async fn a_tag_keeps_metadata_for_at_most_1000_values() {
    let s = MockServer::start().await;
    let a = s.address();
    let id = create_tag(a, &s).await;
    let (v1, v2) = (
        format!("/v1/virtual-tags/{id}/metadata"),
        format!("/v2/virtual-tags/{id}/metadata"),
    );
    // One body: 1,000 values are kept, 1,001 refused (through either API).
    for path in [&v1, &v2] {
        let (status, body) = call(a, Method::PUT, path, creds(&s), Some(values(0, 1001))).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, body) = call(a, Method::PUT, &v1, creds(&s), Some(values(0, 1000))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(metadata_len(a, &s, &v2).await, 1000);
    // V2 keeps the values a PUT does not name: one more value is one too many...
    let (status, body) = call(a, Method::PUT, &v2, creds(&s), Some(values(1000, 1))).await;
    assert_error(status, &body, 400, "invalid_request");
    assert_eq!(metadata_len(a, &s, &v2).await, 1000);
    // ...while changing one it has is not.
    let (status, body) = call(a, Method::PUT, &v2, creds(&s), Some(values(999, 1))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(metadata_len(a, &s, &v2).await, 1000);
}

#[tokio::test]
async fn a_tag_has_at_most_1000_rules() {
    let s = MockServer::start().await;
    let a = s.address();
    let with_rules = |n: usize| {
        let rules: Vec<Value> = (0..n).map(|i| json!({"to": format!("r{i}")})).collect();
        json!({"name": "many", "rules": rules, "defaultValue": "none"})
    };
    for path in ["/v1/virtual-tags", "/v2/virtual-tags"] {
        let (status, body) = call(a, Method::POST, path, creds(&s), Some(with_rules(1001))).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, body) = call(
        a,
        Method::POST,
        "/v1/virtual-tags",
        creds(&s),
        Some(with_rules(1000)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/v1/virtual-tags/{id}"),
        format!("/v2/virtual-tags/{id}"),
    ] {
        let (status, body) = call(a, Method::PUT, &path, creds(&s), Some(with_rules(1001))).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (_, tag) = call(
        a,
        Method::GET,
        &format!("/v1/virtual-tags/{id}"),
        creds(&s),
        None,
    )
    .await;
    assert_eq!(tag["rules"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn merged_metadata_keeps_at_most_1000_ids_per_list() {
    let s = MockServer::start().await;
    let a = s.address();
    let id = create_tag(a, &s).await;
    let path = format!("/v2/virtual-tags/{id}/metadata");
    let ids = |from: usize, n: usize| -> Vec<String> {
        (from..from + n).map(|i| format!("g-{i:04}")).collect()
    };
    let put = |body: Value| call(a, Method::PUT, &path, creds(&s), Some(body));
    // One list of 1,001 ids is refused, 1,000 kept.
    for list in ["groups", "endpoints"] {
        let (status, body) = put(json!({"team": {list: ids(0, 1001)}})).await;
        assert_error(status, &body, 400, "invalid_request");
    }
    let (status, body) =
        put(json!({"team": {"groups": ids(0, 1000), "endpoints": ids(0, 1000)}})).await;
    assert_eq!(status, 200, "{body}");
    // Merging ids it has already: still 1,000, accepted.
    let (status, body) =
        put(json!({"team": {"groups": ids(0, 10), "mergeValuesAndMetadata": true}})).await;
    assert_eq!(status, 200, "{body}");
    // Merging one new id into either list: 1,001, refused; nothing changes.
    for list in ["groups", "endpoints"] {
        let (status, body) =
            put(json!({"team": {list: ids(1000, 1), "mergeValuesAndMetadata": true}})).await;
        assert_error(status, &body, 400, "invalid_request");
        assert!(body["message"].as_str().unwrap().contains(list), "{body}");
    }
    let (_, body) = call(a, Method::GET, &path, creds(&s), None).await;
    for list in ["groups", "endpoints"] {
        assert_eq!(
            body["data"]["metadata"]["team"][list],
            json!(ids(0, 1000)),
            "{list}"
        );
    }
}
