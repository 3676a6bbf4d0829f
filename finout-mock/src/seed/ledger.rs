//! What seeds put in the store, remembered so that a later load does not put back what was
//! revoked or removed since (see the [seed docs](super)): the mock's own table
//! `finout_mock_seeded`, one row per account, user or token id, beside `finout_mock_documents`
//! and made the same way (`CREATE TABLE IF NOT EXISTS`, recorded in no migration table).

use super::SeedError;
use crate::state::MockDatabase;

/// The seed error for a failure of the record.
pub(super) fn failed(e: sqlx::Error) -> SeedError {
    SeedError::Ledger(e)
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS finout_mock_seeded (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (kind, id)
)";
/// Held while the table is created: two `CREATE TABLE IF NOT EXISTS` at once can fail on
/// PostgreSQL (a duplicate key in `pg_type`). A transaction's lock, so that it works through
/// a pooler in transaction mode too. The key is the ASCII bytes of "fmseeded".
#[cfg(feature = "postgres")]
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(7380682243660080484)";
#[cfg(feature = "sqlite")]
const SQLITE_FIND: &str = "SELECT 1 FROM finout_mock_seeded WHERE kind = ?1 AND id = ?2";
#[cfg(feature = "postgres")]
const PG_FIND: &str = "SELECT 1 FROM finout_mock_seeded WHERE kind = $1 AND id = $2";
#[cfg(feature = "sqlite")]
const SQLITE_INSERT: &str =
    "INSERT INTO finout_mock_seeded (kind, id) VALUES (?1, ?2) ON CONFLICT (kind, id) DO NOTHING";
#[cfg(feature = "postgres")]
const PG_INSERT: &str =
    "INSERT INTO finout_mock_seeded (kind, id) VALUES ($1, $2) ON CONFLICT (kind, id) DO NOTHING";

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Account,
    User,
    Token,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::User => "user",
            Kind::Token => "token",
        }
    }
}

/// The record of one database, its table created.
#[derive(Debug)]
pub(super) struct Ledger<'a>(&'a MockDatabase);

impl<'a> Ledger<'a> {
    /// The record kept in `db`, its table created if needed (safe from replicas at once).
    pub(super) async fn open(db: &'a MockDatabase) -> Result<Self, sqlx::Error> {
        match db {
            #[cfg(feature = "sqlite")]
            MockDatabase::Sqlite(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
            }
            #[cfg(feature = "postgres")]
            MockDatabase::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(PG_LOCK).execute(&mut *tx).await?;
                sqlx::query(CREATE).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(Ledger(db))
    }

    /// Whether a seed put `id` in the store before.
    pub(super) async fn seeded(&self, kind: Kind, id: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i32> = match self.0 {
            #[cfg(feature = "sqlite")]
            MockDatabase::Sqlite(pool) => {
                sqlx::query_scalar(SQLITE_FIND)
                    .bind(kind.name())
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
            #[cfg(feature = "postgres")]
            MockDatabase::Postgres(pool) => {
                sqlx::query_scalar(PG_FIND)
                    .bind(kind.name())
                    .bind(id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(found.is_some())
    }

    /// Remember every one of `ids` (those remembered already stay), in one transaction.
    pub(super) async fn record(&self, ids: &[(Kind, String)]) -> Result<(), sqlx::Error> {
        // The same loop on either pool.
        macro_rules! insert_all {
            ($pool:expr, $sql:expr) => {{
                let mut tx = $pool.begin().await?;
                for (kind, id) in ids {
                    sqlx::query($sql)
                        .bind(kind.name())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }};
        }
        match self.0 {
            #[cfg(feature = "sqlite")]
            MockDatabase::Sqlite(pool) => insert_all!(pool, SQLITE_INSERT),
            #[cfg(feature = "postgres")]
            MockDatabase::Postgres(pool) => insert_all!(pool, PG_INSERT),
        }
        Ok(())
    }
}
