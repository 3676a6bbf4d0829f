//! [`SqliteTokenStore`] (feature `sqlite`): one file, no server, migrations embedded.

use std::{fmt, str::FromStr, time::Duration};

use sqlx::{
    Sqlite, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions},
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
    pool: SqlitePool,
}

impl fmt::Debug for SqliteTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTokenStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl SqliteTokenStore {
    /// Open (creating if needed) the database at `url` (`sqlite://path`, a plain path, or
    /// `sqlite::memory:`), in WAL mode with foreign keys on, and apply the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(sql::backend)?
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
            .map_err(sql::backend)?;
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Use an existing pool; call [`migrate`](Self::migrate) before first use.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteTokenStore { pool }
    }

    /// Apply the embedded migrations (idempotent). Migrations of other tools in the same
    /// database are tolerated.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("src/store/migrations/sqlite");
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await.map_err(StoreError::backend)
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// SQLite has no change feed: other processes see changes after their cache TTL.
    async fn notify(
        _tx: &mut Transaction<'_, Sqlite>,
        _client_id: &ClientId,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

super::sql::sql_store!(SqliteTokenStore, Sqlite);
