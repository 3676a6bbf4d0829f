//! The handlers, one module per area of Finout's API.

pub(crate) mod admin;
pub(crate) mod costguard;
pub(crate) mod endpoints;
pub(crate) mod keys;
pub(crate) mod listing;
pub(crate) mod tags;
pub(crate) mod v2;
pub(crate) mod views;

use finout_auth::Principal;

use crate::error::{Answer, MockError};

/// A personal token limited by data access to some views gets 403 on what spans the whole
/// account (V2 cost and usage, CostGuard): those answers are not cut down to the user's
/// views (V2 takes any filter, not a view), and the account's whole cost is what the user's
/// data access withholds.
pub(crate) fn require_all_data(principal: &Principal) -> Answer<()> {
    if principal.data_access().ids().is_some() {
        return Err(MockError::auth_with(
            finout_auth::ErrorCode::Forbidden,
            "this token's user sees some views only; the account's whole cost and usage is \
             not among them (query by view with /v1/cost/query-by-view)",
        ));
    }
    Ok(())
}
