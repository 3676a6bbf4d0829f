//! Two `finout-mock` processes on one SQLite store and one Redis (`--redis`), as replicas
//! behind a balancer: a secret one verified is admitted by the other without argon2, and a
//! V2 rate limit (50 a minute per account) holds for the two together.
//!
//! Runs when `FINOUT_AUTH_TEST_REDIS_URL` is set (`.ci/run` sets it).

mod binary;

use std::time::Duration;

use binary::{first_line, get, get_status, spawn, sqlite_url, stop};
use serde_json::Value;

/// The value of an unlabelled counter in a Prometheus text answer.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn two_replicas_share_verified_secrets_and_one_rate_limit() {
    let Ok(redis) = std::env::var("FINOUT_AUTH_TEST_REDIS_URL") else {
        eprintln!("skipped: FINOUT_AUTH_TEST_REDIS_URL is not set (no Redis to test against)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_url(&dir);
    let prefix = format!("finout-mock-test:{}:", uuid::Uuid::new_v4());
    let flags = [
        "--redis",
        redis.as_str(),
        "--redis-prefix",
        prefix.as_str(),
        "--json",
    ];
    let mut a = spawn(&store, &flags);
    let (line, _a_out) = first_line(&mut a);
    let created: Value = serde_json::from_str(&line).unwrap();
    let creds = (
        created["clientId"].as_str().unwrap().to_owned(),
        created["secretKey"].as_str().unwrap().to_owned(),
    );
    let creds = (creds.0.as_str(), creds.1.as_str());
    let base_a = created["baseUrl"].as_str().unwrap().to_owned();
    let mut b = spawn(&store, &flags);
    let (line, _b_out) = first_line(&mut b);
    let base_b = serde_json::from_str::<Value>(&line).unwrap()["baseUrl"]
        .as_str()
        .unwrap()
        .to_owned();

    let keys = "/v2/query-language/keys";
    assert_eq!(get_status(&base_a, keys, creds), 200);
    // The tag is written in the background: let it land.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get_status(&base_b, keys, creds), 200);
    let metrics = get(&base_b, "/metrics", creds);
    assert_eq!(
        counter(&metrics, "finout_auth_secret_verifications_total"),
        0,
        "replica B ran no argon2 for the secret A verified"
    );

    // 2 of the 50 a minute are used; 60 more, alternating, admit the 48 left (and perhaps
    // one refilled), not 48 + 50.
    let mut admitted = 2;
    for i in 0..60 {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        match get_status(base, keys, creds) {
            200 => admitted += 1,
            429 => {}
            other => panic!("answered {other}"),
        }
    }
    assert!(
        (50..=53).contains(&admitted),
        "two replicas admitted {admitted} of a limit of 50"
    );
    stop(a);
    stop(b);
}
