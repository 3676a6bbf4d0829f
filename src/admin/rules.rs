//! The rules an [`AdminSession`](crate::AdminSession) applies beyond "is this an Admin
//! user": issuing is a write, and a token answers for its own lineage (see the matrix in
//! the [module docs](super)).

use std::collections::{HashMap, HashSet};

use super::{TokenAdmin, error::AdminError};
use crate::model::{ClientId, Principal, TokenInfo, TokenRecord};

/// The action a token must be able to take to issue one: issuing is a write.
pub(super) const WRITE: &str = "write";

/// How many issuers a lineage walk follows before it answers "not in the lineage": deeper
/// than any chain the token caps allow (each link is a live token of one user or account).
const MAX_LINEAGE_HOPS: usize = 1_024;

/// Why a session refuses: the texts callers see.
pub(super) const NOT_ADMIN_USER: &str =
    "only a user holding Admin (token and user) may manage API tokens, users and others' tokens";
pub(super) const NO_WRITE: &str =
    "issuing a token is a write, and this token's effective role grants no write permission";
pub(super) const NOT_OWN: &str = "a token revokes only itself and the tokens it issued; \
     any other token needs a user holding Admin (token and user)";

/// Issuing needs a write permission the caller effectively holds.
pub(super) fn require_write(actor: &Principal) -> Result<(), AdminError> {
    if actor.grants_action(WRITE) {
        Ok(())
    } else {
        Err(AdminError::Forbidden(NO_WRITE))
    }
}

impl TokenAdmin {
    /// Whether `token` is `ancestor` or was issued by it, directly or not: `issued_by` is
    /// followed up, through tokens of the same account, at most [`MAX_LINEAGE_HOPS`] times.
    pub(super) async fn descends_from(
        &self,
        token: &TokenRecord,
        ancestor: &ClientId,
    ) -> Result<bool, AdminError> {
        let mut current = token.clone();
        for _ in 0..MAX_LINEAGE_HOPS {
            if current.client_id == *ancestor {
                return Ok(true);
            }
            let Some(parent) = current.issued_by.take() else {
                return Ok(false);
            };
            match self.store.find_token(&parent).await? {
                Some(found) if found.record.account_id == token.account_id => {
                    current = found.record;
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }
}

/// Those of `tokens` that are `root` or were issued by it, directly or not, through tokens
/// of the list; in the list's order.
pub(super) fn lineage_within(tokens: Vec<TokenInfo>, root: &ClientId) -> Vec<TokenInfo> {
    let mut children: HashMap<&ClientId, Vec<&ClientId>> = HashMap::new();
    for t in &tokens {
        if let Some(parent) = &t.issued_by {
            children.entry(parent).or_default().push(&t.client_id);
        }
    }
    let mut lineage: HashSet<&ClientId> = HashSet::from([root]);
    let mut pending = vec![root];
    while let Some(id) = pending.pop() {
        for child in children.get(id).into_iter().flatten() {
            if lineage.insert(child) {
                pending.push(child);
            }
        }
    }
    let lineage: HashSet<ClientId> = lineage.into_iter().cloned().collect();
    tokens
        .into_iter()
        .filter(|t| lineage.contains(&t.client_id))
        .collect()
}
