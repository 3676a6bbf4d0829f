//! finout-mock, one tenant against another: each attack of an ordinary token runs against a
//! release-built mock (in process, on a real socket, at the default `ServerLimits`) while
//! another account times its own `GET /v1/view` on a fresh connection every 20 ms.
//!
//! ```sh
//! cargo run --release -p finout-auth-tools --bin mock_tenants
//! # knobs: ATTACK=all|query|queries|unread|writes|slow  SLOW_CONNECTIONS=1100  UNREAD=100
//! ```
//!
//! - `query`: the costliest V2 queries the work cap accepts (most rows; longest values):
//!   the CPU of the process (every thread, from /proc/self/task/*/schedstat) spent on the
//!   first results page (ranking included) and on the next page.
//! - `queries`: 1,000 generate-queries of one account naming a tag of 2 x 100,000-byte
//!   values, first one version of the tag, then a new version before each query: RSS growth.
//! - `unread`: 100 connections of 20 tokens ask for a 7.6 MB tag list and never read it: RSS
//!   growth while they stay open.
//! - `writes`: four tasks of one account rewrite a tag of 2 x 100 KB values for 10 s.
//! - `slow`: `SLOW_CONNECTIONS` connections send complete headers and 1 byte of a 100-byte
//!   body (run it where `ulimit -n` is above that, and the server's 1,024): how they end,
//!   and how long the victim waited.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use finout_auth::{AccountId, NewToken, Role, model::Account};
use finout_mock::{JournalLimits, MockServer};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, net::TcpStream};

type Creds = (String, String);

const GENERATE: &str = "/v2/data/cost-usage/generate-query";

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    creds: &Creds,
    body: Option<Value>,
) -> (u16, Value) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "mock")
        .header("x-finout-client-id", &creds.0)
        .header("x-finout-secret-key", &creds.1);
    let body = match body {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::default(),
    };
    let response = sender
        .send_request(request.body(body).expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// CPU time of every thread of the process so far.
fn cpu() -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The victim: another account's `GET /v1/view` on a fresh connection every 20 ms until
/// `stop`; its latencies (a request that fails counts as its time to fail).
fn victim(
    addr: SocketAddr,
    creds: Creds,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Duration>, usize)> {
    // A runtime of its own, on a thread of its own: what it measures is the server, not
    // this process's attackers queueing ahead of it.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let (mut times, mut failed) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answered = tokio::time::timeout(
                    Duration::from_secs(30),
                    call(addr, Method::GET, "/v1/view", &creds, None),
                )
                .await;
                if !matches!(answered, Ok((200, _))) {
                    failed += 1;
                }
                times.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (times, failed)
        })
    })
}

fn report(what: &str, (mut times, failed): (Vec<Duration>, usize)) {
    times.sort();
    let p = |q: f64| {
        times
            .get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  victim during {what}: {} requests, {failed} not 200, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

/// A new account with `n` Admin API tokens.
async fn account(s: &MockServer, n: usize) -> Vec<Creds> {
    let id = AccountId::new_v4();
    s.admin()
        .store()
        .insert_account(Account {
            id,
            name: "tenant".into(),
        })
        .await
        .expect("account");
    let mut out = Vec::new();
    for i in 0..n {
        let t = s
            .admin()
            .issue_api_token(id, None, NewToken::new(format!("t{i}"), Role::Admin))
            .await
            .expect("token");
        out.push((
            t.client_id.to_string(),
            t.secret_key.expose_secret().to_owned(),
        ));
    }
    out
}

async fn tag(addr: SocketAddr, creds: &Creds, values: Vec<String>) -> String {
    let rules: Vec<Value> = values
        .iter()
        .map(|v| json!({"to": v, "filters": {}}))
        .collect();
    let body = json!({"name": "t", "defaultValue": "z", "rules": rules});
    let (status, body) = call(addr, Method::POST, "/v2/virtual-tags", creds, Some(body)).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["id"].as_str().expect("id").to_owned()
}

fn query(days: i64, dimensions: Vec<Value>) -> Value {
    json!({
        "date": {"unixTimeMillisecondsStart": 1_717_200_000_000_i64,
                 "unixTimeMillisecondsEnd": 1_717_200_000_000_i64 + days * 86_400_000},
        "timeInterval": {"interval": "day"},
        "measurements": [{"type": "netAmortizedCost"}, {"type": "usageAmount"}],
        "dimensions": dimensions,
        "rowLimit": 100_000
    })
}

async fn attack_query(s: &MockServer, attacker: &Creds) {
    let a = s.address();
    let long = |c: char| c.to_string().repeat(100_000);
    let t1 = tag(a, attacker, vec![long('a'), long('b')]).await;
    let t2 = tag(a, attacker, vec![long('c'), long('d')]).await;
    let seven = tag(a, attacker, (0..6).map(|i| format!("team-{i}")).collect()).await;
    let fixture: Vec<Value> = [
        "service",
        "region",
        "account",
        "namespace",
        "cluster",
        "vendor",
    ]
    .iter()
    .map(|k| json!({"costCenter": "", "key": k}))
    .collect();
    let mut most_rows = fixture.clone();
    most_rows.push(json!({"costCenter": "Virtual Tags", "key": seven}));
    let longest = vec![
        json!({"costCenter": "Virtual Tags", "key": t1}),
        json!({"costCenter": "Virtual Tags", "key": t2}),
    ];
    for (name, dims, days) in [
        ("most rows", most_rows, 60),
        ("longest values", longest, 16),
    ] {
        // Ten such queries, each ranked when its results are first asked for.
        let mut ids = Vec::new();
        for _ in 0..10 {
            let body = query(days, dims.clone());
            let (status, body) = call(a, Method::POST, GENERATE, attacker, Some(body)).await;
            if status != 200 {
                println!("  {name}: refused: {body}");
                break;
            }
            ids.push(
                body["data"]["queryId"]
                    .as_str()
                    .expect("queryId")
                    .to_owned(),
            );
        }
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let (mut first, mut next, mut rows) = (Vec::new(), Vec::new(), Value::Null);
        for id in &ids {
            let path = format!("/v2/data/cost-usage/{id}/results?pageSize=100");
            let before = cpu();
            let (status, page) = call(a, Method::GET, &path, attacker, None).await;
            first.push(cpu() - before);
            assert_eq!(status, 200, "{page}");
            rows = page["pagination"]["totalRows"].clone();
            let cursor = page["pagination"]["nextCursor"].as_str().unwrap_or("0");
            let before = cpu();
            let (status, page) = call(
                a,
                Method::GET,
                &format!("{path}&cursor={cursor}"),
                attacker,
                None,
            )
            .await;
            next.push(cpu() - before);
            assert_eq!(status, 200, "{page}");
        }
        let ms = |v: &[Duration]| {
            let max = v.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3;
            let mean = v.iter().sum::<Duration>().as_secs_f64() * 1e3 / v.len().max(1) as f64;
            format!("mean {mean:.1} ms, max {max:.1} ms")
        };
        println!(
            "  {name} ({rows} rows, {} queries): CPU of the first results page (ranking included) {}; of the next page {}",
            ids.len(),
            ms(&first),
            ms(&next)
        );
    }
}

async fn attack_queries(s: &MockServer, attacker: &Creds) {
    let a = s.address();
    let long = |c: char| c.to_string().repeat(100_000);
    let id = tag(a, attacker, vec![long('a'), long('b')]).await;
    let dims = || vec![json!({"costCenter": "Virtual Tags", "key": id})];
    let before = rss_mib();
    for _ in 0..1_000 {
        let (status, body) =
            call(a, Method::POST, GENERATE, attacker, Some(query(1, dims()))).await;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "  1,000 queries of one tag version: RSS {before:.1} -> {:.1} MiB; queries hold {:.1} MiB",
        rss_mib(),
        query_mib(s).await
    );
    // The tag writes alone first: what they leave in RSS (their versions, up to the
    // account's 16 MiB, and the allocator's high-water mark) is not the queries'.
    let write = |i: usize| {
        json!({"name": "t", "defaultValue": format!("z{i}"),
               "rules": [{"to": long('a'), "filters": {}}, {"to": long('b'), "filters": {}}]})
    };
    let path = format!("/v2/virtual-tags/{id}");
    let before = rss_mib();
    for i in 0..1_000 {
        let (status, body) = call(a, Method::PUT, &path, attacker, Some(write(i))).await;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "  1,000 tag writes alone: RSS {before:.1} -> {:.1} MiB",
        rss_mib()
    );
    let before = rss_mib();
    for i in 1_000..2_000 {
        let (status, body) = call(a, Method::PUT, &path, attacker, Some(write(i))).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) =
            call(a, Method::POST, GENERATE, attacker, Some(query(1, dims()))).await;
        assert_eq!(status, 200, "{body}");
    }
    println!(
        "  1,000 more tag writes, each followed by a query of the new version: RSS {before:.1} \
         -> {:.1} MiB; queries hold {:.1} MiB (budget 64 MiB an account)",
        rss_mib(),
        query_mib(s).await
    );
}

async fn attack_unread(s: &MockServer, tokens: &[Creds], n: usize) {
    let a = s.address();
    // About 7.6 MB of tags: 32 of 240 KB.
    for i in 0..32 {
        let rules: Vec<Value> = (0..8)
            .map(|r| json!({"to": format!("{i}-{r}-{}", "v".repeat(30_000)), "filters": {"AND": []}}))
            .collect();
        let body = json!({"name": format!("big{i}"), "defaultValue": "z", "rules": rules});
        let (status, body) =
            call(a, Method::POST, "/v1/virtual-tags", &tokens[0], Some(body)).await;
        assert_eq!(status, 201, "{body}");
    }
    let before = rss_mib();
    let mut open = Vec::new();
    for i in 0..n {
        let creds = &tokens[i % tokens.len()];
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let mut stream = socket.connect(a).await.expect("connect");
        let head = format!(
            "GET /v1/virtual-tags HTTP/1.1\r\nhost: mock\r\nx-finout-client-id: {}\r\nx-finout-secret-key: {}\r\n\r\n",
            creds.0, creds.1
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        open.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = rss_mib();
    // How each was answered: its status line (a few bytes of the answer, read now).
    let mut answers: std::collections::BTreeMap<String, usize> = Default::default();
    for stream in &mut open {
        let mut head = [0u8; 12];
        let line = match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::io::AsyncReadExt::read_exact(stream, &mut head),
        )
        .await
        {
            Ok(Ok(_)) => String::from_utf8_lossy(&head).into_owned(),
            _ => "no answer".to_owned(),
        };
        *answers.entry(line).or_default() += 1;
    }
    println!("  answered: {answers:?}");
    println!(
        "  {n} unread connections of {} tokens: RSS {before:.1} -> {rss:.1} MiB",
        tokens.len()
    );
    drop(open);
}

async fn attack_slow(s: &MockServer, attacker: &Creds, n: usize) {
    let head = format!(
        "POST /v1/virtual-tags HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\ncontent-length: 100\r\nx-finout-client-id: {}\r\nx-finout-secret-key: {}\r\n\r\n{{",
        attacker.0, attacker.1
    );
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (addr, head) = (s.address(), head.clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return ("connect failed".to_owned(), started.elapsed());
            };
            let _ = stream.write_all(head.as_bytes()).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
            )
            .await;
            let line = String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or("closed, no answer")
                .to_owned();
            (line, started.elapsed())
        }));
    }
    let mut outcomes: std::collections::BTreeMap<String, (usize, Duration)> = Default::default();
    for t in tasks {
        let (line, took) = t.await.expect("task");
        let e = outcomes.entry(line).or_default();
        e.0 += 1;
        e.1 = e.1.max(took);
    }
    for (line, (count, longest)) in outcomes {
        println!(
            "  {count} slow connections: {line} (the last after {:.1} s)",
            longest.as_secs_f64()
        );
    }
}

/// What the mock's V2 queries hold, from its `/metrics` (the bootstrap Admin reads them).
async fn query_mib(s: &MockServer) -> f64 {
    let admin = (s.client_id().to_owned(), s.secret_key().to_owned());
    let stream = TcpStream::connect(s.address()).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let request = Request::builder()
        .uri("/metrics")
        .header("host", "mock")
        .header("x-finout-client-id", &admin.0)
        .header("x-finout-secret-key", &admin.1)
        .body(Full::<Bytes>::default())
        .expect("request");
    let response = sender.send_request(request).await.expect("metrics");
    let text = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| l.starts_with("finout_mock_query_bytes "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
        / (1024.0 * 1024.0)
}

/// Four tasks of one account rewrite one tag of 2 x 100 KB values for 10 s (each write adds
/// a version, up to the account's 16 MiB, all serialized on every write): the write lock
/// and the CPU it takes are the account's own.
async fn attack_writes(s: &MockServer, attacker: &Creds) {
    let a = s.address();
    let long = |c: char| c.to_string().repeat(100_000);
    let id = tag(a, attacker, vec![long('a'), long('b')]).await;
    let until = Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (creds, id) = (attacker.clone(), id.clone());
        let body = json!({"name": "t", "defaultValue": format!("z{t}"),
            "rules": [{"to": long('a'), "filters": {}}, {"to": long('b'), "filters": {}}]});
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut other) = (0, 0);
            while Instant::now() < until {
                let path = format!("/v2/virtual-tags/{id}");
                match call(a, Method::PUT, &path, &creds, Some(body.clone()))
                    .await
                    .0
                {
                    200 => ok += 1,
                    _ => other += 1,
                }
            }
            (ok, other)
        }));
    }
    let (mut ok, mut other) = (0, 0);
    for t in tasks {
        let (o, x) = t.await.expect("writer");
        ok += o;
        other += x;
    }
    println!("  {ok} tag writes of ~16 MiB with versions answered 200, {other} otherwise");
}

/// The process's limit on open files, which the slow connections must fit in.
fn file_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let attack = std::env::var("ATTACK").unwrap_or_else(|_| "all".into());
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // As the `serve` binary runs: no journal of received requests (a test double's).
    let s = MockServer::builder()
        .journal_limits(JournalLimits::default().max_requests(0))
        .query_delay(Duration::from_secs(2))
        .rate_limits(false)
        .start()
        .await;
    let victim_creds = account(&s, 1).await.remove(0);
    let run = |name: &str| attack == "all" || attack == name;
    for name in ["query", "queries", "unread", "writes", "slow"] {
        if !run(name) {
            continue;
        }
        println!("{name}:");
        // Each attack from an account of its own, with 20 tokens.
        let attackers = account(&s, 20).await;
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = victim(s.address(), victim_creds.clone(), stop.clone());
        match name {
            "query" => attack_query(&s, &attackers[0]).await,
            "queries" => attack_queries(&s, &attackers[0]).await,
            "unread" => attack_unread(&s, &attackers, env("UNREAD", 100)).await,
            "writes" => attack_writes(&s, &attackers[0]).await,
            _ => {
                println!("  {}", file_limit());
                attack_slow(&s, &attackers[0], env("SLOW_CONNECTIONS", 1_100)).await
            }
        }
        stop.store(true, Ordering::Relaxed);
        report(name, watcher.join().expect("victim"));
    }
}
