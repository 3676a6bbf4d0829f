//! Rotating a token's secret with a grace period, and disabling and enabling a token: the
//! token keeps its client id, role, expiry, lineage and listing; every change invalidates the
//! caches and is announced to other replicas as a revoke is.

use std::time::Duration;

use super::{TokenAdmin, error::AdminError, issue::truncate_to_micros, validate};
use crate::{
    model::{AccountId, ClientId, IssuedToken, TokenInfo},
    store::TokenChange,
};

impl TokenAdmin {
    /// Give a token of the account a new secret, shown once in the answer. The replaced
    /// secret keeps working for `grace` (zero: it stops at once; at most
    /// [`MAX_ROTATION_GRACE`](crate::model::MAX_ROTATION_GRACE), 7 days, else
    /// [`InvalidRequest::RotationGrace`](super::validate::InvalidRequest::RotationGrace)),
    /// on every replica: it is the store's state. Rotating again during a grace ends that
    /// grace: at most two secrets are ever valid, the newest and the one it replaced.
    ///
    /// The client id, role, expiry and lineage stay; a disabled token stays disabled.
    pub async fn rotate_secret(
        &self,
        account: AccountId,
        client_id: &ClientId,
        grace: Duration,
    ) -> Result<IssuedToken, AdminError> {
        self.rotate(account, client_id, grace, None).await
    }

    /// See [`rotate_secret`](Self::rotate_secret); `asking`: the token whose request asks
    /// (its share of the hashing pool).
    pub(super) async fn rotate(
        &self,
        account: AccountId,
        client_id: &ClientId,
        grace: Duration,
        asking: Option<&ClientId>,
    ) -> Result<IssuedToken, AdminError> {
        let now = self.clock.now();
        let previous_valid_until = validate::grace_end(now, grace)?.map(truncate_to_micros);
        let (secret, hash) = self.new_secret(account, asking).await?;
        let change = TokenChange::Rotate {
            hash,
            previous_valid_until,
        };
        let record = self.change(account, client_id, change).await?;
        Ok(IssuedToken {
            client_id: record.client_id.clone(),
            secret_key: secret,
            info: record.info(),
        })
    }

    /// Disable a token of the account: it is refused (`invalid_credentials`) from the next
    /// request on (on other replicas within the change feed's latency, and never past their
    /// cache TTL), and kept and listed with its `disabled_at`, until
    /// [`enable_token`](Self::enable_token). Disabling a disabled token changes nothing. The
    /// tokens it issued are not disabled with it (revoking it deletes them).
    pub async fn disable_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<TokenInfo, AdminError> {
        let at = truncate_to_micros(self.clock.now());
        let change = TokenChange::Disable { at };
        Ok(self.change(account, client_id, change).await?.info())
    }

    /// Admit a disabled token again (an enabled one: nothing changes).
    pub async fn enable_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<TokenInfo, AdminError> {
        let change = TokenChange::Enable;
        Ok(self.change(account, client_id, change).await?.info())
    }

    async fn change(
        &self,
        account: AccountId,
        client_id: &ClientId,
        change: TokenChange,
    ) -> Result<crate::model::TokenRecord, AdminError> {
        let record = self
            .store
            .update_token(account, client_id, change)
            .await?
            .ok_or(AdminError::NotFound("token"))?;
        self.invalidate(std::slice::from_ref(client_id)).await;
        Ok(record)
    }
}
