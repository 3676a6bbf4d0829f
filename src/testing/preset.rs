//! The test preset: an authenticator and an admin that a dependent's test suite can use in
//! one line, fast in a debug build and never answering `auth_busy` to a burst of first
//! requests.

use std::{sync::Arc, time::Duration};

use crate::{
    admin::TokenAdmin,
    authenticator::Authenticator,
    crypto::SecretHasher,
    store::{TokenAdminStore, TokenStore},
};

/// How many verifications or issues may wait at once under the preset.
const ROOM: usize = 100_000;

/// An [`Authenticator`] and a [`TokenAdmin`] over `store`, for tests only: secrets hashed
/// with [`SecretHasher::insecure_for_tests_only`] (microseconds per verification, even
/// unoptimized), room for 100,000 waiting verifications and issues, 30 s of patience,
/// refusals answered as soon as decided (no [uniform refusals](crate::AuthenticatorBuilder::uniform_refusals)),
/// no OS priority games; the admin tells the authenticator about revocations. Never ship it: the
/// hashes are cheap to crack.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use finout_auth::{NewToken, Role, store::MemoryTokenStore};
///
/// let (authenticator, admin) =
///     finout_auth::testing::insecure_test_preset(Arc::new(MemoryTokenStore::new()));
/// let account = admin.create_account("test").await?;
/// let token = admin.issue_api_token(account.id, None, NewToken::new("t", Role::Basic)).await?;
/// # let _ = (authenticator, token); Ok(()) }
/// ```
pub fn insecure_test_preset(store: Arc<dyn TokenAdminStore>) -> (Authenticator, TokenAdmin) {
    let hasher = SecretHasher::insecure_for_tests_only();
    let read: Arc<dyn TokenStore> = store.clone();
    let authenticator = Authenticator::builder(read)
        .hasher(hasher.clone())
        .max_waiting_verifications(ROOM)
        .max_pending_checks_per_client(ROOM)
        .verification_wait(Duration::from_secs(30))
        // Refusals answered when decided, not at the 30 s deadline: a test suite does not
        // hide which client ids exist from itself.
        .uniform_refusals(false)
        .low_priority_verification(false)
        .build();
    let admin = TokenAdmin::new(store)
        .with_hasher(hasher)
        .with_issuance_pool(1, ROOM, Duration::from_secs(30))
        .with_authenticator(authenticator.clone());
    (authenticator, admin)
}
