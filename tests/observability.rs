//! Optional authentication, request ids, and what is logged: the throttle trip at WARN with
//! the client id and the request id, every rejection under the request id its answer carries,
//! and never a secret.
#![cfg(feature = "axum")]

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{Router, routing::get};
use common::Harness;
use finout_auth::{
    AuthLayer, CLIENT_ID_HEADER, IssuedToken, Principal, Role, SECRET_KEY_HEADER,
    middleware::{REQUEST_ID_HEADER, RequireLayer},
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn request(
    path: &str,
    credentials: Option<(&str, &str)>,
    request_id: Option<&str>,
) -> Request<axum::body::Body> {
    let mut builder = Request::builder().uri(path);
    if let Some((id, secret)) = credentials {
        builder = builder
            .header(CLIENT_ID_HEADER, id)
            .header(SECRET_KEY_HEADER, secret);
    }
    if let Some(r) = request_id {
        builder = builder.header(REQUEST_ID_HEADER, r);
    }
    builder.body(axum::body::Body::empty()).unwrap()
}

fn creds(token: &IssuedToken) -> Option<(&str, &str)> {
    Some((token.client_id.as_str(), token.secret_key.expose_secret()))
}

async fn answer(
    app: &Router,
    request: Request<axum::body::Body>,
) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let text = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (parts.status, parts.headers, text)
}

fn app(layer: AuthLayer) -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|p: Option<Principal>| async move {
                p.map_or("anonymous".to_owned(), |p| p.client_id().to_string())
            }),
        )
        .route(
            "/required",
            get(|p: Principal| async move { p.client_id().to_string() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(RequireLayer::admin_user()),
        )
        .layer(layer)
}

#[tokio::test]
async fn optional_authentication_passes_anonymous_requests_and_still_rejects_bad_ones() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let app = app(AuthLayer::new(h.auth.clone()).optional());

    // No credentials at all: through, without a principal.
    let (status, _, body) = answer(&app, request("/whoami", None, None)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
    // A handler or route that needs a principal still refuses: 401, not a server error.
    let (status, _, body) = answer(&app, request("/required", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("missing_credentials"), "{body}");
    let (status, _, body) = answer(&app, request("/admin", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Good credentials: the principal.
    let (status, _, body) = answer(&app, request("/whoami", creds(&token), None)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, token.client_id.as_str())
    );
    // Bad or partial credentials are rejected as always.
    let (status, _, body) = answer(
        &app,
        request("/whoami", Some((token.client_id.as_str(), "wrong")), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("invalid_credentials"));
    let only_id = Request::builder()
        .uri("/whoami")
        .header(CLIENT_ID_HEADER, token.client_id.as_str())
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, body) = answer(&app, only_id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("missing_credentials"), "{body}");
    let only_secret = Request::builder()
        .uri("/whoami")
        .header(SECRET_KEY_HEADER, token.secret_key.expose_secret())
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(answer(&app, only_secret).await.0, StatusCode::UNAUTHORIZED);

    // Without `optional`, no credentials is 401 as before.
    let strict = app_strict(&h);
    assert_eq!(
        answer(&strict, request("/whoami", None, None)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn app_strict(h: &Harness) -> Router {
    app(AuthLayer::new(h.auth.clone()))
}

#[tokio::test]
async fn rejections_echo_an_incoming_request_id_in_body_and_header() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let app = app_strict(&h);
    for (path, credentials, status) in [
        ("/whoami", None, StatusCode::UNAUTHORIZED),
        (
            "/whoami",
            Some((token.client_id.as_str(), "wrong")),
            StatusCode::UNAUTHORIZED,
        ),
        ("/admin", creds(&token), StatusCode::FORBIDDEN),
    ] {
        // Twice: the second wrong secret is answered from the cache (the hot path).
        for _ in 0..2 {
            let (got, headers, body) =
                answer(&app, request(path, credentials, Some("req-42.a:b_c"))).await;
            assert_eq!(got, status, "{path}: {body}");
            assert_eq!(headers[REQUEST_ID_HEADER], "req-42.a:b_c", "{path}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["requestId"], "req-42.a:b_c", "{path}");
        }
    }
    // An id that is not a plain token is replaced by a fresh one (never echoed into JSON).
    let (_, headers, body) = answer(&app, request("/whoami", None, Some("x\"y"))).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = json["requestId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(headers[REQUEST_ID_HEADER], id);
    // Without one, a fresh id, the same in body and header.
    let (_, headers, body) = answer(&app, request("/whoami", None, None)).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        headers[REQUEST_ID_HEADER],
        json["requestId"].as_str().unwrap()
    );
}

/// Everything written by a `tracing` subscriber, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// What this process logs: WARN and up, this crate's DEBUG and this test file's INFO. The process's global
/// subscriber, set once by the first test that reads logs (a scoped one races the
/// callsite-interest cache against the other tests' threads); tests tell their lines apart by
/// client and request ids.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("warn,finout_auth=debug,observability=info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

#[tokio::test(flavor = "current_thread")]
async fn every_logged_rejection_names_the_request_id_its_answer_carries() {
    let logs = logs();
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let app = app_strict(&h);
    let only_client_id = || {
        Request::builder()
            .uri("/whoami")
            .header(CLIENT_ID_HEADER, token.client_id.as_str())
            .body(axum::body::Body::empty())
            .unwrap()
    };
    type MakeRequest<'a> = Box<dyn Fn() -> Request<axum::body::Body> + 'a>;
    let cases: [(&str, MakeRequest); 3] = [
        (
            "wrong secret",
            Box::new(|| request("/whoami", Some((token.client_id.as_str(), "wrong")), None)),
        ),
        (
            "unknown client id",
            Box::new(|| request("/whoami", Some(("no-token-has-this-id", "x")), None)),
        ),
        ("no secret header", Box::new(only_client_id)),
    ];
    for (what, make) in cases {
        // Twice: the cold path (store, argon2), then the cached rejection (the hot path).
        for attempt in ["first", "again"] {
            let (status, headers, body) = answer(&app, make()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what}, {attempt}: {body}"
            );
            let id = headers[REQUEST_ID_HEADER].to_str().unwrap().to_owned();
            let text = logs.text();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(&format!("request_id={id}")))
                .collect();
            assert!(
                lines.iter().any(|l| l.contains("rejected")),
                "{what}, {attempt}: no rejection logged under the answer's id {id}:\n{text}"
            );
        }
    }
    // An incoming id names the line of a cached rejection too.
    let (_, headers, _) = answer(
        &app,
        request(
            "/whoami",
            Some((token.client_id.as_str(), "wrong")),
            Some("trace-7f"),
        ),
    )
    .await;
    assert_eq!(headers[REQUEST_ID_HEADER], "trace-7f");
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("request_id=trace-7f") && l.contains("rejected")),
        "{text}"
    );
    assert!(!text.contains(token.secret_key.expose_secret()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_throttle_trip_is_logged_at_warn_with_the_client_id_and_request_id_and_no_secret() {
    let captured = logs();

    let h = Harness::with(|b| b.failure_limit(3, Duration::from_secs(60))).await;
    let token = h.api_token(Role::Basic).await;
    let app = app_strict(&h);
    let mut wrong = Vec::new();
    for i in 0..6 {
        let secret = format!("wrong-secret-{i}");
        let id = format!("guess-{i}");
        let (status, _, _) = answer(
            &app,
            request(
                "/whoami",
                Some((token.client_id.as_str(), &secret)),
                Some(&id),
            ),
        )
        .await;
        let expected = if i < 3 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, expected, "attempt {i}");
        wrong.push(secret);
    }
    let logs = captured.text();
    let trips: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("throttle tripped"))
        .collect();
    assert_eq!(trips.len(), 1, "once per window:\n{logs}");
    let trip = trips[0];
    assert!(trip.contains("WARN"), "{trip}");
    assert!(trip.contains(token.client_id.as_str()), "{trip}");
    assert!(trip.contains("request_id=guess-3"), "{trip}");
    for secret in wrong
        .iter()
        .map(String::as_str)
        .chain([token.secret_key.expose_secret()])
    {
        assert!(!logs.contains(secret), "a secret is in the logs:\n{logs}");
    }

    // An unknown id's trip (a different guess each time, so each reaches the throttle) is
    // routine: at DEBUG, with a fingerprint for the id.
    for i in 0..5 {
        answer(
            &app,
            request(
                "/whoami",
                Some(("no-such-id", &format!("x-{i}"))),
                Some(&format!("u-{i}")),
            ),
        )
        .await;
    }
    let text = captured.text();
    assert!(
        !text.contains("no-such-id"),
        "only its fingerprint:\n{text}"
    );
    let unknown_trips: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("tripped for an unknown client id"))
        .collect();
    assert!(!unknown_trips.is_empty(), "logged at DEBUG:\n{text}");
    assert!(
        unknown_trips.iter().all(|l| l.contains("DEBUG")),
        "{unknown_trips:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_callers_span_gets_the_client_and_account_ids_cold_and_cached() {
    use tracing::Instrument;
    let logs = logs();
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let app = Router::new()
        .route(
            "/handled",
            get(|| async {
                tracing::info!("span-fields handler ran");
                "ok"
            }),
        )
        .layer(AuthLayer::new(h.auth.clone()));
    // Cold (store and argon2), then from the cache: both record on the caller's span, as a
    // tower-http TraceLayer span declaring the two fields would be.
    for attempt in ["cold", "cached"] {
        let span = tracing::info_span!(
            "request",
            attempt = %attempt,
            client_id = tracing::field::Empty,
            account_id = tracing::field::Empty
        );
        let response = app
            .clone()
            .oneshot(request("/handled", creds(&token), None))
            .instrument(span)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{attempt}");
        let text = logs.text();
        let line = text
            .lines()
            .find(|l| {
                l.contains("span-fields handler ran") && l.contains(&format!("attempt={attempt}"))
            })
            .unwrap_or_else(|| panic!("{attempt}: no handler line in\n{text}"));
        assert!(line.contains(token.client_id.as_str()), "{attempt}: {line}");
        assert!(
            line.contains(&format!("account_id={}", h.account.id)),
            "{attempt}: {line}"
        );
    }
}

#[tokio::test]
async fn client_credentials_as_a_layer_authenticate_every_request() {
    use finout_auth::client::ClientCredentials;
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let credentials =
        ClientCredentials::new(token.client_id.as_str(), token.secret_key.expose_secret()).unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(credentials)
        .service(app_strict(&h));
    assert!(!format!("{client:?}").contains(token.secret_key.expose_secret()));
    for _ in 0..2 {
        let response = client
            .clone()
            .oneshot(request("/required", None, None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, token.client_id.as_str());
    }
}
