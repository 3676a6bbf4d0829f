//! The command line: `serve` (the default) and the `token` / `user` commands that act on a
//! store directly and print JSON.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use finout_auth::{
    AccountId, AdminError, ClientId, NewToken, Role, StoreError, TokenAdmin, UserId,
    model::{Account, DataAccess, User},
    store::{TokenFilter, UserUpdate},
};

use finout_mock::seed::Seed;

use crate::{MOCK_ACCOUNT, open, redact::SecretUrl};

mod serve;

pub(crate) use serve::ServeArgs;

type Failure = Box<dyn std::error::Error>;

/// A Finout-compatible mock API server.
#[derive(Parser, Debug)]
#[command(name = "finout-mock", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve the mock API (the default).
    Serve(ServeArgs),
    /// Create, list, revoke, rotate, disable or enable tokens directly in --store (prints
    /// JSON).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List, add, remove or re-role users directly in --store (prints JSON).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct StoreArgs {
    /// Token store: `sqlite://PATH` or `postgres://...`.
    #[arg(
        long,
        env = "FINOUT_MOCK_STORE",
        hide_env_values = true,
        default_value = "sqlite://finout-mock.db"
    )]
    store: SecretUrl,
    /// The account to act in (default: the mock's own account).
    #[arg(long, default_value_t = MOCK_ACCOUNT)]
    account: AccountId,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Issue a token; its secret is printed once. On a store without the mock's own
    /// account, that account is created first (when --account is left at its default).
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
    /// List every token of the account: its API tokens and every user's personal tokens
    /// (never a secret).
    List {
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Revoke a token.
    Revoke(TokenAt),
    /// Give a token a new secret, printed once; the replaced one keeps working for
    /// --grace-seconds (at most 604800, 7 days).
    Rotate {
        #[command(flatten)]
        at: StoreArgs,
        /// The token's client id.
        client_id: String,
        /// How long the replaced secret keeps working (default 0: it stops at once).
        #[arg(long, default_value_t = 0)]
        grace_seconds: u64,
    },
    /// Disable a token: it is refused like a wrong secret until enabled, and kept.
    Disable(TokenAt),
    /// Enable a disabled token.
    Enable(TokenAt),
}

/// One token of a store's account.
#[derive(Args, Debug)]
pub(crate) struct TokenAt {
    #[command(flatten)]
    at: StoreArgs,
    /// The token's client id.
    client_id: String,
}

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// List the account's users: id, email, roles and data access.
    List {
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Add a user (on a store without the mock's own account, that account is created
    /// first, when --account is left at its default).
    Add {
        #[command(flatten)]
        at: StoreArgs,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<Role>,
        /// Comma-separated view ids the user may see (default: all); each must be a view
        /// of the account, as `POST /admin/users` requires.
        #[arg(long, value_delimiter = ',')]
        data_access: Option<Vec<String>>,
        #[command(flatten)]
        views: ViewsArgs,
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
        /// unchanged). Each must be a view of the account.
        #[arg(long, value_delimiter = ',')]
        data_access: Option<Vec<String>>,
        #[command(flatten)]
        views: ViewsArgs,
    },
}

/// Where the account's views come from, for checking `--data-access`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ViewsArgs {
    /// The seed the server runs with, when it declares this account's `views` (they replace
    /// the default fixture views there, so they are the ones `--data-access` may name).
    #[arg(long)]
    seed: Option<PathBuf>,
}

impl ViewsArgs {
    /// Refuse `access` naming a view `account` does not have, as the HTTP API does.
    fn check(&self, account: AccountId, access: &DataAccess) -> Result<(), Failure> {
        let mut views = finout_mock::fixtures::default_views(account);
        if let Some(path) = &self.seed {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--seed {}: {e}", path.display()))?;
            let seed = Seed::parse(&text).map_err(|e| format!("--seed {}: {e}", path.display()))?;
            if let Some((_, declared)) = seed.views().into_iter().find(|(a, _)| *a == account) {
                views = declared;
            }
        }
        match finout_mock::unknown_view(&views, access) {
            None => Ok(()),
            Some(id) => {
                let known: Vec<&str> = views.iter().map(|v| v.id.as_str()).collect();
                Err(format!(
                    "--data-access: no view with id {id:?} in account {account} (its views: {}; \
                     a server started with --seed has that seed's: pass the same --seed)",
                    known.join(", ")
                )
                .into())
            }
        }
    }
}

async fn admin_at(at: &StoreArgs) -> Result<TokenAdmin, Failure> {
    let (store, _) = open(&at.store).await?;
    Ok(TokenAdmin::new(store))
}

pub(crate) async fn token(command: TokenCommand) -> Result<serde_json::Value, Failure> {
    Ok(match command {
        TokenCommand::Create {
            at,
            description,
            role,
            user,
            expires_in_minutes,
        } => {
            let admin = admin_at(&at).await?;
            ensure_account(&admin, at.account).await?;
            let mut new = NewToken::new(description, role);
            if let Some(minutes) = expires_in_minutes {
                new = new.expires_in_minutes(minutes);
            }
            let issued = match user {
                Some(user) => admin
                    .issue_personal_token(at.account, user, new)
                    .await
                    .map_err(|e| match e {
                        AdminError::NotFound("user") => format!(
                            "--user {user}: no such user in account {} (`finout-mock user \
                             list` shows them)",
                            at.account
                        )
                        .into(),
                        e => Failure::from(e),
                    })?,
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
        TokenCommand::Revoke(TokenAt { at, client_id }) => {
            let admin = admin_at(&at).await?;
            let revoked = admin
                .revoke_token(at.account, &ClientId::from(client_id))
                .await?;
            serde_json::json!({ "revoked": revoked.client_id })
        }
        TokenCommand::Rotate {
            at,
            client_id,
            grace_seconds,
        } => {
            let admin = admin_at(&at).await?;
            let grace = std::time::Duration::from_secs(grace_seconds);
            let rotated = admin
                .rotate_secret(at.account, &ClientId::from(client_id), grace)
                .await?;
            serde_json::json!({
                "clientId": rotated.client_id,
                "secretKey": rotated.secret_key.expose_secret(),
                "token": rotated.info,
            })
        }
        TokenCommand::Disable(TokenAt { at, client_id }) => {
            let admin = admin_at(&at).await?;
            let info = admin
                .disable_token(at.account, &ClientId::from(client_id))
                .await?;
            serde_json::json!({ "token": info })
        }
        TokenCommand::Enable(TokenAt { at, client_id }) => {
            let admin = admin_at(&at).await?;
            let info = admin
                .enable_token(at.account, &ClientId::from(client_id))
                .await?;
            serde_json::json!({ "token": info })
        }
    })
}

/// The account must exist; the mock's own account is created when it does not.
async fn ensure_account(admin: &TokenAdmin, account: AccountId) -> Result<(), Failure> {
    if admin.store().get_account(account).await?.is_some() {
        return Ok(());
    }
    if account != MOCK_ACCOUNT {
        return Err(format!("--account {account}: no such account in this store").into());
    }
    let created = admin
        .store()
        .insert_account(Account {
            id: MOCK_ACCOUNT,
            name: "finout-mock".into(),
        })
        .await;
    match created {
        // Created meanwhile by another process: as good.
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn user(command: UserCommand) -> Result<serde_json::Value, Failure> {
    Ok(match command {
        UserCommand::List { at } => {
            let users = admin_at(&at).await?.store().list_users(at.account).await?;
            serde_json::json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() })
        }
        UserCommand::Add {
            at,
            email,
            roles,
            data_access,
            views,
        } => {
            let access = data_access.map_or(DataAccess::All, access_from);
            views.check(at.account, &access)?;
            let admin = admin_at(&at).await?;
            ensure_account(&admin, at.account).await?;
            let user = admin
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
            views,
        } => {
            let admin = admin_at(&at).await?;
            let mut update = UserUpdate::default().roles(roles);
            if let Some(ids) = data_access {
                let access = access_from(ids);
                views.check(at.account, &access)?;
                update = update.data_access(access);
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
