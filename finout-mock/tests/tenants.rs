//! One tenant against the others, over a real socket: what an ordinary token can make the
//! mock spend (V2 query work, memory, connections) stays its own, and data its user may not
//! see stays hidden. Sizes and times are shortened; the tools harness runs the full ones.

mod common;

use std::time::Duration;

use common::{Connection, call};
use finout_auth::{NewToken, Role, clock::ManualClock, model::Account, model::DataAccess};
use finout_mock::{MockServer, ServerLimits};
use http::Method;
use serde_json::{Value, json};
use time::macros::datetime;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const GENERATE: &str = "/v2/data/cost-usage/generate-query";

fn creds(s: &MockServer) -> Option<(&str, &str)> {
    Some((s.client_id(), s.secret_key()))
}

/// A virtual tag whose values are `values` and "z" (its default): each `(value, key, of)`
/// assigns `value` to the line items whose `key` is `of`; its id.
async fn tag(s: &MockServer, values: &[(String, &str, &str)]) -> String {
    let rules: Vec<Value> = values
        .iter()
        .map(|(v, key, of)| {
            json!({"to": v, "filters": {"costCenter": "", "key": key, "operator": "is",
                   "value": [of]}})
        })
        .collect();
    let body = json!({"name": "Long", "defaultValue": "z", "rules": rules});
    let (status, created) = call(
        s.address(),
        Method::POST,
        "/v2/virtual-tags",
        creds(s),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    created["data"]["id"].as_str().unwrap().to_owned()
}

fn query(days: i64, dimensions: Vec<Value>) -> Value {
    json!({
        "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64,
                 "unixTimeMillisecondsEnd": 1_717_200_000_000_i64 + days * 86_400_000},
        "timeInterval": {"interval": "day"},
        "measurements": [{"type": "netAmortizedCost"}],
        "dimensions": dimensions,
        "rowLimit": 100_000
    })
}

fn dimension(cost_center: &str, key: &str) -> Value {
    json!({"costCenter": cost_center, "key": key})
}

#[tokio::test]
async fn a_dimension_named_again_in_other_letter_cases_is_refused() {
    let s = MockServer::start().await;
    let id = tag(
        &s,
        &[("a".into(), "vendor", "AWS"), ("b".into(), "vendor", "GCP")],
    )
    .await;
    let dims = ["Virtual Tags", "virtual tags", "VIRTUAL TAGS"]
        .iter()
        .map(|cc| dimension(cc, &id))
        .collect();
    let (status, body) = call(
        s.address(),
        Method::POST,
        GENERATE,
        creds(&s),
        Some(query(1, dims)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("repeated"),
        "{body}"
    );
}

#[tokio::test]
async fn the_work_cap_counts_rows_times_the_longest_values_and_its_worst_query_pages() {
    let clock = ManualClock::new(datetime!(2026-12-07 12:00 UTC));
    let s = MockServer::builder()
        .clock(clock.clone())
        .query_delay(Duration::from_secs(1))
        .start()
        .await;
    // Two tags of three values, the longest of 100,000 bytes: each row counts
    // 64 + 2 x 100,000 work units, and a day has 3 x 3 candidate rows. The first tags AWS's
    // costs and GCP's, the second AWS's production account and Kubernetes's prod-eu
    // cluster: a day's line items make 5 of the 9 combinations.
    let long = |c: char| c.to_string().repeat(100_000);
    let first = tag(
        &s,
        &[(long('a'), "vendor", "AWS"), (long('b'), "vendor", "GCP")],
    )
    .await;
    let second = tag(
        &s,
        &[
            (long('c'), "account", "production"),
            (long('d'), "cluster", "prod-eu"),
        ],
    )
    .await;
    let dims = || {
        vec![
            dimension("Virtual Tags", &first),
            dimension("Virtual Tags", &second),
        ]
    };
    let per_row = 64 + 2 * 100_000;
    // 39 days: 39 x 4 rows x 200,064 = 31,209,984 work units, within the cap of 32,000,000.
    assert!(39 * 4 * per_row <= 32_000_000 && 40 * 4 * per_row > 32_000_000);
    let (status, body) = call(
        s.address(),
        Method::POST,
        GENERATE,
        creds(&s),
        Some(query(16, dims())),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let worst = body["data"]["queryId"].as_str().unwrap().to_owned();
    let (status, body) = call(
        s.address(),
        Method::POST,
        GENERATE,
        creds(&s),
        Some(query(17, dims())),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("work units"),
        "{body}"
    );

    clock.advance(time::Duration::seconds(1));
    // Pages of at most about 4 MiB: 20 rows of 200 KB, whatever the page size asked.
    let mut connection = Connection::open(s.address()).await;
    let (mut rows, mut cursor, mut pages) = (0, None::<String>, 0);
    loop {
        let mut path = format!("/v2/data/cost-usage/{worst}/results?pageSize=10000");
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let (status, _, page) = connection.call(Method::GET, &path, creds(&s), None).await;
        assert_eq!(status, 200, "{page}");
        let n = page["data"].as_array().unwrap().len();
        assert!((1..=21).contains(&n), "{n} rows in one page");
        rows += n;
        pages += 1;
        match page["pagination"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!((rows, pages > 1), (17 * 5, true));
}

#[tokio::test]
async fn a_token_limited_to_some_views_gets_no_account_wide_cost() {
    let s = MockServer::start().await;
    let admin = s.admin();
    let (status, all) = call(s.address(), Method::GET, "/v1/view", creds(&s), None).await;
    assert_eq!(status, 200);
    let first_view = all["data"][0]["id"].as_str().unwrap().to_owned();
    let dev = admin
        .add_user_with_access(
            s.account_id(),
            "dev@acme.test",
            vec![Role::Basic],
            DataAccess::only([first_view]),
        )
        .await
        .unwrap();
    let token = admin
        .issue_personal_token(s.account_id(), dev.id, NewToken::new("dev", Role::Basic))
        .await
        .unwrap();
    let dev_creds = Some((token.client_id.as_str(), token.secret_key.expose_secret()));
    let dims = vec![dimension("", "service")];
    for who in [creds(&s), dev_creds] {
        let restricted = who == dev_creds;
        let expected = if restricted { 403 } else { 200 };
        let (status, body) = call(
            s.address(),
            Method::POST,
            GENERATE,
            who,
            Some(query(1, dims.clone())),
        )
        .await;
        assert_eq!(status, expected, "{body}");
        let (status, body) =
            call(s.address(), Method::GET, "/v1/cost-guard/scans", who, None).await;
        assert_eq!(status, expected, "{body}");
    }
}

/// A second account with a Read-only API token: its credentials.
async fn second_account(s: &MockServer) -> (String, String) {
    let id = finout_auth::AccountId::new_v4();
    s.admin()
        .store()
        .insert_account(Account {
            id,
            name: "other".into(),
        })
        .await
        .unwrap();
    let token = s
        .admin()
        .issue_api_token(id, None, NewToken::new("other", Role::ReadOnly))
        .await
        .unwrap();
    (
        token.client_id.to_string(),
        token.secret_key.expose_secret().to_owned(),
    )
}

#[tokio::test]
async fn one_accounts_slow_bodies_never_keep_another_account_waiting() {
    let limits = ServerLimits::default()
        .max_connections(16)
        .max_connections_per_account(4)
        .body_deadlines(Duration::from_secs(3), 1024);
    let s = MockServer::builder().server_limits(limits).start().await;
    let (other_id, other_secret) = second_account(&s).await;
    // Complete headers, then 1 byte of a 100-byte body, on every connection the server has.
    let head = format!(
        "POST /v1/virtual-tags HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n\
         content-length: 100\r\nx-finout-client-id: {}\r\nx-finout-secret-key: {}\r\n\r\n{{",
        s.client_id(),
        s.secret_key()
    );
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut stream = TcpStream::connect(s.address()).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    // The other account is answered at once, every time.
    for _ in 0..5 {
        let started = tokio::time::Instant::now();
        let (status, body) = tokio::time::timeout(
            Duration::from_secs(1),
            call(
                s.address(),
                Method::GET,
                "/v1/view",
                Some((&other_id, &other_secret)),
                None,
            ),
        )
        .await
        .expect("another account waited more than 1 s");
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // Past its share the slow account is refused at once; the rest are cut by the deadline.
    let (mut refused, mut cut) = (0, 0);
    for mut stream in slow {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("a slow connection outlived its deadline")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 429") {
            refused += 1;
        } else if answer.starts_with("HTTP/1.1 408") {
            cut += 1;
        } else {
            panic!("{answer}");
        }
    }
    assert_eq!((refused, cut), (12, 4));
}

#[tokio::test]
async fn admin_and_v1_writes_are_rate_limited_per_account() {
    // A clock that stands still: the minute's allowance is all there is.
    let clock = ManualClock::new(datetime!(2026-12-07 12:00 UTC));
    let s = MockServer::builder().clock(clock).start().await;
    let mut connection = Connection::open(s.address()).await;
    for i in 0..finout_mock::ADMIN_PER_MINUTE {
        let (status, _, body) = connection
            .call(Method::GET, "/admin/whoami", creds(&s), None)
            .await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, headers, body) = connection
        .call(Method::GET, "/admin/whoami", creds(&s), None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));

    let tag = json!({"name": "team", "rules": [], "defaultValue": "none"});
    let (status, _, tag) = connection
        .call(Method::POST, "/v1/virtual-tags", creds(&s), Some(&tag))
        .await;
    assert_eq!(status, 201, "{tag}");
    let path = format!("/v1/virtual-tags/{}/metadata", tag["id"].as_str().unwrap());
    let meta = json!({"payments": {"customMetadata": {"owner": "Dave"}}});
    // The create was the first write of the minute.
    for i in 1..finout_mock::V1_WRITES_PER_MINUTE {
        let (status, _, body) = connection
            .call(Method::PUT, &path, creds(&s), Some(&meta))
            .await;
        assert_eq!(status, 200, "write {i}: {body}");
    }
    let (status, _, body) = connection
        .call(Method::PUT, &path, creds(&s), Some(&meta))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests")),
        "{body}"
    );
    // Reads are not writes.
    let (status, _, _) = connection.call(Method::GET, &path, creds(&s), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn tag_lists_are_written_as_they_are_read_and_parse_whole() {
    let s = MockServer::start().await;
    for i in 0..3 {
        let rules =
            vec![json!({"to": format!("{i}{}", "v".repeat(200_000)), "filters": {"AND": []}})];
        let body = json!({"name": format!("big{i}"), "defaultValue": "z", "rules": rules});
        let (status, _) = call(
            s.address(),
            Method::POST,
            "/v1/virtual-tags",
            creds(&s),
            Some(body),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, v1) = call(
        s.address(),
        Method::GET,
        "/v1/virtual-tags",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v1["virtualTags"].as_array().map(Vec::len), Some(3));
    assert_eq!(v1["accountId"], s.account_id().to_string());
    assert!(v1["requestId"].is_string());
    let names: Vec<&str> = v1["virtualTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    let (status, v2) = call(
        s.address(),
        Method::GET,
        "/v2/virtual-tags",
        creds(&s),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v2["data"]["virtualTags"].as_array().map(Vec::len), Some(3));
    assert!(v2["requestId"].is_string());
}
