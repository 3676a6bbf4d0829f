//! Whatever the API accepts survives a restart (issue 24): random JSON of random depth, up
//! to and past the 32-level bound, in a V1 tag's fields (and a V2 rule's filter nested as
//! deep, holding it as text), is either
//! refused with a 4xx (400 exactly when the body nests deeper than 32) or saved, loaded by a
//! new mock on the same SQLite file, and answered as it was before; in a tag value's
//! `customMetadata`, which holds strings, it is refused unless it is a string, and kept as
//! JSON text.

use std::sync::Arc;

use bytes::Bytes;
use finout_auth::{
    Authenticator, NewToken, Role, TokenAdmin, crypto::SecretHasher, store::SqliteTokenStore,
};
use finout_mock::{Mock, MockDatabase};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const MAX_DEPTH: usize = 32;

/// How deep `v` nests arrays and objects (a scalar: 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Leaves with numbers at their edges and strings full of brackets, quotes and escapes.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[\\[\\]{}\"\\\\/a-z\u{e9}\u{1F600}\n]{0,8}".prop_map(Value::String),
    ]
}

/// A small tree of arrays and objects, then wrapped in more levels: around the bound, or
/// near serde_json's 128 (what the mock once accepted and then could not load).
fn deep() -> impl Strategy<Value = Value> {
    let tree = leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z{\\[\"]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let levels = prop_oneof![3 => 0..40usize, 1 => 90..126usize];
    let wrappers = levels.prop_flat_map(|n| prop::collection::vec(any::<bool>(), n));
    (tree, wrappers).prop_map(|(tree, wrappers)| {
        wrappers.into_iter().fold(tree, |inner, object| {
            if object {
                json!({"k": inner})
            } else {
                json!([inner])
            }
        })
    })
}

async fn send(
    app: &axum::Router,
    creds: (&str, &str),
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-finout-client-id", creds.0)
        .header("x-finout-secret-key", creds.1)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(Value::to_string).unwrap_or_default(),
        )))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.remove("requestId");
    }
    (status, body)
}

/// A mock over the SQLite file at `url` (a new pool: a new process, as far as it knows).
async fn start(url: &str) -> (axum::Router, TokenAdmin, SqliteTokenStore) {
    let store = SqliteTokenStore::connect(url).await.unwrap();
    let fast = SecretHasher::with_params(64, 1, 1).unwrap();
    let auth = Authenticator::builder(Arc::new(store.clone()))
        .hasher(fast.clone())
        .build();
    let admin = TokenAdmin::new(Arc::new(store.clone()))
        .with_hasher(fast)
        .with_authenticator(auth.clone());
    let db = MockDatabase::Sqlite(store.pool().clone());
    let mock = Mock::new(admin.clone(), auth).database(db).await.unwrap();
    (mock.router(), admin, store)
}

/// What the mock answers about tag `id`: V1, V2, every version, the metadata.
async fn read(app: &axum::Router, creds: (&str, &str), id: &str) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for path in [
        format!("/v1/virtual-tags/{id}"),
        format!("/v2/virtual-tags/{id}"),
        format!("/v2/virtual-tags/{id}/metadata"),
        format!("/v2/virtual-tags/{id}/versions?sortDirection=asc"),
    ] {
        out.push(send(app, creds, Method::GET, &path, None).await);
    }
    let versions = out[3].1["data"].as_array().cloned().unwrap_or_default();
    for v in versions {
        let path = format!(
            "/v2/virtual-tags/{id}/versions/{}",
            v["id"].as_str().unwrap()
        );
        out.push(send(app, creds, Method::GET, &path, None).await);
    }
    out
}

/// 400 exactly when `body` nests deeper than the bound; a success otherwise.
fn check(status: u16, body: &Value, sent: &Value) -> Result<bool, TestCaseError> {
    if depth(sent) > MAX_DEPTH {
        prop_assert_eq!(status, 400, "{} deep: {}", depth(sent), body);
        prop_assert_eq!(&body["error"], "invalid_request");
        Ok(false)
    } else {
        prop_assert!(
            (200..300).contains(&status),
            "{} deep: {} {}",
            depth(sent),
            status,
            body
        );
        Ok(true)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn what_is_accepted_is_loaded_again_as_answered(field in deep(), filters in deep(), custom in deep()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("mock.db").display());
            let (app, admin, store) = start(&url).await;
            let account = admin.create_account("Acme").await.unwrap();
            let token = admin
                .issue_api_token(account.id, None, NewToken::new("t", Role::Basic))
                .await
                .unwrap();
            let creds = (token.client_id.as_str(), token.secret_key.expose_secret());

            // V1: a new tag carrying the field, then a tag to write the rest to.
            let tag = json!({"name": "T", "rules": [], "defaultValue": "d", "field": field});
            let (status, answered) = send(&app, creds, Method::POST, "/v1/virtual-tags", Some(&tag)).await;
            let v1_tag = check(status, &answered, &tag)?.then(|| answered.clone());
            let base = json!({"name": "B", "rules": [], "defaultValue": "d"});
            let (_, created) = send(&app, creds, Method::POST, "/v1/virtual-tags", Some(&base)).await;
            let id = created["id"].as_str().unwrap().to_owned();

            // V2: a staged version whose rule's filter nests about as deep as `filters`: `AND`
            // of `AND` ... of a condition whose value is `filters` as JSON text (a filter is
            // checked, so random JSON is not one).
            let mut filter = json!({"costCenter": "AWS", "key": "service", "operator": "is",
                                    "value": filters.to_string()});
            for _ in 0..depth(&filters) / 2 {
                filter = json!({"AND": [filter]});
            }
            let staged = json!({"name": "S", "defaultValue": "d", "rules": [{"to": "a", "filters": filter}]});
            let path = format!("/v2/virtual-tags/{id}?setAsLive=false");
            let (status, body) = send(&app, creds, Method::PUT, &path, Some(&staged)).await;
            check(status, &body, &staged)?;

            // Metadata: the custom metadata of value "a", whose values are strings: `custom`
            // itself is refused unless it is one (400, for its type or its depth); `custom`
            // as JSON text is kept.
            let path = format!("/v1/virtual-tags/{id}/metadata");
            let as_is = json!({"a": {"customMetadata": {"c": custom}}});
            let (status, body) = send(&app, creds, Method::PUT, &path, Some(&as_is)).await;
            if custom.is_string() {
                check(status, &body, &as_is)?;
            } else {
                prop_assert_eq!(status, 400, "{}", body);
            }
            let meta = json!({"a": {"customMetadata": {"c": custom.to_string()}}});
            let (status, body) = send(&app, creds, Method::PUT, &path, Some(&meta)).await;
            let metadata = check(status, &body, &meta)?.then(|| body["metadata"].clone());

            let before = read(&app, creds, &id).await;
            drop(app);
            store.pool().close().await;

            let (app, _, _) = start(&url).await;
            prop_assert_eq!(&read(&app, creds, &id).await, &before);
            if let Some(metadata) = metadata {
                prop_assert_eq!(&before[2].1["data"]["metadata"], &metadata);
            }
            if let Some(answered) = v1_tag {
                let path = format!("/v1/virtual-tags/{}", answered["id"].as_str().unwrap());
                prop_assert_eq!(send(&app, creds, Method::GET, &path, None).await, (200, answered));
            }
            Ok(())
        })?;
    }
}
