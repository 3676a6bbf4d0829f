//! `MockServer` as a dependent's test suite uses it: seeded with known credentials, its
//! journal asserted on, faults injected under a client with retries. Needs no feature of
//! finout-mock (`cargo test -p finout-mock --no-default-features --test test_double`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use finout_auth::Role;
use finout_mock::{Fault, JournalLimits, MockServer, seed::Seed};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The client under test: a Finout client that retries 429 and 5xx answers with a backoff
/// (Retry-After when the answer has one, capped at `max_backoff`).
struct FinoutClient {
    base: std::net::SocketAddr,
    client_id: String,
    secret_key: String,
    attempts: u32,
    max_backoff: Duration,
}

/// One answer: status, headers, JSON body (Null if none).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl FinoutClient {
    fn new(server: &MockServer, client_id: &str, secret_key: &str) -> Self {
        FinoutClient {
            base: server.address(),
            client_id: client_id.to_owned(),
            secret_key: secret_key.to_owned(),
            attempts: 5,
            max_backoff: Duration::from_millis(50),
        }
    }

    async fn once(&self, method: &Method, path: &str, body: Option<&Value>) -> Answer {
        let stream = tokio::net::TcpStream::connect(self.base).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", "finout.test")
            .header("x-finout-client-id", &self.client_id)
            .header("x-finout-secret-key", &self.secret_key);
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = sender
            .send_request(request.body(Full::new(bytes)).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// The request, tried again on 429 and 5xx up to `attempts` times in all.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut backoff = Duration::from_millis(5);
        let mut attempt = 1;
        loop {
            let answer = self.once(&method, path, body.as_ref()).await;
            let retryable =
                answer.status == StatusCode::TOO_MANY_REQUESTS || answer.status.is_server_error();
            if !retryable || attempt == self.attempts {
                return answer;
            }
            let wait = answer
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .map_or(backoff, Duration::from_secs)
                .min(self.max_backoff);
            tokio::time::sleep(wait).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

#[tokio::test]
async fn a_client_retries_through_two_injected_503s_and_the_journal_shows_all_three_calls() {
    let server = MockServer::start().await;
    let outage = server.inject(
        Fault::on(Method::GET, "/v1/view")
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .retry_after(Duration::from_secs(1))
            .times(2),
    );
    let client = FinoutClient::new(&server, server.client_id(), server.secret_key());

    let answer = client.call(Method::GET, "/v1/view", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.json.is_array() || answer.json.is_object());
    assert_eq!(outage.fired(), 2);
    assert!(outage.used_up());

    let calls = server.received_requests_to(&Method::GET, "/v1/view");
    let statuses: Vec<_> = calls.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Some(StatusCode::SERVICE_UNAVAILABLE),
            Some(StatusCode::SERVICE_UNAVAILABLE),
            Some(StatusCode::OK)
        ]
    );
    assert_eq!(server.received_requests().len(), 3);
    assert_eq!(
        calls.iter().map(|r| r.faulted).collect::<Vec<_>>(),
        [true, true, false]
    );
    for call in &calls {
        // The secret never reaches the journal; the client id does.
        assert!(call.headers.get("x-finout-secret-key").is_none());
        assert_eq!(call.headers["x-finout-client-id"], server.client_id());
        assert!(
            !format!("{call:?}").contains(server.secret_key()),
            "the secret is nowhere in the record"
        );
    }
    // A faulted answer comes before authentication: no principal; the answered one has it.
    assert_eq!(calls[0].principal, None);
    let principal = calls[2].principal.as_ref().expect("authenticated");
    assert_eq!(principal.client_id, server.client_id());
    assert_eq!(principal.account_id, server.account_id());
    assert_eq!(principal.user_id, Some(server.user_id()));
    assert!(calls.windows(2).all(|w| w[0].sequence < w[1].sequence));
}

#[tokio::test]
async fn a_faulted_answer_is_in_finouts_error_shape_with_its_request_id_and_retry_after() {
    let server = MockServer::builder()
        .fault(
            Fault::on(Method::GET, "/v1/view")
                .status(StatusCode::TOO_MANY_REQUESTS)
                .retry_after(Duration::from_millis(1500)),
        )
        .start()
        .await;
    let client = FinoutClient::new(&server, server.client_id(), server.secret_key());
    let answer = client.once(&Method::GET, "/v1/view", None).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers["retry-after"], "2");
    assert_eq!(answer.json["error"], "too_many_requests");
    assert!(
        answer.json["message"]
            .as_str()
            .unwrap()
            .contains("injected")
    );
    let id = answer.headers["x-request-id"].to_str().unwrap();
    assert_eq!(answer.json["requestId"], id);

    // Before authentication: a wrong secret gets the fault too, not a 401.
    let wrong = FinoutClient::new(&server, server.client_id(), "not-the-secret");
    assert_eq!(
        wrong.once(&Method::GET, "/v1/view", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other routes answer as usual; without the fault, so does this one.
    assert_eq!(
        client
            .once(&Method::GET, "/admin/whoami", None)
            .await
            .status,
        StatusCode::OK
    );
    server.clear_faults();
    assert_eq!(
        client.once(&Method::GET, "/v1/view", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_seeded_tokens_known_secret_authenticates() {
    let seed = Seed::parse(
        &json!({"accounts": [{
            "id": "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d",
            "name": "Acme",
            "views": [{"id": "v-1", "name": "Everything"}],
            "users": [{"id": "5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3", "email": "ops@acme.test",
                       "roles": ["Admin"]}],
            "tokens": [
                {"clientId": "acme-ops", "secretKey": "ops-s3cret-known-to-the-test",
                 "type": "personal", "user": "ops@acme.test", "role": "Admin"},
                {"clientId": "acme-ci", "secretKey": "ci-s3cret-known-to-the-test",
                 "type": "api", "role": "Read-only"}
            ]
        }]})
        .to_string(),
    )
    .unwrap();
    let server = MockServer::builder()
        .seed(seed)
        .api_token("default-ci", "default-ci-s3cret", Role::ReadOnly)
        .start()
        .await;

    let ops = FinoutClient::new(&server, "acme-ops", "ops-s3cret-known-to-the-test");
    let whoami = ops.call(Method::GET, "/admin/whoami", None).await;
    assert_eq!(whoami.status, StatusCode::OK, "{}", whoami.json);
    assert_eq!(
        whoami.json["accountId"],
        "2d3f9a4e-6b1c-4f0e-9d2a-7c5b8e1f0a3d"
    );
    // The seed's views replace the fixtures.
    let ci = FinoutClient::new(&server, "acme-ci", "ci-s3cret-known-to-the-test");
    let views = ci.call(Method::GET, "/v1/view", None).await;
    assert_eq!(views.status, StatusCode::OK);
    assert!(
        views.json.to_string().contains("Everything"),
        "{}",
        views.json
    );
    // The token added to the default account.
    let default_ci = FinoutClient::new(&server, "default-ci", "default-ci-s3cret");
    assert_eq!(
        default_ci.call(Method::GET, "/v1/view", None).await.status,
        StatusCode::OK
    );
    // And a wrong secret does not.
    let wrong = FinoutClient::new(&server, "acme-ci", "ci-s3cret-known-to-the-tesT");
    assert_eq!(
        wrong.call(Method::GET, "/v1/view", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let journal = server.received_requests();
    let principal = journal[0].principal.as_ref().unwrap();
    assert_eq!(principal.client_id, "acme-ops");
    assert_eq!(
        principal.user_id.map(|u| u.to_string()).as_deref(),
        Some("5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3")
    );
    assert_eq!(journal[1].principal.as_ref().unwrap().client_id, "acme-ci");
    let last = journal.last().unwrap();
    assert_eq!(last.status, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(last.principal, None);
}

#[tokio::test]
async fn a_seed_the_store_contradicts_refuses_to_start() {
    // The same client id, already the default account's, for another account.
    let other = Seed::parse(
        &json!({"accounts": [{
            "id": "7a1e2b3c-4d5e-4f60-8a7b-8c9d0e1f2a3b", "name": "Other",
            "tokens": [{"clientId": "twice", "secretKey": "s3cret-two", "type": "api",
                        "role": "Read-only"}]
        }]})
        .to_string(),
    )
    .unwrap();
    let error = MockServer::builder()
        .api_token("twice", "s3cret-one", Role::ReadOnly)
        .seed(other)
        .try_start()
        .await
        .unwrap_err();
    let finout_mock::StartError::Seed(error) = error else {
        panic!("{error}");
    };
    assert_eq!(error.problems()[0].field, "accounts[0].tokens[0].clientId");
    // The same token twice is loaded once (seeds are idempotent).
    MockServer::builder()
        .api_token("once", "s3cret", Role::ReadOnly)
        .api_token("once", "s3cret", Role::ReadOnly)
        .start()
        .await;
}

/// The statuses of `n` calls one after the other, against a fault on a share of them.
async fn statuses_under_share(seed: u64, n: usize) -> Vec<u16> {
    let server = MockServer::builder()
        .fault(
            Fault::on(Method::GET, "/v1/view")
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .share(0.5, seed),
        )
        .start()
        .await;
    let client = FinoutClient::new(&server, server.client_id(), server.secret_key());
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(
            client
                .once(&Method::GET, "/v1/view", None)
                .await
                .status
                .as_u16(),
        );
    }
    let journaled: Vec<_> = server
        .received_requests()
        .iter()
        .map(|r| r.status.unwrap().as_u16())
        .collect();
    assert_eq!(journaled, statuses);
    statuses
}

#[tokio::test]
async fn a_share_of_calls_with_a_fixed_seed_gives_the_same_sequence_twice() {
    let first = statuses_under_share(42, 32).await;
    let second = statuses_under_share(42, 32).await;
    assert_eq!(first, second);
    let faulted = first.iter().filter(|&&s| s == 500).count();
    assert!((8..=24).contains(&faulted), "{first:?}");
    assert!(first.iter().all(|&s| s == 500 || s == 200));
    assert_ne!(first, statuses_under_share(43, 32).await);
}

#[tokio::test]
async fn latency_delays_the_real_answer() {
    let server = MockServer::start().await;
    let slow = server.inject(
        Fault::on(Method::GET, "/v1/view")
            .latency(Duration::from_millis(300))
            .times(1),
    );
    let client = FinoutClient::new(&server, server.client_id(), server.secret_key());
    let started = Instant::now();
    assert_eq!(
        client.once(&Method::GET, "/v1/view", None).await.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(slow.fired(), 1);
    let started = Instant::now();
    client.once(&Method::GET, "/v1/view", None).await;
    assert!(started.elapsed() < Duration::from_millis(300));
    let journal = server.received_requests();
    assert!(journal[0].faulted && journal[0].principal.is_some());
    assert!(!journal[1].faulted);
}

#[tokio::test]
async fn a_prefix_fault_on_any_method() {
    let server = MockServer::start().await;
    server.inject(
        Fault::on_prefix(Method::GET, "/v1/virtual-tags")
            .any_method()
            .status(StatusCode::BAD_GATEWAY)
            .times(2),
    );
    let client = FinoutClient::new(&server, server.client_id(), server.secret_key());
    let post = client
        .once(
            &Method::POST,
            "/v1/virtual-tags",
            Some(&json!({"name": "x"})),
        )
        .await;
    assert_eq!(post.status, StatusCode::BAD_GATEWAY);
    assert_eq!(post.json["error"], "bad_gateway");
    let get = client
        .once(&Method::GET, "/v1/virtual-tags/abc", None)
        .await;
    assert_eq!(get.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        client
            .once(&Method::GET, "/v1/virtual-tags", None)
            .await
            .status,
        StatusCode::OK
    );
    // A faulted request's body is journaled too.
    let journal = server.received_requests();
    assert_eq!(journal[0].body_json(), Some(json!({"name": "x"})));
    assert_eq!(journal[0].method, Method::POST);
}

#[tokio::test]
async fn the_journal_is_bounded_and_counts_what_it_dropped() {
    let server = MockServer::builder()
        .journal_limits(JournalLimits::default().max_requests(3).max_body_bytes(8))
        .start()
        .await;
    let client = FinoutClient::new(&server, server.client_id(), server.secret_key());
    for i in 0..5 {
        client
            .once(&Method::GET, &format!("/v1/view?page={i}"), None)
            .await;
    }
    let journal = server.received_requests();
    assert_eq!(journal.len(), 3);
    assert_eq!(server.dropped_requests(), 2);
    assert_eq!(
        journal
            .iter()
            .map(|r| r.query.clone().unwrap())
            .collect::<Vec<_>>(),
        ["page=2", "page=3", "page=4"]
    );
    client
        .once(
            &Method::POST,
            "/v1/virtual-tags",
            Some(&json!({"name": "a long name"})),
        )
        .await;
    let last = server.received_requests().pop().unwrap();
    assert_eq!(last.body.len(), 8);
    assert!(last.body_truncated);
    assert_eq!(last.body_json(), None);
    server.clear_received_requests();
    assert!(server.received_requests().is_empty());
    assert_eq!(server.dropped_requests(), 3);
}
