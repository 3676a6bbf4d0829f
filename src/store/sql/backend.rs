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

/// What the shared store logic needs of one sqlx backend: binding and decoding the two
/// column types the schema uses (text and timestamps, `None` for NULL), running a statement,
/// and announcing a change to other replicas.
pub(crate) trait Backend: Database {
    /// Bind a text value.
    fn bind_text<'q>(query: Query<'q, Self>, value: Option<String>) -> Query<'q, Self>;
    /// Bind a timestamp (stored in UTC).
    fn bind_time<'q>(query: Query<'q, Self>, value: Option<OffsetDateTime>) -> Query<'q, Self>;
    /// Read a text column.
    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// Read a timestamp column.
    fn time(row: &Self::Row, column: &str) -> Result<Option<OffsetDateTime>, sqlx::Error>;
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
    /// Tell other replicas that `client_id` changed, when `tx` commits (nothing, for a
    /// backend without a change feed).
    fn notify<'a>(
        tx: &'a mut Transaction<'static, Self>,
        client_id: &'a ClientId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}
