//! PostgreSQL's change feed: [`PostgresTokenStore::listen`] follows the `NOTIFY`s every write
//! sends (see [`CHANGE_CHANNEL`]) and turns them into cache invalidations on this replica.

use std::{sync::Arc, time::Duration};

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::{
    postgres::{CHANGE_CHANNEL, PostgresTokenStore},
    rows::backend_error,
};
use crate::{
    error::{Chain, StoreError},
    model::ClientId,
    store::traits::Invalidate,
};

/// How long the listener waits before reconnecting after it lost its connection.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

impl PostgresTokenStore {
    /// Follow the change feed: every revoke, user removal or role change made by any replica
    /// invalidates these caches (typically [`Authenticator`](crate::Authenticator)s). Runs
    /// until the returned handle is dropped.
    ///
    /// The listener reconnects by itself (retrying every second); after every (re)connect it
    /// invalidates everything cached, since notifications sent while it was away are lost.
    /// While it is disconnected, the cache TTL still bounds staleness.
    pub async fn listen<C: Invalidate>(
        &self,
        caches: impl IntoIterator<Item = C>,
    ) -> Result<ChangeListener, StoreError> {
        let options = (*self.pool().connect_options()).clone();
        Self::listen_with(options, caches).await
    }

    /// [`listen`](Self::listen) on a connection to `url` instead of the store's: when the
    /// store's lookups go through a pooler in transaction mode (PgBouncer), which cannot
    /// carry `LISTEN`, give the feed the database's direct URL. It holds one connection.
    pub async fn listen_at<C: Invalidate>(
        url: &str,
        caches: impl IntoIterator<Item = C>,
    ) -> Result<ChangeListener, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(backend_error)?;
        Self::listen_with(options, caches).await
    }

    async fn listen_with<C: Invalidate>(
        options: PgConnectOptions,
        caches: impl IntoIterator<Item = C>,
    ) -> Result<ChangeListener, StoreError> {
        let caches: Arc<[Arc<dyn Invalidate>]> = caches
            .into_iter()
            .map(|cache| Arc::new(cache) as Arc<dyn Invalidate>)
            .collect();
        let application_name = format!("finout-auth-listener-{}", uuid::Uuid::new_v4());
        let options = options.application_name(&application_name);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        // The first connection is made here, so a wrong URL fails loudly.
        let listener = subscribe(&pool).await?;
        let task = tokio::spawn(follow(pool, listener, caches));
        Ok(ChangeListener {
            task,
            application_name,
        })
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(backend_error)?;
    listener
        .listen(CHANGE_CHANNEL)
        .await
        .map_err(backend_error)?;
    Ok(listener)
}

async fn follow(pool: PgPool, first: PgListener, caches: Arc<[Arc<dyn Invalidate>]>) {
    let mut connected = Some(first);
    loop {
        let mut listener = match connected.take() {
            Some(listener) => listener,
            None => {
                tokio::time::sleep(RECONNECT_EVERY).await;
                match subscribe(&pool).await {
                    Ok(listener) => {
                        // Whatever changed while we were away went unannounced.
                        for cache in caches.iter() {
                            cache.invalidate_all();
                        }
                        tracing::info!(target: "finout_auth", "change feed reconnected; caches cleared");
                        listener
                    }
                    Err(e) => {
                        tracing::warn!(target: "finout_auth", error = %Chain(&e), "change feed reconnect failed");
                        continue;
                    }
                }
            }
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let client_id = ClientId::from(notification.payload());
                    for cache in caches.iter() {
                        cache.invalidate(&client_id).await;
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
#[must_use = "dropping the ChangeListener stops the change feed: keep it as long as the server runs"]
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
