//! `finout-mock`: a Finout-compatible mock API server, a thin main over `finout_auth::mock`.
//!
//! ```sh
//! cargo run --release --features mock --bin finout-mock
//! ```
//!
//! Serves on 127.0.0.1:8080 with its tokens in `./finout-mock.db` (SQLite). On a store
//! without its account, it creates one with an Admin user and a personal token, and prints
//! that token's client id and secret once.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use clap::{Args, Parser, Subcommand};
use finout_auth::{
    Account, AccountId, Authenticator, ClientId, DataAccess, NewToken, Role, SecretHasher,
    TokenAdmin, User, UserId,
    mock::{Mock, seed::Seed},
    store::{
        MemoryTokenStore, PostgresTokenStore, SqliteTokenStore, TokenAdminStore, TokenFilter,
        UserUpdate,
    },
};

/// A Finout-compatible mock API server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the mock API (the default).
    Serve(ServeArgs),
    /// Create, list or revoke tokens directly in --store (prints JSON).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Add, remove or re-role users directly in --store (prints JSON).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Args, Debug, Clone)]
struct StoreArgs {
    /// Token store: `sqlite://PATH` or `postgres://...`.
    #[arg(
        long,
        env = "FINOUT_MOCK_STORE",
        default_value = "sqlite://finout-mock.db"
    )]
    store: String,
    /// The account to act in (default: the mock's own account).
    #[arg(long, default_value_t = MOCK_ACCOUNT)]
    account: AccountId,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Issue a token; its secret is printed once.
    Create {
        #[command(flatten)]
        at: StoreArgs,
        /// What the token is for.
        #[arg(long)]
        description: String,
        /// Its role: Admin, Read-only, Basic or "API token role".
        #[arg(long)]
        role: Role,
        /// A personal token for this user id (default: an API token).
        #[arg(long)]
        user: Option<UserId>,
        /// Lifetime in minutes (default: never expires).
        #[arg(long)]
        expires_in_minutes: Option<u32>,
    },
    /// List the account's tokens (never a secret).
    List {
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Revoke a token.
    Revoke {
        #[command(flatten)]
        at: StoreArgs,
        /// The token's client id.
        client_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user.
    Add {
        #[command(flatten)]
        at: StoreArgs,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<Role>,
        /// Comma-separated view ids the user may see (default: all).
        #[arg(long, value_delimiter = ',')]
        data_access: Option<Vec<String>>,
    },
    /// Remove a user and delete their personal tokens.
    Remove {
        #[command(flatten)]
        at: StoreArgs,
        /// The user id.
        user: UserId,
    },
    /// Replace a user's roles (and, optionally, data access).
    Roles {
        #[command(flatten)]
        at: StoreArgs,
        /// The user id.
        user: UserId,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<Role>,
        /// Comma-separated view ids the user may see; `all` for every view (default:
        /// unchanged).
        #[arg(long, value_delimiter = ',')]
        data_access: Option<Vec<String>>,
    },
}

async fn admin_at(at: &StoreArgs) -> Result<TokenAdmin, Box<dyn std::error::Error>> {
    let (store, _) = open(&at.store).await?;
    Ok(TokenAdmin::new(store))
}

async fn token(command: TokenCommand) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(match command {
        TokenCommand::Create {
            at,
            description,
            role,
            user,
            expires_in_minutes,
        } => {
            let admin = admin_at(&at).await?;
            let mut new = NewToken::new(description, role);
            if let Some(minutes) = expires_in_minutes {
                new = new.expires_in_minutes(minutes);
            }
            let issued = match user {
                Some(user) => admin.issue_personal_token(at.account, user, new).await?,
                None => admin.issue_api_token(at.account, None, new).await?,
            };
            serde_json::json!({
                "clientId": issued.client_id,
                "secretKey": issued.secret_key.expose_secret(),
                "token": issued.info,
            })
        }
        TokenCommand::List { at } => {
            let admin = admin_at(&at).await?;
            let tokens = admin.list_tokens(at.account, TokenFilter::All).await?;
            serde_json::json!({ "tokens": tokens })
        }
        TokenCommand::Revoke { at, client_id } => {
            let admin = admin_at(&at).await?;
            let revoked = admin
                .revoke_token(at.account, &ClientId::from(client_id))
                .await?;
            serde_json::json!({ "revoked": revoked.client_id })
        }
    })
}

async fn user(command: UserCommand) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(match command {
        UserCommand::Add {
            at,
            email,
            roles,
            data_access,
        } => {
            let access = data_access.map_or(DataAccess::All, access_from);
            let user = admin_at(&at)
                .await?
                .add_user_with_access(at.account, email, roles, access)
                .await?;
            user_json(&user)
        }
        UserCommand::Remove { at, user } => {
            let deleted = admin_at(&at).await?.remove_user(at.account, user).await?;
            serde_json::json!({ "removed": user, "deletedTokens": deleted })
        }
        UserCommand::Roles {
            at,
            user,
            roles,
            data_access,
        } => {
            let admin = admin_at(&at).await?;
            let mut update = UserUpdate::default().roles(roles);
            if let Some(ids) = data_access {
                update = update.data_access(access_from(ids));
            }
            admin.update_user(at.account, user, update).await?;
            let user = admin
                .store()
                .get_user(at.account, user)
                .await?
                .ok_or("the user was removed meanwhile")?;
            user_json(&user)
        }
    })
}

/// `--data-access all` means every view; otherwise the listed ids.
fn access_from(ids: Vec<String>) -> DataAccess {
    if ids.len() == 1 && ids[0] == "all" {
        DataAccess::All
    } else {
        DataAccess::only(ids)
    }
}

fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "email": user.email,
        "roles": user.roles,
        "dataAccess": user.data_access,
    })
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Token store: `sqlite://PATH`, `memory` or `postgres://...`.
    #[arg(
        long,
        env = "FINOUT_MOCK_STORE",
        default_value = "sqlite://finout-mock.db"
    )]
    store: String,
    /// Extra delay added to every /v1 response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// A seed file (JSON) of accounts, users and tokens to load (idempotent).
    #[arg(long)]
    seed: Option<std::path::PathBuf>,
}

/// The account created on a store that has none of ours.
const MOCK_ACCOUNT: AccountId = AccountId(uuid::uuid!("f1a70c4e-0000-4000-8000-000000000001"));

async fn open(url: &str) -> Result<(Arc<dyn TokenAdminStore>, Option<PostgresTokenStore>), String> {
    if url == "memory" {
        Ok((Arc::new(MemoryTokenStore::new()), None))
    } else if url.starts_with("sqlite:") {
        let store = SqliteTokenStore::connect(url)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))?;
        Ok((Arc::new(store), None))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresTokenStore::connect(url)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        Ok((Arc::new(store.clone()), Some(store)))
    } else {
        Err(format!(
            "--store {url:?}: expected sqlite://PATH, memory or postgres://..."
        ))
    }
}

/// Create the mock account, an Admin user and a personal token, unless they exist.
async fn bootstrap(admin: &TokenAdmin) -> Result<(), Box<dyn std::error::Error>> {
    if admin.store().get_account(MOCK_ACCOUNT).await?.is_some() {
        return Ok(());
    }
    admin
        .store()
        .insert_account(Account {
            id: MOCK_ACCOUNT,
            name: "finout-mock".into(),
        })
        .await?;
    let user = admin
        .add_user(MOCK_ACCOUNT, "admin@finout-mock.local", vec![Role::Admin])
        .await?;
    let token = admin
        .issue_personal_token(
            MOCK_ACCOUNT,
            user.id,
            NewToken::new("finout-mock bootstrap", Role::Admin),
        )
        .await?;
    // Printed once, on stdout; the logs (stderr) never carry a secret.
    println!(
        "finout-mock: created account {MOCK_ACCOUNT} and Admin user {} with a personal token:",
        user.email
    );
    println!("  x-finout-client-id: {}", token.client_id);
    println!(
        "  x-finout-secret-key: {}",
        token.secret_key.expose_secret()
    );
    println!("  (the secret is shown only now)");
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (store, postgres) = open(&args.store).await?;
    let authenticator = Authenticator::new(store.clone());
    let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
    let _feed = match postgres {
        Some(pg) => Some(pg.listen([authenticator.clone()]).await?),
        None => None,
    };
    let mut mock =
        Mock::new(admin.clone(), authenticator).latency(Duration::from_millis(args.latency_ms));
    match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the seed {}: {e}", path.display()))?;
            let seed = Seed::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            seed.load(&admin, &SecretHasher::default()).await?;
            for (account, views) in seed.views() {
                mock = mock.views(account, views);
            }
            println!("finout-mock: seed {} loaded", path.display());
        }
        None => bootstrap(&admin).await?,
    }
    let app = mock.router();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, store = %args.store, "finout-mock listening");
    println!(
        "finout-mock: listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    tracing::info!("finout-mock stopped");
    Ok(())
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
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
        Some(Command::Token(command)) => token(command).await.map(|v| println!("{v:#}")),
        Some(Command::User(command)) => user(command).await.map(|v| println!("{v:#}")),
    };
    if let Err(e) = outcome {
        eprintln!("finout-mock: {e}");
        std::process::exit(1);
    }
}
