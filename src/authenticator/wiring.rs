//! [`Wiring`]: an [`Authenticator`] and a [`TokenAdmin`] over one store, built together, so
//! that every revoke, user removal and role change reaches the authenticator's caches at once
//! (with [`TokenAdmin::new`] alone, a forgotten
//! [`with_authenticator`](TokenAdmin::with_authenticator) leaves a revoked token admitted
//! until `cache_ttl`), and both hash with the same parameters.

use std::{fmt, sync::Arc};

use super::{Authenticator, builder::AuthenticatorBuilder};
use crate::{
    admin::TokenAdmin,
    store::{TokenAdminStore, TokenStore},
};

type Configure<T> = Box<dyn FnOnce(T) -> T + Send>;

/// An [`Authenticator`] and a [`TokenAdmin`] over one store, wired together: the production
/// twin of the test suites' `testing::insecure_test_preset`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::{sync::Arc, time::Duration};
/// use finout_auth::{Wiring, store::{MemoryTokenStore, TokenLimits}};
///
/// let store = Arc::new(MemoryTokenStore::new());
/// // Defaults: `Wiring::new(store).build()`.
/// let (authenticator, admin) = Wiring::new(store)
///     .authenticator(|b| b.cache_ttl(Duration::from_secs(30)))
///     .admin(|a| a.with_token_limits(TokenLimits::default().per_user(10)))
///     .build();
/// let account = admin.create_account("Acme").await?;
/// # let _ = (authenticator, account); Ok(()) }
/// ```
#[must_use]
pub struct Wiring {
    store: Arc<dyn TokenAdminStore>,
    authenticator: Configure<AuthenticatorBuilder>,
    admin: Configure<TokenAdmin>,
}

impl fmt::Debug for Wiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wiring").finish_non_exhaustive()
    }
}

impl Wiring {
    /// Both over `store`, with their defaults.
    pub fn new(store: Arc<dyn TokenAdminStore>) -> Self {
        Wiring {
            store,
            authenticator: Box::new(|b| b),
            admin: Box::new(|a| a),
        }
    }

    /// Configure the authenticator (cache, admission, shared state, hasher, ...).
    pub fn authenticator(
        mut self,
        f: impl FnOnce(AuthenticatorBuilder) -> AuthenticatorBuilder + Send + 'static,
    ) -> Self {
        self.authenticator = Box::new(f);
        self
    }

    /// Configure the admin (caps, retention, issuance pool, ...). It starts with the
    /// authenticator's hasher; the authenticator is registered after `f`, so nothing here
    /// can leave it out.
    pub fn admin(mut self, f: impl FnOnce(TokenAdmin) -> TokenAdmin + Send + 'static) -> Self {
        self.admin = Box::new(f);
        self
    }

    /// The authenticator, and the admin that tells it about every change.
    pub fn build(self) -> (Authenticator, TokenAdmin) {
        let read: Arc<dyn TokenStore> = self.store.clone();
        let builder = (self.authenticator)(Authenticator::builder(read));
        let hasher = builder.secret_hasher().clone();
        let authenticator = builder.build();
        let admin = (self.admin)(TokenAdmin::new(self.store).with_hasher(hasher))
            .with_authenticator(authenticator.clone());
        (authenticator, admin)
    }
}
