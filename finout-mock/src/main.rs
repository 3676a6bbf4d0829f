//! `finout-mock`: a Finout-compatible mock API server, a thin main over the `finout_mock` library.
//!
//! ```sh
//! cargo run --release -p finout-mock
//! ```
//!
//! Serves on 127.0.0.1:8080 with its tokens in `./finout-mock.db` (SQLite). On a store
//! without its account, it creates one with an Admin user and a personal token (in one
//! transaction), and prints that token's client id and secret once (`--json`: as one JSON
//! line; `--credentials-file`: also to a file).

mod bootstrap;
mod cli;
mod redact;
mod start;

use std::{sync::Arc, time::Duration};

use clap::Parser;
use finout_auth::{
    AccountId, Authenticator, TokenAdmin,
    crypto::SecretHasher,
    shared::{RedisShared, Shared, VerifiedSecretKey, VerifiedSecrets},
    store::{
        MemoryTokenStore, PostgresOptions, PostgresTokenStore, SqliteTokenStore, TokenAdminStore,
    },
};
use finout_mock::{Mock, MockDatabase, ServerLimits, seed::Seed};

use bootstrap::bootstrap;
use cli::{Cli, Command, ServeArgs};
use redact::SecretUrl;
use start::again_if_raced;

/// The account created on a store that has none of ours.
pub(crate) const MOCK_ACCOUNT: AccountId =
    AccountId(uuid::uuid!("f1a70c4e-0000-4000-8000-000000000001"));

pub(crate) async fn open(
    url: &SecretUrl,
) -> Result<(Arc<dyn TokenAdminStore>, Option<PostgresTokenStore>), String> {
    open_with_database(url, PostgresOptions::default())
        .await
        .map(|(store, postgres, _)| (store, postgres))
}

/// A store opened, its change feed's source (PostgreSQL) and where the mock keeps what
/// clients write (none for `memory`).
type Opened = (
    Arc<dyn TokenAdminStore>,
    Option<PostgresTokenStore>,
    Option<MockDatabase>,
);

/// Errors name `url` as it may be shown (its password masked).
async fn open_with_database(url: &SecretUrl, postgres: PostgresOptions) -> Result<Opened, String> {
    let raw = url.expose();
    if raw == "memory" {
        Ok((Arc::new(MemoryTokenStore::new()), None, None))
    } else if raw.starts_with("sqlite:") {
        let store = SqliteTokenStore::connect(raw)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))?;
        let db = MockDatabase::Sqlite(store.pool().clone());
        Ok((Arc::new(store), None, Some(db)))
    } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        let store = PostgresTokenStore::connect_with(raw, postgres)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        let db = MockDatabase::Postgres(store.pool().clone());
        Ok((Arc::new(store.clone()), Some(store), Some(db)))
    } else {
        Err(format!(
            "--store \"{url}\": expected sqlite://PATH, memory or postgres://..."
        ))
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let postgres_options = PostgresOptions::default()
        .max_connections(args.store_connections)
        .retry_for(Duration::from_secs(args.store_retry_secs));
    let (store, postgres, db) = open_with_database(&args.store, postgres_options).await?;
    let shared = match &args.redis {
        Some(url) => Some(Shared::new(
            RedisShared::new(url.expose())
                .map_err(|e| format!("--redis: {e}"))?
                .prefix(args.redis_prefix.clone()),
        )),
        None => None,
    };
    let mut authenticator = Authenticator::builder(store.clone());
    if let Some(shared) = &shared {
        // Replicas on one database share the key; a memory store has no other replica.
        let key = match &db {
            Some(db) => again_if_raced(|| db.verified_secret_key())
                .await
                .map_err(|e| format!("cannot read the mock's verified-secret key: {e}"))?,
            None => VerifiedSecretKey::random(),
        };
        authenticator = authenticator
            .shared(shared.clone())
            .verified_secrets(VerifiedSecrets::new(shared.clone(), key));
    }
    let authenticator = authenticator.build();
    let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
    let _feed = match (postgres, &args.feed_store) {
        (Some(_), Some(direct)) => {
            Some(PostgresTokenStore::listen_at(direct.expose(), [authenticator.clone()]).await?)
        }
        (Some(pg), None) => Some(pg.listen([authenticator.clone()]).await?),
        (None, _) => None,
    };
    let stop = shutdown()?;
    // Bound first: the base URL goes out with the credentials, and an address in use stops
    // the start before anything is written.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e} (choose another address with --listen)",
                args.listen
            )
        })?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let mut mock = Mock::new(admin.clone(), authenticator)
        .latency(Duration::from_millis(args.latency_ms))
        .query_delay(Duration::from_millis(args.query_delay_ms))
        .rate_limits(!args.no_rate_limits);
    if let Some(shared) = shared {
        mock = mock.shared(shared);
    }
    if let Some(db) = &db {
        mock = again_if_raced(|| mock.clone().database(db.clone()))
            .await
            .map_err(|e| format!("cannot read the mock's saved state: {e}"))?;
    }
    let mut created = None;
    match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the seed {}: {e}", path.display()))?;
            let seed = Seed::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            seed.load_with_ledger(&admin, &SecretHasher::default(), db.as_ref())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for (account, views) in seed.views() {
                mock = mock.views(account, views);
            }
            if !args.json {
                println!("finout-mock: seed {} loaded", path.display());
            }
        }
        None => created = bootstrap(&admin).await?,
    }
    match &created {
        Some(created) => {
            created
                .hand_over(
                    &admin,
                    &base_url,
                    args.credentials_file.as_deref(),
                    args.json,
                )
                .await?;
        }
        None => {
            if let Some(path) = &args.credentials_file {
                // A script waiting for the file would wait for ever: stop, and say how on.
                return Err(already_bootstrapped(path, &args.store).into());
            }
            if args.json {
                println!("{}", serde_json::json!({ "baseUrl": base_url }));
            }
        }
    }
    let app = mock.router();
    tracing::info!(addr = %listener.local_addr()?, store = %args.store, "finout-mock listening");
    if !args.json {
        println!("finout-mock: listening on {base_url}");
    }
    let limits = ServerLimits::default()
        .max_connections(args.max_connections)
        .header_read_timeout(Duration::from_secs(args.header_timeout_secs))
        .max_connections_per_account(args.max_connections_per_account)
        .body_deadlines(
            Duration::from_secs(args.body_timeout_secs),
            args.min_body_rate,
        )
        .write_timeout(Duration::from_secs(args.write_timeout_secs))
        .answer_bytes_per_account(args.answer_bytes_per_account);
    finout_mock::serve(listener, app, limits, stop).await?;
    tracing::info!("finout-mock stopped");
    Ok(())
}

/// Why `--credentials-file` cannot be honoured on a store bootstrapped before, and the ways
/// on.
fn already_bootstrapped(path: &std::path::Path, store: &SecretUrl) -> String {
    format!(
        "--credentials-file {}: the store {store} was bootstrapped before, and its credentials \
         are never shown again, so none are written. Either give its Admin user a new token \
         (`finout-mock user list --store {store}` shows them, then `finout-mock token create \
         --store {store} --user <their id> --role Admin --description local`), or start on a \
         fresh store (`--store memory`, or another `--store sqlite://PATH`); if {} still holds \
         the first start's credentials, start without --credentials-file",
        path.display(),
        path.display()
    )
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// it is first polled, so a signal that arrives as soon as the server says it is listening
/// still shuts it down cleanly.
fn shutdown() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,finout_auth=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
        // One line of JSON, as scripts (and the README's `field`) read it.
        Some(Command::Token(command)) => cli::token(command).await.map(|v| println!("{v}")),
        Some(Command::User(command)) => cli::user(command).await.map(|v| println!("{v}")),
    };
    if let Err(e) = outcome {
        // The whole chain: what failed, then why.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        eprintln!("finout-mock: {message}");
        std::process::exit(1);
    }
}
