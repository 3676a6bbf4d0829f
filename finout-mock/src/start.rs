//! What replicas starting at the same moment on one database may run at the same moment.

use std::future::Future;

/// How many times a start step is run at most.
const ATTEMPTS: usize = 3;

/// Run `step` again (up to [`ATTEMPTS`] in all) while it fails because another process
/// created the same table at the same moment: two `CREATE TABLE IF NOT EXISTS` at once on
/// PostgreSQL fail in one session (a duplicate key in `pg_type`, or the table existing
/// already), and the next attempt finds the table there.
pub(crate) async fn again_if_raced<T, F, Fut>(mut step: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if attempt < ATTEMPTS && raced(&e) => attempt += 1,
            outcome => return outcome,
        }
    }
}

/// unique_violation (the catalog's, for a table created twice at once) or duplicate_table.
fn raced(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(e) => matches!(e.code().as_deref(), Some("23505" | "42P07")),
        _ => false,
    }
}
