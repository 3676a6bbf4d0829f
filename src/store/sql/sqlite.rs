//! [`SqliteTokenStore`] (feature `sqlite`): one file, no server, migrations embedded.

use std::{fmt, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    Sqlite, Transaction,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow},
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

/// A token store in a SQLite database file: the embedded default. Tokens survive restarts;
/// one process (or several on one machine) shares the file.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use finout_auth::store::{SqliteTokenStore, TokenStore};
/// // A file path (created if missing), or `sqlite::memory:` for a throwaway database.
/// let store = SqliteTokenStore::connect("sqlite::memory:").await?;
/// assert!(store.find_token(&"nope".into()).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteTokenStore {
    sql: SqlStore<Sqlite>,
}

impl fmt::Debug for SqliteTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTokenStore")
            .field("connections", &self.sql.pool.size())
            .finish_non_exhaustive()
    }
}

static MIGRATIONS: Migrator = sqlx::migrate!("src/store/migrations/sqlite");

impl SqliteTokenStore {
    /// Open (creating if needed) the database at `url` (`sqlite://path`, a plain path, or
    /// `sqlite::memory:`), in WAL mode with foreign keys on, and apply the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend_error)?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database exists per connection: keep exactly one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        };
        let pool = pool
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(backend_error)?;
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Use an existing pool; call [`migrate`](Self::migrate) before first use.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteTokenStore {
            sql: SqlStore { pool },
        }
    }

    /// Apply the embedded migrations (idempotent; processes migrating at once wait for each
    /// other). They are recorded in the crate's own `finout_auth_migrations` table, not in
    /// sqlx's `_sqlx_migrations`, so the application's own migrator can share the database.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.sql.pool, &MIGRATIONS).await
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &SqlitePool {
        &self.sql.pool
    }
}

impl Backend for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROWS: &'static str = "";
    const LOCK_MIGRATIONS: Option<&'static str> = None;
    const CREATE_MIGRATIONS: &'static str = "CREATE TABLE IF NOT EXISTS finout_auth_migrations (
        version        BIGINT PRIMARY KEY,
        description    TEXT NOT NULL,
        installed_on   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        checksum       BLOB NOT NULL,
        execution_time BIGINT NOT NULL
    )";
    const FIND_SQLX_MIGRATIONS: &'static str =
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

    backend_io!(SqliteRow);

    /// Timestamps are RFC 3339 text in UTC whose fraction drops its trailing zeros, so that
    /// `…:00Z` sorts after `…:00.5Z` as text: compare the seconds with the fraction padded
    /// to nanoseconds instead, `YYYY-MM-DDTHH:MM:SSnnnnnnnnn`. The migration indexes this
    /// very expression on `expires_at`.
    fn instant(column: &str) -> String {
        format!(
            "(substr({column}, 1, 19) || substr(CASE WHEN substr({column}, 20, 1) = '.' \
             THEN substr({column}, 21, length({column}) - 21) ELSE '' END || '000000000', 1, 9))"
        )
    }

    fn bind_instant<'q>(query: Query<'q, Self>, value: OffsetDateTime) -> Query<'q, Self> {
        let t = value.to_offset(time::UtcOffset::UTC);
        query.bind(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{:09}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond()
        ))
    }

    /// SQLite has no change feed: other processes see changes after their cache TTL.
    async fn notify(
        _tx: &mut Transaction<'static, Self>,
        _client_ids: &[ClientId],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    async fn find_token(&self, client_id: &ClientId) -> Result<Option<ResolvedToken>, StoreError> {
        self.sql.find_token(client_id).await
    }

    async fn record_usage(&self, used: &[(ClientId, OffsetDateTime)]) -> Result<(), StoreError> {
        self.sql.record_usage(used).await
    }
}

#[async_trait]
impl TokenAdminStore for SqliteTokenStore {
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
