//! Store lookups for the cold path: what the store says about a client id, fetched once for
//! all concurrent callers and kept for the cache TTL, with the principal it authenticates as.

use std::{fmt, sync::Arc, time::Duration};

use super::{
    cache::Stamp,
    epoch::{Epoch, Epochs},
};
use crate::{
    error::{AuthError, StoreError},
    metrics::Metrics,
    model::{ClientId, Principal, TokenKind},
    store::{ResolvedToken, TokenStore},
};

/// What the store said about a client id, and the epoch it said it in.
pub(crate) struct Fetched {
    pub(crate) token: Option<ResolvedToken>,
    /// `None` when the record cannot authenticate (disabled, or a personal token without its
    /// user).
    pub(crate) principal: Option<Principal>,
    pub(crate) epoch: Epoch,
    /// When it was read: what is decided on it is trusted no longer than it is.
    pub(crate) read_at: coarsetime::Instant,
}

impl Fetched {
    /// The stamp of what is cached on this answer.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp::read(self.epoch, self.read_at)
    }
}

/// The store, behind a coalescing cache of its answers.
pub(crate) struct Records {
    store: Arc<dyn TokenStore>,
    cache: moka::future::Cache<ClientId, Arc<Fetched>>,
    metrics: Metrics,
}

impl Records {
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        capacity: u64,
        ttl: Duration,
        metrics: Metrics,
    ) -> Self {
        Records {
            store,
            cache: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            metrics,
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// The store's answer for `client_id`, fetched once for all concurrent callers. A store
    /// failure is `auth_unavailable`.
    pub(crate) async fn fetch(
        &self,
        client_id: &ClientId,
        epochs: &Epochs,
    ) -> Result<Arc<Fetched>, AuthError> {
        let load = async {
            let epoch = epochs.current(client_id.as_str().as_bytes());
            let read_at = coarsetime::Instant::now_without_cache_update();
            self.metrics.counters().store_lookup();
            let token = self.store.find_token(client_id).await?;
            let principal = token
                .as_ref()
                .and_then(|t| principal_for(client_id, t))
                .map(|p| p.counted_by(self.metrics.clone()));
            Ok::<_, StoreError>(Arc::new(Fetched {
                token,
                principal,
                epoch,
                read_at,
            }))
        };
        self.cache
            .try_get_with(client_id.clone(), load)
            .await
            .map_err(|e| AuthError::AuthUnavailable(shared(e)))
    }

    /// The store's answer for `client_id` read afresh (not what is kept), shared with any
    /// concurrent caller of [`fetch`](Self::fetch).
    pub(crate) async fn refetch(
        &self,
        client_id: &ClientId,
        epochs: &Epochs,
    ) -> Result<Arc<Fetched>, AuthError> {
        self.cache.invalidate(client_id).await;
        self.fetch(client_id, epochs).await
    }

    pub(crate) async fn invalidate(&self, client_id: &ClientId) {
        self.cache.invalidate(client_id).await;
    }

    pub(crate) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

/// moka shares one error among all waiters: the same kind again, and for a backend error its
/// cause, kept as the source without stringifying.
fn shared(e: Arc<StoreError>) -> StoreError {
    /// The cause of a shared backend error, standing in for it.
    #[derive(Debug)]
    struct Shared(Arc<StoreError>);
    impl Shared {
        fn cause(&self) -> Option<&(dyn std::error::Error + 'static)> {
            std::error::Error::source(&*self.0)
        }
    }
    impl fmt::Display for Shared {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.cause() {
                Some(cause) => fmt::Display::fmt(cause, f),
                None => fmt::Display::fmt(&self.0, f),
            }
        }
    }
    impl std::error::Error for Shared {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.cause().and_then(std::error::Error::source)
        }
    }
    match &*e {
        StoreError::Conflict(what) => StoreError::Conflict(what),
        StoreError::NotFound(what) => StoreError::NotFound(what),
        StoreError::LimitReached(what) => StoreError::LimitReached(what),
        _ => StoreError::backend(Shared(e)),
    }
}

/// The principal a resolved token authenticates as; `None` if the record is inconsistent
/// or disabled.
fn principal_for(client_id: &ClientId, token: &ResolvedToken) -> Option<Principal> {
    let record = &token.record;
    if record.client_id != *client_id || record.is_disabled() {
        return None;
    }
    match (record.kind, record.user_id, &token.user) {
        (TokenKind::Api, None, None) => Some(Principal::account(
            record.account_id,
            record.role.clone(),
            client_id.clone(),
        )),
        (TokenKind::Personal, Some(user_id), Some(user))
            if user.id == user_id && user.account_id == record.account_id =>
        {
            Some(Principal::for_user(
                user,
                record.role.clone(),
                client_id.clone(),
            ))
        }
        _ => None,
    }
}
