//! The first start: the bootstrap is written whole or not at all whenever the process dies,
//! its credentials reach scripts (`--json`, `--credentials-file`) and never the logs, and
//! the binary introduces itself and its address problems plainly.

mod binary;

use std::{io::BufRead, sync::Arc, time::Instant};

use binary::{MOCK_ACCOUNT, first_line, get_status, run, spawn, sqlite_url, stop};
use finout_auth::{
    AccountId, Role,
    model::TokenKind,
    store::{SqliteTokenStore, TokenAdminStore, TokenFilter},
};
use serde_json::Value;

/// What a store holds of the mock's account after a start was killed: `false` for nothing,
/// `true` for a complete bootstrap; panics on anything in between.
async fn bootstrapped(url: &str) -> bool {
    let store: Arc<dyn TokenAdminStore> = Arc::new(SqliteTokenStore::connect(url).await.unwrap());
    let account: AccountId = MOCK_ACCOUNT.parse().unwrap();
    let found = store.get_account(account).await.unwrap();
    let users = store.list_users(account).await.unwrap();
    let tokens = store.list_tokens(account, TokenFilter::All).await.unwrap();
    match found {
        None => {
            assert!(
                users.is_empty() && tokens.is_empty(),
                "{users:?} {tokens:?}"
            );
            false
        }
        Some(_) => {
            assert_eq!(users.len(), 1, "one Admin user: {users:?}");
            assert_eq!(users[0].roles, vec![Role::Admin]);
            assert_eq!(tokens.len(), 1, "one personal token: {tokens:?}");
            assert_eq!(tokens[0].kind, TokenKind::Personal);
            assert_eq!(tokens[0].user_id, Some(users[0].id));
            assert_eq!(tokens[0].role, Role::Admin);
            true
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_any_point_of_the_first_start_leaves_nothing_or_a_complete_bootstrap() {
    // How long a first start takes here, to spread the kills over it.
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = spawn(&sqlite_url(&dir), &["--json"]);
    let (line, _) = first_line(&mut child);
    let ready = started.elapsed();
    assert!(line.contains("secretKey"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();

    const RUNS: u32 = 20;
    let (mut nothing, mut complete) = (0, 0);
    for run in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir);
        let mut child = spawn(&url, &["--json"]);
        if run + 1 == RUNS {
            // The last one once it is ready: the bootstrap must be complete.
            first_line(&mut child);
        } else {
            // From at once to a little past the calibrated start.
            tokio::time::sleep(ready * run * 5 / (4 * (RUNS - 1))).await;
        }
        child.kill().unwrap(); // SIGKILL: nothing runs after it
        child.wait().unwrap();
        if bootstrapped(&url).await {
            complete += 1;
        } else {
            nothing += 1;
        }
    }
    eprintln!("first start {ready:?}: {nothing} kills left nothing, {complete} a bootstrap");
    // The first kill (at once) finds nothing, the last (once ready) a bootstrap; the ones
    // between land anywhere in the start, and each must be one or the other.
    assert!(nothing >= 1 && complete >= 1, "{nothing} / {complete}");
}

#[test]
fn the_first_start_hands_its_credentials_to_scripts_and_never_to_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let file = dir.path().join("out").join("credentials.json");
    std::fs::create_dir(file.parent().unwrap()).unwrap();
    let file_arg = file.display().to_string();
    let mut child = spawn(&url, &["--json", "--credentials-file", &file_arg]);
    let (line, mut rest) = first_line(&mut child);
    let printed: Value = serde_json::from_str(&line).expect("one JSON line");
    let keys: Vec<&str> = printed
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["accountId", "baseUrl", "clientId", "secretKey", "userId"]
    );
    assert_eq!(printed["accountId"], MOCK_ACCOUNT);
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written, printed, "the file holds what was printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads the secret");
    }
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let base_url = printed["baseUrl"].as_str().unwrap();
    let secret = printed["secretKey"].as_str().unwrap().to_owned();
    let creds = (printed["clientId"].as_str().unwrap(), secret.as_str());
    assert_eq!(get_status(base_url, "/admin/whoami", creds), 200);
    let mut more = String::new();
    let logs = stop(child);
    rest.read_line(&mut more).unwrap();
    assert_eq!(more, "", "--json prints one line and nothing else");
    assert!(!logs.contains(&secret), "the secret is in the logs");

    // A later start creates no credentials. Asked to write them, it stops at once and says
    // how to get a token, leaving the file as it is.
    let started = Instant::now();
    let output = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &url,
        "--json",
        "--credentials-file",
        &file_arg,
    ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("was bootstrapped before"), "{stderr}");
    assert!(stderr.contains("finout-mock token create"), "{stderr}");
    assert!(stderr.contains("--store memory"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&std::fs::read(&file).unwrap()).unwrap(),
        written
    );
    // Without the file, it says where it listens, and the first credentials still work.
    let mut child = spawn(&url, &["--json"]);
    let (line, _) = first_line(&mut child);
    let later: Value = serde_json::from_str(&line).unwrap();
    assert!(
        later["baseUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert_eq!(later.as_object().unwrap().len(), 1, "{later}");
    assert_eq!(
        get_status(later["baseUrl"].as_str().unwrap(), "/admin/whoami", creds),
        200
    );
    stop(child);
}

#[test]
fn without_json_the_credentials_are_prose_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(&sqlite_url(&dir), &[]);
    let (first, rest) = first_line(&mut child);
    let mut lines = vec![first];
    for line in rest.lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(text.contains("x-finout-client-id: "), "{text}");
    assert!(text.contains("x-finout-secret-key: "), "{text}");
    assert!(text.contains("listening on http://127.0.0.1:"), "{text}");
    stop(child);
}

#[test]
fn an_address_in_use_is_named_with_the_option_to_change_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let output = run(&["serve", "--listen", &addr, "--store", &url]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "no credentials for a start that failed"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert!(
        !runtime.block_on(bootstrapped(&url)),
        "nothing written before the address was taken"
    );
}

#[test]
fn help_and_version_are_the_mocks_own() {
    for args in [&["--help"][..], &["help"], &["-h"]] {
        let output = run(args);
        assert!(output.status.success());
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("A Finout-compatible mock API server"),
            "{help}"
        );
        assert!(help.contains("Usage: finout-mock"), "{help}");
        assert!(!help.contains("Authenticate HTTP requests"), "{help}");
    }
    let output = run(&["--version"]);
    let version = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        version.trim(),
        format!("finout-mock {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A credentials file that cannot be written (a directory where it goes) undoes the
/// bootstrap: the start fails without showing a secret nobody could keep, and the next
/// start, with a path it can write, bootstraps again and writes the file.
#[test]
fn a_credentials_file_that_cannot_be_written_undoes_the_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let file = dir.path().join("credentials.json");
    std::fs::create_dir(&file).unwrap();
    let file_arg = file.display().to_string();
    let args = ["--json", "--credentials-file", &file_arg];
    let output = run(&[
        &["serve", "--listen", "127.0.0.1:0", "--store", &url][..],
        &args,
    ]
    .concat());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write the credentials to"),
        "{stderr}"
    );
    assert!(stderr.contains("the bootstrap was undone"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "credentials of an undone bootstrap"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteTokenStore::connect(&url).await.unwrap();
        let account: AccountId = MOCK_ACCOUNT.parse().unwrap();
        assert_eq!(store.list_users(account).await.unwrap(), []);
        assert_eq!(
            store.list_tokens(account, TokenFilter::All).await.unwrap(),
            []
        );
    });
    let temporaries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert_eq!(
        temporaries,
        Vec::<String>::new(),
        "its own temporary file is removed"
    );

    std::fs::remove_dir(&file).unwrap();
    let mut child = spawn(&url, &args);
    let (line, _) = first_line(&mut child);
    let printed: Value = serde_json::from_str(&line).unwrap();
    let creds = (
        printed["clientId"].as_str().expect("new credentials"),
        printed["secretKey"].as_str().unwrap(),
    );
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written, printed);
    let base_url = printed["baseUrl"].as_str().unwrap();
    assert_eq!(get_status(base_url, "/admin/whoami", creds), 200);
    stop(child);
    assert!(runtime.block_on(bootstrapped(&url)), "one user, one token");
}
