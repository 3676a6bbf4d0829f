//! Pending checks per client id: at most so many distinct secrets of one client id are
//! being checked (or held until their answer's deadline) at once, whether the id is a real
//! token's or unknown, so that whoever knows a client id can spend at most that id's share
//! of the verification line, and so that the bound itself behaves the same for ids that
//! exist and ids that do not.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::model::ClientId;

/// Client ids with checks pending, and how many each.
pub(crate) struct PendingChecks {
    per_client: usize,
    pending: Arc<Mutex<HashMap<ClientId, usize>>>,
}

impl PendingChecks {
    /// At most `per_client` pending checks per client id (at least 1).
    pub(crate) fn new(per_client: usize) -> Self {
        PendingChecks {
            per_client: per_client.max(1),
            pending: Arc::default(),
        }
    }

    /// A place for one more check of `client_id`, held until dropped; `None` when it has
    /// `per_client` already.
    pub(crate) fn take(&self, client_id: &ClientId) -> Option<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let n = pending.entry(client_id.clone()).or_default();
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(Pending {
            client_id: client_id.clone(),
            pending: self.pending.clone(),
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

/// One pending check's place; given back on drop.
pub(crate) struct Pending {
    client_id: ClientId,
    pending: Arc<Mutex<HashMap<ClientId, usize>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = pending.get_mut(&self.client_id) {
            *n -= 1;
            if *n == 0 {
                pending.remove(&self.client_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_id_has_its_own_places_and_gives_them_back() {
        let checks = PendingChecks::new(2);
        let (a, b) = (ClientId::from("a"), ClientId::from("b"));
        let first = checks.take(&a).unwrap();
        let second = checks.take(&a).unwrap();
        assert!(checks.take(&a).is_none(), "two at once");
        let other = checks.take(&b).expect("another id is not affected");
        drop(first);
        let third = checks.take(&a).expect("a place came back");
        drop((second, third, other));
        assert_eq!(checks.len(), 0, "no entry left behind");
    }
}
