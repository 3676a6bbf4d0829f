//! The crate's migrations and an application's own sqlx migrator share one database: in
//! either order, run again and again, on SQLite and PostgreSQL. A database migrated by an
//! earlier release (the crate's versions in `_sqlx_migrations`) is adopted, processes
//! migrating at once apply each migration once, and a changed migration is refused.
//!
//! Every test runs on a fresh SQLite file and on a fresh PostgreSQL database created (and
//! dropped) under `FINOUT_AUTH_TEST_DATABASE_URL`; without that variable the PostgreSQL
//! variants print why they skip.

use std::{error::Error as _, future::Future, sync::Arc, time::Duration};

use finout_auth::{
    StoreError,
    store::{PostgresTokenStore, SqliteTokenStore, TokenAdminStore},
};
use sqlx::{
    Connection, PgConnection, PgPool, SqlitePool,
    migrate::{MigrateError, Migrator},
};

/// The application's migrations: one before the crate's versions, one after.
const APP_MIGRATIONS: [(i64, &str); 2] = [
    (
        20250101000001,
        "CREATE TABLE app_widgets (id BIGINT PRIMARY KEY, name TEXT NOT NULL);",
    ),
    (
        20270101000001,
        "ALTER TABLE app_widgets ADD COLUMN color TEXT;",
    ),
];

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One fresh database, the application's migrator, and the crate's store on it.
struct Db {
    url: String,
    pool: Pool,
    app: Migrator,
    /// The SQLite file's directory, removed with the `Db`.
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    async fn new(url: String, pool: Pool, dir: Option<tempfile::TempDir>) -> Db {
        // The migrator reads the files at once: the directory can go afterwards.
        let migrations = tempfile::tempdir().unwrap();
        for (version, sql) in APP_MIGRATIONS {
            let file = migrations.path().join(format!("{version}_app.sql"));
            std::fs::write(file, sql).unwrap();
        }
        let app = Migrator::new(migrations.path()).await.unwrap();
        Db {
            url,
            pool,
            app,
            _dir: dir,
        }
    }

    /// The application's own migrator, as it runs at its start (sqlx's defaults), on a pool
    /// of its own, closed afterwards: sqlx 0.8 keeps PostgreSQL's advisory lock on the
    /// connection when a run fails, so a shared pool would block every later run.
    async fn run_app(&self) -> Result<(), MigrateError> {
        match &self.pool {
            Pool::Sqlite(_) => {
                let pool = SqlitePool::connect(&self.url).await?;
                let run = self.app.run(&pool).await;
                pool.close().await;
                run
            }
            Pool::Postgres(_) => {
                let pool = PgPool::connect(&self.url).await?;
                let run = self.app.run(&pool).await;
                pool.close().await;
                run
            }
        }
    }

    /// The crate's store, connected (and so migrated) as an application opens it.
    async fn connect(&self) -> Result<Box<dyn TokenAdminStore>, StoreError> {
        Ok(match &self.pool {
            Pool::Sqlite(_) => Box::new(SqliteTokenStore::connect(&self.url).await?),
            Pool::Postgres(_) => Box::new(PostgresTokenStore::connect(&self.url).await?),
        })
    }

    /// The crate's migrations as earlier releases ran them: sqlx's migrator, ignoring the
    /// versions it does not know.
    async fn run_previous_release(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut old = sqlx::migrate!("src/store/migrations/sqlite");
                old.set_ignore_missing(true);
                old.run(pool).await.unwrap();
            }
            Pool::Postgres(pool) => {
                let mut old = sqlx::migrate!("src/store/migrations/postgres");
                old.set_ignore_missing(true);
                old.run(pool).await.unwrap();
            }
        }
    }

    fn our_versions(&self) -> Vec<i64> {
        let ours = match &self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("src/store/migrations/sqlite"),
            Pool::Postgres(_) => sqlx::migrate!("src/store/migrations/postgres"),
        };
        ours.iter().map(|m| m.version).collect()
    }

    /// The versions recorded in `table`, in order.
    async fn versions(&self, table: &str) -> Vec<i64> {
        let sql = format!("SELECT version FROM {table} ORDER BY version");
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await,
        }
        .unwrap()
    }

    async fn has_table(&self, table: &str) -> bool {
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table)
                .fetch_one(pool)
                .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(pool)
                    .await
            }
        }
        .unwrap()
    }

    async fn execute(&self, sql: &str) {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap()
    }

    /// Both applications' tables exist, and each migrator's versions are in its own table.
    async fn assert_both_migrated(&self) {
        assert!(
            self.has_table("app_widgets").await,
            "the application's table"
        );
        assert!(
            self.has_table("finout_auth_tokens").await,
            "the crate's table"
        );
        let app: Vec<i64> = APP_MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(self.versions("_sqlx_migrations").await, app);
        assert_eq!(
            self.versions("finout_auth_migrations").await,
            self.our_versions()
        );
    }
}

async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shared.db").display()
    );
    let pool = SqlitePool::connect(&url).await.unwrap();
    Db::new(url, Pool::Sqlite(pool), Some(dir)).await
}

/// Run `test` on a database of its own, created under `FINOUT_AUTH_TEST_DATABASE_URL` and
/// dropped afterwards (also when the test fails).
async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let base = match std::env::var("FINOUT_AUTH_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!(
                "skipped: FINOUT_AUTH_TEST_DATABASE_URL is not set (no PostgreSQL to test against)"
            );
            return;
        }
    };
    let name = format!("finout_auth_migrations_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&base, &name);
    let pool = PgPool::connect(&url).await.unwrap();
    let scenario = tokio::spawn(test(Db::new(url, Pool::Postgres(pool), None).await));
    let abort = scenario.abort_handle();
    let outcome = tokio::time::timeout(TIME_LIMIT, scenario).await;
    abort.abort();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => panic!("the scenario did not finish within {TIME_LIMIT:?}"),
    }
}

/// A scenario that hangs (a migration lock never released) fails instead.
const TIME_LIMIT: Duration = Duration::from_secs(60);

async fn in_time(scenario: impl Future<Output = ()>) {
    let finished = tokio::time::timeout(TIME_LIMIT, scenario).await;
    assert!(
        finished.is_ok(),
        "the scenario did not finish within {TIME_LIMIT:?}"
    );
}

/// `url` with its database name replaced by `name` (its query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (url, query) = url.split_once('?').unwrap_or((url, ""));
    let authority = url.find("://").map_or(0, |i| i + 3);
    let path = url[authority..]
        .find('/')
        .map_or(url.len(), |i| authority + i);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &url[..path])
}

/// One `#[tokio::test]` per scenario and database: `sqlite::<scenario>`,
/// `postgres::<scenario>`.
macro_rules! on_each_database {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::in_time(super::$scenario(super::sqlite_db().await)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::on_postgres(super::$scenario).await;
                }
            )*
        }
    };
}

on_each_database!(
    the_application_first_then_ours_twice,
    ours_first_then_the_application_twice,
    a_database_migrated_by_the_previous_release_is_adopted,
    migrating_at_once_applies_each_migration_once,
    a_changed_migration_is_refused,
);

async fn the_application_first_then_ours_twice(db: Db) {
    for round in 1..=2 {
        let app = db.run_app().await;
        assert!(
            app.is_ok(),
            "the application's migrator, round {round}: {app:?}"
        );
        let ours = db.connect().await;
        assert!(ours.is_ok(), "ours, round {round}: {:?}", ours.err());
    }
    db.assert_both_migrated().await;
}

async fn ours_first_then_the_application_twice(db: Db) {
    for round in 1..=2 {
        let ours = db.connect().await;
        assert!(ours.is_ok(), "ours, round {round}: {:?}", ours.err());
        let app = db.run_app().await;
        assert!(
            app.is_ok(),
            "the application's migrator, round {round}: {app:?}"
        );
    }
    db.assert_both_migrated().await;
}

async fn a_database_migrated_by_the_previous_release_is_adopted(db: Db) {
    db.run_app().await.unwrap();
    db.run_previous_release().await;
    let account = finout_auth::AccountId::new_v4();
    db.execute(&format!(
        "INSERT INTO finout_auth_accounts (id, name) VALUES ('{account}', 'Kept')"
    ))
    .await;
    assert!(
        matches!(db.run_app().await, Err(MigrateError::VersionMissing(_))),
        "the previous release's versions in _sqlx_migrations break the application's migrator"
    );

    for round in 1..=2 {
        let store = db.connect().await;
        let store = store.unwrap_or_else(|e| panic!("ours, round {round}: {e:?}"));
        assert!(
            store.get_account(account).await.unwrap().is_some(),
            "data kept"
        );
    }
    db.run_app()
        .await
        .expect("the application's migrator runs again");
    db.assert_both_migrated().await;
}

async fn migrating_at_once_applies_each_migration_once(db: Db) {
    let db = Arc::new(db);
    let mut at_once = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let db = Arc::clone(&db);
        at_once.spawn(async move { db.connect().await.map(drop) });
    }
    while let Some(ours) = at_once.join_next().await {
        let ours = ours.unwrap();
        assert!(ours.is_ok(), "{ours:?}");
    }
    db.run_app().await.unwrap();
    db.assert_both_migrated().await;
}

async fn a_changed_migration_is_refused(db: Db) {
    db.connect().await.unwrap();
    let first = db.our_versions()[0];
    // One byte shorter: a different checksum, in both backends' bytes type.
    db.execute(&format!(
        "UPDATE finout_auth_migrations SET checksum = substr(checksum, 2) WHERE version = {first}"
    ))
    .await;
    let Err(refused) = db.connect().await else {
        panic!("a changed migration must be refused");
    };
    let mut chain = refused.to_string();
    let mut source = refused.source();
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    assert!(
        chain.contains(&format!(
            "migration {first} (init) was applied with a different checksum"
        )),
        "{chain}"
    );
}
