//! Seeds are all or nothing: a seed is checked whole, by the admin API's rules and against
//! what the store holds, before anything is written; every problem is named by its field
//! path; a refused seed leaves the store as it was; a good one loads once, and loading it
//! again changes nothing.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
};

use finout_auth::{
    AccountId, ClientId, TokenAdmin, UserId,
    crypto::SecretHasher,
    store::{MemoryTokenStore, SqliteTokenStore, TokenAdminStore, TokenFilter},
};
use finout_mock::seed::{Seed, SeedError};
use serde_json::{Value, json};

const A0: &str = "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d";
const A1: &str = "3e4fab5f-7c2d-4a1f-8e3b-8d6c9f2a1b4e";
const OPS: &str = "5b0c3f1e-2a4d-4c6b-8e9f-0a1b2c3d4e5f";
const DEV: &str = "6c1d4a2f-3b5e-4d7c-9fa0-1b2c3d4e5f60";
const BEA: &str = "7d2e5b30-4c6f-4e8d-a0b1-2c3d4e5f6071";

/// A good seed of two accounts, each with users and tokens.
fn good() -> Value {
    json!({"accounts": [
        {"id": A0, "name": "Acme",
         "views": [{"id": "v-all", "name": "Everything"}, {"id": "v-eks", "name": "EKS"}],
         "users": [
            {"id": OPS, "email": "ops@acme.test", "roles": ["Admin"]},
            {"id": DEV, "email": "dev@acme.test", "roles": ["Read-only"], "dataAccess": ["v-eks"]}
         ],
         "tokens": [
            {"clientId": "ci-reader", "secretKey": "reader-s3cret", "type": "api",
             "role": "Read-only", "description": "CI"},
            {"clientId": "ops-laptop", "secretKey": "ops-s3cret", "type": "personal",
             "user": "ops@acme.test", "role": "Admin", "description": "laptop"},
            {"clientId": "dev-laptop", "secretKey": "dev-s3cret", "type": "personal",
             "user": "Dev@Acme.test", "role": "Read-only", "description": "laptop"}
         ]},
        {"id": A1, "name": "Globex",
         "users": [{"id": BEA, "email": "bea@globex.test", "roles": ["Basic"]}],
         "tokens": [
            {"clientId": "globex-job", "secretKey": "job-s3cret", "type": "api", "role": "Basic"},
            {"clientId": "bea-laptop", "secretKey": "bea-s3cret", "type": "personal",
             "user": "bea@globex.test", "role": "Basic"}
         ]}
    ]})
}

/// `seed` with the value at `pointer` (an object's field is added if missing) replaced.
fn with(mut seed: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match seed.pointer_mut(parent) {
        Some(Value::Object(fields)) => {
            fields.insert(key.to_owned(), value);
        }
        Some(Value::Array(items)) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("no {parent}"),
    }
    seed
}

fn hasher() -> SecretHasher {
    SecretHasher::with_params(64, 1, 1).unwrap()
}

async fn stores() -> Vec<(tempfile::TempDir, Arc<dyn TokenAdminStore>)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("seed.db").display());
    let sqlite = SqliteTokenStore::connect(&url).await.unwrap();
    vec![
        (
            tempfile::tempdir().unwrap(),
            Arc::new(MemoryTokenStore::new()) as _,
        ),
        (dir, Arc::new(sqlite) as _),
    ]
}

async fn load(store: &Arc<dyn TokenAdminStore>, seed: &Value) -> Result<(), SeedError> {
    let seed = Seed::parse(&seed.to_string())?;
    seed.load(&TokenAdmin::new(store.clone()), &hasher()).await
}

/// Everything the store holds about the ids `good()` and its variants use.
async fn snapshot(store: &Arc<dyn TokenAdminStore>) -> String {
    let mut out = String::new();
    for account in [A0, A1] {
        let id: AccountId = account.parse().unwrap();
        out += &format!("{:?}\n", store.get_account(id).await.unwrap());
        out += &format!("{:?}\n", store.list_users(id).await.unwrap());
        out += &format!(
            "{:?}\n",
            store.list_tokens(id, TokenFilter::All).await.unwrap()
        );
    }
    for user in [OPS, DEV, BEA] {
        let id: UserId = user.parse().unwrap();
        out += &format!("{:?}\n", store.find_user(id).await.unwrap());
    }
    for client_id in [
        "ci-reader",
        "ops-laptop",
        "dev-laptop",
        "globex-job",
        "bea-laptop",
    ] {
        let found = store.find_token(&ClientId::from(client_id)).await.unwrap();
        out += &format!("{:?}\n", found.map(|f| f.record));
    }
    out
}

/// `seed` is refused on every store, after `before` (if any) was loaded: the error names
/// `field` (with `reason` in its text), and the store is as it was.
async fn refused_after(before: Option<&Value>, seed: Value, field: &str, reason: &str) {
    for (_dir, store) in stores().await {
        if let Some(before) = before {
            load(&store, before).await.expect("the first seed loads");
        }
        let was = snapshot(&store).await;
        let e = load(&store, &seed).await.expect_err("refused");
        let text = e.to_string();
        assert!(
            e.problems().iter().any(|p| p.field == field),
            "{field} not named in: {text}"
        );
        assert!(text.contains(&format!("{field}: ")), "{text}");
        assert!(text.contains(reason), "{reason:?} not in {text}");
        assert_eq!(snapshot(&store).await, was, "{store:?} changed by {text}");
    }
}

async fn refused(seed: Value, field: &str, reason: &str) {
    refused_after(None, seed, field, reason).await;
}

#[tokio::test]
async fn a_good_seed_loads_whole_and_loading_it_again_changes_nothing() {
    for (_dir, store) in stores().await {
        load(&store, &good()).await.unwrap();
        let loaded = snapshot(&store).await;
        let a0: AccountId = A0.parse().unwrap();
        assert_eq!(store.list_users(a0).await.unwrap().len(), 2);
        assert_eq!(
            store.list_tokens(a0, TokenFilter::All).await.unwrap().len(),
            3
        );
        let dev = store
            .find_token(&"dev-laptop".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            dev.user.map(|u| u.email),
            Some("dev@acme.test".to_owned()),
            "a token names its user by email, compared as the admin API compares them"
        );
        load(&store, &good()).await.unwrap();
        assert_eq!(snapshot(&store).await, loaded, "a second load is a no-op");
    }
}

#[tokio::test]
async fn two_users_sharing_an_id_are_refused() {
    let seed = with(good(), "/accounts/0/users/1/id", json!(OPS));
    refused(seed, "accounts[0].users[1].id", "accounts[0].users[0]").await;
}

#[tokio::test]
async fn a_user_id_in_two_accounts_is_refused() {
    let seed = with(good(), "/accounts/1/users/0/id", json!(DEV));
    refused(
        seed,
        "accounts[1].users[0].id",
        "the user accounts[0].users[1] already has this id",
    )
    .await;
}

#[tokio::test]
async fn a_client_id_in_two_accounts_is_refused() {
    let seed = with(good(), "/accounts/1/tokens/0/clientId", json!("ci-reader"));
    refused(
        seed,
        "accounts[1].tokens[0].clientId",
        "the token accounts[0].tokens[0] already has this client id",
    )
    .await;
}

#[tokio::test]
async fn an_account_listed_twice_is_refused() {
    let seed = with(good(), "/accounts/1/id", json!(A0));
    refused(
        seed,
        "accounts[1].id",
        "the account accounts[0] already has this id",
    )
    .await;
}

#[tokio::test]
async fn a_repeated_email_is_refused_as_the_admin_api_compares_emails() {
    let seed = with(good(), "/accounts/0/users/1/email", json!(" OPS@acme.test"));
    refused(
        seed,
        "accounts[0].users[1].email",
        "the user accounts[0].users[0] already has this email",
    )
    .await;
}

#[tokio::test]
async fn an_empty_email_is_refused() {
    let seed = with(good(), "/accounts/0/users/1/email", json!(""));
    refused(seed, "accounts[0].users[1].email", "email must be").await;
}

#[tokio::test]
async fn a_user_without_roles_is_refused() {
    let seed = with(good(), "/accounts/1/users/0/roles", json!([]));
    refused(seed, "accounts[1].users[0].roles", "at least one role").await;
}

#[tokio::test]
async fn a_token_role_above_its_users_roles_is_refused() {
    let seed = with(good(), "/accounts/0/tokens/2/role", json!("Basic"));
    refused(
        seed,
        "accounts[0].tokens[2].role",
        "within its user's roles",
    )
    .await;
}

#[tokio::test]
async fn an_admin_with_restricted_data_access_is_refused() {
    let seed = with(good(), "/accounts/0/users/0/dataAccess", json!(["v-eks"]));
    refused(
        seed,
        "accounts[0].users[0].dataAccess",
        "Admin sees all data",
    )
    .await;
}

#[tokio::test]
async fn token_users_must_fit_the_token_kind() {
    let seed = with(
        good(),
        "/accounts/0/tokens/1/user",
        json!("nobody@acme.test"),
    );
    refused(
        seed,
        "accounts[0].tokens[1].user",
        "no user of this account",
    )
    .await;
    let seed = with(good(), "/accounts/0/tokens/0/user", json!("ops@acme.test"));
    refused(
        seed,
        "accounts[0].tokens[0].user",
        "an API token has no user",
    )
    .await;
}

#[tokio::test]
async fn every_problem_is_reported() {
    let seed = with(good(), "/accounts/0/users/1/email", json!(""));
    let seed = with(seed, "/accounts/1/id", json!(A0));
    let e = Seed::parse(&seed.to_string()).unwrap_err();
    let fields: Vec<&str> = e.problems().iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "accounts[0].users[1].email",
            "accounts[0].tokens[2].user", // names that user's email
            "accounts[1].id"
        ]
    );
}

/// Account 0 alone, loaded before the seeds that contradict it.
fn first_account() -> Value {
    let mut seed = good();
    seed["accounts"].as_array_mut().unwrap().truncate(1);
    seed
}

#[tokio::test]
async fn a_user_id_the_store_has_in_another_account_is_refused() {
    let seed = with(good(), "/accounts/1/users/0/id", json!(OPS));
    let mut seed = seed;
    seed["accounts"].as_array_mut().unwrap().remove(0);
    refused_after(
        Some(&first_account()),
        seed,
        "accounts[0].users[0].id",
        "a user of another account",
    )
    .await;
}

#[tokio::test]
async fn a_user_the_store_has_with_another_email_is_refused() {
    let seed = with(good(), "/accounts/0/users/1/email", json!("dev2@acme.test"));
    let seed = with(seed, "/accounts/0/tokens/2/user", json!("dev2@acme.test"));
    refused_after(
        Some(&first_account()),
        seed,
        "accounts[0].users[1].id",
        "another email (dev@acme.test)",
    )
    .await;
    // And an email the store gives another user of the account.
    let seed = with(first_account(), "/accounts/0/users/1/id", json!(BEA));
    refused_after(
        Some(&first_account()),
        seed,
        "accounts[0].users[1].email",
        "another user of this account",
    )
    .await;
}

#[tokio::test]
async fn a_client_id_the_store_has_for_another_account_or_user_is_refused() {
    let mut seed = with(good(), "/accounts/1/tokens/0/clientId", json!("ci-reader"));
    seed["accounts"].as_array_mut().unwrap().remove(0);
    refused_after(
        Some(&first_account()),
        seed,
        "accounts[0].tokens[0].clientId",
        "a token of another account",
    )
    .await;
    let seed = with(good(), "/accounts/0/tokens/1/user", json!("dev@acme.test"));
    let seed = with(seed, "/accounts/0/tokens/1/role", json!("Read-only"));
    refused_after(
        Some(&first_account()),
        seed,
        "accounts[0].tokens[1].clientId",
        "a personal token of another user",
    )
    .await;
}

/// The binary refuses a bad seed before it writes anything, so a fixed seed then loads on
/// the same file (instead of every restart failing on what the first one left).
#[test]
fn the_binary_refuses_a_bad_seed_whole_and_then_loads_the_fixed_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("mock.db").display());
    let path = dir.path().join("seed.json");
    let start = |seed: &Value| {
        std::fs::write(&path, seed.to_string()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_finout-mock"))
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &db, "--seed"])
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The problem is in the last account: the first one must not be written either.
    let bad = with(good(), "/accounts/1/users/0/id", json!(OPS));
    let output = start(&bad).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("accounts[1].users[0].id"), "{stderr}");
    for secret in ["reader-s3cret", "ops-s3cret"] {
        assert!(!stderr.contains(secret), "a secret in: {stderr}");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let empty = runtime.block_on(async {
        let store: Arc<dyn TokenAdminStore> =
            Arc::new(SqliteTokenStore::connect(&db).await.unwrap());
        snapshot(&store).await
    });
    assert!(
        !empty.contains("Some("),
        "nothing of the bad seed is stored: {empty}"
    );

    let mut server = start(&good());
    let stdout = BufReader::new(server.stdout.take().unwrap());
    let ready = stdout
        .lines()
        .map(Result::unwrap)
        .any(|line| line.contains("listening on"));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(ready, "the fixed seed starts");
    let loaded = runtime.block_on(async {
        let store: Arc<dyn TokenAdminStore> =
            Arc::new(SqliteTokenStore::connect(&db).await.unwrap());
        store
            .list_tokens(A1.parse().unwrap(), TokenFilter::All)
            .await
            .unwrap()
            .len()
    });
    assert_eq!(loaded, 2);
}
