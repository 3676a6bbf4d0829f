//! A seed never resurrects: what a seed created and a client then revoked or removed through
//! the API stays gone when the mock restarts on the same store with the same seed, while
//! what is added to the seed file later is created.

mod binary;

use std::{path::Path, process::Child};

use binary::{first_line, get_status, request, spawn, sqlite_url, status, stop};
use finout_auth::{
    ClientId, UserId,
    store::{SqliteTokenStore, TokenAdminStore, TokenStore},
};
use serde_json::{Value, json};

const ACCOUNT: &str = "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d";
const OPS: &str = "5b0c3f1e-2a4d-4c6b-8e9f-0a1b2c3d4e5f";
const DEV: &str = "6c1d4a2f-3b5e-4d7c-9fa0-1b2c3d4e5f60";

const OPS_TOKEN: (&str, &str) = ("ops-laptop", "ops-s3cret");
const CI_TOKEN: (&str, &str) = ("ci-reader", "reader-s3cret");
const DEV_TOKEN: (&str, &str) = ("dev-laptop", "dev-s3cret");
const LATER_TOKEN: (&str, &str) = ("ci-later", "later-s3cret");

fn seed() -> Value {
    json!({"accounts": [{
        "id": ACCOUNT, "name": "Acme",
        "users": [
            {"id": OPS, "email": "ops@acme.test", "roles": ["Admin"]},
            {"id": DEV, "email": "dev@acme.test", "roles": ["Basic"]}
        ],
        "tokens": [
            {"clientId": OPS_TOKEN.0, "secretKey": OPS_TOKEN.1, "type": "personal",
             "user": "ops@acme.test", "role": "Admin"},
            {"clientId": CI_TOKEN.0, "secretKey": CI_TOKEN.1, "type": "api", "role": "Read-only"},
            {"clientId": DEV_TOKEN.0, "secretKey": DEV_TOKEN.1, "type": "personal",
             "user": "dev@acme.test", "role": "Basic"}
        ]
    }]})
}

/// `serve --seed` on `store`: the child and its base URL, once it listens.
fn start(store: &str, seed: &Path) -> (Child, String) {
    let seed = seed.display().to_string();
    let mut child = spawn(store, &["--json", "--seed", &seed]);
    let (line, _) = first_line(&mut child);
    let started: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{e}: {line:?} (did the start fail?)"));
    let base_url = started["baseUrl"].as_str().unwrap().to_owned();
    (child, base_url)
}

#[test]
fn what_a_seed_created_and_was_revoked_or_removed_stays_gone_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_url(&dir);
    let path = dir.path().join("seed.json");
    std::fs::write(&path, seed().to_string()).unwrap();

    let (child, base) = start(&store, &path);
    for token in [OPS_TOKEN, CI_TOKEN, DEV_TOKEN] {
        assert_eq!(get_status(&base, "/admin/whoami", token), 200, "{token:?}");
    }
    let revoked = request(&base, "DELETE", "/admin/api-tokens/ci-reader", OPS_TOKEN);
    assert_eq!(status(&revoked), 204, "{revoked}");
    let removed = request(&base, "DELETE", &format!("/admin/users/{DEV}"), OPS_TOKEN);
    assert_eq!(status(&removed), 204, "{removed}");
    assert_eq!(get_status(&base, "/admin/whoami", CI_TOKEN), 401);
    assert_eq!(get_status(&base, "/admin/whoami", DEV_TOKEN), 401);
    stop(child);

    // The same seed again, twice: nothing comes back, and the start says how much it skipped.
    for _ in 0..2 {
        let (child, base) = start(&store, &path);
        assert_eq!(get_status(&base, "/admin/whoami", OPS_TOKEN), 200);
        assert_eq!(get_status(&base, "/admin/whoami", CI_TOKEN), 401, "revoked");
        assert_eq!(
            get_status(&base, "/admin/whoami", DEV_TOKEN),
            401,
            "removed"
        );
        let logs = stop(child);
        assert!(
            logs.contains("3 accounts, users and tokens a seed created before"),
            "{logs}"
        );
        for secret in [OPS_TOKEN.1, CI_TOKEN.1, DEV_TOKEN.1] {
            assert!(!logs.contains(secret), "a secret in the logs: {logs}");
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteTokenStore::connect(&store).await.unwrap();
        let dev: UserId = DEV.parse().unwrap();
        assert_eq!(
            store.find_user(dev).await.unwrap(),
            None,
            "the user is gone"
        );
        for client_id in [CI_TOKEN.0, DEV_TOKEN.0] {
            let found = store.find_token(&ClientId::from(client_id)).await.unwrap();
            assert!(found.is_none(), "{client_id} is back");
        }
    });

    // A token added to the seed file later, which no seed created before, is created.
    let mut later = seed();
    later["accounts"][0]["tokens"].as_array_mut().unwrap().push(
        json!({"clientId": LATER_TOKEN.0, "secretKey": LATER_TOKEN.1, "type": "api",
                     "role": "Read-only"}),
    );
    std::fs::write(&path, later.to_string()).unwrap();
    let (child, base) = start(&store, &path);
    assert_eq!(get_status(&base, "/admin/whoami", LATER_TOKEN), 200, "new");
    assert_eq!(
        get_status(&base, "/admin/whoami", CI_TOKEN),
        401,
        "still revoked"
    );
    assert_eq!(
        get_status(&base, "/admin/whoami", DEV_TOKEN),
        401,
        "still removed"
    );
    stop(child);
}

#[test]
fn a_new_personal_token_of_a_removed_user_is_skipped_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_url(&dir);
    let path = dir.path().join("seed.json");
    std::fs::write(&path, seed().to_string()).unwrap();
    let (child, base) = start(&store, &path);
    let removed = request(&base, "DELETE", &format!("/admin/users/{DEV}"), OPS_TOKEN);
    assert_eq!(status(&removed), 204, "{removed}");
    stop(child);

    let mut later = seed();
    later["accounts"][0]["tokens"].as_array_mut().unwrap().push(
        json!({"clientId": "dev-desktop", "secretKey": "desk-s3cret",
                     "type": "personal", "user": "dev@acme.test", "role": "Basic"}),
    );
    std::fs::write(&path, later.to_string()).unwrap();
    let (child, base) = start(&store, &path);
    assert_eq!(
        get_status(&base, "/admin/whoami", ("dev-desktop", "desk-s3cret")),
        401
    );
    assert_eq!(get_status(&base, "/admin/whoami", OPS_TOKEN), 200);
    let logs = stop(child);
    // The user, their token, and the new one.
    assert!(
        logs.contains("3 accounts, users and tokens a seed created before"),
        "{logs}"
    );
}
