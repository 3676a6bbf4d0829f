//! Replicas started at the same moment with one seed on a fresh PostgreSQL database all
//! start: the token store's migrations, the mock's own tables and the seed are each made
//! once, whoever gets there first, and the others find them there.
//!
//! Runs when `FINOUT_AUTH_TEST_DATABASE_URL` is set (`.ci/run` sets it), on a database of
//! its own, created and dropped here.

mod binary;

use std::process::Child;

use binary::{first_line, get_status, spawn};
use finout_auth::{
    AccountId,
    store::{PostgresTokenStore, TokenAdminStore, TokenFilter},
};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

const REPLICAS: usize = 4;

/// A database made for one test, dropped when the test ends (also when it fails).
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create(runtime: &tokio::runtime::Runtime, admin_url: &str) -> Self {
        let name = format!("finout_mock_start_{}", uuid::Uuid::new_v4().simple());
        runtime.block_on(async {
            let mut admin = PgConnection::connect(admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .unwrap();
        });
        let url = with_database(admin_url, &name);
        Database {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let drop = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
                .execute(&mut admin)
                .await
        };
        if let Err(e) = tokio::runtime::Runtime::new().unwrap().block_on(drop) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// `url` with its database name replaced by `name` (its query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (url, query) = url
        .split_once('?')
        .map_or((url, None), |(u, q)| (u, Some(q)));
    let authority = url.find("://").map_or(0, |i| i + 3);
    let path = url[authority..]
        .find('/')
        .map_or(url.len(), |i| authority + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &url[..path]),
        None => format!("{}/{name}", &url[..path]),
    }
}

/// The first line a replica prints, or (when it exits instead) why it failed.
fn started(child: &mut Child) -> Result<Value, String> {
    let (line, _) = first_line(child);
    match serde_json::from_str(&line) {
        Ok(value) => Ok(value),
        Err(_) => {
            let _ = child.kill();
            let output = child_output(child);
            Err(format!("printed {line:?}; {output}"))
        }
    }
}

fn child_output(child: &mut Child) -> String {
    use std::io::Read;
    let status = child.wait().unwrap();
    let mut logs = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut logs);
    }
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("finout-mock:") || l.contains("ERROR"))
        .collect();
    format!("{status}: {}", errors.join("\n"))
}

#[test]
fn replicas_starting_at_once_with_one_seed_on_a_fresh_database_all_start() {
    let Ok(admin_url) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (no PostgreSQL to test against)"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = Database::create(&runtime, &admin_url);
    // Ids of this run only.
    let account = uuid::Uuid::new_v4();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (api, personal) = (format!("api-{run}"), format!("ops-{run}"));
    let seed = json!({"accounts": [{
        "id": account, "name": "Acme",
        "users": [{"id": uuid::Uuid::new_v4(), "email": "ops@acme.test", "roles": ["Admin"]}],
        "tokens": [
            {"clientId": api, "secretKey": "api-s3cret", "type": "api", "role": "Read-only"},
            {"clientId": personal, "secretKey": "ops-s3cret", "type": "personal",
             "user": "ops@acme.test", "role": "Admin"}
        ]
    }]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.json");
    std::fs::write(&path, seed.to_string()).unwrap();
    let path = path.display().to_string();

    let flags = ["--json", "--seed", &path, "--store-connections", "3"];
    let mut replicas: Vec<Child> = (0..REPLICAS).map(|_| spawn(&db.url, &flags)).collect();
    let outcomes: Vec<Result<Value, String>> = replicas.iter_mut().map(started).collect();
    let creds = (personal.as_str(), "ops-s3cret");
    let answers: Vec<u16> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|started| get_status(started["baseUrl"].as_str().unwrap(), "/admin/whoami", creds))
        .collect();
    for mut replica in replicas {
        let _ = replica.kill();
        let _ = replica.wait();
    }
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "replicas that did not start: {failed:#?}"
    );
    assert_eq!(answers, [200; REPLICAS], "each admits the seeded token");

    runtime.block_on(async {
        let store = PostgresTokenStore::connect(&db.url).await.unwrap();
        let account = AccountId(account);
        assert!(store.get_account(account).await.unwrap().is_some());
        assert_eq!(store.list_users(account).await.unwrap().len(), 1);
        let tokens = store.list_tokens(account, TokenFilter::All).await.unwrap();
        let mut ids: Vec<String> = tokens.iter().map(|t| t.client_id.to_string()).collect();
        ids.sort();
        assert_eq!(ids, [api.clone(), personal.clone()]);
        let seeded: i64 = sqlx::query_scalar("SELECT count(*) FROM finout_mock_seeded")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(
            seeded, 4,
            "the account, the user and the two tokens, once each"
        );
        store.pool().close().await;
    });
}
