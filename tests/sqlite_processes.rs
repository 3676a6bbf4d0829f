//! Sixteen concurrent writers from two processes on one SQLite file, for 30 s: issuing,
//! revoking and re-roling never fail. Writers take the write lock up front (`BEGIN
//! IMMEDIATE`), so they wait out the busy timeout instead of failing.
//!
//! The test starts this test binary again as the second process (the `second_process`
//! test, which does nothing unless `FINOUT_AUTH_SQLITE_WRITERS` names the database).
//! `FINOUT_AUTH_SQLITE_WRITERS_SECS` shortens the run for a quick local check.

mod common;

use std::{
    process::Command,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use finout_auth::{
    AccountId, NewToken, Role, TokenAdmin, UserId,
    store::{SqliteTokenStore, TokenLimits, UserUpdate},
};

const WRITERS_PER_PROCESS: usize = 8;
const CHILD_ENV: &str = "FINOUT_AUTH_SQLITE_WRITERS";

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn admin(url: &str) -> TokenAdmin {
    let store = SqliteTokenStore::connect(url).await.expect("connect");
    TokenAdmin::new(Arc::new(store))
        .with_hasher(common::fast_hasher())
        .with_token_limits(TokenLimits::unlimited())
        .with_issuance_pool(1, 64, Duration::from_secs(30))
}

/// `WRITERS_PER_PROCESS` writers from `start` to `end` (Unix ms): issue a personal token,
/// revoke it, and every fifth round re-role the user. Every operation must succeed; returns
/// how many rounds were done.
async fn write(url: &str, account: AccountId, user: UserId, start: u64, end: u64) -> u64 {
    let admin = admin(url).await;
    tokio::time::sleep(Duration::from_millis(start.saturating_sub(unix_millis()))).await;
    let writers: Vec<_> = (0..WRITERS_PER_PROCESS)
        .map(|w| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut rounds = 0u64;
                while unix_millis() < end {
                    let token = admin
                        .issue_personal_token(account, user, NewToken::new("w", Role::Basic))
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}, round {rounds}: issue: {e}"));
                    admin
                        .revoke_token(account, &token.client_id)
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}, round {rounds}: revoke: {e}"));
                    if rounds.is_multiple_of(5) {
                        let roles = vec![Role::Basic, Role::ReadOnly];
                        admin
                            .update_user(account, user, UserUpdate::default().roles(roles))
                            .await
                            .unwrap_or_else(|e| panic!("writer {w}, round {rounds}: update: {e}"));
                    }
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    let mut rounds = 0;
    for writer in writers {
        rounds += writer.await.expect("a writer failed");
    }
    rounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_writers_from_two_processes_never_fail() {
    let secs: u64 = std::env::var("FINOUT_AUTH_SQLITE_WRITERS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
    let setup = admin(&url).await;
    let account = setup.create_account("Writers").await.unwrap();
    let user = setup
        .add_user(account.id, "writer@acme.test", vec![Role::Basic])
        .await
        .unwrap();
    let start = unix_millis() + 2_000;
    let end = start + secs * 1_000;

    let child_args = format!("{url} {} {} {start} {end}", account.id, user.id);
    let child = tokio::task::spawn_blocking(move || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "second_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, child_args)
            .output()
    });
    let (child, here) = tokio::join!(child, write(&url, account.id, user.id, start, end));
    let child = child.unwrap().expect("run the second process");
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "the second process failed:\n{out}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    let there: u64 = out
        .lines()
        .find_map(|l| l.split("second process rounds: ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count from the second process:\n{out}"));
    assert!(
        here > 0 && there > 0,
        "both wrote: {here} here, {there} there"
    );
    // Every token issued was revoked: nothing left behind.
    let left = setup
        .list_tokens(account.id, finout_auth::store::TokenFilter::All)
        .await
        .unwrap();
    assert!(left.is_empty(), "{} tokens left", left.len());
    eprintln!("{secs} s: {here} rounds here, {there} in the second process, no failure");
}

/// The second process of the test above; does nothing when run on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_process() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Vec<&str> = args.split(' ').collect();
    let [url, account, user, start, end] = args[..] else {
        panic!("bad {CHILD_ENV}: {args:?}");
    };
    let rounds = write(
        url,
        account.parse().unwrap(),
        user.parse().unwrap(),
        start.parse().unwrap(),
        end.parse().unwrap(),
    )
    .await;
    println!("second process rounds: {rounds}");
}
