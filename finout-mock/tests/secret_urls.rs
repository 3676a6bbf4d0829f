//! A password in a store or Redis URL (`--store`, `--feed-store`, `--redis`, or their
//! environment variables) is never shown: not by `--help`, not in an error, not in the logs.

mod binary;

use std::process::{Command, Output, Stdio};

use binary::{first_line, stop};

const PASSWORD: &str = "hunter2-Pa55";

/// `finout-mock ARGS...` with the three URL variables set, each with a password.
fn run_with_env(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args(args)
        .env(
            "FINOUT_MOCK_STORE",
            format!("postgres://app:{PASSWORD}@db.invalid/mock"),
        )
        .env(
            "FINOUT_MOCK_FEED_STORE",
            format!("postgres://app:{PASSWORD}@db.invalid/mock"),
        )
        .env(
            "FINOUT_MOCK_REDIS",
            format!("redis://:{PASSWORD}@cache.invalid:6379"),
        )
        .output()
        .unwrap()
}

#[test]
fn help_never_shows_a_password_from_the_environment() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["token", "create", "--help"],
        &["token", "list", "--help"],
        &["user", "add", "--help"],
    ] {
        let output = run_with_env(args);
        assert!(output.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("FINOUT_MOCK_STORE"), "{args:?}: {help}");
        assert!(!help.contains(PASSWORD), "{args:?}: {help}");
    }
}

#[test]
fn a_store_url_the_mock_cannot_use_is_named_without_its_password() {
    let url = format!("postgress://app:{PASSWORD}@db.invalid/mock");
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0", "--store", &url],
        vec!["token", "list", "--store", &url],
    ] {
        let output = run_with_env(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("postgress://app:***@db.invalid/mock"),
            "{stderr}"
        );
        let shown = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
}

/// `url` with `password` as its password (kept if it has one): the test server trusts local
/// connections, so any password does.
fn with_password(url: &str, password: &str) -> (String, String) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let (userinfo, host) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    match userinfo.split_once(':') {
        Some((_, existing)) if !existing.is_empty() => (url.to_owned(), existing.to_owned()),
        _ => {
            let user = userinfo.split(':').next().unwrap_or("postgres");
            let url = format!("{}{user}:{password}@{host}{}", &url[..start], &url[end..]);
            (url, password.to_owned())
        }
    }
}

#[test]
fn a_postgres_password_is_never_in_the_logs() {
    let Ok(base) = std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") else {
        eprintln!(
            "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (no PostgreSQL to test against)"
        );
        return;
    };
    let (url, password) = with_password(&base, PASSWORD);
    // An empty seed: no bootstrap written to the shared test database.
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, r#"{"accounts": []}"#).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_finout-mock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--json", "--seed"])
        .arg(&seed)
        .args(["--store-connections", "2", "--store-retry-secs", "0"])
        .env("FINOUT_MOCK_STORE", &url)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (line, _) = first_line(&mut child);
    let logs = if line.is_empty() {
        // It could not start (the server wants another password): what it said still counts.
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
    } else {
        stop(child)
    };
    assert!(!line.contains(&password), "{line}");
    assert!(
        !logs.contains(&password),
        "the password is in the logs: {logs}"
    );
    if !line.is_empty() {
        assert!(logs.contains(":***@"), "the store is named, masked: {logs}");
    }
}
