//! The mock's own table, `finout_mock_documents`, beside (never inside) the token store's
//! schema: one JSON document per tag or endpoint. It is created with `CREATE TABLE IF NOT
//! EXISTS` when the mock opens the database, and recorded in no migration table, so it
//! does not interfere with the token store's migrations or an application's.

use std::{borrow::Cow, sync::Arc};

use finout_auth::AccountId;
use serde_json::Value;
#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::{Change, tags::StoredTag};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS finout_mock_documents (
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, kind, id)
)";
const SELECT: &str =
    "SELECT account_id, kind, id, body FROM finout_mock_documents ORDER BY kind, id";
#[cfg(feature = "sqlite")]
const SQLITE_UPSERT: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, kind, id) DO UPDATE SET body = excluded.body";
#[cfg(feature = "sqlite")]
const SQLITE_DELETE: &str =
    "DELETE FROM finout_mock_documents WHERE account_id = ?1 AND kind = ?2 AND id = ?3";
#[cfg(feature = "postgres")]
const PG_UPSERT: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, kind, id) DO UPDATE SET body = excluded.body";
#[cfg(feature = "postgres")]
const PG_DELETE: &str =
    "DELETE FROM finout_mock_documents WHERE account_id = $1 AND kind = $2 AND id = $3";

const TAG: &str = "virtual_tag";
const ENDPOINT: &str = "endpoint";
/// The key replicas make verified secrets' tags under (`--redis`): one row, under the nil
/// account, written by the first replica and read by every other.
const SETTING: &str = "setting";
const VERIFIED_SECRET_KEY: &str = "verified_secret_key";
const NIL_ACCOUNT: &str = "00000000-0000-0000-0000-000000000000";
#[cfg(feature = "sqlite")]
const SQLITE_INSERT_NEW: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account_id, kind, id) DO NOTHING";
#[cfg(feature = "sqlite")]
const SQLITE_SELECT_ONE: &str = "SELECT body FROM finout_mock_documents \
     WHERE account_id = ?1 AND kind = ?2 AND id = ?3";
#[cfg(feature = "postgres")]
const PG_INSERT_NEW: &str = "INSERT INTO finout_mock_documents (account_id, kind, id, body) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, kind, id) DO NOTHING";
#[cfg(feature = "postgres")]
const PG_SELECT_ONE: &str = "SELECT body FROM finout_mock_documents \
     WHERE account_id = $1 AND kind = $2 AND id = $3";

/// Where the mock keeps what clients write: the database of its token store (features
/// `sqlite` and `postgres`, one variant each).
#[derive(Debug, Clone)]
pub enum MockDatabase {
    /// A SQLite database (e.g. [`SqliteTokenStore::pool`](finout_auth::store::SqliteTokenStore::pool)).
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// A PostgreSQL database (e.g. [`PostgresTokenStore::pool`](finout_auth::store::PostgresTokenStore::pool)).
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

/// (kind, id, body) of a change to save; body `None` deletes. A tag's JSON is borrowed, not
/// copied (it may be MiBs).
fn row(change: &Change) -> (&'static str, &str, Option<Cow<'_, str>>) {
    match change {
        Change::PutTag(tag, json) => (TAG, &tag.id, Some(Cow::Borrowed(json))),
        Change::DeleteTag(id) => (TAG, id, None),
        Change::AddEndpoint(endpoint) => (
            ENDPOINT,
            endpoint["id"].as_str().unwrap_or_default(),
            Some(Cow::Owned(endpoint.to_string())),
        ),
    }
}

/// What the mock read from its table when it started.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Every document it could read, as the change that wrote it.
    pub(crate) changes: Vec<(AccountId, Change)>,
    /// Rows it could not (logged, and left in the table untouched).
    pub(crate) set_aside: u64,
}

/// The `i`th column of `row` as text, if it is text.
fn text<R: Row>(row: &R, i: usize) -> Option<String>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get::<String, _>(i).ok()
}

/// Read one row as a change: `Ok(None)` for a kind this version does not read, `Err` with
/// why for a row it cannot (the reason only: a JSON error may quote the body).
fn decode(account: &str, kind: &str, body: String) -> Result<Option<(AccountId, Change)>, String> {
    if kind != TAG && kind != ENDPOINT {
        // A kind a later version wrote (or a setting): not ours to read.
        return Ok(None);
    }
    let account: AccountId = account
        .parse()
        .map_err(|_| "the account id is not a UUID".to_owned())?;
    let json_error = |e: serde_json::Error| {
        format!(
            "{:?} error in the body at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        )
    };
    let change = if kind == TAG {
        let tag = serde_json::from_str::<StoredTag>(&body).map_err(json_error)?;
        Change::PutTag(Arc::new(tag), body)
    } else {
        let endpoint = serde_json::from_str::<Value>(&body).map_err(json_error)?;
        if !endpoint.is_object() {
            return Err("an endpoint is not a JSON object".to_owned());
        }
        Change::AddEndpoint(endpoint)
    };
    Ok(Some((account, change)))
}

/// At most this many characters of a row's key are logged.
const LOGGED_KEY_CHARS: usize = 64;

impl MockDatabase {
    /// Create the table if needed, and read every document back as the change that wrote it.
    /// A row that cannot be read (not text, not the JSON of its kind, an account id that is
    /// no UUID: written by hand, or by a version without today's bounds) is set aside —
    /// skipped, logged with its key (never its body) and counted — so that no row keeps the
    /// mock, and every other account, from starting.
    pub(crate) async fn load(&self) -> Result<Loaded, sqlx::Error> {
        let rows: Vec<[Option<String>; 4]> = match self {
            #[cfg(feature = "sqlite")]
            MockDatabase::Sqlite(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
                let rows = sqlx::query(SELECT).fetch_all(pool).await?;
                rows.iter()
                    .map(|r| [0, 1, 2, 3].map(|i| text(r, i)))
                    .collect()
            }
            #[cfg(feature = "postgres")]
            MockDatabase::Postgres(pool) => {
                sqlx::query(CREATE).execute(pool).await?;
                let rows = sqlx::query(SELECT).fetch_all(pool).await?;
                rows.iter()
                    .map(|r| [0, 1, 2, 3].map(|i| text(r, i)))
                    .collect()
            }
        };
        let mut loaded = Loaded::default();
        for [account, kind, id, body] in rows {
            let decoded = match (&account, &kind, body) {
                (Some(account), Some(kind), Some(body)) => decode(account, kind, body),
                _ => Err("a column is not text".to_owned()),
            };
            match decoded {
                Ok(Some(change)) => loaded.changes.push(change),
                Ok(None) => {}
                Err(why) => {
                    let key = |s: &Option<String>| {
                        s.as_deref()
                            .map(|s| s.chars().take(LOGGED_KEY_CHARS).collect::<String>())
                    };
                    tracing::warn!(
                        target: "finout_mock",
                        account = ?key(&account),
                        kind = ?key(&kind),
                        id = ?key(&id),
                        reason = %why,
                        "a saved document cannot be read: set aside (left in the table)"
                    );
                    loaded.set_aside += 1;
                }
            }
        }
        Ok(loaded)
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
            #[cfg(feature = "sqlite")]
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
            #[cfg(feature = "postgres")]
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
        let (kind, id, body) = row(change);
        let account = account.to_string();
        // The same statement on either pool, with its arguments bound in order.
        macro_rules! execute {
            ($pool:expr, $sql:expr $(, $arg:expr)*) => {
                { sqlx::query($sql)$(.bind($arg))*.execute($pool).await?; }
            };
        }
        match (self, body) {
            #[cfg(feature = "sqlite")]
            (MockDatabase::Sqlite(pool), Some(body)) => {
                execute!(pool, SQLITE_UPSERT, account, kind, id, body)
            }
            #[cfg(feature = "sqlite")]
            (MockDatabase::Sqlite(pool), None) => execute!(pool, SQLITE_DELETE, account, kind, id),
            #[cfg(feature = "postgres")]
            (MockDatabase::Postgres(pool), Some(body)) => {
                execute!(pool, PG_UPSERT, account, kind, id, body)
            }
            #[cfg(feature = "postgres")]
            (MockDatabase::Postgres(pool), None) => execute!(pool, PG_DELETE, account, kind, id),
        };
        Ok(())
    }
}
