//! [`Batch`]: accounts, users and tokens that [`TokenAdminStore::insert_batch`] writes all
//! at once or not at all.
//!
//! [`TokenAdminStore::insert_batch`]: super::TokenAdminStore::insert_batch

use crate::model::{Account, TokenRecord, User};

/// Accounts, users and tokens to store in one transaction, with
/// [`TokenAdminStore::insert_batch`](super::TokenAdminStore::insert_batch): a set-up (a seed
/// file, a first-start bootstrap) that must not be left half written.
///
/// Its elements are inserted in order, accounts first, then users, then tokens, each checked
/// as the single inserts check it: a user may belong to an account of the batch, a personal
/// token to a user of the batch, and a token may name an earlier token of the batch as its
/// issuer.
///
/// ```
/// use finout_auth::{AccountId, model::Account, store::Batch};
/// let batch = Batch::new().account(Account { id: AccountId::new_v4(), name: "Acme".into() });
/// assert_eq!(batch.accounts.len(), 1);
/// assert!(!batch.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// Accounts to add.
    pub accounts: Vec<Account>,
    /// Users to add.
    pub users: Vec<User>,
    /// Tokens to add.
    pub tokens: Vec<TokenRecord>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also add this account.
    #[must_use]
    pub fn account(mut self, account: Account) -> Self {
        self.accounts.push(account);
        self
    }

    /// Also add this user.
    #[must_use]
    pub fn user(mut self, user: User) -> Self {
        self.users.push(user);
        self
    }

    /// Also add this token.
    #[must_use]
    pub fn token(mut self, record: TokenRecord) -> Self {
        self.tokens.push(record);
        self
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.users.is_empty() && self.tokens.is_empty()
    }
}
