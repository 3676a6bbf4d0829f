//! Token stores: where tokens, users and accounts live.
//!
//! Two object-safe traits, shaped like `tower-sessions`' `SessionStore` so that
//! `Arc<dyn TokenStore>` works:
//!
//! - [`TokenStore`], the read side the [`Authenticator`](crate::Authenticator) needs: one
//!   lookup by client id.
//! - [`TokenAdminStore`], the write side [`TokenAdmin`](crate::TokenAdmin) needs: accounts,
//!   users with roles, inserting, listing and deleting tokens, and a [`Batch`] of them at
//!   once.
//!
//! And one for what caches a store's answers: [`Invalidate`], implemented by the
//! [`Authenticator`](crate::Authenticator), which [`TokenAdmin`](crate::TokenAdmin) and the
//! PostgreSQL change feed call after every change.
//!
//! [`MemoryTokenStore`] implements both, and so do `SqliteTokenStore` (feature `sqlite`)
//! and `PostgresTokenStore` (feature `postgres`). The conformance suite in
//! `finout_auth::testing` (feature `testing`) checks any implementation.

mod batch;
mod limits;
mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
pub(crate) mod traits;

pub use batch::Batch;
pub use limits::{TokenLimits, UserLimits};
pub use memory::MemoryTokenStore;
#[cfg(feature = "sqlite")]
pub use sql::sqlite::SqliteTokenStore;
#[cfg(feature = "postgres")]
pub use sql::{
    change_feed::ChangeListener,
    postgres::{CHANGE_CHANNEL, DEFAULT_MAX_CONNECTIONS, PostgresOptions, PostgresTokenStore},
};
pub use traits::{
    Invalidate, PurgedTokens, ResolvedToken, RevokedToken, TokenAdminStore, TokenChange,
    TokenFilter, TokenStore, UserUpdate,
};
