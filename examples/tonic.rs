//! A tonic gRPC server behind `AuthLayer`, and a tonic client calling it:
//! `cargo run --example tonic --features tonic`.
//!
//! Rejections are gRPC statuses (`GrpcRejection`): no credentials or a wrong secret is
//! `UNAUTHENTICATED`, the failure throttle `RESOURCE_EXHAUSTED` with `retry-after`. A handler
//! finds the caller in its request's extensions (here an interceptor, as a generated
//! service's method would: `request.extensions().get::<Principal>()`).

use std::sync::Arc;

use finout_auth::{
    AuthLayer, Authenticator, NewToken, Principal, Role, TokenAdmin, middleware::GrpcRejection,
    store::MemoryTokenStore,
};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::InterceptorLayer,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryTokenStore::new());
    let authenticator = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
    let account = admin.create_account("example").await?;
    let token = admin
        .issue_api_token(
            account.id,
            None,
            NewToken::new("grpc client", Role::ReadOnly),
        )
        .await?;

    // The server: any tonic service (here the standard health service) behind the layer.
    let (_reporter, health) = tonic_health::server::health_reporter();
    let who = |request: Request<()>| -> Result<Request<()>, Status> {
        if let Some(principal) = request.extensions().get::<Principal>() {
            println!(
                "server: a call from {} ({})",
                principal.client_id(),
                principal.account_id()
            );
        }
        Ok(request)
    };
    let layers = ServiceBuilder::new()
        .layer(AuthLayer::new(authenticator).rejection(GrpcRejection))
        .layer(InterceptorLayer::new(who));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let uri = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        Server::builder()
            .layer(layers)
            .add_service(health)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    // The client: the two headers as metadata (the secret marked sensitive).
    let channel = Channel::from_shared(uri)?.connect().await?;
    let call = |secret: Option<&str>| {
        let mut request = Request::new(HealthCheckRequest {
            service: String::new(),
        });
        if let Some(secret) = secret {
            let metadata = request.metadata_mut();
            metadata.insert(
                "x-finout-client-id",
                MetadataValue::try_from(token.client_id.as_str()).expect("ascii"),
            );
            let mut secret = MetadataValue::try_from(secret).expect("ascii");
            secret.set_sensitive(true);
            metadata.insert("x-finout-secret-key", secret);
        }
        let mut client = HealthClient::new(channel.clone());
        async move { client.check(request).await }
    };
    match call(Some(token.secret_key.expose_secret())).await {
        Ok(answer) => println!("client: serving status {:?}", answer.into_inner().status),
        Err(status) => println!("client: unexpected {status:?}"),
    }
    for secret in [None, Some("not-the-secret")] {
        if let Err(status) = call(secret).await {
            println!("client: {:?}: {}", status.code(), status.message());
        }
    }
    Ok(())
}
