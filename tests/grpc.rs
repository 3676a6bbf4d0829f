//! A tonic server behind `AuthLayer` with `GrpcRejection`, over a real socket: a tonic client
//! gets `Status` codes (not transport errors), with `retry-after` where it applies, and a
//! valid call's service sees the Principal in the request's extensions; a role requirement
//! answers PERMISSION_DENIED and a store outage UNAVAILABLE.
#![cfg(feature = "tonic")]

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{FlakyStore, Harness};
use finout_auth::{
    AuthLayer, IssuedToken, Principal, Role,
    middleware::{GrpcRejection, RequireLayer},
    store::MemoryTokenStore,
};
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    service::InterceptorLayer,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower::ServiceBuilder;

/// Serve the health service on a free port behind the layer (and, if given, a role
/// requirement); the client ids of the principals its calls carried are pushed to `seen`.
async fn serve(h: &Harness, seen: Arc<Mutex<Vec<String>>>, require: Option<Role>) -> String {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // What a tonic handler does: read the Principal from the request's extensions.
    let observe = move |request: Request<()>| -> Result<Request<()>, Status> {
        let principal = request
            .extensions()
            .get::<Principal>()
            .ok_or_else(|| Status::internal("no principal"))?;
        seen.lock().unwrap().push(principal.client_id().to_string());
        Ok(request)
    };
    let layers = ServiceBuilder::new()
        .layer(AuthLayer::new(h.auth.clone()).rejection(GrpcRejection))
        .layer(
            require
                .map_or_else(|| RequireLayer::check(|_| true), RequireLayer::role)
                .rejection(GrpcRejection),
        )
        .layer(InterceptorLayer::new(observe));
    tokio::spawn(
        Server::builder()
            .layer(layers)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// A health check with these credentials (none: no headers).
async fn check(channel: &Channel, credentials: Option<(&str, &str)>) -> Result<(), Status> {
    let mut request = Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some((id, secret)) = credentials {
        let metadata = request.metadata_mut();
        metadata.insert("x-finout-client-id", MetadataValue::try_from(id).unwrap());
        metadata.insert(
            "x-finout-secret-key",
            MetadataValue::try_from(secret).unwrap(),
        );
    }
    HealthClient::new(channel.clone())
        .check(request)
        .await
        .map(|_| ())
}

fn creds(token: &IssuedToken) -> Option<(&str, &str)> {
    Some((token.client_id.as_str(), token.secret_key.expose_secret()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_gets_grpc_statuses_and_a_valid_call_sees_the_principal() {
    let h = Harness::with(|b| b.failure_limit(2, Duration::from_secs(60))).await;
    let token = h.api_token(Role::Basic).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let uri = serve(&h, seen.clone(), None).await;
    let channel = Channel::from_shared(uri).unwrap().connect().await.unwrap();

    check(&channel, creds(&token)).await.expect("a valid call");
    assert_eq!(*seen.lock().unwrap(), [token.client_id.to_string()]);

    let status = check(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().starts_with("missing_credentials"),
        "{status:?}"
    );
    assert!(status.metadata().get("x-request-id").is_some());

    for i in 0..2 {
        let wrong = format!("wrong-{i}");
        let status = check(&channel, Some((token.client_id.as_str(), &wrong)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // The failure throttle: RESOURCE_EXHAUSTED, with when to retry.
    let status = check(&channel, Some((token.client_id.as_str(), "wrong-again")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The owner still gets in (a known secret is never refused by the throttle).
    check(&channel, creds(&token)).await.expect("the owner");
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "no rejected call reached the service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_and_a_store_outage_reach_a_tonic_client_as_their_codes() {
    // PERMISSION_DENIED: a Basic token on a service that requires Admin.
    let h = Harness::new().await;
    let basic = h.api_token(Role::Basic).await;
    let admin = h.api_token(Role::Admin).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let uri = serve(&h, seen.clone(), Some(Role::Admin)).await;
    let channel = Channel::from_shared(uri).unwrap().connect().await.unwrap();
    let status = check(&channel, creds(&basic)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().starts_with("forbidden"), "{status:?}");
    assert!(status.metadata().get("x-request-id").is_some());
    assert!(
        seen.lock().unwrap().is_empty(),
        "the service was not called"
    );
    check(&channel, creds(&admin))
        .await
        .expect("an Admin token");
    assert_eq!(*seen.lock().unwrap(), [admin.client_id.to_string()]);

    // UNAVAILABLE: the token store is down for a token not cached yet.
    let memory = Arc::new(MemoryTokenStore::new());
    let flaky = FlakyStore::new(memory.clone(), Duration::ZERO);
    let down = Harness::wrapped(memory, flaky.clone(), |b| b).await;
    let token = down.api_token(Role::Basic).await;
    let uri = serve(&down, Arc::new(Mutex::new(Vec::new())), None).await;
    let channel = Channel::from_shared(uri).unwrap().connect().await.unwrap();
    flaky.set_down(true);
    let status = check(&channel, creds(&token)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().starts_with("auth_unavailable"),
        "{status:?}"
    );
    flaky.set_down(false);
    check(&channel, creds(&token))
        .await
        .expect("served once the store is back");
}
