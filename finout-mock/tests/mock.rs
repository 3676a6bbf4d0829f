//! finout-mock over a real socket: the library router in process, and the built binary as a
//! subprocess with a SQLite file, restarted.

mod common;

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use common::{call, call_raw};
use finout_auth::{AccountId, Authenticator, NewToken, Role, TokenAdmin, store::MemoryTokenStore};
use finout_mock::Mock;
use http::Method;
use serde_json::{Value, json};

/// One string field of each item of an answer's `data` array.
fn field_of_each(body: &Value, field: &str) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect()
}

/// The view ids of a `/v1/view` answer.
fn view_ids(body: &Value) -> Vec<String> {
    field_of_each(body, "id")
}

/// A `query-by-view` body for one day of `view`.
fn one_day_of(view: &str) -> Value {
    json!({"viewId": view, "date": {"unixTimeMillSecondsStart": 1_719_792_000_000_i64, "unixTimeMillSecondsEnd": 1_719_878_400_000_i64}})
}

async fn start_in_process() -> (SocketAddr, String, String, AccountId) {
    let (addr, id, secret, account, _) = start_with_admin().await;
    (addr, id, secret, account)
}

async fn start_with_admin() -> (SocketAddr, String, String, AccountId, TokenAdmin) {
    let store = Arc::new(MemoryTokenStore::new());
    let auth = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let account = admin.create_account("Acme").await.unwrap();
    let user = admin
        .add_user(account.id, "admin@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let token = admin
        .issue_personal_token(account.id, user.id, NewToken::new("admin", Role::Admin))
        .await
        .unwrap();
    let app = Mock::new(admin.clone(), auth).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        addr,
        token.client_id.to_string(),
        token.secret_key.expose_secret().to_owned(),
        account.id,
        admin,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_created_used_listed_and_revoked_like_finout() {
    let (addr, id, secret, account) = start_in_process().await;
    let admin = Some((id.as_str(), secret.as_str()));

    assert_eq!(call(addr, Method::GET, "/healthz", None, None).await.0, 200);
    let (status, body) = call(addr, Method::GET, "/admin/whoami", None, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_credentials"))
    );

    let (status, me) = call(addr, Method::GET, "/admin/whoami", admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["type"], "user");
    assert_eq!(me["accountId"], account.to_string());
    assert_eq!(me["tokenRole"], "Admin");

    let (status, created) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        admin,
        Some(json!({"description": "reporting", "role": "Read-only", "expiresInMinutes": 60})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["type"], "api");
    let (api_id, api_secret) = (
        created["clientId"].as_str().unwrap().to_owned(),
        created["secretKey"].as_str().unwrap().to_owned(),
    );
    let api = Some((api_id.as_str(), api_secret.as_str()));

    let (status, views) = call(addr, Method::GET, "/v1/view", api, None).await;
    assert_eq!(status, 200);
    let view_id = views["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, costs) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        api,
        Some(json!({"viewId": view_id, "date": {"unixTimeMillSecondsStart": 1_700_000_000_000i64, "unixTimeMillSecondsEnd": 1_700_259_200_000i64}})),
    )
    .await;
    assert_eq!(status, 200, "{costs}");
    assert!(
        costs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "Total")
    );
    assert_eq!(costs["request"]["viewId"], view_id);

    // Read-only API tokens cannot manage tokens.
    let (status, body) = call(addr, Method::GET, "/admin/api-tokens", api, None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));

    // Listing never shows a secret.
    let (status, list) = call(addr, Method::GET, "/admin/api-tokens", admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["tokens"][0]["clientId"], api_id.as_str());
    assert!(!list.to_string().contains(&api_secret));

    // Revoked: rejected on the very next request; unknown: 404.
    let path = format!("/admin/api-tokens/{api_id}");
    assert_eq!(call(addr, Method::DELETE, &path, admin, None).await.0, 204);
    let (status, body) = call(addr, Method::GET, "/v1/view", api, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    assert_eq!(call(addr, Method::DELETE, &path, admin, None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_personal_tokens_and_bad_requests() {
    let (addr, id, secret, _) = start_in_process().await;
    let admin = Some((id.as_str(), secret.as_str()));
    let (status, user) = call(
        addr,
        Method::POST,
        "/admin/users",
        admin,
        Some(json!({"email": "bob@acme.test", "roles": ["Basic"]})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["roles"], json!(["Basic"]));
    let user_id = user["id"].as_str().unwrap().to_owned();

    // The calling Admin may give itself a personal Admin token.
    let (status, _) = call(
        addr,
        Method::POST,
        "/admin/personal-tokens",
        admin,
        Some(json!({"description": "mine", "role": "Admin"})),
    )
    .await;
    assert_eq!(status, 201, "the Admin may have an Admin token");

    let (status, body) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        admin,
        Some(json!({"description": "x", "role": "Superuser"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        admin,
        Some(json!({"viewId": "nope", "date": {"unixTimeMillSecondsStart": 0, "unixTimeMillSecondsEnd": 1}})),
    )
    .await;
    assert_eq!(status, 404, "an unknown view does not exist");
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        admin,
        Some(json!({"viewId": "x", "date": {"unixTimeMillSecondsStart": 1_719_792_000_000_i64, "unixTimeMillSecondsEnd": 1_719_792_000_000_i64 + 91 * 86_400_000}})),
    )
    .await;
    assert_eq!(status, 400, "over 90 days");

    let roles = format!("/admin/users/{user_id}/roles");
    let (status, _) = call(
        addr,
        Method::PUT,
        &roles,
        admin,
        Some(json!({"roles": ["Read-only"]})),
    )
    .await;
    assert_eq!(status, 200);
    let path = format!("/admin/users/{user_id}");
    assert_eq!(call(addr, Method::DELETE, &path, admin, None).await.0, 204);
    assert_eq!(call(addr, Method::DELETE, &path, admin, None).await.0, 404);

    let (status, metrics) = call(addr, Method::GET, "/metrics", admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(metrics, Value::Null, "Prometheus text, not JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_access_limits_what_a_personal_token_sees() {
    let (addr, id, secret, account, admin_api) = start_with_admin().await;
    let admin = Some((id.as_str(), secret.as_str()));
    let (status, all) = call(addr, Method::GET, "/v1/view", admin, None).await;
    assert_eq!(status, 200);
    let all_views = view_ids(&all);
    assert_eq!(all_views.len(), 3, "{all}");

    let (status, body) = call(
        addr,
        Method::POST,
        "/admin/users",
        admin,
        Some(json!({"email": "x@acme.test", "roles": ["Basic"], "dataAccess": ["no-such-view"]})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("dataAccess"),
        "{body}"
    );

    let (status, dev) = call(
        addr,
        Method::POST,
        "/admin/users",
        admin,
        Some(json!({"email": "dev@acme.test", "roles": ["Basic"], "dataAccess": [all_views[1]]})),
    )
    .await;
    assert_eq!(status, 201, "{dev}");
    assert_eq!(dev["dataAccess"], json!([all_views[1]]));
    let (status, open) = call(
        addr,
        Method::POST,
        "/admin/users",
        admin,
        Some(json!({"email": "ops@acme.test", "roles": ["Basic"]})),
    )
    .await;
    assert_eq!(
        (status, &open["dataAccess"]),
        (201, &Value::Null),
        "absent: every view"
    );

    let dev_id: finout_auth::UserId = dev["id"].as_str().unwrap().parse().unwrap();
    let token = admin_api
        .issue_personal_token(account, dev_id, NewToken::new("dev", Role::Basic))
        .await
        .unwrap();
    let (dev_client, dev_secret) = (
        token.client_id.to_string(),
        token.secret_key.expose_secret().to_owned(),
    );
    let dev_creds = Some((dev_client.as_str(), dev_secret.as_str()));

    let (status, body) = call(addr, Method::GET, "/v1/view", dev_creds, None).await;
    assert_eq!((status, view_ids(&body)), (200, vec![all_views[1].clone()]));
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        dev_creds,
        Some(one_day_of(&all_views[1])),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        dev_creds,
        Some(one_day_of(&all_views[0])),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "outside data access"
    );

    // An API token sees the whole account.
    let (status, api) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        admin,
        Some(json!({"description": "job", "role": "Read-only"})),
    )
    .await;
    assert_eq!(status, 201);
    let api_creds = (
        api["clientId"].as_str().unwrap(),
        api["secretKey"].as_str().unwrap(),
    );
    let (status, body) = call(addr, Method::GET, "/v1/view", Some(api_creds), None).await;
    assert_eq!((status, view_ids(&body)), (200, all_views.clone()));
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        Some(api_creds),
        Some(one_day_of(&all_views[0])),
    )
    .await;
    assert_eq!(status, 200);

    // A change applies to the user's very next request (the cached principal is dropped).
    let roles = format!("/admin/users/{dev_id}/roles");
    let (status, body) = call(
        addr,
        Method::PUT,
        &roles,
        admin,
        Some(json!({"roles": ["Basic"], "dataAccess": [all_views[2], all_views[0]]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut expected = vec![all_views[0].clone(), all_views[2].clone()];
    expected.sort();
    assert_eq!(body["dataAccess"], json!(expected));
    let (_, body) = call(addr, Method::GET, "/v1/view", dev_creds, None).await;
    assert_eq!(
        view_ids(&body),
        vec![all_views[0].clone(), all_views[2].clone()]
    );
    let (status, _) = call(
        addr,
        Method::POST,
        "/v1/cost/query-by-view",
        dev_creds,
        Some(one_day_of(&all_views[0])),
    )
    .await;
    assert_eq!(status, 200);

    // Without `dataAccess` a PUT leaves it alone; `null` gives every view back.
    let (status, body) = call(
        addr,
        Method::PUT,
        &roles,
        admin,
        Some(json!({"roles": ["Read-only"]})),
    )
    .await;
    assert_eq!((status, &body["dataAccess"]), (200, &json!(expected)));
    assert_eq!(body["roles"], json!(["Read-only"]));
    let (status, body) = call(
        addr,
        Method::PUT,
        &roles,
        admin,
        Some(json!({"roles": ["Basic"], "dataAccess": null})),
    )
    .await;
    assert_eq!((status, &body["dataAccess"]), (200, &Value::Null));
    let (_, body) = call(addr, Method::GET, "/v1/view", dev_creds, None).await;
    assert_eq!(view_ids(&body), all_views);

    // A user's personal tokens: never above the user's roles; a token lists and revokes
    // itself and what it issued, an Admin user any of them.
    let (status, body) = call(
        addr,
        Method::POST,
        "/admin/personal-tokens",
        dev_creds,
        Some(json!({"description": "escalate", "role": "Admin"})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (status, own) = call(
        addr,
        Method::POST,
        "/admin/personal-tokens",
        dev_creds,
        Some(json!({"description": "reader", "role": "Read-only", "expiresInMinutes": 5})),
    )
    .await;
    assert_eq!(
        (status, own["type"].as_str()),
        (201, Some("personal")),
        "{own}"
    );
    let own_id = own["clientId"].as_str().unwrap();
    let (status, listed) = call(addr, Method::GET, "/admin/personal-tokens", dev_creds, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2, "{listed}");
    assert!(
        !listed
            .to_string()
            .contains(own["secretKey"].as_str().unwrap())
    );
    let own_path = format!("/admin/personal-tokens/{own_id}");
    assert_eq!(
        call(addr, Method::DELETE, &own_path, dev_creds, None)
            .await
            .0,
        204,
        "what a token issued is its own to revoke"
    );
    assert_eq!(
        call(addr, Method::DELETE, &own_path, admin, None).await.0,
        404,
        "gone"
    );
    // Another token of the user is not the dev token's to revoke; an Admin user's it is.
    let spare = admin_api
        .issue_personal_token(account, dev_id, NewToken::new("spare", Role::Basic))
        .await
        .unwrap();
    let spare_path = format!("/admin/personal-tokens/{}", spare.client_id);
    let (status, body) = call(addr, Method::DELETE, &spare_path, dev_creds, None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        call(addr, Method::DELETE, &spare_path, admin, None).await.0,
        204
    );

    // Only an Admin manages users: a non-admin gets 403 (and learns nothing about views).
    let (status, body) = call(
        addr,
        Method::PUT,
        &roles,
        dev_creds,
        Some(json!({"roles": ["Basic"], "dataAccess": ["no-such-view"]})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let (status, body) = call(
        addr,
        Method::PUT,
        &roles,
        admin,
        Some(json!({"roles": ["Basic"], "dataAccess": "v-1"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}

/// The built binary, with its stdout lines and stderr (the logs) collected.
struct Server {
    child: Child,
    stdout: Vec<String>,
}

fn spawn_binary(db: &str, port: u16) -> Server {
    spawn_binary_with(db, port, &[])
}

fn spawn_binary_with(db: &str, port: u16, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--store",
            db,
        ])
        .args(extra)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let listening = line.contains("listening on");
        stdout.push(line);
        if listening {
            break;
        }
    }
    Server { child, stdout }
}

impl Server {
    /// Stop with SIGTERM; answer everything it logged.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "finout-mock exits cleanly on SIGTERM: {status}"
        );
        let mut logs = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        logs
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_keeps_its_tokens_tags_and_endpoints_across_a_restart_and_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("mock.db").display());
    let port = free_port();
    let first = spawn_binary(&db, port);
    let field = |name: &str| {
        first
            .stdout
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {name} in {:?}", first.stdout))
    };
    let (id, secret) = (field("x-finout-client-id:"), field("x-finout-secret-key:"));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let creds = Some((id.as_str(), secret.as_str()));
    assert_eq!(
        call(addr, Method::GET, "/admin/whoami", creds, None)
            .await
            .0,
        200
    );
    let (status, created) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        creds,
        Some(json!({"description": "survives", "role": "Basic"})),
    )
    .await;
    assert_eq!(status, 201);
    let api_secret = created["secretKey"].as_str().unwrap().to_owned();
    let api_id = created["clientId"].as_str().unwrap().to_owned();
    // What clients write survives too: a tag with metadata, an endpoint.
    let tag = json!({"name": "team", "rules": [], "defaultValue": "none"});
    let (status, tag) = call(addr, Method::POST, "/v1/virtual-tags", creds, Some(tag)).await;
    assert_eq!(status, 201, "{tag}");
    let tag_path = format!("/v1/virtual-tags/{}", tag["id"].as_str().unwrap());
    let meta = json!({"payments": {"customMetadata": {"owner": "Dave"}}});
    let metadata_path = format!("{tag_path}/metadata");
    assert_eq!(
        call(addr, Method::PUT, &metadata_path, creds, Some(meta))
            .await
            .0,
        200
    );
    let endpoint =
        json!({"type": "email", "name": "ops", "configuration": {"to": "ops@acme.test"}});
    assert_eq!(
        call(addr, Method::POST, "/v1/endpoints", creds, Some(endpoint))
            .await
            .0,
        200
    );
    let mut logs = first.stop();

    let second = spawn_binary(&db, port);
    assert!(
        !second
            .stdout
            .iter()
            .any(|l| l.contains("x-finout-secret-key")),
        "no second bootstrap on a store that has its account"
    );
    assert_eq!(
        call(addr, Method::GET, "/admin/whoami", creds, None)
            .await
            .0,
        200
    );
    let api = Some((api_id.as_str(), api_secret.as_str()));
    assert_eq!(call(addr, Method::GET, "/v1/view", api, None).await.0, 200);
    let (status, _) = call(
        addr,
        Method::GET,
        "/v1/view",
        Some((api_id.as_str(), "wrong")),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, kept) = call(addr, Method::GET, &tag_path, creds, None).await;
    assert_eq!((status, &kept["name"]), (200, &json!("team")));
    let (_, kept) = call(addr, Method::GET, &metadata_path, creds, None).await;
    assert_eq!(
        kept["metadata"]["payments"]["customMetadata"]["owner"],
        "Dave"
    );
    let (_, kept) = call(addr, Method::GET, "/v1/endpoints", creds, None).await;
    assert_eq!(kept["endpoints"][0]["name"], "ops");
    tokio::time::sleep(Duration::from_millis(100)).await;
    logs += &second.stop();

    assert!(logs.contains(&api_id), "the logs name client ids: {logs}");
    for s in [&secret, &api_secret] {
        assert!(!logs.contains(s.as_str()), "a secret is in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_tags_need_a_writer_and_never_cross_accounts() {
    let (addr, id, secret, account, token_admin) = start_with_admin().await;
    let admin = Some((id.as_str(), secret.as_str()));
    let (status, tag) = call(
        addr,
        Method::POST,
        "/v1/virtual-tags",
        admin,
        Some(json!({"name": "team", "rules": [], "defaultValue": "Untagged"})),
    )
    .await;
    assert_eq!(status, 201, "{tag}");
    let tag_id = tag["id"].as_str().unwrap().to_owned();
    // Finout's tag object: what was sent, plus the fields it keeps itself.
    assert_eq!(tag["defaultValue"], "Untagged");
    assert_eq!(tag["accountId"], account.to_string());
    assert_eq!(tag["createdBy"], "admin@acme.test");
    assert_eq!(tag["updatedBy"], "admin@acme.test");
    let created_at = tag["createdAt"].as_str().unwrap().to_owned();
    assert!(
        created_at.ends_with(" GMT+0000 (Greenwich Mean Time)") && created_at.len() == 55,
        "a JavaScript Date string like Finout's: {created_at}"
    );
    let (status, body) = call(
        addr,
        Method::POST,
        "/v1/virtual-tags",
        admin,
        Some(json!({"name": "bad", "rules": "all"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Fields typed as Finout documents them: a string defaultValue, rules assigning a string
    // or a MegaBill key, filters an object.
    for (bad, field) in [
        (json!({"name": "n", "defaultValue": null}), "defaultValue"),
        (json!({"name": "n", "defaultValue": 7}), "defaultValue"),
        (json!({"name": "n", "rules": [7]}), "rules[0]"),
        (json!({"name": "n", "rules": [{"to": 1}]}), "rules[0]"),
        (
            json!({"name": "n", "rules": [{"to": {"key": "k"}}]}),
            "rules[0]",
        ),
        (
            json!({"name": "n", "rules": [{"to": "a"}, {"to": "b", "filters": []}]}),
            "rules[1]",
        ),
    ] {
        let (status, body) = call(
            addr,
            Method::POST,
            "/v1/virtual-tags",
            admin,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{bad}: {body}"
        );
    }
    let good = json!({"name": "owners", "defaultValue": "Untagged", "rules": [
        {"to": "Asaf", "filters": {"costCenter": "AWS", "key": "aws_account_name", "operator": "oneOf", "value": ["a"]}},
        {"to": {"key": "team", "costCenter": "Kubernetes"}, "filters": {"AND": []}}
    ]});
    let (status, body) = call(addr, Method::POST, "/v1/virtual-tags", admin, Some(good)).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/v1/virtual-tags/{tag_id}");
    let (status, got) = call(addr, Method::GET, &path, admin, None).await;
    assert_eq!((status, got["name"].as_str()), (200, Some("team")));
    assert!(tag["requestId"].is_string() && got["requestId"].is_string());
    let (status, list) = call(addr, Method::GET, "/v1/virtual-tags", admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["accountId"], account.to_string());
    let listed = list["virtualTags"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|t| t["id"] == tag_id.as_str()));

    // A Read-only API token may read, not write.
    let (_, reader) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        admin,
        Some(json!({"description": "reader", "role": "Read-only"})),
    )
    .await;
    let reader = (
        reader["clientId"].as_str().unwrap().to_owned(),
        reader["secretKey"].as_str().unwrap().to_owned(),
    );
    let reader = Some((reader.0.as_str(), reader.1.as_str()));
    assert_eq!(call(addr, Method::GET, &path, reader, None).await.0, 200);
    let (status, body) = call(addr, Method::PUT, &path, reader, Some(json!({"name": "x"}))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(call(addr, Method::DELETE, &path, reader, None).await.0, 403);

    // Another account's token: the tag does not exist for it.
    let other = token_admin.create_account("Other").await.unwrap();
    let outsider = token_admin
        .issue_api_token(other.id, None, NewToken::new("outsider", Role::Admin))
        .await
        .unwrap();
    let outsider = Some((
        outsider.client_id.as_str(),
        outsider.secret_key.expose_secret(),
    ));
    assert_eq!(call(addr, Method::GET, &path, outsider, None).await.0, 404);
    assert_eq!(
        call(addr, Method::DELETE, &path, outsider, None).await.0,
        404
    );
    let (_, theirs) = call(addr, Method::GET, "/v1/virtual-tags", outsider, None).await;
    assert_eq!(theirs["virtualTags"], json!([]));

    // A Basic API token may write; the tag keeps who created it and records who updated it.
    let (_, writer) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        admin,
        Some(json!({"description": "writer", "role": "Basic"})),
    )
    .await;
    let writer_id = writer["clientId"].as_str().unwrap();
    let writer = Some((writer_id, writer["secretKey"].as_str().unwrap()));
    let (status, replaced) = call(
        addr,
        Method::PUT,
        &path,
        writer,
        Some(json!({"name": "squad", "createdBy": "someone@else.test"})),
    )
    .await;
    assert_eq!((status, replaced["name"].as_str()), (200, Some("squad")));
    assert!(
        replaced["requestId"].is_string(),
        "PUT answers with a requestId"
    );
    assert_eq!(replaced["createdBy"], "admin@acme.test");
    assert_eq!(replaced["createdAt"], created_at.as_str());
    // An API token signs with the email of the user who created it.
    assert_eq!(replaced["updatedBy"], "admin@acme.test");
    assert_eq!(replaced["rules"], json!([]));
    let (status, keys) = call(
        addr,
        Method::GET,
        "/v1/megabill/query-language/keys",
        reader,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(keys["keys"][0]["costCenter"].is_string());
    assert_eq!(call(addr, Method::DELETE, &path, admin, None).await.0, 204);
    assert_eq!(call(addr, Method::GET, &path, admin, None).await.0, 404);
}

const SEED: &str = r#"{
  "accounts": [{
    "id": "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d",
    "name": "Seeded",
    "views": [{"id": "v-everything", "name": "Everything"}, {"id": "v-eks", "name": "EKS"}],
    "users": [
      {"id": "5b0c3f1e-2a4d-4c6b-8e9f-0a1b2c3d4e5f", "email": "ops@acme.test", "roles": ["Admin"]},
      {"id": "6c1d4a2f-3b5e-4d7c-9fa0-1b2c3d4e5f60", "email": "dev@acme.test", "roles": ["Basic"],
       "dataAccess": ["v-eks"]}
    ],
    "tokens": [
      {"clientId": "dev-laptop", "secretKey": "dev-s3cret", "type": "personal",
       "user": "dev@acme.test", "role": "Basic", "expiresAt": null},
      {"clientId": "ci-reader", "secretKey": "reader-s3cret", "type": "api",
       "role": "Read-only", "description": "CI", "expiresAt": null},
      {"clientId": "ops-laptop", "secretKey": "ops-s3cret", "type": "personal",
       "user": "ops@acme.test", "role": "Admin", "description": "laptop",
       "expiresAt": "2099-01-01T00:00:00Z"}
    ]
  }]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_declares_known_credentials_and_loads_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, SEED).unwrap();
    let db = format!("sqlite://{}", dir.path().join("seeded.db").display());
    let seed_arg = seed.display().to_string();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..2 {
        let server = spawn_binary_with(&db, port, &["--seed", &seed_arg]);
        assert!(
            !server
                .stdout
                .iter()
                .any(|l| l.contains("x-finout-secret-key"))
        );
        let (status, views) = call(
            addr,
            Method::GET,
            "/v1/view",
            Some(("ci-reader", "reader-s3cret")),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            views["data"],
            json!([{"id": "v-everything", "name": "Everything"}, {"id": "v-eks", "name": "EKS"}]),
            "an API token sees the whole account"
        );
        let dev = Some(("dev-laptop", "dev-s3cret"));
        let (status, views) = call(addr, Method::GET, "/v1/view", dev, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            views["data"],
            json!([{"id": "v-eks", "name": "EKS"}]),
            "a personal token sees its user's data access"
        );
        let (status, _) = call(
            addr,
            Method::POST,
            "/v1/cost/query-by-view",
            dev,
            Some(one_day_of("v-eks")),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(
            addr,
            Method::POST,
            "/v1/cost/query-by-view",
            dev,
            Some(one_day_of("v-everything")),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
        let (status, me) = call(
            addr,
            Method::GET,
            "/admin/whoami",
            Some(("ops-laptop", "ops-s3cret")),
            None,
        )
        .await;
        assert_eq!((status, me["type"].as_str()), (200, Some("user")));
        let logs = server.stop();
        for secret in ["reader-s3cret", "ops-s3cret", "dev-s3cret"] {
            assert!(!logs.contains(secret), "{secret} in the logs");
        }
    }
}

/// Start the binary with `seed` (written to `path`); it must fail: its stderr.
fn failed_start(path: &std::path::Path, seed: &str) -> String {
    std::fs::write(path, seed).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args([
            "serve",
            "--store",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--seed",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_invalid_seed_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("bad.json");
    let bad = SEED.replace(
        r#""user": "ops@acme.test""#,
        r#""user": "nobody@acme.test""#,
    );
    let stderr = failed_start(&seed, &bad);
    assert!(stderr.contains("accounts[0].tokens[2].user"), "{stderr}");

    let bad = SEED.replace(
        r#""dataAccess": ["v-eks"]"#,
        r#""dataAccess": ["v-eks", "v-gone"]"#,
    );
    let stderr = failed_start(&seed, &bad);
    assert!(
        stderr.contains("accounts[0].users[1].dataAccess[1]"),
        "{stderr}"
    );
}

fn cli(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "finout-mock {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_users_and_tokens_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let port = free_port();
    spawn_binary(&db, port).stop(); // bootstraps the mock's account

    let user = cli(&[
        "user",
        "add",
        "--store",
        &db,
        "--email",
        "dev@acme.test",
        "--roles",
        "Basic,Read-only",
    ]);
    let user_id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["roles"], json!(["Basic", "Read-only"]));
    let personal = cli(&[
        "token",
        "create",
        "--store",
        &db,
        "--description",
        "dev",
        "--role",
        "Basic",
        "--user",
        &user_id,
    ]);
    let api = cli(&[
        "token",
        "create",
        "--store",
        &db,
        "--description",
        "job",
        "--role",
        "Read-only",
    ]);
    let listed = cli(&["token", "list", "--store", &db]);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 3, "{listed}");
    assert!(
        !listed
            .to_string()
            .contains(api["secretKey"].as_str().unwrap())
    );
    cli(&[
        "token",
        "revoke",
        "--store",
        &db,
        api["clientId"].as_str().unwrap(),
    ]);
    // Two of the mock account's views (the CLI refuses others, as the HTTP API does).
    let account = "f1a70c4e-0000-4000-8000-000000000001".parse().unwrap();
    let mut views: Vec<String> = finout_mock::fixtures::default_views(account)
        .into_iter()
        .take(2)
        .map(|v| v.id)
        .collect();
    let listed = format!("{},{}", views[1], views[0]);
    views.sort();
    let narrowed = cli(&[
        "user",
        "roles",
        "--store",
        &db,
        &user_id,
        "--roles",
        "Basic",
        "--data-access",
        &listed,
    ]);
    assert_eq!(narrowed["dataAccess"], json!(views));
    let kept = cli(&[
        "user", "roles", "--store", &db, &user_id, "--roles", "Basic",
    ]);
    assert_eq!(
        kept["dataAccess"],
        json!(views),
        "unchanged without the flag"
    );
    let opened = cli(&[
        "user",
        "roles",
        "--store",
        &db,
        &user_id,
        "--roles",
        "Basic",
        "--data-access",
        "all",
    ]);
    assert_eq!(opened["dataAccess"], Value::Null);

    let server = spawn_binary(&db, port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let creds = |t: &Value| {
        (
            t["clientId"].as_str().unwrap().to_owned(),
            t["secretKey"].as_str().unwrap().to_owned(),
        )
    };
    let (pid, psecret) = creds(&personal);
    let (status, me) = call(
        addr,
        Method::GET,
        "/admin/whoami",
        Some((&pid, &psecret)),
        None,
    )
    .await;
    assert_eq!((status, me["roles"].clone()), (200, json!(["Basic"])));
    let (aid, asecret) = creds(&api);
    assert_eq!(
        call(addr, Method::GET, "/v1/view", Some((&aid, &asecret)), None)
            .await
            .0,
        401
    );

    cli(&["user", "remove", "--store", &db, &user_id]);
    server.stop();
    let server = spawn_binary(&db, port);
    assert_eq!(
        call(
            addr,
            Method::GET,
            "/admin/whoami",
            Some((&pid, &psecret)),
            None
        )
        .await
        .0,
        401
    );
    server.stop();
}

/// A plain-text GET without credentials.
async fn text(addr: SocketAddr, path: &str, creds: (&str, &str)) -> String {
    let (status, bytes) = call_raw(addr, Method::GET, path, Some(creds), None).await;
    assert_eq!(status, 200);
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The value of one `finout_auth_requests_total` line of `/metrics`.
fn requests_total(metrics: &str, outcome: &str) -> u64 {
    let line = format!("finout_auth_requests_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {outcome} line in:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_403_and_429_the_mock_answers() {
    let store = Arc::new(MemoryTokenStore::new());
    let auth = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let account = admin.create_account("Acme").await.unwrap();
    let reader = admin
        .issue_api_token(account.id, None, NewToken::new("reader", Role::ReadOnly))
        .await
        .unwrap();
    let root = admin
        .add_user(account.id, "root@acme.test", vec![Role::Admin])
        .await
        .unwrap();
    let root = admin
        .issue_personal_token(account.id, root.id, NewToken::new("metrics", Role::Admin))
        .await
        .unwrap();
    let root = (
        root.client_id.to_string(),
        root.secret_key.expose_secret().to_owned(),
    );
    let root = (root.0.as_str(), root.1.as_str());
    // One request in flight per token, each held for 300 ms: a second one at once is 429.
    let app = Mock::new(admin, auth)
        .max_in_flight(1)
        .latency(Duration::from_millis(300))
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let creds = (reader.client_id.as_str(), reader.secret_key.expose_secret());

    // Only an Admin user reads the metrics: they tell which client ids are tokens in use.
    let (status, _) = call(addr, Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 401);
    let (status, body) = call(addr, Method::GET, "/metrics", Some(creds), None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));
    let before = text(addr, "/metrics", root).await;
    assert_eq!(
        requests_total(&before, "forbidden"),
        1,
        "the refused read above"
    );
    assert_eq!(requests_total(&before, "too_many_requests"), 0);

    // A handler's 403: Read-only cannot write virtual tags.
    let (status, body) = call(
        addr,
        Method::POST,
        "/v1/virtual-tags",
        Some(creds),
        Some(json!({"name": "team"})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));

    // The concurrency limit's 429: two at once.
    let (first, second) = tokio::join!(
        call(addr, Method::GET, "/v1/view", Some(creds), None),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            call(addr, Method::GET, "/v1/view", Some(creds), None).await
        }
    );
    assert_eq!(first.0, 200);
    assert_eq!(
        (second.0, second.1["error"].as_str()),
        (429, Some("too_many_requests"))
    );

    let after = text(addr, "/metrics", root).await;
    assert_eq!(requests_total(&after, "forbidden"), 2, "{after}");
    assert_eq!(requests_total(&after, "too_many_requests"), 1, "{after}");
}

/// The first view of the caller's account.
async fn first_view(addr: SocketAddr, creds: (&str, &str)) -> String {
    let (status, views) = call(addr, Method::GET, "/v1/view", Some(creds), None).await;
    assert_eq!(status, 200);
    views["data"][0]["id"].as_str().unwrap().to_owned()
}

fn series_names(body: &Value) -> Vec<String> {
    field_of_each(body, "name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_view_answers_real_clients_and_never_crashes() {
    let (addr, id, secret, _) = start_in_process().await;
    let creds = Some((id.as_str(), secret.as_str()));
    let view = first_view(addr, (&id, &secret)).await;
    let query = |body: Value| {
        call(
            addr,
            Method::POST,
            "/v1/cost/query-by-view",
            creds,
            Some(body),
        )
    };

    // The request that aborted the process: refused, and the server keeps serving.
    let crash = json!({"viewId": view, "date": {"unixTimeMillSecondsStart": i64::MIN, "unixTimeMillSecondsEnd": 0}});
    let (status, body) = query(crash).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    for (start, end) in [
        (i64::MIN, i64::MIN + 1),
        (0, i64::MAX),
        (i64::MAX - 1, i64::MAX),
        (-86_400_000, 0),
    ] {
        let (status, _) = query(json!({"viewId": view, "date": {"unixTimeMillSecondsStart": start, "unixTimeMillSecondsEnd": end}})).await;
        assert_eq!(status, 400, "{start}..{end}");
    }
    assert_eq!(
        first_view(addr, (&id, &secret)).await,
        view,
        "still serving"
    );

    // Only `viewId`, as three public clients send it: the last 30 days.
    let (status, body) = query(json!({"viewId": view})).await;
    assert_eq!(status, 200, "{body}");
    let total = body["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(total["name"], "Total");
    assert!((30..=31).contains(&total["data"].as_array().unwrap().len()));
    // Blank dates are refused, as Finout says.
    let (status, _) = query(json!({"viewId": view, "date": {}})).await;
    assert_eq!(status, 400);

    // Finout's own example sends seconds: taken as seconds, answered in milliseconds.
    let (status, body) = query(json!({"viewId": view, "date": {"unixTimeMillSecondsStart": 1_719_824_738, "unixTimeMillSecondsEnd": 1_719_911_138}, "costType": "netAmortizedCost"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["data"][0]["time"], 1_719_792_000_000_i64);

    // groupBy by a dimension of the keys, as a client sends `["vendor"]`.
    let (status, body) = query(json!({"viewId": view, "groupBy": ["vendor"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(series_names(&body), ["AWS", "GCP", "Kubernetes", "Total"]);
    let (status, _) = query(json!({"viewId": view, "groupBy": ["colour"]})).await;
    assert_eq!(status, 400);
    let (status, _) = query(json!({"viewId": view, "groupBy": ["vendor", "region"]})).await;
    assert_eq!(status, 400);
    let (status, keys) = call(
        addr,
        Method::GET,
        "/v1/megabill/query-language/keys",
        creds,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key"] == "vendor")
    );
    let (status, values) = call(
        addr,
        Method::GET,
        "/v1/megabill/query-language/values/Global/vendor",
        creds,
        None,
    )
    .await;
    assert_eq!(
        (status, values["values"].clone()),
        (200, json!(["AWS", "GCP", "Kubernetes"]))
    );
    let (status, _) = call(
        addr,
        Method::GET,
        "/v1/megabill/query-language/values/AWS/colour",
        creds,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // costType: one of Finout's, reflected in the numbers; anything else refused.
    let day = json!({"unixTimeMillSecondsStart": 1_719_792_000_000_i64, "unixTimeMillSecondsEnd": 1_719_878_399_999_i64});
    let (_, net) =
        query(json!({"viewId": view, "date": day, "costType": "netAmortizedCost"})).await;
    let (_, list) = query(json!({"viewId": view, "date": day, "costType": "listCost"})).await;
    let cost = |b: &Value| b["data"][0]["data"][0]["cost"].as_f64().unwrap();
    assert!(
        (cost(&list) - cost(&net) * 1.2).abs() < 0.02,
        "{} {}",
        cost(&list),
        cost(&net)
    );
    let (status, body) = query(json!({"viewId": view, "costType": "cheapCost"})).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("netAmortizedCost")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_view_without_dates_counts_30_days_back_from_the_mocks_clock() {
    use finout_auth::clock::ManualClock;
    use time::macros::datetime;
    // A date far from the wall clock, so that reading the wall clock shows.
    let clock = ManualClock::new(datetime!(2024-07-01 12:00 UTC));
    let s = finout_mock::MockServer::builder()
        .clock(clock.clone())
        .start()
        .await;
    let creds = (s.client_id(), s.secret_key());
    let view = first_view(s.address(), creds).await;
    let days = || async {
        let (status, body) = call(
            s.address(),
            Method::POST,
            "/v1/cost/query-by-view",
            Some(creds),
            Some(json!({"viewId": view})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let total = body["data"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(total["name"], "Total");
        let times: Vec<i64> = total["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["time"].as_i64().unwrap())
            .collect();
        (times[0], *times.last().unwrap(), times.len())
    };
    // 2024-06-01 12:00 to 2024-07-01 12:00: the days of both ends, 31 in all.
    assert_eq!(
        days().await,
        (1_717_200_000_000, 1_719_792_000_000, 31),
        "the range ends at the mock's clock"
    );
    clock.advance(time::Duration::days(1));
    assert_eq!(
        days().await,
        (1_717_286_400_000, 1_719_878_400_000, 31),
        "and moves with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_methods_and_bodies_answer_in_finouts_shape() {
    let (addr, id, secret, _) = start_in_process().await;
    let creds = Some((id.as_str(), secret.as_str()));
    // Authentication comes before routing: without credentials an unknown /v1 path is 401.
    let (status, body) = call(addr, Method::GET, "/v1/nope", None, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_credentials"))
    );
    let (status, body) = call(addr, Method::GET, "/v1/nope", creds, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    assert!(body["requestId"].is_string());
    let (status, body) = call(addr, Method::DELETE, "/v1/view", creds, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Over the body limit: 413 in the usual shape.
    let big = json!({"name": "big", "rules": [], "defaultValue": "x".repeat(finout_mock::MAX_BODY_BYTES)});
    let (status, body) = call(addr, Method::POST, "/v1/virtual-tags", creds, Some(big)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    // A body that is not declared JSON: 415.
    let (status, bytes) = call_raw(addr, Method::POST, "/v1/virtual-tags", creds, None).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    assert_eq!(
        first_view(addr, (&id, &secret)).await.len(),
        36,
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_answer_other_methods_with_finouts_405() {
    let (addr, id, secret, _) = start_in_process().await;
    let creds = Some((id.as_str(), secret.as_str()));
    let is_405 = |status: u16, body: &Value| {
        status == 405
            && body["error"] == "method_not_allowed"
            && body["message"].is_string()
            && body["requestId"].is_string()
    };
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        // The open route, with or without credentials.
        for who in [None, creds] {
            let (status, body) = call(addr, method.clone(), "/healthz", who, None).await;
            assert!(is_405(status, &body), "{method} /healthz: {status} {body}");
        }
        // /metrics needs credentials first, then answers the same 405.
        let (status, body) = call(addr, method.clone(), "/metrics", creds, None).await;
        assert!(is_405(status, &body), "{method} /metrics: {status} {body}");
        let (status, body) = call(addr, method.clone(), "/metrics", None, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("missing_credentials"))
        );
    }
    assert_eq!(
        call_raw(addr, Method::GET, "/healthz", None, None).await,
        (200, "ok".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_tags_are_capped_per_account() {
    let (addr, id, secret, _) = start_in_process().await;
    let creds = Some((id.as_str(), secret.as_str()));
    // By size: 16 MiB of tags, in bodies just under the limit (each counted twice: the live
    // fields and the version that saved them).
    let filler = "x".repeat(finout_mock::MAX_BODY_BYTES - 1024);
    let mut created = 0;
    let refusal = loop {
        let tag = json!({"name": format!("t{created}"), "rules": [], "defaultValue": filler});
        let (status, body) = call(addr, Method::POST, "/v1/virtual-tags", creds, Some(tag)).await;
        if status != 201 {
            break (status, body);
        }
        created += 1;
        assert!(created <= 40, "no cap on bytes");
    };
    assert_eq!(refusal.0, 409, "{}", refusal.1);
    assert!(created >= 30, "{created}");
    let (status, list) = call(addr, Method::GET, "/v1/virtual-tags", creds, None).await;
    assert_eq!(
        (status, list["virtualTags"].as_array().unwrap().len()),
        (200, created)
    );
}

/// Serve a bare mock with `limits` on a free port.
async fn serve_with(limits: finout_mock::ServerLimits) -> SocketAddr {
    let store = Arc::new(MemoryTokenStore::new());
    let auth = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(auth.clone());
    let app = Mock::new(admin, auth).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(finout_mock::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_real_client_waits_for_the_header_timeout_to_free_a_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CAP: usize = 8;
    const TIMEOUT: Duration = Duration::from_millis(500);
    let addr = serve_with(
        finout_mock::ServerLimits::default()
            .max_connections(CAP)
            .header_read_timeout(TIMEOUT),
    )
    .await;
    let started = std::time::Instant::now();
    // 20 connections that send half a request and wait: the first 8 take the cap, the next
    // 8 wait in the backlog for them, and the last 4 for those.
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: mock\r\n")
            .await
            .unwrap();
        idle.push(stream);
    }
    // A real client, 21st in line: accepted only once two rounds of idle connections have
    // been closed by the header timeout (without the cap it is served at once), then served.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(10),
        call_raw(addr, Method::GET, "/healthz", None, None),
    )
    .await
    .expect("served");
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        waited >= 2 * TIMEOUT,
        "served after {waited:?}: the cap of {CAP} did not hold it back"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Every half-sent one was closed by the server (end of stream or reset, never silence).
    for (i, mut stream) in idle.into_iter().enumerate() {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // a 408 before closing
                }
            }
        })
        .await;
        assert!(read.is_ok(), "connection {i} still open after 5 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cap_past_the_largest_is_clamped_not_a_panic() {
    let mut limits = finout_mock::ServerLimits::default();
    limits.max_connections = usize::MAX;
    let addr = serve_with(limits).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        call_raw(addr, Method::GET, "/healthz", None, None),
    )
    .await
    .expect("served");
    assert_eq!(answer, (200, "ok".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costguard_endpoints_and_tag_metadata_answer_as_documented() {
    let (addr, id, secret, account) = start_in_process().await;
    let creds = Some((id.as_str(), secret.as_str()));

    // CostGuard, as clients use it: the scans, then the recommendations of the first.
    let (status, body) = call(addr, Method::GET, "/v1/cost-guard/scans", creds, None).await;
    assert_eq!(status, 200);
    assert!(body["requestId"].is_string());
    let scans = body["scans"].as_array().unwrap();
    assert_eq!(scans.len(), 3);
    for scan in scans {
        assert!(scan["scanId"].is_string() && scan["scanName"].is_string());
        assert!(scan["scanLastRunTime"].is_i64());
        assert!(
            scan["scanMetadata"]["type"].is_string()
                && scan["scanMetadata"]["analysisDays"].is_u64()
        );
    }
    let first = scans[0]["scanId"].as_str().unwrap().to_owned();
    let recommend = |body: Value| {
        call(
            addr,
            Method::POST,
            "/v1/cost-guard/scans-recommendations",
            creds,
            Some(body),
        )
    };
    let (status, body) = recommend(json!({"scanId": first})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scanName"], scans[0]["scanName"]);
    let resource = &body["data"][0]["resources"][0];
    assert!(resource["resourceId"].is_string() && resource["resourceMetadata"].is_object());
    assert!(
        resource["resourceTotalWaste"].is_f64()
            && resource["resourceYearlyPotentialSavings"].is_f64()
    );
    assert!(body["data"][0]["groupYearlyPotentialSavings"].is_f64());
    let ec2 = scans[2]["scanId"].as_str().unwrap().to_owned();
    assert_eq!(scans[2]["scanName"], "EC2 - Rightsizing");
    let (status, by_region) =
        recommend(json!({"scanId": ec2, "groupBy": {"costCenter": "AWS", "key": "region"}})).await;
    assert_eq!(status, 200);
    assert_eq!(
        by_region["data"].as_array().unwrap().len(),
        3,
        "one group per region"
    );
    // A filter on a key no cost has keeps nothing.
    let (status, none) = recommend(json!({"scanId": ec2, "filters": {"costCenter": "AWS", "key": "x", "operator": "is", "value": "y"}})).await;
    assert_eq!((status, &none["data"]), (200, &json!([])));
    // Filters are checked as a virtual-tag rule's are.
    let (status, bad) = recommend(json!({"scanId": ec2, "filters": {"costCenter": "AWS", "key": "region", "operator": "near", "value": "x"}})).await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["message"]
            .as_str()
            .unwrap()
            .starts_with("filters.operator: \"near\" is not one of"),
        "{bad}"
    );
    let (status, _) = recommend(json!({"scanId": "nope"})).await;
    assert_eq!(status, 404);
    let (status, _) = recommend(json!({"scanId": first, "groupBy": {"costCenter": "AWS"}})).await;
    assert_eq!(status, 400);

    // Endpoints: created, listed, validated, and not by a Read-only token.
    let (status, body) = call(addr, Method::GET, "/v1/endpoints", creds, None).await;
    assert_eq!((status, body["endpoints"].clone()), (200, json!([])));
    let email =
        json!({"type": "email", "name": "finops", "configuration": {"to": "finops@acme.test"}});
    let (status, created) = call(addr, Method::POST, "/v1/endpoints", creds, Some(email)).await;
    assert_eq!(status, 200, "{created}");
    let endpoint = &created["endpoint"];
    assert_eq!(endpoint["configuration"]["to"], "finops@acme.test");
    assert_eq!(endpoint["accountId"], account.to_string());
    assert!(
        endpoint["id"].is_string()
            && endpoint["createdAt"].is_string()
            && created["requestId"].is_string()
    );
    for bad in [
        json!({"type": "slack", "name": "s", "configuration": {"to": "http://hooks.example"}}),
        json!({"type": "msteams", "name": "t", "configuration": {"to": "x"}}),
        json!({"type": "email", "name": "", "configuration": {"to": "a@b.c"}}),
        json!({"type": "email", "name": "n"}),
    ] {
        let (status, _) = call(
            addr,
            Method::POST,
            "/v1/endpoints",
            creds,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (_, reader) = call(
        addr,
        Method::POST,
        "/admin/api-tokens",
        creds,
        Some(json!({"description": "r", "role": "Read-only"})),
    )
    .await;
    let reader = Some((
        reader["clientId"].as_str().unwrap(),
        reader["secretKey"].as_str().unwrap(),
    ));
    let slack = json!({"type": "slack", "name": "s", "configuration": {"to": "https://hooks.slack.com/services/x"}});
    let (status, _) = call(addr, Method::POST, "/v1/endpoints", reader, Some(slack)).await;
    assert_eq!(status, 403);
    let (_, body) = call(addr, Method::GET, "/v1/endpoints", reader, None).await;
    assert_eq!(body["endpoints"].as_array().unwrap().len(), 1);

    // Virtual tag metadata: empty, replaced whole, read back; gone with its tag.
    let (_, tag) = call(
        addr,
        Method::POST,
        "/v1/virtual-tags",
        creds,
        Some(json!({"name": "teams", "rules": [{"to": "App Team"}]})),
    )
    .await;
    let path = format!("/v1/virtual-tags/{}/metadata", tag["id"].as_str().unwrap());
    let (status, body) = call(addr, Method::GET, &path, creds, None).await;
    assert_eq!((status, body["metadata"].clone()), (200, json!({})));
    let metadata = json!({"App Team": {"groups": ["g1"], "customMetadata": {"owner": "Dave"}, "endpoints": [created["endpoint"]["id"]]}});
    let (status, body) = call(addr, Method::PUT, &path, creds, Some(metadata.clone())).await;
    assert_eq!((status, body["metadata"].clone()), (200, metadata.clone()));
    let (_, body) = call(addr, Method::GET, &path, creds, None).await;
    assert_eq!(body["metadata"], metadata);
    for bad in [
        json!({"a.b": {}}),
        json!({"x": {"groups": "g"}}),
        json!({"x": {"other": 1}}),
        json!([1]),
    ] {
        let (status, _) = call(addr, Method::PUT, &path, creds, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = call(addr, Method::PUT, &path, reader, Some(metadata)).await;
    assert_eq!(status, 403);
    let (status, _) = call(
        addr,
        Method::DELETE,
        &format!("/v1/virtual-tags/{}", tag["id"].as_str().unwrap()),
        creds,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(addr, Method::GET, &path, creds, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mock_server_hashes_with_the_test_hasher_unless_told_otherwise() {
    use finout_auth::{ClientId, crypto::SecretHasher};
    async fn stored_phc(s: &finout_mock::MockServer) -> String {
        let id = ClientId::from(s.client_id());
        let found = s.admin().store().find_token(&id).await.unwrap();
        found.unwrap().record.secret_hash.as_phc().to_owned()
    }
    let fast = finout_mock::MockServer::start().await;
    let real = finout_mock::MockServer::builder()
        .hasher(SecretHasher::default())
        .start()
        .await;
    assert!(
        stored_phc(&fast).await.contains("$m=8,t=1,p=1$"),
        "the test hasher by default"
    );
    assert!(
        stored_phc(&real).await.contains("$m=19456,t=2,p=1$"),
        "argon2's real cost when asked"
    );
    for s in [&fast, &real] {
        let (status, body) = call(
            s.address(),
            Method::GET,
            "/v1/view",
            Some((s.client_id(), s.secret_key())),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_idle_after_its_answer_is_closed_by_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TIMEOUT: Duration = Duration::from_millis(300);
    let addr = serve_with(finout_mock::ServerLimits::default().header_read_timeout(TIMEOUT)).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: mock\r\n\r\n")
        .await
        .unwrap();
    // The whole answer (keep-alive: the connection stays open after it).
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.ends_with(b"ok") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let answered = std::time::Instant::now();
    // Then silence from the client: the server closes the connection after the timeout.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // a 408 before closing
            }
        }
    })
    .await;
    let idle = answered.elapsed();
    assert!(
        closed.is_ok(),
        "an idle keep-alive connection stayed open for 5 s"
    );
    assert!(
        idle >= TIMEOUT / 2,
        "closed after {idle:?}, before the timeout"
    );
}
