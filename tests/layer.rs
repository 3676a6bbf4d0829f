//! The tower layer as a plain tower service, inside axum 0.8, and under hyper 1.

mod common;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, routing::get};
use bytes::Bytes;
use common::{FlakyStore, Harness};
use finout_auth::{
    AuthError, AuthLayer, CLIENT_ID_HEADER, ErrorCode, IssuedToken, Principal, Role,
    SECRET_KEY_HEADER,
    middleware::{RequireLayer, TokenConcurrencyLimitLayer, json_error_response},
    store::MemoryTokenStore,
};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

fn request(client_id: &str, secret: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/whoami")
        .header(CLIENT_ID_HEADER, client_id)
        .header(SECRET_KEY_HEADER, secret)
        .body(Full::default())
        .unwrap()
}

fn with_token(token: &IssuedToken) -> Request<Full<Bytes>> {
    request(token.client_id.as_str(), token.secret_key.expose_secret())
}

/// Status and parsed JSON body of a response.
async fn read<B>(response: Response<B>) -> (StatusCode, http::HeaderMap, serde_json::Value)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, parts.headers, json)
}

fn assert_error_body(json: &serde_json::Value, code: ErrorCode) {
    assert_eq!(json["error"], code.as_str(), "{json}");
    assert_eq!(json["message"], code.message());
    let id = json["requestId"].as_str().expect("requestId");
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    assert_eq!(json.as_object().unwrap().len(), 3);
}

// ---- plain tower ----------------------------------------------------------------------

/// An inner service that echoes what it saw: the principal and whether a secret reached it.
async fn echo(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let principal = request.extensions().get::<Principal>().cloned();
    let body = serde_json::json!({
        "accountId": principal.as_ref().map(|p| p.account_id().to_string()),
        "clientId": principal.as_ref().map(|p| p.client_id().to_string()),
        "sawSecret": request.headers().contains_key(SECRET_KEY_HEADER),
        "sawClientId": request.headers().contains_key(CLIENT_ID_HEADER),
    });
    Ok(Response::new(Full::new(Bytes::from(body.to_string()))))
}

#[tokio::test]
async fn tower_admits_a_valid_token_and_strips_the_secret() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .service(service_fn(echo));
    for _ in 0..2 {
        // cold, then cached
        let response = service.clone().oneshot(with_token(&token)).await.unwrap();
        let (status, _, json) = read(response).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["accountId"], h.account.id.to_string());
        assert_eq!(json["clientId"], token.client_id.as_str());
        assert_eq!(json["sawSecret"], false);
        assert_eq!(json["sawClientId"], true);
    }
    assert_eq!(h.auth.metrics().cache_hits, 1);
}

#[tokio::test]
async fn the_principal_joins_other_extensions_and_replaces_a_forged_one() {
    #[derive(Clone, Debug, PartialEq)]
    struct Marker(u32);
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let service = AuthLayer::new(h.auth.clone()).layer(service_fn(
        |request: Request<Full<Bytes>>| async move {
            let principal = request.extensions().get::<Principal>().cloned();
            let marker = request.extensions().get::<Marker>().cloned();
            let mut response = Response::new(Full::<Bytes>::default());
            response.extensions_mut().insert((principal, marker));
            Ok::<_, Infallible>(response)
        },
    ));
    let forged = Principal::account(
        finout_auth::AccountId::new_v4(),
        Role::Admin,
        finout_auth::ClientId::from("forged"),
    );
    // Cold, then cached; extensions empty (as hyper hands a request over), holding another
    // value, holding a principal put there before the layer.
    for _ in 0..2 {
        for (marker, prior) in [(None, None), (Some(Marker(7)), None), (None, Some(&forged))] {
            let mut request = with_token(&token);
            if let Some(marker) = &marker {
                request.extensions_mut().insert(marker.clone());
            }
            if let Some(prior) = prior {
                request.extensions_mut().insert(prior.clone());
            }
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let (principal, seen) = response
                .extensions()
                .get::<(Option<Principal>, Option<Marker>)>()
                .cloned()
                .expect("the inner service ran");
            let principal = principal.expect("the layer attached a principal");
            assert_eq!(principal.client_id(), &token.client_id);
            assert_eq!(principal.account_id(), h.account.id);
            assert_eq!(principal.token_role(), &Role::Basic);
            assert_eq!(seen, marker);
        }
    }
    assert_eq!(h.auth.metrics().cache_hits, 5);
}

/// An inner service that panics when called without `poll_ready` first, per instance, and
/// counts its clones.
#[derive(Debug)]
struct Strict {
    ready: bool,
    clones: Arc<AtomicUsize>,
}

impl Clone for Strict {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::Relaxed);
        Strict {
            ready: false,
            clones: self.clones.clone(),
        }
    }
}

impl Service<Request<Full<Bytes>>> for Strict {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
        assert!(self.ready, "called without poll_ready");
        self.ready = false;
        std::future::ready(Ok(Response::new(Full::default())))
    }
}

#[tokio::test]
async fn the_inner_service_made_ready_is_the_one_called_and_hot_requests_clone_nothing() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let clones = Arc::new(AtomicUsize::new(0));
    let mut service = AuthLayer::new(h.auth.clone()).layer(Strict {
        ready: false,
        clones: clones.clone(),
    });
    let count = || clones.load(Ordering::Relaxed);
    // Cold: the ready service goes into the future (called after argon2), a clone stays.
    let response = service.ready().await.unwrap().call(with_token(&token));
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    assert_eq!(count(), 1);
    // Hot: called at once, nothing cloned.
    for _ in 0..5 {
        let response = service.ready().await.unwrap().call(with_token(&token));
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(count(), 1);
    // An unknown id goes the cold way once (a clone), then is refused from cache; missing
    // credentials are refused at once: neither clones.
    for clones_after in [2, 2] {
        let response = service.ready().await.unwrap().call(request("nobody", "x"));
        assert_eq!(response.await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(count(), clones_after);
    }
    let response = service
        .ready()
        .await
        .unwrap()
        .call(Request::new(Full::default()));
    assert_eq!(response.await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(count(), 2);
    // Five valid requests and one refusal answered from cache.
    assert_eq!(h.auth.metrics().cache_hits, 6);
}

#[tokio::test]
async fn tower_rejections_carry_code_status_and_json_body() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .service(service_fn(echo));

    let missing = Request::new(Full::default());
    let mut duplicate = with_token(&token);
    duplicate
        .headers_mut()
        .append(SECRET_KEY_HEADER, "again".parse().unwrap());
    let cases = [
        (missing, ErrorCode::MissingCredentials),
        (duplicate, ErrorCode::MalformedCredentials),
        (
            request(&"a".repeat(257), "s"),
            ErrorCode::MalformedCredentials,
        ),
        (
            request(token.client_id.as_str(), "wrong"),
            ErrorCode::InvalidCredentials,
        ),
        (request("unknown", "wrong"), ErrorCode::InvalidCredentials),
    ];
    for (req, code) in cases {
        let (status, headers, json) = read(service.clone().oneshot(req).await.unwrap()).await;
        assert_eq!(status, code.status(), "{code}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_error_body(&json, code);
    }
    let m = h.auth.metrics();
    assert_eq!(m.rejections_of(ErrorCode::MissingCredentials), 1);
    assert_eq!(m.rejections_of(ErrorCode::MalformedCredentials), 2);
    assert_eq!(m.rejections_of(ErrorCode::InvalidCredentials), 2);
}

#[tokio::test]
async fn tower_expired_token_is_rejected_with_token_expired() {
    let h = Harness::new().await;
    let token = h
        .admin
        .issue_api_token(
            h.account.id,
            None,
            finout_auth::NewToken::new("e", Role::Basic).expires_in_minutes(1),
        )
        .await
        .unwrap();
    h.clock.advance(time::Duration::minutes(2));
    let service = AuthLayer::new(h.auth.clone()).layer(service_fn(echo));
    let (status, _, json) = read(service.oneshot(with_token(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_body(&json, ErrorCode::TokenExpired);
}

#[tokio::test]
async fn tower_store_outage_answers_503_auth_unavailable_with_retry_after() {
    let store = Arc::new(MemoryTokenStore::new());
    let flaky = FlakyStore::new(store.clone(), Duration::ZERO);
    let h = Harness::wrapped(store, flaky.clone(), |b| b).await;
    let token = h.api_token(Role::Basic).await;
    flaky.set_down(true);
    let service = AuthLayer::new(h.auth.clone()).layer(service_fn(echo));
    let (status, headers, json) = read(service.oneshot(with_token(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_error_body(&json, ErrorCode::AuthUnavailable);
}

#[test]
fn every_error_code_renders_its_row_of_the_table() {
    let table = [
        (AuthError::MissingCredentials, 401, None),
        (
            AuthError::MalformedCredentials(finout_auth::MalformedReason::Empty),
            401,
            None,
        ),
        (AuthError::InvalidCredentials, 401, None),
        (AuthError::TokenExpired, 401, None),
        (AuthError::Forbidden, 403, None),
        (
            AuthError::TooManyAttempts {
                retry_after: Duration::from_millis(30_500),
            },
            429,
            Some("31"),
        ),
        (
            AuthError::TooManyRequests {
                retry_after: Duration::from_secs(1),
            },
            429,
            Some("1"),
        ),
        (
            AuthError::AuthBusy {
                retry_after: Duration::ZERO,
            },
            503,
            Some("1"),
        ),
        (
            AuthError::AuthUnavailable(finout_auth::StoreError::backend(common::Refused)),
            503,
            Some("1"),
        ),
        (AuthError::LayerMissing, 500, None),
    ];
    assert_eq!(table.len(), ErrorCode::ALL.len());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for ((error, status, retry_after), code) in table.into_iter().zip(ErrorCode::ALL) {
        assert_eq!(error.code(), code);
        let (got, headers, json) = rt.block_on(read(json_error_response(&error)));
        assert_eq!(got.as_u16(), status, "{code}");
        assert_eq!(
            headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            retry_after,
            "{code}"
        );
        assert_error_body(&json, code);
    }
}

#[tokio::test]
async fn custom_rejection_response_is_used() {
    let h = Harness::new().await;
    let layer = AuthLayer::new(h.auth.clone()).rejection(|e: &AuthError| {
        let mut r = Response::new(Full::new(Bytes::from(e.code().as_str())));
        *r.status_mut() = StatusCode::IM_A_TEAPOT;
        r
    });
    let service = layer.layer(service_fn(echo));
    let response = service
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"missing_credentials");
}

// ---- axum ------------------------------------------------------------------------------

async fn whoami(principal: Principal) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "accountId": principal.account_id().to_string(),
        "userId": principal.user_id().map(|u| u.to_string()),
    }))
}

async fn maybe(principal: Option<Principal>) -> &'static str {
    if principal.is_some() {
        "someone"
    } else {
        "no one"
    }
}

fn app(h: &Harness) -> Router {
    let admin_only = Router::new()
        .route("/admin-only", get(|| async { "welcome, admin" }))
        .route_layer(RequireLayer::admin_user());
    let writers = Router::new()
        .route("/views/write", get(|| async { "written" }))
        .route_layer(RequireLayer::permission("fin.megabill.write.views"));
    Router::new()
        .route("/whoami", get(whoami))
        .merge(admin_only)
        .merge(writers)
        .layer(AuthLayer::new(h.auth.clone()))
}

fn get_with(uri: &str, token: &IssuedToken) -> Request<axum::body::Body> {
    Request::builder()
        .uri(uri)
        .header(CLIENT_ID_HEADER, token.client_id.as_str())
        .header(SECRET_KEY_HEADER, token.secret_key.expose_secret())
        .body(axum::body::Body::empty())
        .unwrap()
}

#[tokio::test]
async fn axum_extracts_the_principal() {
    let h = Harness::new().await;
    let token = h.personal_token(&h.admin_user, Role::Admin).await;
    let (status, _, json) = read(app(&h).oneshot(get_with("/whoami", &token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["accountId"], h.account.id.to_string());
    assert_eq!(json["userId"], h.admin_user.id.to_string());
}

#[tokio::test]
async fn axum_optional_principal_is_none_without_the_layer() {
    let app = Router::new().route("/maybe", get(maybe));
    let response = app
        .oneshot(
            Request::builder()
                .uri("/maybe")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"no one");
}

#[tokio::test]
async fn axum_principal_without_the_layer_is_a_clear_500() {
    let app = Router::new().route("/whoami", get(whoami));
    let response = app
        .oneshot(
            Request::builder()
                .uri("/whoami")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, _, json) = read(response).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json["message"], "authentication layer missing");
}

#[tokio::test]
async fn axum_role_and_permission_requirements_answer_403_forbidden() {
    let h = Harness::new().await;
    let admin = h.personal_token(&h.admin_user, Role::Admin).await;
    let api_admin = h.api_token(Role::Admin).await;
    let reader = h.api_token(Role::ReadOnly).await;
    let app = app(&h);

    let ok = app
        .clone()
        .oneshot(get_with("/admin-only", &admin))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let ok = app
        .clone()
        .oneshot(get_with("/views/write", &admin))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    for (uri, token) in [
        ("/admin-only", &api_admin),
        ("/admin-only", &reader),
        ("/views/write", &reader),
    ] {
        let (status, _, json) =
            read(app.clone().oneshot(get_with(uri, token)).await.unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_error_body(&json, ErrorCode::Forbidden);
    }
}

#[tokio::test]
async fn axum_rejects_before_the_router_runs() {
    let h = Harness::new().await;
    let response = app(&h)
        .oneshot(
            Request::builder()
                .uri("/nope")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, _, json) = read(response).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_body(&json, ErrorCode::MissingCredentials);
}

#[tokio::test]
async fn the_sixth_concurrent_request_of_one_token_gets_429() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let other = h.api_token(Role::Basic).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (held, count) = (gate.clone(), entered.clone());
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let (gate, count) = (held.clone(), count.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.acquire().await;
                    "done"
                }
            }),
        )
        .layer(TokenConcurrencyLimitLayer::new(5))
        .layer(AuthLayer::new(h.auth.clone()));
    // Warm the cache so the five in-flight requests are all past authentication.
    h.authenticate(&token).await.unwrap();

    let in_flight: Vec<_> = (0..5)
        .map(|_| tokio::spawn(app.clone().oneshot(get_with("/slow", &token))))
        .collect();
    while entered.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (status, headers, json) = read(
        app.clone()
            .oneshot(get_with("/slow", &token))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_error_body(&json, ErrorCode::TooManyRequests);

    // Another token is not affected.
    gate.add_permits(1);
    let response = app
        .clone()
        .oneshot(get_with("/slow", &other))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    gate.add_permits(10);
    for r in in_flight {
        assert_eq!(r.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    // Slots were given back.
    gate.add_permits(1);
    let response = app.oneshot(get_with("/slow", &token)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn require_and_limit_count_their_rejections_into_the_authenticators_metrics() {
    let h = Harness::new().await;
    let metrics = h.auth.metrics_handle().clone();
    let reader = h.api_token(Role::ReadOnly).await;
    let writer = h.api_token(Role::Basic).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let (held, count) = (gate.clone(), entered.clone());
    let app = Router::new()
        .route(
            "/write",
            get(move || {
                let (gate, count) = (held.clone(), count.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = gate.acquire().await;
                    "written"
                }
            }),
        )
        .route_layer(RequireLayer::permission("fin.megabill.write.views").metrics(metrics.clone()))
        .layer(TokenConcurrencyLimitLayer::new(1).metrics(metrics))
        .layer(AuthLayer::new(h.auth.clone()));
    h.authenticate(&writer).await.unwrap();

    let forbidden = app
        .clone()
        .oneshot(get_with("/write", &reader))
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let in_flight = tokio::spawn(app.clone().oneshot(get_with("/write", &writer)));
    while entered.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let second = app
        .clone()
        .oneshot(get_with("/write", &writer))
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    gate.add_permits(1);
    assert_eq!(in_flight.await.unwrap().unwrap().status(), StatusCode::OK);

    let counted = h.auth.metrics();
    assert_eq!(counted.rejections_of(ErrorCode::Forbidden), 1);
    assert_eq!(counted.rejections_of(ErrorCode::TooManyRequests), 1);
}

// ---- hyper 1 over a real socket --------------------------------------------------------

#[tokio::test]
async fn hyper_serves_through_the_layer() {
    use hyper::body::Incoming;
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};

    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .service(service_fn(|req: Request<Incoming>| async move {
            let p = req.extensions().get::<Principal>().cloned().unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(
                p.account_id().to_string(),
            ))))
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let ok = sender
        .send_request(
            Request::builder()
                .uri("/")
                .header(CLIENT_ID_HEADER, token.client_id.as_str())
                .header(SECRET_KEY_HEADER, token.secret_key.expose_secret())
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body = ok.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, h.account.id.to_string());

    let rejected = sender
        .send_request(
            Request::builder()
                .uri("/")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let (status, _, json) = read(rejected).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_body(&json, ErrorCode::MissingCredentials);
    server.abort();
}

// ---- compile-time guarantees -----------------------------------------------------------

#[allow(dead_code)]
fn layer_service_and_future_are_send_and_sync_where_axum_needs_it() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    type Svc = finout_auth::middleware::AuthService<axum::routing::Route>;
    send_sync::<AuthLayer>();
    send_sync::<Svc>();
    send::<<Svc as tower::Service<Request<axum::body::Body>>>::Future>();
    send_sync::<RequireLayer>();
    send_sync::<TokenConcurrencyLimitLayer>();
    send_sync::<finout_auth::Authenticator>();
    send_sync::<finout_auth::TokenAdmin>();
}
