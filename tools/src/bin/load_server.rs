//! The server behind `benches/load.sh`: hyper 1 on loopback answering `200 ok`, with the
//! layer (default) or without it (`--no-auth`), for a load generator to compare. Both are
//! the same service type and machine code; the flag only decides whether requests go
//! through the layer. `--axum` serves an axum `Router` with one route instead of a bare
//! `service_fn`, a more typical application under the layer.
//!
//! Prints one line, `<addr> <client id> <secret>`, then serves until killed.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use finout_auth::{
    AuthLayer, Authenticator, NewToken, Role, TokenAdmin,
    middleware::{AuthBody, AuthService},
    store::MemoryTokenStore,
};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::{Layer, Service, ServiceExt, service_fn};

async fn ok(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

// One worker: the server gets one core (benches/load.sh pins it to CPU 0).
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let with_auth = !std::env::args().any(|a| a == "--no-auth");
    let store = Arc::new(MemoryTokenStore::new());
    let authenticator = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
    let account = admin.create_account("load").await?;
    let token = admin
        .issue_api_token(account.id, None, NewToken::new("load", Role::Basic))
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!(
        "{} {} {}",
        listener.local_addr()?,
        token.client_id,
        token.secret_key.expose_secret()
    );
    if std::env::args().any(|a| a == "--axum") {
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        serve(listener, switched(router, authenticator, with_auth)).await
    } else {
        serve(listener, switched(service_fn(ok), authenticator, with_auth)).await
    }
}

/// `inner` with the layer on or off at run time, as one service type: the two servers
/// are the same machine code, so the comparison measures the layer, not how the compiler
/// happened to lay out two different builds of hyper's connection loop. Either way the
/// service is cloned per request and called as hyper-util calls a tower service.
fn switched<S, B>(
    inner: S,
    authenticator: Authenticator,
    with_auth: bool,
) -> impl Service<
    Request<Incoming>,
    Response = Response<AuthBody<B>>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    let layered: &'static AuthService<S> =
        Box::leak(Box::new(AuthLayer::new(authenticator).layer(inner.clone())));
    let inner: &'static S = Box::leak(Box::new(inner));
    service_fn(move |request: Request<Incoming>| async move {
        if with_auth {
            layered.clone().oneshot(request).await
        } else {
            let response = inner.clone().oneshot(request).await?;
            Ok(response.map(AuthBody::inner))
        }
    })
}

async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
) -> Result<(), Box<dyn std::error::Error>>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
