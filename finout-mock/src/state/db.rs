//! The mock's own table, `finout_mock_documents`, beside (never inside) the token store's
//! schema: one JSON document per tag or endpoint. It is created with `CREATE TABLE IF NOT
//! EXISTS` when the mock opens the database, and recorded in no migration table, so it
//! does not interfere with the token store's migrations or an application's.

use finout_auth::AccountId;
use serde_json::Value;
use sqlx::{PgPool, SqlitePool};

use super::{Change, tags::StoredTag};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS finout_mock_documents (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, id)
)";
const SELECT: &str = "SELECT account_id, kind, body FROM finout_mock_documents ORDER BY kind, id";
const SQLITE_UPSERT: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, kind, id) DO UPDATE SET body = excluded.body";
const SQLITE_DELETE: &str =
    "DELETE FROM finout_mock_documents WHERE account_id = ?1 AND kind = ?2 AND id = ?3";
const PG_UPSERT: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, kind, id) DO UPDATE SET body = excluded.body";
const PG_DELETE: &str =
    "DELETE FROM finout_mock_documents WHERE account_id = $1 AND kind = $2 AND id = $3";

const TAG: &str = "virtual_tag";
const ENDPOINT: &str = "endpoint";
/// The key replicas make verified secrets' tags under (`--redis`): one row, under the nil
/// account, written by the first replica and read by every other.
const SETTING: &str = "setting";
const VERIFIED_SECRET_KEY: &str = "verified_secret_key";
const NIL_ACCOUNT: &str = "00000000-0000-0000-0000-000000000000";
const SQLITE_INSERT_NEW: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, kind, id) DO NOTHING";
const SQLITE_SELECT_ONE: &str = "SELECT body FROM finout_mock_documents \
     WHERE account_id = ?1 AND kind = ?2 AND id = ?3";
const PG_INSERT_NEW: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, kind, id) DO NOTHING";
const PG_SELECT_ONE: &str = "SELECT body FROM finout_mock_documents \
     WHERE account_id = $1 AND kind = $2 AND id = $3";

/// Where the mock keeps what clients write: the database of its token store.
#[derive(Debug, Clone)]
pub enum MockDatabase {
    /// A SQLite database (e.g. [`SqliteTokenStore::pool`](finout_auth::store::SqliteTokenStore::pool)).
    Sqlite(SqlitePool),
    /// A PostgreSQL database (e.g. [`PostgresTokenStore::pool`](finout_auth::store::PostgresTokenStore::pool)).
    Postgres(PgPool),
}

/// (kind, id, body) of a change to save; body `None` deletes.
fn row(change: &Change) -> Result<(&'static str, String, Option<String>), serde_json::Error> {
    Ok(match change {
        Change::PutTag(tag, json) => (TAG, tag.id.clone(), Some(json.clone())),
        Change::DeleteTag(id) => (TAG, id.clone(), None),
        Change::AddEndpoint(endpoint) => (
            ENDPOINT,
            endpoint["id"].as_str().unwrap_or_default().to_owned(),
            Some(endpoint.to_string()),
        ),
    })
}

impl MockDatabase {
    /// Create the table if needed, and read every document back as the change that wrote it.
    pub(crate) async fn load(&self) -> Result<Vec<(AccountId, Change)>, sqlx::Error> {
        let rows: Vec<(String, String, String)> = match self {
            MockDatabase::Sqlite(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
                sqlx::query_as(SELECT).fetch_all(pool).await?
            }
            MockDatabase::Postgres(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
                sqlx::query_as(SELECT).fetch_all(pool).await?
            }
        };
        let mut changes = Vec::with_capacity(rows.len());
        for (account, kind, body) in rows {
            let decode = |e: &dyn std::fmt::Display| sqlx::Error::Decode(e.to_string().into());
            let account: AccountId = account.parse().map_err(|e| decode(&e))?;
            let change = match kind.as_str() {
                TAG => Change::PutTag(
                    serde_json::from_str::<StoredTag>(&body).map_err(|e| decode(&e))?,
                    body,
                ),
                ENDPOINT => Change::AddEndpoint(
                    serde_json::from_str::<Value>(&body).map_err(|e| decode(&e))?,
                ),
                // A kind a later version wrote: not ours to read.
                _ => continue,
            };
            changes.push((account, change));
        }
        Ok(changes)
    }

    /// The key of verified secrets' tags every replica on this database shares: the one
    /// stored, or a new random one stored now (the first replica's wins a race). A test
    /// double's choice: a production service keeps this key out of its database (see
    /// finout-auth's `shared::VerifiedSecretKey`).
    pub async fn verified_secret_key(
        &self,
    ) -> Result<finout_auth::shared::VerifiedSecretKey, sqlx::Error> {
        let fresh = finout_auth::shared::VerifiedSecretKey::random().to_hex();
        let args = (NIL_ACCOUNT, SETTING, VERIFIED_SECRET_KEY);
        let stored: String = match self {
            MockDatabase::Sqlite(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
                sqlx::query(SQLITE_INSERT_NEW)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .bind(&fresh)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar(SQLITE_SELECT_ONE)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .fetch_one(pool)
                    .await?
            }
            MockDatabase::Postgres(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
                sqlx::query(PG_INSERT_NEW)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .bind(&fresh)
                    .execute(pool)
                    .await?;
                sqlx::query_scalar(PG_SELECT_ONE)
                    .bind(args.0)
                    .bind(args.1)
                    .bind(args.2)
                    .fetch_one(pool)
                    .await?
            }
        };
        finout_auth::shared::VerifiedSecretKey::from_hex(&stored).ok_or_else(|| {
            sqlx::Error::Decode("the stored verified-secret key is not 64 hex digits".into())
        })
    }

    /// Save one change.
    pub(crate) async fn save(
        &self,
        account: AccountId,
        change: &Change,
    ) -> Result<(), sqlx::Error> {
        let (kind, id, body) = row(change).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let account = account.to_string();
        // The same statement on either pool, with its arguments bound in order.
        macro_rules! execute {
            ($pool:expr, $sql:expr $(, $arg:expr)*) => {
                { sqlx::query($sql)$(.bind($arg))*.execute($pool).await?; }
            };
        }
        match (self, body) {
            (MockDatabase::Sqlite(pool), Some(body)) => {
                execute!(pool, SQLITE_UPSERT, account, kind, id, body)
            }
            (MockDatabase::Sqlite(pool), None) => execute!(pool, SQLITE_DELETE, account, kind, id),
            (MockDatabase::Postgres(pool), Some(body)) => {
                execute!(pool, PG_UPSERT, account, kind, id, body)
            }
            (MockDatabase::Postgres(pool), None) => execute!(pool, PG_DELETE, account, kind, id),
        };
        Ok(())
    }
}
