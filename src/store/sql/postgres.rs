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
            PurgedTokens, ResolvedToken, RevokedToken, TokenAdminStore, TokenFilter, TokenStore,
            UserUpdate,
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

impl PostgresTokenStore {
    /// Connect to `url` (`postgres://user@host/db`) and apply the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(backend_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(backend_error)?;
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

    async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        self.sql.list_tokens(account, filter).await
    }
}
