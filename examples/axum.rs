//! A protected axum server: every route needs a Finout-style token.
//!
//! ```sh
//! cargo run --example axum --features axum
//! ```
//!
//! It creates an account, an Admin user and two tokens in memory, prints curl lines that
//! work, and serves on 127.0.0.1:3000 (override with `ADDR=127.0.0.1:8081`) until Ctrl-C.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    routing::{get, post},
};
use finout_auth::{
    AdminError, AuthLayer, Authenticator, NewToken, Principal, Role, TokenAdmin,
    middleware::{RequireLayer, TokenConcurrencyLimitLayer},
    store::MemoryTokenStore,
};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,finout_auth=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let store = Arc::new(MemoryTokenStore::new());
    let authenticator = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());

    let account = admin.create_account("Example Inc").await?;
    let alice = admin
        .add_user(account.id, "alice@example.test", vec![Role::Admin])
        .await?;
    let personal = admin
        .issue_personal_token(
            account.id,
            alice.id,
            NewToken::new("alice's laptop", Role::Admin),
        )
        .await?;
    let api = admin
        .issue_api_token(
            account.id,
            Some(alice.id),
            NewToken::new("reporting job", Role::ReadOnly),
        )
        .await?;

    let app = Router::new()
        .route("/whoami", get(whoami))
        .merge(
            Router::new()
                .route("/api-tokens", post(issue_api_token))
                .route_layer(RequireLayer::admin_user())
                .with_state(admin.clone()),
        )
        .layer(TokenConcurrencyLimitLayer::new(5))
        .layer(AuthLayer::new(authenticator));

    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    for (what, token) in [("personal (Admin)", &personal), ("API (Read-only)", &api)] {
        println!(
            "\n# {what} token; the secret is shown only now\ncurl -s http://{addr}/whoami \\\n  -H 'x-finout-client-id: {}' \\\n  -H 'x-finout-secret-key: {}'",
            token.client_id,
            token.secret_key.expose_secret()
        );
    }
    println!(
        "\n# only an Admin user may issue API tokens\ncurl -s -X POST http://{addr}/api-tokens \\\n  -H 'x-finout-client-id: {}' \\\n  -H 'x-finout-secret-key: {}'\n",
        personal.client_id,
        personal.secret_key.expose_secret()
    );

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn whoami(principal: Principal) -> Json<Value> {
    Json(json!({
        "type": principal.token_kind().as_str(),
        "accountId": principal.account_id(),
        "userId": principal.user_id(),
        "roles": principal.user_roles(),
        "tokenRole": principal.token_role(),
        "clientId": principal.client_id(),
    }))
}

async fn issue_api_token(
    axum::extract::State(admin): axum::extract::State<TokenAdmin>,
    principal: Principal,
) -> Result<Json<Value>, AdminError> {
    // An `AdminError` is a response: 403 `forbidden`, 409 `limit_reached`, 503 `auth_busy`
    // with `Retry-After`... in the same JSON shape as the layer's rejections.
    let issued = admin
        .acting_as(&principal)
        .issue_api_token(NewToken::new("issued from the example", Role::ReadOnly))
        .await?;
    Ok(Json(json!({
        "clientId": issued.client_id,
        "secretKey": issued.secret_key.expose_secret(),
        "type": "api",
    })))
}
