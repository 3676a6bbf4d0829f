//! The commands that act on a store directly, for scripts and for recovery: `token create`
//! on an empty store, `user list`, `token list` across users, and errors that name the
//! option to fix.

mod binary;

use binary::{MOCK_ACCOUNT, cli, first_line, get_status, run, spawn, sqlite_url, stop};
use serde_json::Value;

fn creds(token: &Value) -> (String, String) {
    (
        token["clientId"].as_str().unwrap().to_owned(),
        token["secretKey"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn token_create_on_an_empty_store_creates_the_mock_account_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir);
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
    assert_eq!(api["token"]["accountId"], MOCK_ACCOUNT, "{api}");
    let mut server = spawn(&db, &["--json"]);
    let (line, _) = first_line(&mut server);
    let started: Value = serde_json::from_str(&line).unwrap();
    let (id, secret) = creds(&api);
    assert_eq!(
        get_status(
            started["baseUrl"].as_str().unwrap(),
            "/v1/view",
            (&id, &secret)
        ),
        200,
        "an API token works without any user"
    );
    let logs = stop(server);
    assert!(!logs.contains(&secret));
}

#[test]
fn a_personal_token_for_a_missing_user_names_the_user_option() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir);
    let nobody = "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a";
    let output = run(&[
        "token",
        "create",
        "--store",
        &db,
        "--description",
        "laptop",
        "--role",
        "Basic",
        "--user",
        nobody,
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("--user {nobody}")), "{stderr}");
    assert!(stderr.contains("user list"), "{stderr}");

    let output = run(&[
        "token",
        "create",
        "--store",
        &db,
        "--account",
        "0d9c8b7a-0000-4d3c-9b2a-1f0e9d8c7b6a",
        "--description",
        "job",
        "--role",
        "Basic",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--account"), "{stderr}");
}

/// The bootstrap's secret is lost (the first start's output was not kept): `user list`
/// finds the Admin user, `token create --user` gives them a new token, and `token list`
/// shows every user's personal tokens, never a secret.
#[test]
fn lost_bootstrap_credentials_are_recovered_with_user_list_and_token_create() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir);
    let mut server = spawn(&db, &["--json"]);
    let (line, _) = first_line(&mut server);
    let first: Value = serde_json::from_str(&line).unwrap();
    stop(server);
    let dev = cli(&[
        "user",
        "add",
        "--store",
        &db,
        "--email",
        "dev@acme.test",
        "--roles",
        "Basic",
    ]);

    let listed = cli(&["user", "list", "--store", &db]);
    let users = listed["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{listed}");
    let admin = users
        .iter()
        .find(|u| u["roles"] == serde_json::json!(["Admin"]))
        .expect("the bootstrap's Admin user");
    assert_eq!(admin["id"], first["userId"]);
    assert_eq!(admin["email"], "admin@finout-mock.local");
    assert!(users.iter().any(|u| u["id"] == dev["id"]));
    let admin_id = admin["id"].as_str().unwrap();
    let recovered = cli(&[
        "token",
        "create",
        "--store",
        &db,
        "--description",
        "recovered",
        "--role",
        "Admin",
        "--user",
        admin_id,
    ]);
    let dev_token = cli(&[
        "token",
        "create",
        "--store",
        &db,
        "--description",
        "dev",
        "--role",
        "Basic",
        "--user",
        dev["id"].as_str().unwrap(),
    ]);

    let tokens = cli(&["token", "list", "--store", &db]);
    let owners: Vec<&str> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["userId"].as_str().unwrap())
        .collect();
    let dev_id = dev["id"].as_str().unwrap();
    assert_eq!(owners, [admin_id, admin_id, dev_id], "{tokens}");
    for secret in [
        &first["secretKey"],
        &recovered["secretKey"],
        &dev_token["secretKey"],
    ] {
        let secret = secret.as_str().unwrap();
        assert!(!tokens.to_string().contains(secret));
        assert!(!listed.to_string().contains(secret));
    }

    let mut server = spawn(&db, &["--json"]);
    let (line, _) = first_line(&mut server);
    let base_url: Value = serde_json::from_str(&line).unwrap();
    let (id, secret) = creds(&recovered);
    assert_eq!(
        get_status(
            base_url["baseUrl"].as_str().unwrap(),
            "/admin/whoami",
            (&id, &secret)
        ),
        200
    );
    stop(server);
}

#[test]
fn the_help_says_what_lists_cover() {
    let output = run(&["token", "list", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("every user's personal tokens"), "{help}");
    let output = run(&["user", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("list"), "{help}");
}

/// The README's walkthrough, as written, run by `sh` (dash here: POSIX only): the binary
/// built for these tests instead of `cargo run`, and a free port instead of 8080 so that it
/// runs beside other servers; every answer's status is the one its comment names.
#[test]
fn the_readme_walkthrough_runs_in_a_posix_shell_with_the_statuses_it_names() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: the README walkthrough needs curl, which is not installed");
        return;
    }
    let readme = include_str!("../README.md");
    let start = readme
        .find("A walkthrough in any POSIX")
        .expect("the README still has its walkthrough");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").expect("a sh block") + 6..];
    let script = &block[..block.find("```").expect("the block ends")];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let launch = "cargo run --release -p finout-mock -- ";
    assert!(
        script.contains(launch),
        "the walkthrough starts the mock with cargo run"
    );
    let script = script
        .replace(
            launch,
            &format!(
                "'{}' --listen 127.0.0.1:{port} ",
                env!("CARGO_BIN_EXE_finout-mock")
            ),
        )
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    // Whatever happens, the mock does not outlive the script.
    let script = format!("trap 'kill $MOCK 2>/dev/null' EXIT\n{script}");
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("timeout")
        .args(["60", "sh", "-c", &script])
        .current_dir(dir.path())
        .output()
        .expect("timeout and sh run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Each answer ends with its status; the mock's own bootstrap lines (also on this stdout)
    // end otherwise.
    let statuses: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.rsplit(' ').next())
        .filter(|last| last.len() == 3 && last.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(
        statuses,
        ["200", "200", "200", "403", "200", "200", "204", "401"],
        "whoami, views, query-by-view, a Read-only write, V2 status and results, revoke, \
         the revoked token:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secret = std::fs::read_to_string(dir.path().join("creds.json")).unwrap();
    let secret = secret.split("\"secretKey\":\"").nth(1).unwrap();
    let secret = &secret[..secret.find('"').unwrap()];
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(secret),
        "the bootstrap secret is in the mock's log"
    );
}
