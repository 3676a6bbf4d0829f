//! What clients write — virtual tags with their versions and metadata, endpoints — survives
//! a restart of the mock on SQLite and PostgreSQL (the mock's own table), and a write the
//! database refuses changes nothing.

mod common;

use std::{net::SocketAddr, sync::Arc};

use common::call;
use finout_auth::{
    AccountId, Authenticator, NewToken, Role, TokenAdmin,
    store::{PostgresTokenStore, SqliteTokenStore, TokenAdminStore},
};
use finout_mock::{Mock, MockDatabase};
use http::Method;
use serde_json::{Value, json};

/// Serve a mock over `store`, keeping client state in `db`.
async fn start(store: Arc<dyn TokenAdminStore>, db: MockDatabase) -> (SocketAddr, TokenAdmin) {
    let auth = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let mock = Mock::new(admin.clone(), auth).database(db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = mock.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, admin)
}

/// Write a tag (V1), a staged version and metadata (V2) and an endpoint; return what the
/// mock then answers for them.
async fn write_state(addr: SocketAddr, pair: (&str, &str)) -> Vec<(String, Value)> {
    let creds = Some(pair);
    let tag = json!({"name": "Team", "rules": [{"to": "payments", "filters": {"AND": []}}], "defaultValue": "none"});
    let (status, created) = call(addr, Method::POST, "/v1/virtual-tags", creds, Some(tag)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let staged = json!({"name": "Team (draft)", "rules": [], "defaultValue": "none"});
    let path = format!("/v2/virtual-tags/{id}?setAsLive=false");
    assert_eq!(
        call(addr, Method::PUT, &path, creds, Some(staged)).await.0,
        200
    );
    let meta = json!({"payments": {"customMetadata": {"owner": "Dave"}, "groups": ["g"]}});
    let path = format!("/v2/virtual-tags/{id}/metadata");
    assert_eq!(
        call(addr, Method::PUT, &path, creds, Some(meta)).await.0,
        200
    );
    let endpoint =
        json!({"type": "email", "name": "FinOps", "configuration": {"to": "finops@acme.test"}});
    let (status, body) = call(addr, Method::POST, "/v1/endpoints", creds, Some(endpoint)).await;
    assert_eq!(status, 200, "{body}");
    read_state(addr, pair, id).await
}

async fn read_state(addr: SocketAddr, creds: (&str, &str), id: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in [
        format!("/v1/virtual-tags/{id}"),
        format!("/v2/virtual-tags/{id}"),
        format!("/v2/virtual-tags/{id}/versions"),
        format!("/v1/virtual-tags/{id}/metadata"),
        "/v1/endpoints".to_owned(),
    ] {
        let (status, mut body) = call(addr, Method::GET, &path, Some(creds), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body.as_object_mut().unwrap().remove("requestId");
        out.push((path, body));
    }
    out
}

async fn admin_token(admin: &TokenAdmin) -> (AccountId, String, String) {
    let account = admin.create_account("Acme").await.unwrap();
    let user = admin
        .add_user(account.id, "ops@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let token = admin
        .issue_personal_token(account.id, user.id, NewToken::new("t", Role::Admin))
        .await
        .unwrap();
    (
        account.id,
        token.client_id.to_string(),
        token.secret_key.expose_secret().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_sqlite_keeps_tags_versions_metadata_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mock.db").display());
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    let db = MockDatabase::Sqlite(store.pool().clone());
    let (addr, admin) = start(Arc::new(store.clone()), db).await;
    let (_, id, secret) = admin_token(&admin).await;
    let before = write_state(addr, (&id, &secret)).await;
    assert_eq!(
        before[2].1["data"].as_array().unwrap().len(),
        2,
        "two versions"
    );
    store.pool().close().await;

    // A new process: a new pool on the same file.
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    let db = MockDatabase::Sqlite(store.pool().clone());
    let (addr, _) = start(Arc::new(store), db).await;
    let tag_id = before[0].1["id"].as_str().unwrap();
    assert_eq!(read_state(addr, (&id, &secret), tag_id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_postgres_keeps_them_too() {
    let Ok(url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: set FINOUT_AUTH_TEST_DATABASE_URL to a PostgreSQL URL to run this test"
        );
        return;
    };
    let store = PostgresTokenStore::connect(&url).await.unwrap();
    let db = MockDatabase::Postgres(store.pool().clone());
    let (addr, admin) = start(Arc::new(store), db).await;
    let (_, id, secret) = admin_token(&admin).await;
    let before = write_state(addr, (&id, &secret)).await;

    let store = PostgresTokenStore::connect(&url).await.unwrap();
    let db = MockDatabase::Postgres(store.pool().clone());
    let (addr, _) = start(Arc::new(store), db).await;
    let tag_id = before[0].1["id"].as_str().unwrap();
    assert_eq!(read_state(addr, (&id, &secret), tag_id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_database_refuses_answers_503_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("mock.db").display());
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    // The mock's documents in a second database, closed under it.
    let documents = SqliteTokenStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("documents.db").display()
    ))
    .await
    .unwrap();
    let (addr, admin) = start(
        Arc::new(store),
        MockDatabase::Sqlite(documents.pool().clone()),
    )
    .await;
    let (_, id, secret) = admin_token(&admin).await;
    let creds = Some((id.as_str(), secret.as_str()));
    documents.pool().close().await;
    let tag = json!({"name": "Team", "rules": [], "defaultValue": "none"});
    let (status, body) = call(addr, Method::POST, "/v1/virtual-tags", creds, Some(tag)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("auth_unavailable"))
    );
    let (_, list) = call(addr, Method::GET, "/v1/virtual-tags", creds, None).await;
    assert_eq!(list["virtualTags"], json!([]));
}
