//! The caps a store checks in the same transaction as the write they bound:
//! [`TokenLimits`] (live tokens per user and per account, and the expired tokens kept for
//! listing) and [`UserLimits`] (users per account).

/// Caps on how many tokens may exist, checked by
/// [`TokenAdminStore::insert_token`](super::TokenAdminStore::insert_token) in the same
/// transaction as the insert.
///
/// The live caps (`per_user`, `per_account`) count tokens not yet expired: an expired token
/// never blocks a new one. Expired tokens stay listed (as expired) until purged, and the
/// retention caps bound how many of them are kept:
/// [`insert_token_purging`](super::TokenAdminStore::insert_token_purging) purges the
/// longest-expired first when a user's or an account's total, live and expired, reaches one.
///
/// | cap | default | counts |
/// | --- | ---: | --- |
/// | `per_user` | 100 | a user's live personal tokens |
/// | `per_account` | 5,000 | an account's live tokens, API and personal |
/// | `retained_per_user` | 1,000 | a user's personal tokens, live and expired |
/// | `retained_per_account` | 50,000 | an account's tokens, live and expired |
///
/// ```
/// use finout_auth::store::TokenLimits;
/// let limits = TokenLimits::default().per_user(20).per_account(1_000);
/// assert_eq!((limits.per_user, limits.per_account), (20, 1_000));
/// assert_eq!(limits.retained_per_user, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenLimits {
    /// Live personal tokens one user may hold. Default 100.
    pub per_user: u32,
    /// Live tokens (API and personal) one account may hold. Default 5,000.
    pub per_account: u32,
    /// Personal tokens, live and expired, kept per user before the longest-expired are
    /// purged to make room. Default 1,000; never below `per_user`.
    pub retained_per_user: u32,
    /// Tokens, live and expired, kept per account before the longest-expired are purged to
    /// make room. Default 50,000; never below `per_account`.
    pub retained_per_account: u32,
}

impl Default for TokenLimits {
    fn default() -> Self {
        TokenLimits {
            per_user: 100,
            per_account: 5_000,
            retained_per_user: 1_000,
            retained_per_account: 50_000,
        }
    }
}

impl TokenLimits {
    /// Limits no store will reach (for bulk set-ups and harnesses).
    pub fn unlimited() -> Self {
        TokenLimits {
            per_user: u32::MAX,
            per_account: u32::MAX,
            retained_per_user: u32::MAX,
            retained_per_account: u32::MAX,
        }
    }

    /// At most `n` live personal tokens per user.
    #[must_use]
    pub fn per_user(mut self, n: u32) -> Self {
        self.per_user = n;
        self
    }

    /// At most `n` live tokens per account.
    #[must_use]
    pub fn per_account(mut self, n: u32) -> Self {
        self.per_account = n;
        self
    }

    /// Keep at most `n` personal tokens, live and expired, per user.
    #[must_use]
    pub fn retained_per_user(mut self, n: u32) -> Self {
        self.retained_per_user = n;
        self
    }

    /// Keep at most `n` tokens, live and expired, per account.
    #[must_use]
    pub fn retained_per_account(mut self, n: u32) -> Self {
        self.retained_per_account = n;
        self
    }

    /// The retention cap per user as stores apply it: never below the live cap, so that
    /// purging expired tokens can always make room for a token the live cap allows.
    pub fn retained_user(&self) -> u32 {
        self.retained_per_user.max(self.per_user)
    }

    /// The retention cap per account as stores apply it (never below the live cap).
    pub fn retained_account(&self) -> u32 {
        self.retained_per_account.max(self.per_account)
    }
}

/// Caps on users, checked by
/// [`TokenAdminStore::insert_user_within`](super::TokenAdminStore::insert_user_within) in
/// the same transaction as the insert.
///
/// ```
/// use finout_auth::store::UserLimits;
/// assert_eq!(UserLimits::default().per_account, 10_000);
/// assert_eq!(UserLimits::default().per_account(50).per_account, 50);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserLimits {
    /// Users one account may have. Default 10,000.
    pub per_account: u32,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            per_account: 10_000,
        }
    }
}

impl UserLimits {
    /// Limits no store will reach.
    pub fn unlimited() -> Self {
        UserLimits {
            per_account: u32::MAX,
        }
    }

    /// At most `n` users per account.
    #[must_use]
    pub fn per_account(mut self, n: u32) -> Self {
        self.per_account = n;
        self
    }
}
