//! The crate's migrations, recorded in a version table of its own, `finout_auth_migrations`.
//!
//! sqlx 0.8's `Migrator` records every migrator's versions in one `_sqlx_migrations` table
//! and refuses versions it does not know, so the crate's rows there would break the
//! application's own migrator. sqlx still embeds the files (`sqlx::migrate!`: versions,
//! descriptions, checksums); this module applies them, each in its own transaction under a
//! lock ([`Backend::LOCK_MIGRATIONS`]), so that processes migrating one database at once
//! apply each migration exactly once.

use std::time::Instant;

use sqlx::{
    Pool, Transaction,
    migrate::{Migration, Migrator},
};

use super::{
    backend::{Backend, On},
    rows::backend_error,
};
use crate::error::StoreError;

/// An applied migration whose embedded file has changed since.
#[derive(Debug, thiserror::Error)]
#[error(
    "finout-auth migration {version} ({description}) was applied with a different checksum \
     than the one embedded in this build"
)]
struct ChecksumMismatch {
    version: i64,
    description: String,
}

/// Apply `migrator`'s pending migrations in version order and check the applied ones'
/// checksums. Versions in the table that this build does not know (a newer release's) are
/// left alone.
pub(super) async fn run<B: Backend>(pool: &Pool<B>, migrator: &Migrator) -> Result<(), StoreError> {
    let mut tx = begin_locked(pool).await?;
    B::execute(On::Tx(&mut tx), sqlx::query(B::CREATE_MIGRATIONS))
        .await
        .map_err(backend_error)?;
    adopt(&mut tx, migrator).await?;
    tx.commit().await.map_err(backend_error)?;

    for migration in up(migrator) {
        let mut tx = begin_locked(pool).await?;
        apply(&mut tx, migration).await?;
        tx.commit().await.map_err(backend_error)?;
    }
    Ok(())
}

fn up(migrator: &Migrator) -> impl Iterator<Item = &Migration> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

async fn begin_locked<B: Backend>(pool: &Pool<B>) -> Result<Transaction<'static, B>, StoreError> {
    let mut tx = pool
        .begin_with(B::BEGIN_WRITE)
        .await
        .map_err(backend_error)?;
    if let Some(lock) = B::LOCK_MIGRATIONS {
        B::execute(On::Tx(&mut tx), sqlx::query(lock))
            .await
            .map_err(backend_error)?;
    }
    Ok(tx)
}

/// A database migrated by an earlier release has the crate's versions in `_sqlx_migrations`.
/// When our table is still empty, move the rows that match one of our migrations (version and
/// checksum, applied successfully) to it, so the application's migrator stops finding them.
async fn adopt<B: Backend>(
    tx: &mut Transaction<'static, B>,
    migrator: &Migrator,
) -> Result<(), StoreError> {
    let recorded = sqlx::query("SELECT 1 FROM finout_auth_migrations LIMIT 1");
    let recorded = B::fetch_optional(On::Tx(tx), recorded)
        .await
        .map_err(backend_error)?;
    if recorded.is_some() {
        return Ok(());
    }
    let sqlx_table = B::fetch_optional(On::Tx(tx), sqlx::query(B::FIND_SQLX_MIGRATIONS))
        .await
        .map_err(backend_error)?;
    if sqlx_table.is_none() {
        return Ok(());
    }
    const MATCHING: &str = "FROM _sqlx_migrations WHERE version = $1 AND checksum = $2 AND success";
    let copy = format!(
        "INSERT INTO finout_auth_migrations \
         (version, description, installed_on, checksum, execution_time) \
         SELECT version, description, installed_on, checksum, execution_time {MATCHING}"
    );
    let delete = format!("DELETE {MATCHING}");
    for migration in up(migrator) {
        for sql in [&copy, &delete] {
            let query = B::bind_int(sqlx::query(sql), migration.version);
            let query = B::bind_bytes(query, migration.checksum.to_vec());
            B::execute(On::Tx(tx), query).await.map_err(backend_error)?;
        }
    }
    Ok(())
}

/// Apply `migration` unless it is recorded; if it is, check its checksum.
async fn apply<B: Backend>(
    tx: &mut Transaction<'static, B>,
    migration: &Migration,
) -> Result<(), StoreError> {
    let find = sqlx::query("SELECT checksum FROM finout_auth_migrations WHERE version = $1");
    let row = B::fetch_optional(On::Tx(tx), B::bind_int(find, migration.version))
        .await
        .map_err(backend_error)?;
    if let Some(row) = row {
        let checksum = B::bytes(&row, "checksum").map_err(backend_error)?;
        if checksum.as_deref() == Some(&*migration.checksum) {
            return Ok(());
        }
        return Err(StoreError::backend(ChecksumMismatch {
            version: migration.version,
            description: migration.description.to_string(),
        }));
    }

    let started = Instant::now();
    B::run_script(tx, &migration.sql)
        .await
        .map_err(backend_error)?;
    let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    let record = sqlx::query(
        "INSERT INTO finout_auth_migrations (version, description, checksum, execution_time) \
         VALUES ($1, $2, $3, $4)",
    );
    let record = B::bind_int(record, migration.version);
    let record = B::bind_text(record, Some(migration.description.to_string()));
    let record = B::bind_bytes(record, migration.checksum.to_vec());
    let record = B::bind_int(record, nanos);
    B::execute(On::Tx(tx), record)
        .await
        .map_err(backend_error)?;
    Ok(())
}
