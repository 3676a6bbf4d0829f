//! [`Backend`]: what the shared store logic needs of one sqlx backend, implemented beside
//! each store (`sqlite.rs`, `postgres.rs`).

use std::future::Future;

use sqlx::{Database, Pool, Transaction};
use time::OffsetDateTime;

use crate::{error::StoreError, model::ClientId};

/// A statement with its arguments, for backend `DB`.
pub(crate) type Query<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Where a statement runs: on the pool, or inside a transaction.
pub(crate) enum On<'a, DB: Database> {
    Pool(&'a Pool<DB>),
    Tx(&'a mut Transaction<'static, DB>),
}

/// What the shared store logic needs of one sqlx backend: binding and decoding the column
/// types the schema uses (text and timestamps, `None` for NULL; integers and bytes in the
/// version table), running a statement, locking for migrations, and announcing a change to
/// other replicas.
pub(crate) trait Backend: Database {
    /// The statement that opens a write transaction. SQLite's `BEGIN IMMEDIATE` takes the write
    /// lock at once, so concurrent writers wait out the busy timeout instead of failing when a
    /// transaction that read first tries to write.
    const BEGIN_WRITE: &'static str;
    /// Appended to a `SELECT` that a write transaction's decision rests on, to lock the rows
    /// it read until the transaction ends (PostgreSQL's ` FOR UPDATE`; SQLite needs nothing:
    /// its write transactions are serialized).
    const LOCK_ROWS: &'static str;
    /// Run first in every migration transaction, to serialize the processes migrating one
    /// database (PostgreSQL's advisory lock; SQLite needs nothing: `BEGIN IMMEDIATE` already
    /// serializes them).
    const LOCK_MIGRATIONS: Option<&'static str>;
    /// Creates `finout_auth_migrations`, the crate's own version table, if missing.
    const CREATE_MIGRATIONS: &'static str;
    /// Returns a row if sqlx's `_sqlx_migrations` table exists.
    const FIND_SQLX_MIGRATIONS: &'static str;

    /// `column`, a timestamp column, as an expression that compares and sorts in time order
    /// against a value bound with [`bind_instant`](Self::bind_instant).
    fn instant(column: &str) -> String;
    /// Bind a timestamp to compare with [`instant`](Self::instant).
    fn bind_instant<'q>(query: Query<'q, Self>, value: OffsetDateTime) -> Query<'q, Self>;
    /// Bind a text value.
    fn bind_text<'q>(query: Query<'q, Self>, value: Option<String>) -> Query<'q, Self>;
    /// Bind a timestamp (stored in UTC).
    fn bind_time<'q>(query: Query<'q, Self>, value: Option<OffsetDateTime>) -> Query<'q, Self>;
    /// Bind an integer.
    fn bind_int<'q>(query: Query<'q, Self>, value: i64) -> Query<'q, Self>;
    /// Bind bytes.
    fn bind_bytes<'q>(query: Query<'q, Self>, value: Vec<u8>) -> Query<'q, Self>;
    /// Read a text column.
    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// Read a timestamp column.
    fn time(row: &Self::Row, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error>;
    /// Read an integer column (a `COUNT(*)`).
    fn count(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// Read a bytes column.
    fn bytes(row: &Self::Row, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
    /// Run a script of several statements without arguments (a migration) inside `tx`.
    fn run_script<'a>(
        tx: &'a mut Transaction<'static, Self>,
        sql: &'a str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'a;
    /// Run a query expecting at most one row.
    fn fetch_optional<'a>(
        on: On<'a, Self>,
        query: Query<'a, Self>,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a;
    /// Run a query and collect its rows.
    fn fetch_all<'a>(
        on: On<'a, Self>,
        query: Query<'a, Self>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;
    /// Run a statement; the number of rows it changed.
    fn execute<'a>(
        on: On<'a, Self>,
        query: Query<'a, Self>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;
    /// Tell other replicas that these client ids changed, when `tx` commits, in one round
    /// trip (nothing, for a backend without a change feed).
    fn notify<'a>(
        tx: &'a mut Transaction<'static, Self>,
        client_ids: &'a [ClientId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

/// The binding, decoding and statement running of a backend whose row type is `$row`: the
/// same code for every backend, only the types differ. Each backend's `impl Backend` expands
/// it (with `On`, `Query`, `Transaction` and `OffsetDateTime` imported) and writes `notify` itself.
macro_rules! backend_io {
    ($row:ty) => {
        fn bind_text<'q>(query: Query<'q, Self>, value: Option<String>) -> Query<'q, Self> {
            query.bind(value)
        }

        fn bind_time<'q>(query: Query<'q, Self>, value: Option<OffsetDateTime>) -> Query<'q, Self> {
            query.bind(value)
        }

        fn bind_int<'q>(query: Query<'q, Self>, value: i64) -> Query<'q, Self> {
            query.bind(value)
        }

        fn bind_bytes<'q>(query: Query<'q, Self>, value: Vec<u8>) -> Query<'q, Self> {
            query.bind(value)
        }

        fn text(row: &$row, column: &str) -> Result<Option<String>, sqlx::Error> {
            sqlx::Row::try_get(row, column)
        }

        fn time(row: &$row, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error> {
            sqlx::Row::try_get(row, column)
        }

        fn count(row: &$row, column: &str) -> Result<Option<i64>, sqlx::Error> {
            sqlx::Row::try_get(row, column)
        }

        fn bytes(row: &$row, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
            sqlx::Row::try_get(row, column)
        }

        async fn run_script<'a>(
            tx: &'a mut Transaction<'static, Self>,
            sql: &'a str,
        ) -> Result<(), sqlx::Error> {
            // A plain `&str` without arguments runs unprepared, so it may hold several
            // statements (as sqlx's own migrator runs them).
            sqlx::Executor::execute(&mut **tx, sql).await.map(drop)
        }

        async fn fetch_optional<'a>(
            on: On<'a, Self>,
            query: Query<'a, Self>,
        ) -> Result<Option<$row>, sqlx::Error> {
            match on {
                On::Pool(pool) => query.fetch_optional(pool).await,
                On::Tx(tx) => query.fetch_optional(&mut **tx).await,
            }
        }

        async fn fetch_all<'a>(
            on: On<'a, Self>,
            query: Query<'a, Self>,
        ) -> Result<Vec<$row>, sqlx::Error> {
            match on {
                On::Pool(pool) => query.fetch_all(pool).await,
                On::Tx(tx) => query.fetch_all(&mut **tx).await,
            }
        }

        async fn execute<'a>(on: On<'a, Self>, query: Query<'a, Self>) -> Result<u64, sqlx::Error> {
            let done = match on {
                On::Pool(pool) => query.execute(pool).await?,
                On::Tx(tx) => query.execute(&mut **tx).await?,
            };
            Ok(done.rows_affected())
        }
    };
}

pub(super) use backend_io;
