//! A tonic gRPC server behind `AuthLayer`, and a tonic client calling it:
//! `cargo run --example tonic --features tonic`.
//!
//! Rejections are gRPC statuses (`GrpcRejection`): no credentials or a wrong secret is
//! `UNAUTHENTICATED`, the failure throttle `RESOURCE_EXHAUSTED` with `retry-after`. A handler
//! finds the caller in its request's extensions and checks it with one line,
//! `principal.require(..)?` (`PERMISSION_DENIED` when it falls short). The client sends its
//! token through `ClientCredentials`, a tower layer over the channel.

use std::sync::Arc;

use finout_auth::{
    AuthError, AuthLayer, Authenticator, NewToken, Principal, Role, TokenAdmin,
    client::ClientCredentials, middleware::GrpcRejection, store::MemoryTokenStore,
};
use tonic::{
    Request, Response, Status,
    codegen::BoxStream,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};
use tower::ServiceBuilder;

/// The standard health service, with a per-method check: any token that may read asks for
/// its status, only an Admin for the `admin` service's.
struct GuardedHealth;

#[tonic::async_trait]
impl Health for GuardedHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        // Put there by the `AuthLayer`; missing only if the layer is (a server bug: INTERNAL).
        let principal = request
            .extensions()
            .get::<Principal>()
            .ok_or(AuthError::LayerMissing)?;
        principal.require("fin.health.read.status")?;
        if request.get_ref().service == "admin" {
            principal.require(Role::Admin)?;
        }
        println!("server: a check from {}", principal.client_id());
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch is not served here"))
    }
}

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

    // The server: the service behind the layer, rejections answered as gRPC statuses.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let uri = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        Server::builder()
            .layer(AuthLayer::new(authenticator).rejection(GrpcRejection))
            .add_service(HealthServer::new(GuardedHealth))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    // The client: `ClientCredentials` sets both headers on every call, the secret marked
    // sensitive (never indexed by HPACK, hidden from tracing layers that honour it).
    let channel = Channel::from_shared(uri)?.connect().await?;
    let check = |credentials: Option<ClientCredentials>, service: &str| {
        let channel = channel.clone();
        let request = Request::new(HealthCheckRequest {
            service: service.to_owned(),
        });
        async move {
            match credentials {
                Some(credentials) => {
                    let service = ServiceBuilder::new().layer(credentials).service(channel);
                    HealthClient::new(service).check(request).await
                }
                None => HealthClient::new(channel).check(request).await,
            }
        }
    };
    let client_id = token.client_id.as_str();
    let good = ClientCredentials::new(client_id, token.secret_key.expose_secret())?;
    match check(Some(good.clone()), "").await {
        Ok(answer) => println!("client: serving status {:?}", answer.into_inner().status),
        Err(status) => println!("client: unexpected {status:?}"),
    }
    let wrong = ClientCredentials::new(client_id, "not-the-secret")?;
    for (credentials, service) in [(Some(good), "admin"), (None, ""), (Some(wrong), "")] {
        if let Err(status) = check(credentials, service).await {
            println!("client: {:?}: {}", status.code(), status.message());
        }
    }
    Ok(())
}
