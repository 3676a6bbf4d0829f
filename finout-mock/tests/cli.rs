//! The commands that act on a store directly, for scripts and for recovery: `token create`
//! on an empty store, `user list`, `token list` across users, and errors that name the
//! option to fix.

mod binary;

use std::{
    io::{Read, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

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

/// Whether curl, which the README's walkthrough calls, is installed.
fn curl_installed() -> bool {
    let found = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        eprintln!("skipped: the README walkthrough needs curl, which is not installed");
    }
    found
}

/// The README's walkthrough, as written, run by `sh` (dash here: POSIX only) in `dir`: the
/// binary built for these tests instead of `cargo run`, and `port` instead of 8080 so that it
/// runs beside other servers. Its output, and how long it took.
fn walkthrough(dir: &std::path::Path, port: u16) -> (std::process::Output, Duration) {
    let readme = include_str!("../README.md");
    let start = readme
        .find("A walkthrough in any POSIX")
        .expect("the README still has its walkthrough");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").expect("a sh block") + 6..];
    let script = &block[..block.find("```").expect("the block ends")];
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
    let started = Instant::now();
    let output = std::process::Command::new("timeout")
        .args(["60", "sh", "-c", &script])
        .current_dir(dir)
        .output()
        .expect("timeout and sh run");
    (output, started.elapsed())
}

/// A free port (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The walkthrough's answers: the statuses its lines end with.
fn statuses(stdout: &str) -> Vec<&str> {
    // Each answer ends with its status; the mock's own bootstrap lines (also on this stdout)
    // end otherwise.
    stdout
        .lines()
        .filter_map(|l| l.rsplit(' ').next())
        .filter(|last| last.len() == 3 && last.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

/// The walkthrough ran to its end by itself, within seconds (not stopped by `timeout`).
fn ended_within_seconds(output: &std::process::Output, took: Duration) {
    assert_ne!(output.status.code(), Some(124), "stopped by timeout");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// Every answer's status is the one its comment names.
#[test]
fn the_readme_walkthrough_runs_in_a_posix_shell_with_the_statuses_it_names() {
    if !curl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (output, took) = walkthrough(dir.path(), free_port());
    ended_within_seconds(&output, took);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        statuses(&stdout),
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

/// `./finout-mock.db` from an earlier start (the top README's first command makes one): the
/// mock stops at once with the way on, and the walkthrough's loop stops with it.
#[test]
fn the_readme_walkthrough_ends_within_seconds_on_a_store_bootstrapped_before() {
    if !curl_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("finout-mock.db").display());
    let mut server = spawn(&db, &["--json"]);
    first_line(&mut server);
    stop(server);
    let (output, took) = walkthrough(dir.path(), free_port());
    ended_within_seconds(&output, took);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("was bootstrapped before"), "{stderr}");
    assert!(stderr.contains("finout-mock token create"), "{stderr}");
    assert!(stderr.contains("finout-mock exited"), "{stderr}");
    assert!(!dir.path().join("creds.json").exists());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !statuses(&stdout).contains(&"200"),
        "nothing answered without credentials: {stdout}"
    );
}

/// Another server holds the port: the mock stops naming `--listen`, and the walkthrough's
/// loop stops with it (its requests reach the other server, which answers them).
#[test]
fn the_readme_walkthrough_ends_within_seconds_on_a_port_that_is_taken() {
    if !curl_installed() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    taken.set_nonblocking(true).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let other = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                match taken.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                        let _ = stream.read(&mut [0u8; 4096]);
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let (output, took) = walkthrough(dir.path(), port);
    done.store(true, Ordering::Relaxed);
    other.join().unwrap();
    ended_within_seconds(&output, took);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(stderr.contains("finout-mock exited"), "{stderr}");
    assert!(!dir.path().join("creds.json").exists());
}

/// `user add|roles --data-access` accept only views of the account, as `POST /admin/users`
/// does: the fixtures' by default, or those a seed declares for it (`--seed`).
#[test]
fn data_access_naming_a_view_the_account_lacks_is_refused_as_the_http_api_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir);
    let add = |extra: &[&str]| {
        let args = [
            &[
                "user",
                "add",
                "--store",
                &db,
                "--email",
                "dev@acme.test",
                "--roles",
                "Basic",
            ][..],
            extra,
        ]
        .concat();
        run(&args)
    };
    let output = add(&["--data-access", "v-1,v-2"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--data-access: no view with id \"v-1\""),
        "{stderr}"
    );
    let listed = cli(&["user", "list", "--store", &db]);
    assert_eq!(listed["users"], serde_json::json!([]), "nothing written");

    // The account's own views are accepted.
    let account = MOCK_ACCOUNT.parse().unwrap();
    let view = finout_mock::fixtures::default_views(account)[1].id.clone();
    let dev = cli(&[
        "user",
        "add",
        "--store",
        &db,
        "--email",
        "dev@acme.test",
        "--roles",
        "Basic",
        "--data-access",
        &view,
    ]);
    assert_eq!(dev["dataAccess"], serde_json::json!([view]), "{dev}");
    let id = dev["id"].as_str().unwrap();
    let output = run(&[
        "user",
        "roles",
        "--store",
        &db,
        id,
        "--roles",
        "Basic",
        "--data-access",
        "nope",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no view with id \"nope\""));
    let listed = cli(&["user", "list", "--store", &db]);
    assert_eq!(
        listed["users"][0]["dataAccess"],
        serde_json::json!([view]),
        "unchanged"
    );

    // A seed's views replace the fixtures for its account.
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        serde_json::json!({"accounts": [{"id": MOCK_ACCOUNT, "name": "mock",
            "views": [{"id": "v-1", "name": "One"}, {"id": "v-2", "name": "Two"}]}]})
        .to_string(),
    )
    .unwrap();
    let seed = seed.display().to_string();
    let output = add(&["--data-access", &view, "--seed", &seed]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a fixture view is not one of the seed's"
    );
    let ops = cli(&[
        "user",
        "add",
        "--store",
        &db,
        "--email",
        "ops@acme.test",
        "--roles",
        "Basic",
        "--data-access",
        "v-1,v-2",
        "--seed",
        &seed,
    ]);
    assert_eq!(
        ops["dataAccess"],
        serde_json::json!(["v-1", "v-2"]),
        "{ops}"
    );
}

/// Every command prints one line of JSON, as the README's scripts read it.
#[test]
fn the_commands_print_one_line_of_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir);
    for args in [
        &[
            "token",
            "create",
            "--store",
            &db,
            "--description",
            "ci",
            "--role",
            "Read-only",
        ][..],
        &[
            "user",
            "add",
            "--store",
            &db,
            "--email",
            "dev@acme.test",
            "--roles",
            "Basic",
        ],
        &["user", "list", "--store", &db],
        &["token", "list", "--store", &db],
    ] {
        let output = run(args);
        assert!(output.status.success(), "{args:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stdout}");
        assert!(stdout.ends_with('\n'));
        let json: Value = serde_json::from_str(lines[0]).unwrap();
        assert!(json.is_object(), "{args:?}: {json}");
    }
}

/// `token rotate|disable|enable` act on the store as the HTTP routes do: a rotated token's
/// replaced secret works through its grace (and stops at once without one), a disabled token
/// is refused and an enabled one admitted again, and a grace past 7 days is refused.
#[test]
fn token_rotate_disable_and_enable_act_on_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(&dir);
    let create = |description: &str| {
        cli(&[
            "token",
            "create",
            "--store",
            &db,
            "--description",
            description,
            "--role",
            "Read-only",
        ])
    };
    let (graced, stopped, disabled, enabled) = (
        create("graced"),
        create("stopped"),
        create("disabled"),
        create("enabled"),
    );
    let id = |token: &Value| token["clientId"].as_str().unwrap().to_owned();
    let graced_new = cli(&[
        "token",
        "rotate",
        "--store",
        &db,
        &id(&graced),
        "--grace-seconds",
        "3600",
    ]);
    assert_eq!(graced_new["clientId"], graced["clientId"]);
    assert!(
        graced_new["token"]["previousSecretValidUntil"].is_string(),
        "{graced_new}"
    );
    let stopped_new = cli(&["token", "rotate", "--store", &db, &id(&stopped)]);
    assert_ne!(stopped_new["secretKey"], stopped["secretKey"]);
    let off = cli(&["token", "disable", "--store", &db, &id(&disabled)]);
    assert!(off["token"]["disabledAt"].is_string(), "{off}");
    cli(&["token", "disable", "--store", &db, &id(&enabled)]);
    let on = cli(&["token", "enable", "--store", &db, &id(&enabled)]);
    assert!(on["token"].get("disabledAt").is_none(), "{on}");
    let refused = run(&[
        "token",
        "rotate",
        "--store",
        &db,
        &id(&enabled),
        "--grace-seconds",
        "604801",
    ]);
    assert!(!refused.status.success());
    let told = String::from_utf8_lossy(&refused.stderr);
    assert!(told.contains("grace"), "{told}");

    let mut server = spawn(&db, &["--json"]);
    let (line, _) = first_line(&mut server);
    let started: Value = serde_json::from_str(&line).unwrap();
    let base = started["baseUrl"].as_str().unwrap();
    for (token, expected) in [
        (&graced, 200),
        (&graced_new, 200),
        (&stopped, 401),
        (&stopped_new, 200),
        (&disabled, 401),
        (&enabled, 200),
    ] {
        let (id, secret) = creds(token);
        assert_eq!(
            get_status(base, "/v1/view", (&id, &secret)),
            expected,
            "{}",
            token["token"]["description"]
        );
    }
    let logs = stop(server);
    assert!(!logs.contains(graced_new["secretKey"].as_str().unwrap()));
}
