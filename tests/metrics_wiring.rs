//! One-call wiring of the counters: a layer inside an `AuthLayer` that was given no metrics
//! handle still counts its rejections, once, into the authenticator's (found through the
//! request); one given a handle counts into that one only.

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::Harness;
use finout_auth::{
    AuthLayer, CLIENT_ID_HEADER, ErrorCode, IssuedToken, Role, SECRET_KEY_HEADER,
    metrics::{Metrics, MetricsSnapshot},
    middleware::{Quota, RateLimitLayer, RequireLayer, TokenConcurrencyLimitLayer},
};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn with_token(token: &IssuedToken) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/v1/view")
        .header(CLIENT_ID_HEADER, token.client_id.as_str())
        .header(SECRET_KEY_HEADER, token.secret_key.expose_secret())
        .body(Full::default())
        .unwrap()
}

async fn ok(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

/// Every rejection counted, whatever its code.
fn rejections(snapshot: &MetricsSnapshot) -> u64 {
    snapshot.rejections.iter().map(|(_, n)| n).sum()
}

/// `code` counted exactly once, and nothing else refused.
fn assert_counted_once(snapshot: &MetricsSnapshot, code: ErrorCode) {
    assert_eq!(snapshot.rejections_of(code), 1, "{snapshot:?}");
    assert_eq!(rejections(snapshot), 1, "{snapshot:?}");
}

#[tokio::test]
async fn a_require_layer_without_metrics_counts_into_the_authenticators_handle() {
    let h = Harness::new().await;
    let reader = h.api_token(Role::ReadOnly).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .layer(RequireLayer::role(Role::Admin))
        .service(service_fn(ok));

    // The first request takes the cold path, the second the cache: both are counted.
    let cold = service.clone().oneshot(with_token(&reader)).await.unwrap();
    assert_eq!(cold.status(), StatusCode::FORBIDDEN);
    assert_counted_once(&h.auth.metrics(), ErrorCode::Forbidden);

    let cached = service.oneshot(with_token(&reader)).await.unwrap();
    assert_eq!(cached.status(), StatusCode::FORBIDDEN);
    let snapshot = h.auth.metrics();
    assert_eq!(snapshot.cache_hits, 1);
    assert_eq!(snapshot.rejections_of(ErrorCode::Forbidden), 2);
    assert_eq!(rejections(&snapshot), 2);
}

#[tokio::test]
async fn a_require_layer_with_the_authenticators_metrics_counts_once_not_twice() {
    let h = Harness::new().await;
    let reader = h.api_token(Role::ReadOnly).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .layer(RequireLayer::role(Role::Admin).metrics(h.auth.metrics_handle().clone()))
        .service(service_fn(ok));

    let response = service.oneshot(with_token(&reader)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_counted_once(&h.auth.metrics(), ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_layer_with_a_handle_of_its_own_counts_there_instead() {
    let h = Harness::new().await;
    let reader = h.api_token(Role::ReadOnly).await;
    let own = Metrics::new();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .layer(RequireLayer::role(Role::Admin).metrics(own.clone()))
        .service(service_fn(ok));

    let response = service.oneshot(with_token(&reader)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_counted_once(&own.snapshot(), ErrorCode::Forbidden);
    assert_eq!(rejections(&h.auth.metrics()), 0);
}

#[tokio::test]
async fn a_concurrency_limit_without_metrics_counts_into_the_authenticators_handle() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .layer(TokenConcurrencyLimitLayer::new(1))
        .service(service_fn(ok));

    // The first answer's body, not yet sent, holds the token's one slot.
    let first = service.clone().oneshot(with_token(&token)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = service.oneshot(with_token(&token)).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_counted_once(&h.auth.metrics(), ErrorCode::TooManyRequests);
    drop(first);
}

#[tokio::test]
async fn a_rate_limit_without_metrics_counts_into_the_authenticators_handle() {
    let h = Harness::new().await;
    let token = h.api_token(Role::Basic).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()))
        .layer(RateLimitLayer::new([Quota::per_minute(1)]))
        .service(service_fn(ok));

    let first = service.clone().oneshot(with_token(&token)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = service.oneshot(with_token(&token)).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_counted_once(&h.auth.metrics(), ErrorCode::TooManyRequests);
}

#[tokio::test]
async fn a_refusal_of_an_anonymous_request_under_optional_auth_is_counted() {
    let h = Harness::new().await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()).optional())
        .layer(RequireLayer::role(Role::ReadOnly))
        .service(service_fn(ok));

    let response = service
        .oneshot(Request::new(Full::default()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_counted_once(&h.auth.metrics(), ErrorCode::MissingCredentials);
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_grpc_rejection_without_metrics_counts_into_the_authenticators_handle() {
    use finout_auth::middleware::GrpcRejection;

    let h = Harness::new().await;
    let reader = h.api_token(Role::ReadOnly).await;
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()).rejection(GrpcRejection))
        .layer(RequireLayer::role(Role::Admin).rejection(GrpcRejection))
        .service(service_fn(ok));

    let response = service.oneshot(with_token(&reader)).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "7");
    assert_counted_once(&h.auth.metrics(), ErrorCode::Forbidden);
}
