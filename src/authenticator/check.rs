//! What a secret is checked against: a token's valid hashes (the current one, and the one
//! the last rotation replaced while its grace lasts), or nothing for an unknown id.

use crate::model::{AccountId, SecretHash};

/// Which of a token's valid secrets a secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matched {
    /// The current one.
    Current,
    /// The one the last rotation replaced, in its grace.
    Previous,
}

/// What a secret is checked against.
#[derive(Clone, Copy)]
pub(crate) enum Check<'a> {
    /// A real token's stored hash (and the replaced one's while a rotation's grace lasts),
    /// and the account whose share of the line it uses.
    Stored {
        hash: &'a SecretHash,
        previous: Option<&'a SecretHash>,
        account: AccountId,
    },
    /// Nothing: the id is unknown.
    Unknown,
}

/// The hashes a verdict was made against.
pub(crate) type Against = Option<(SecretHash, Option<SecretHash>)>;

impl Check<'_> {
    pub(crate) fn against(self) -> Against {
        match self {
            Check::Stored { hash, previous, .. } => Some((hash.clone(), previous.cloned())),
            Check::Unknown => None,
        }
    }
}
