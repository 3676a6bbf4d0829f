//! No tenant can break the mock's restart (issue 24): a body nested deeper than 32 levels
//! is refused before it is parsed, so nothing saved is too deep to load; and a row that
//! cannot be read anyway (written by hand, or by an older version) is set aside at start
//! and counted in `/metrics`, while every account is served.

mod common;

use std::{net::SocketAddr, sync::Arc};

use common::call;
use finout_auth::{
    AccountId, Authenticator, NewToken, Role, TokenAdmin,
    store::{SqliteTokenStore, TokenAdminStore},
};
use finout_mock::{Mock, MockDatabase};
use http::Method;
use serde_json::{Value, json};

/// A mock over the SQLite database at `url`, keeping client state there.
async fn start(url: &str) -> (SocketAddr, TokenAdmin, SqliteTokenStore) {
    let store = SqliteTokenStore::connect(url).await.unwrap();
    let shared: Arc<dyn TokenAdminStore> = Arc::new(store.clone());
    let auth = Authenticator::new(shared.clone());
    let admin = TokenAdmin::new(shared).with_authenticator(auth.clone());
    let db = MockDatabase::Sqlite(store.pool().clone());
    let mock = Mock::new(admin.clone(), auth).database(db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = mock.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, admin, store)
}

/// An account with a Basic API token and an Admin user's personal token (for `/metrics`).
async fn account(admin: &TokenAdmin) -> (AccountId, (String, String), (String, String)) {
    let account = admin.create_account("Acme").await.unwrap();
    let basic = admin
        .issue_api_token(account.id, None, NewToken::new("basic", Role::Basic))
        .await
        .unwrap();
    let user = admin
        .add_user(account.id, "ops@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let ops = admin
        .issue_personal_token(account.id, user.id, NewToken::new("ops", Role::Admin))
        .await
        .unwrap();
    let pair = |t: &finout_auth::IssuedToken| {
        (
            t.client_id.to_string(),
            t.secret_key.expose_secret().to_owned(),
        )
    };
    (account.id, pair(&basic), pair(&ops))
}

fn creds(pair: &(String, String)) -> Option<(&str, &str)> {
    Some((pair.0.as_str(), pair.1.as_str()))
}

/// `leaf` inside `levels` arrays.
fn nested(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |inner, _| json!([inner]))
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("mock.db").display())
}

/// `/metrics`' value of `finout_mock_rows_set_aside`.
async fn rows_set_aside(addr: SocketAddr, admin: &(String, String)) -> String {
    let (status, text) = common::call_raw(addr, Method::GET, "/metrics", creds(admin), None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("finout_mock_rows_set_aside "))
        .unwrap_or_else(|| panic!("no finout_mock_rows_set_aside in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_poison_writes_are_refused_and_the_mock_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (addr, admin, store) = start(&url).await;
    let (_, basic, ops) = account(&admin).await;
    let basic = creds(&basic);
    let refused = |status: u16, body: &Value| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["message"].as_str().unwrap().contains("32 levels"),
            "{body}"
        );
        assert!(body["requestId"].is_string());
    };

    // V1: a field nested 126 deep (with the body's own object), as in the issue.
    let tag = json!({"name": "T", "rules": [], "defaultValue": "d", "x": nested(125, json!(1))});
    let (status, body) = call(addr, Method::POST, "/v1/virtual-tags", basic, Some(tag)).await;
    refused(status, &body);

    // V2: a rule's `filters`.
    let filters = json!({"AND": nested(100, json!({}))});
    let tag = json!({"name": "T", "defaultValue": "d", "rules": [{"to": "a", "filters": filters}]});
    let (status, body) = call(addr, Method::POST, "/v2/virtual-tags", basic, Some(tag)).await;
    refused(status, &body);

    // A tag value's `customMetadata`, through V1 and V2.
    let tag = json!({"name": "T", "defaultValue": "d", "rules": [{"to": "a", "filters": {}}]});
    let (status, created) = call(addr, Method::POST, "/v2/virtual-tags", basic, Some(tag)).await;
    assert_eq!(status, 200, "{created}");
    let id = created["data"]["id"].as_str().unwrap();
    let meta = json!({"a": {"customMetadata": {"k": nested(100, json!("v"))}}});
    for path in [
        format!("/v1/virtual-tags/{id}/metadata"),
        format!("/v2/virtual-tags/{id}/metadata"),
    ] {
        let (status, body) = call(addr, Method::PUT, &path, basic, Some(meta.clone())).await;
        refused(status, &body);
    }

    // At the bound: 32 levels are kept, 33 are not; brackets inside strings do not count.
    // (A V1 tag's other fields are kept as sent; `customMetadata` holds strings only.)
    let at = |levels: usize| json!({"name": "T", "rules": [], "defaultValue": "d", "x": nested(levels - 1, json!("]\"[{"))});
    let path = format!("/v1/virtual-tags/{id}");
    let (status, body) = call(addr, Method::PUT, &path, basic, Some(at(33))).await;
    refused(status, &body);
    let (status, mut kept) = call(addr, Method::PUT, &path, basic, Some(at(32))).await;
    assert_eq!(status, 200, "{kept}");

    // The deepest document kept loads again.
    store.pool().close().await;
    let (addr, _, _) = start(&url).await;
    let (status, mut read) = call(addr, Method::GET, &path, basic, None).await;
    for answer in [&mut kept, &mut read] {
        answer.as_object_mut().unwrap().remove("requestId");
    }
    assert_eq!((status, &read), (200, &kept));
    assert_eq!(rows_set_aside(addr, &ops).await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_read_is_set_aside_and_every_account_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (addr, admin, store) = start(&url).await;
    let (poisoned, poisoned_basic, _) = account(&admin).await;
    let (_, other, other_ops) = account(&admin).await;
    for pair in [&poisoned_basic, &other] {
        let tag = json!({"name": "Team", "rules": [], "defaultValue": "none"});
        let (status, body) = call(
            addr,
            Method::POST,
            "/v1/virtual-tags",
            creds(pair),
            Some(tag),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // What an older version saved from the issue's body: too deep for serde_json to read.
    let poison = json!({"id": "p", "fields": {"x": nested(130, json!(1))}});
    sqlx::query("INSERT INTO finout_mock_documents VALUES (?1, 'virtual_tag', 'p', ?2)")
        .bind(poisoned.to_string())
        .bind(poison.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;

    let (addr, _, _) = start(&url).await;
    for pair in [&poisoned_basic, &other] {
        let (status, list) = call(addr, Method::GET, "/v1/virtual-tags", creds(pair), None).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["virtualTags"].as_array().unwrap().len(), 1, "{list}");
    }
    let tag = json!({"name": "Next", "rules": [], "defaultValue": "none"});
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/virtual-tags",
        creds(&other),
        Some(tag),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(rows_set_aside(addr, &other_ops).await, "1");
}
