//! [`PostgresTokenStore`] (feature `postgres`): one database shared by many replicas, with
//! a change feed (LISTEN/NOTIFY) that invalidates every replica's cache within moments.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Postgres, Transaction,
    postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions},
};

use crate::authenticator::Authenticator;

/// The channel every write notifies, with the affected client id as payload.
pub const CHANGE_CHANNEL: &str = "finout_auth_changes";

/// A token store in PostgreSQL, shared by any number of replicas.
///
/// Every write that affects authentication (revoke, user removal, role change) sends a
/// `NOTIFY` in its transaction; [`PostgresTokenStore::listen`] turns those into cache
/// invalidations on this replica's authenticators.
#[derive(Clone)]
pub struct PostgresTokenStore {
    pool: PgPool,
}

impl fmt::Debug for PostgresTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTokenStore")
            .field("connections", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresTokenStore {
    /// Connect to `url` (`postgres://user@host/db`) and apply the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(sql::backend)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(sql::backend)?;
        let store = Self::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Use an existing pool; call [`migrate`](Self::migrate) before first use.
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresTokenStore { pool }
    }

    /// Apply the embedded migrations (idempotent; concurrent replicas are serialized by
    /// sqlx's advisory lock). Migrations of other tools in the same database are tolerated.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("src/store/migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await.map_err(StoreError::backend)
    }

    /// The pool, e.g. to close it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn notify(
        tx: &mut Transaction<'_, Postgres>,
        client_id: &ClientId,
    ) -> Result<(), StoreError> {
        // Delivered at commit, and only if the transaction commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(client_id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(sql::backend)?;
        Ok(())
    }

    /// Follow the change feed: every revoke, user removal or role change made by any replica
    /// invalidates these authenticators' caches. Runs until the returned handle is dropped.
    ///
    /// The listener reconnects by itself (retrying every second); after every (re)connect it
    /// invalidates all cached tokens, since notifications sent while it was away are lost.
    /// While it is disconnected, the cache TTL still bounds staleness.
    pub async fn listen(
        &self,
        authenticators: impl IntoIterator<Item = Authenticator>,
    ) -> Result<ChangeListener, StoreError> {
        let authenticators: Arc<[Authenticator]> = authenticators.into_iter().collect();
        let application_name = format!("finout-auth-listener-{}", uuid::Uuid::new_v4());
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(&application_name);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        // The first connection is made here, so a wrong URL fails loudly.
        let listener = subscribe(&pool).await?;
        let task = tokio::spawn(follow(pool, listener, authenticators));
        Ok(ChangeListener {
            task,
            application_name,
        })
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(sql::backend)?;
    listener
        .listen(CHANGE_CHANNEL)
        .await
        .map_err(sql::backend)?;
    Ok(listener)
}

async fn follow(pool: PgPool, first: PgListener, authenticators: Arc<[Authenticator]>) {
    let mut connected = Some(first);
    loop {
        let mut listener = match connected.take() {
            Some(listener) => listener,
            None => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match subscribe(&pool).await {
                    Ok(listener) => {
                        // Whatever changed while we were away went unannounced.
                        for authenticator in authenticators.iter() {
                            authenticator.invalidate_all();
                        }
                        tracing::info!(target: "finout_auth", "change feed reconnected; caches cleared");
                        listener
                    }
                    Err(e) => {
                        tracing::warn!(target: "finout_auth", error = %e, "change feed reconnect failed");
                        continue;
                    }
                }
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let client_id = ClientId::from(notification.payload());
                    for authenticator in authenticators.iter() {
                        authenticator.invalidate(&client_id).await;
                    }
                }
                Ok(None) => {
                    tracing::warn!(target: "finout_auth", "change feed connection closed; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(target: "finout_auth", error = %e, "change feed lost; reconnecting");
                    break;
                }
            }
        }
        // Dropped before reconnecting: it holds the listener pool's only connection.
        drop(listener);
    }
}

/// A running change-feed listener; dropping it stops the listener.
#[derive(Debug)]
pub struct ChangeListener {
    task: tokio::task::JoinHandle<()>,
    application_name: String,
}

impl ChangeListener {
    /// The `application_name` of the listener's connection (unique per listener), as
    /// `pg_stat_activity` shows it.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

super::sql::sql_store!(PostgresTokenStore, Postgres);
