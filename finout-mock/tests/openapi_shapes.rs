//! The shapes the community OpenAPI description of Finout's V1 API (ManoManoTech/finout,
//! `tools/schemathesis.sh` runs it against the mock) expects where Finout's own pages are
//! silent: a V1 virtual tag's rule `filters` is V1's filter object, checked as V2 checks a
//! query's filters, so that what is kept and answered back is a filter and never whatever was
//! sent; `POST /v1/endpoints` answers `{"endpoint": {...}, "requestId"}`; a tag value's
//! `customMetadata` holds strings (V1 and V2 share it).

mod common;

use common::call;
use finout_mock::MockServer;
use http::Method;
use serde_json::{Value, json};

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

fn tag_with(filters: Value) -> Value {
    json!({"name": "team", "defaultValue": "none", "rules": [
        {"to": "compute", "filters": {"costCenter": "AWS", "key": "service", "operator": "is", "value": "EC2"}},
        {"to": "other", "filters": filters},
    ]})
}

#[tokio::test]
async fn a_tag_with_bad_filters_gets_400_naming_the_field_through_v1_and_v2() {
    let s = MockServer::start().await;
    let a = s.address();
    let (status, created) = call(
        a,
        Method::POST,
        "/v1/virtual-tags",
        creds(&s),
        Some(json!({"name": "t", "rules": []})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/virtual-tags/{}", created["id"].as_str().unwrap());
    let cond = |extra: Value| {
        let mut c =
            json!({"costCenter": "AWS", "key": "service", "operator": "oneOf", "value": ["EC2"]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for (filters, expected) in [
        // What schemathesis sent: echoed back, `{}` is not the description's string.
        (
            json!({"x-schemathesis-additional": {}}),
            "rules[1].filters: a condition needs a string costCenter",
        ),
        (json!({"AND": {}}), "rules[1].filters: AND must be an array"),
        (
            json!({"OR": [cond(json!({})), {"key": "region"}]}),
            "rules[1].filters.OR[1]: a condition needs a string costCenter",
        ),
        (
            json!({"AND": [], "costCenter": "AWS"}),
            "rules[1].filters: an object with AND has no other field",
        ),
        (
            cond(json!({"operator": "near"})),
            "rules[1].filters.operator: \"near\" is not one of",
        ),
        (
            cond(json!({"value": [1]})),
            "rules[1].filters: value must be a string or an array of strings",
        ),
        (
            cond(json!({"value": null})),
            "rules[1].filters: value must be a string or an array of strings",
        ),
        (
            json!({"costCenter": "AWS", "key": "service", "operator": "oneOf"}),
            "rules[1].filters: oneOf needs a value",
        ),
        (
            cond(json!({"displayName": {}})),
            "rules[1].filters: displayName must be a string",
        ),
        (
            cond(json!({"type": 7})),
            "rules[1].filters: type must be a string",
        ),
    ] {
        let body = tag_with(filters.clone());
        // V1 and V2 check a rule's filter alike: a tag written through one reads and writes
        // back through the other.
        for (method, path) in [
            (Method::POST, "/v1/virtual-tags"),
            (Method::PUT, &*path),
            (Method::POST, "/v2/virtual-tags"),
        ] {
            let (status, answer) =
                call(a, method.clone(), path, creds(&s), Some(body.clone())).await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (400, Some("invalid_request")),
                "{method} {filters}: {answer}"
            );
            let message = answer["message"].as_str().unwrap();
            assert!(
                message.starts_with(expected),
                "{method} {filters}: {message}"
            );
        }
    }
    // Nothing was kept: one tag, as created.
    let (_, list) = call(a, Method::GET, "/v1/virtual-tags", creds(&s), None).await;
    let tags = list["virtualTags"].as_array().unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0]["rules"], json!([]));
}

#[tokio::test]
async fn a_tag_keeps_and_answers_the_filters_finout_documents_through_v1_and_v2() {
    let s = MockServer::start().await;
    let a = s.address();
    // Finout's V1 examples: a condition without `type`, `value` an array (oneOf) or a string
    // (is, contains), `OR`/`AND` nested; `exists` needs no value; a V2 condition (with its
    // `type`) reads and writes back; a rule without `filters`.
    let rules = json!([
        {"to": "Asaf", "filters": {"costCenter": "AWS", "key": "aws_account_name",
            "displayName": "Account Name", "operator": "oneOf", "value": ["004a533177", "0371d7d3bf"]}},
        {"to": "Shared IT", "filters": {"OR": [
            {"costCenter": "Global", "key": "cost_center_type", "displayName": "Cost Center",
             "operator": "oneOf", "value": ["Azure", "GCP"]},
            {"AND": [
                {"costCenter": "Global", "key": "cost_center_type", "operator": "contains", "value": "Custom"},
                {"costCenter": "AWS", "key": "region", "type": "billing_dimension", "operator": "exists"}
            ]}
        ]}, "timeframe": {"from": 1756166400000_i64, "to": 1756166400100_i64}},
        {"to": {"key": "team", "costCenter": "Kubernetes"}, "filters": {"AND": []}},
        {"to": "all", "filters": {}},
        {"to": "rest"}
    ]);
    let body = json!({"name": "owners", "defaultValue": "unallocated", "rules": rules});
    let (status, created) = call(a, Method::POST, "/v1/virtual-tags", creds(&s), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["rules"], rules);
    let path = format!("/v1/virtual-tags/{}", created["id"].as_str().unwrap());
    let (status, got) = call(a, Method::GET, &path, creds(&s), None).await;
    assert_eq!((status, &got["rules"]), (200, &rules));
    // A client PUTs back the whole tag it read.
    let (status, put) = call(a, Method::PUT, &path, creds(&s), Some(got.clone())).await;
    assert_eq!((status, &put["rules"]), (200, &rules), "{put}");
    // The same rules through V2, and back through V1.
    let body = json!({"name": "owners2", "defaultValue": "unallocated", "rules": rules});
    let (status, v2) = call(a, Method::POST, "/v2/virtual-tags", creds(&s), Some(body)).await;
    assert_eq!((status, &v2["data"]["rules"]), (200, &rules), "{v2}");
    let path = format!("/v1/virtual-tags/{}", v2["data"]["id"].as_str().unwrap());
    let (_, got) = call(a, Method::GET, &path, creds(&s), None).await;
    let (status, put) = call(a, Method::PUT, &path, creds(&s), Some(got)).await;
    assert_eq!((status, &put["rules"]), (200, &rules), "{put}");
}

#[tokio::test]
async fn an_endpoint_is_created_under_endpoint_and_listed_as_created() {
    let s = MockServer::start().await;
    let a = s.address();
    let email =
        json!({"type": "email", "name": "FinOps", "configuration": {"to": "finops@acme.test"}});
    let (status, created) = call(a, Method::POST, "/v1/endpoints", creds(&s), Some(email)).await;
    assert_eq!(status, 200, "{created}");
    let mut keys: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["endpoint", "requestId"], "{created}");
    assert!(created["requestId"].is_string());
    let endpoint = &created["endpoint"];
    for field in ["id", "accountId", "createdBy", "createdAt", "updatedAt"] {
        assert!(endpoint[field].is_string(), "{field}: {created}");
    }
    assert_eq!(endpoint["type"], "email");
    assert_eq!(endpoint["name"], "FinOps");
    assert_eq!(endpoint["configuration"], json!({"to": "finops@acme.test"}));
    assert_eq!(endpoint.get("requestId"), None, "{created}");
    let (status, list) = call(a, Method::GET, "/v1/endpoints", creds(&s), None).await;
    assert_eq!((status, &list["endpoints"]), (200, &json!([endpoint])));
}

#[tokio::test]
async fn custom_metadata_holds_strings_through_v1_and_v2() {
    let s = MockServer::start().await;
    let a = s.address();
    let (status, created) = call(
        a,
        Method::POST,
        "/v1/virtual-tags",
        creds(&s),
        Some(json!({"name": "teams", "rules": [{"to": "App Team"}]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let v1 = format!("/v1/virtual-tags/{id}/metadata");
    let v2 = format!("/v2/virtual-tags/{id}/metadata");
    for custom in [
        json!({"owner": {}}),
        json!({"owner": 7}),
        json!({"owner": null}),
        json!(["Dave"]),
    ] {
        let body = json!({"App Team": {"groups": ["g"], "customMetadata": custom}});
        for path in [&v1, &v2] {
            let (status, answer) = call(a, Method::PUT, path, creds(&s), Some(body.clone())).await;
            assert_eq!(
                (status, answer["error"].as_str()),
                (400, Some("invalid_request")),
                "{path} {custom}: {answer}"
            );
            let message = answer["message"].as_str().unwrap();
            assert!(
                message.contains("App Team")
                    && message.contains("customMetadata: expected an object of strings"),
                "{path} {custom}: {message}"
            );
        }
    }
    let (_, kept) = call(a, Method::GET, &v1, creds(&s), None).await;
    assert_eq!(kept["metadata"], json!({}));
    let good =
        json!({"App Team": {"groups": ["g"], "customMetadata": {"owner": "Dave", "tier": "1"}}});
    let (status, answer) = call(a, Method::PUT, &v1, creds(&s), Some(good.clone())).await;
    assert_eq!((status, &answer["metadata"]), (200, &good), "{answer}");
    let (status, answer) = call(a, Method::GET, &v2, creds(&s), None).await;
    assert_eq!(
        (status, &answer["data"]["metadata"]),
        (200, &good),
        "{answer}"
    );
}
