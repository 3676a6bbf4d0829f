//! The layer under plain hyper 1 (via hyper-util), without axum.
//!
//! ```sh
//! cargo run --example hyper
//! ```
//!
//! Serves on 127.0.0.1:3001 (override with `ADDR`) and prints a working curl line.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use finout_auth::{
    AuthLayer, Authenticator, NewToken, Principal, Role, TokenAdmin, store::MemoryTokenStore,
};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::{ServiceBuilder, service_fn};

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer guarantees a principal; the secret header is already gone.
    let body = match request.extensions().get::<Principal>() {
        Some(p) => format!(
            "hello, account {} ({} token)\n",
            p.account_id(),
            p.token_kind().as_str()
        ),
        None => "unreachable without the layer\n".to_owned(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryTokenStore::new());
    let authenticator = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
    let account = admin.create_account("Example Inc").await?;
    let token = admin
        .issue_api_token(
            account.id,
            None,
            NewToken::new("hyper example", Role::Basic),
        )
        .await?;

    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(authenticator))
        .service(service_fn(hello));

    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "listening on http://{addr}\ncurl -s http://{addr}/ -H 'x-finout-client-id: {}' -H 'x-finout-secret-key: {}'",
        token.client_id,
        token.secret_key.expose_secret()
    );
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {e}");
            }
        });
    }
}
