//! [`PostgresTokenStore`] (feature `postgres`): one database shared by many replicas, with
//! a change feed (LISTEN/NOTIFY, see [`PostgresTokenStore::listen`]) that invalidates every
//! replica's cache within moments.

use std::{fmt, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Postgres, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow},
};
use time::OffsetDateTime;

use super::{
    SqlStore,
    backend::{Backend, On, Query, backend_io},
    migrate,
    rows::backend_error,
};
use crate::{
    error::StoreError,
    model::{Account, AccountId, ClientId, TokenInfo, TokenRecord, User, UserId},
    store::{
        batch::Batch,
        limits::{TokenLimits, UserLimits},
        traits::{
            PurgedTokens, ResolvedToken, RevokedToken, TokenAdminStore, TokenChange, TokenFilter,
            TokenStore, UserUpdate,
        },
    },
};

/// The channel every write notifies, with the affected client id as payload.
pub const CHANGE_CHANNEL: &str = "finout_auth_changes";

/// A token store in PostgreSQL, shared by any number of replicas.
///
/// Every write that affects authentication (revoke, user removal, role change) sends a
/// `NOTIFY` in its transaction; [`PostgresTokenStore::listen`] turns those into cache
/// invalidations on this replica.
#[derive(Clone)]
pub struct PostgresTokenStore {
    sql: SqlStore<Postgres>,
}

impl fmt::Debug for PostgresTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTokenStore")
            .field("connections", &self.sql.pool.size())
            .finish_non_exhaustive()
    }
}

static MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// How many connections a [`PostgresTokenStore`] opens at most, by default: 8, so that 10
/// replicas, each with its pool and its change feed's one connection, fit a default server
/// (`max_connections` 100, 3 of them reserved for superusers):
///
/// ```text
/// replicas × (pool + 1) ≤ max_connections − superuser_reserved_connections
///       10 × (8 + 1)    = 90 ≤ 97
/// ```
///
/// A lookup is one short query, so a small pool serves many requests (cached requests never
/// reach the store); raise it with [`PostgresOptions::max_connections`] when there are fewer
/// replicas, or put a pooler (PgBouncer) in front and the change feed on a direct URL
/// ([`PostgresTokenStore::listen_at`]).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How a [`PostgresTokenStore`] connects.
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresOptions {
    max_connections: u32,
    retry_for: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            retry_for: Duration::ZERO,
        }
    }
}

impl PostgresOptions {
    /// At most `n` connections (at least 1; default [`DEFAULT_MAX_CONNECTIONS`]).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// When the server cannot be reached or takes no more connections at start (connection
    /// refused, too many connections, starting up), keep trying for up to `how_long`, with
    /// backoff from 250 ms to 5 s, each failure logged; other errors (a wrong password, a
    /// missing database) fail at once. Default zero: the first failure is returned.
    pub fn retry_for(mut self, how_long: Duration) -> Self {
        self.retry_for = how_long;
        self
    }
}

/// Whether a failure to connect may pass by itself: the server is not reachable yet, is
/// starting, or has no connection to spare.
fn retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // too_many_connections, cannot_connect_now (starting up, shutting down)
        sqlx::Error::Database(e) => matches!(e.code().as_deref(), Some("53300" | "57P03")),
        _ => false,
    }
}

impl PostgresTokenStore {
    /// Connect to `url` (`postgres://user@host/db`) with the default
    /// [`PostgresOptions`] and apply the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connect to `url` with `options` and apply the migrations.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url).map_err(backend_error)?;
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(250);
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(Duration::from_secs(3))
                .connect_with(connect.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(error)
                    if retryable(&error) && started.elapsed() + backoff <= options.retry_for =>
                {
                    tracing::warn!(target: "finout_auth", error = %error, retry_in = ?backoff, "PostgreSQL not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(backend_error(error)),
            }
        };
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Use an existing pool; call [`migrate`](Self::migrate) before first use.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresTokenStore {
            sql: SqlStore { pool },
        }
    }

    /// Apply the embedded migrations (idempotent; concurrent replicas are serialized by an
    /// advisory lock). They are recorded in the crate's own `finout_auth_migrations` table,
    /// not in sqlx's `_sqlx_migrations`, so the application's own migrator can share the
    /// database.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.sql.pool, &MIGRATIONS).await
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &PgPool {
        &self.sql.pool
    }
}

impl Backend for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    // A fixed key (the ASCII bytes of "finoutau"), held until the transaction ends.
    const LOCK_MIGRATIONS: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7379550889414254965)");
    const CREATE_MIGRATIONS: &'static str = "CREATE TABLE IF NOT EXISTS finout_auth_migrations (
        version        BIGINT PRIMARY KEY,
        description    TEXT NOT NULL,
        installed_on   TIMESTAMPTZ NOT NULL DEFAULT now(),
        checksum       BYTEA NOT NULL,
        execution_time BIGINT NOT NULL
    )";
    const FIND_SQLX_MIGRATIONS: &'static str =
        "SELECT 1 WHERE to_regclass('_sqlx_migrations') IS NOT NULL";

    backend_io!(PgRow);

    /// `timestamptz` compares and sorts in time order as it is.
    fn instant(column: &str) -> String {
        column.to_owned()
    }

    fn bind_instant<'q>(query: Query<'q, Self>, value: OffsetDateTime) -> Query<'q, Self> {
        query.bind(value.to_offset(time::UtcOffset::UTC))
    }

    async fn notify(
        tx: &mut Transaction<'static, Self>,
        client_ids: &[ClientId],
    ) -> Result<(), StoreError> {
        if client_ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = client_ids.iter().map(ClientId::as_str).collect();
        // Delivered at commit, and only if the transaction commits.
        sqlx::query("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS changed(id)")
            .bind(CHANGE_CHANNEL)
            .bind(ids)
            .execute(&mut **tx)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

#[async_trait]
impl TokenStore for PostgresTokenStore {
    async fn find_token(&self, client_id: &ClientId) -> Result<Option<ResolvedToken>, StoreError> {
        self.sql.find_token(client_id).await
    }

    async fn record_usage(&self, used: &[(ClientId, OffsetDateTime)]) -> Result<(), StoreError> {
        self.sql.record_usage(used).await
    }
}

#[async_trait]
impl TokenAdminStore for PostgresTokenStore {
    async fn insert_account(&self, account: Account) -> Result<(), StoreError> {
        self.sql.insert_account(account).await
    }

    async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.sql.get_account(id).await
    }

    async fn insert_user(&self, user: User) -> Result<(), StoreError> {
        self.sql.insert_user(user).await
    }

    async fn insert_user_within(&self, user: User, limits: UserLimits) -> Result<(), StoreError> {
        self.sql.insert_user_within(user, limits).await
    }

    async fn get_user(&self, account: AccountId, id: UserId) -> Result<Option<User>, StoreError> {
        self.sql.get_user(account, id).await
    }

    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.sql.find_user(id).await
    }

    async fn list_users(&self, account: AccountId) -> Result<Vec<User>, StoreError> {
        self.sql.list_users(account).await
    }

    async fn update_user(
        &self,
        account: AccountId,
        id: UserId,
        update: UserUpdate,
    ) -> Result<Option<Vec<ClientId>>, StoreError> {
        self.sql.update_user(account, id, update).await
    }

    async fn remove_user(
        &self,
        account: AccountId,
        id: UserId,
    ) -> Result<Option<Vec<ClientId>>, StoreError> {
        self.sql.remove_user(account, id).await
    }

    /// Purges to make room as [`insert_token_purging`](TokenAdminStore::insert_token_purging)
    /// does.
    async fn insert_token(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<(), StoreError> {
        self.sql.insert_token(record, limits).await.map(drop)
    }

    async fn insert_token_purging(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<PurgedTokens, StoreError> {
        self.sql.insert_token(record, limits).await
    }

    async fn purge_expired(
        &self,
        expired_by: OffsetDateTime,
        max: u32,
    ) -> Result<PurgedTokens, StoreError> {
        self.sql.purge_expired(expired_by, max).await
    }

    async fn insert_batch(&self, batch: Batch) -> Result<(), StoreError> {
        self.sql.insert_batch(batch).await
    }

    async fn delete_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        self.sql.delete_token(account, client_id).await
    }

    async fn update_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
        change: TokenChange,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.sql.update_token(account, client_id, change).await
    }

    async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        self.sql.list_tokens(account, filter).await
    }
}
