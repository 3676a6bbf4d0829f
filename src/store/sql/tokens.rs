//! Token writes under lineage and caps: issuing (the issuer and user must exist, the caps
//! must hold, expired tokens past the retention caps make room), revoking (a token with every
//! token it issued) and removing a user (with their personal tokens and every token those
//! issued), each in one write transaction that first locks its account's row.

use sqlx::Transaction;

use super::{
    RETURNED_COLUMNS, SqlStore,
    backend::{Backend, On},
    rows::{backend_error, bind_str, client_ids, json, record, utc, write_error},
};
use crate::{
    error::StoreError,
    model::{AccountId, ClientId, TokenKind, TokenRecord, UserId},
    store::{
        limits::TokenLimits,
        traits::{PurgedTokens, RevokedToken, TokenChange},
    },
};

/// The tokens a seed set (`seed`, a `SELECT client_id ...` naming its parameters) issued,
/// directly or not, with the seed set itself: a common table expression `tree(client_id)`.
pub(super) fn token_tree(seed: &str) -> String {
    format!(
        "WITH RECURSIVE tree(client_id) AS ({seed} \
         UNION SELECT t.client_id FROM finout_auth_tokens t \
         JOIN tree ON t.issued_by = tree.client_id)"
    )
}

impl<B: Backend> SqlStore<B> {
    /// Lock the account's row until `tx` ends, so that the account's token writes (issue,
    /// revoke, user removal) run one at a time: counts against the caps are exact, and a
    /// token tree deleted in one transaction cannot gain a member from another. `false` if
    /// there is no such account.
    pub(super) async fn lock_account(
        tx: &mut Transaction<'static, B>,
        account: AccountId,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT 1 AS one FROM finout_auth_accounts WHERE id = $1{}",
            B::LOCK_ROWS
        );
        let found = B::fetch_optional(On::Tx(tx), bind_str(sqlx::query(&sql), account))
            .await
            .map_err(backend_error)?;
        Ok(found.is_some())
    }

    /// How many rows `query` (a `SELECT COUNT(*) AS n ...`) counts.
    pub(super) async fn count<'q>(
        tx: &'q mut Transaction<'static, B>,
        query: super::backend::Query<'q, B>,
    ) -> Result<u64, StoreError> {
        let row = B::fetch_optional(On::Tx(tx), query)
            .await
            .map_err(backend_error)?;
        let n = row
            .as_ref()
            .map(|row| B::count(row, "n"))
            .transpose()
            .map_err(backend_error)?
            .flatten()
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn insert_token(
        &self,
        record: TokenRecord,
        limits: TokenLimits,
    ) -> Result<PurgedTokens, StoreError> {
        let mut tx = self.write().await?;
        let purged = Self::insert_token_in(&mut tx, &record, Some(limits)).await?;
        let ids: Vec<ClientId> = purged.all().cloned().collect();
        B::notify(&mut tx, &ids).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(purged)
    }

    /// Insert a token inside `tx` (which the caller commits, announcing what was purged),
    /// under `limits` (`None`: no caps and no purge, for a batch).
    pub(super) async fn insert_token_in(
        tx: &mut Transaction<'static, B>,
        record: &TokenRecord,
        limits: Option<TokenLimits>,
    ) -> Result<PurgedTokens, StoreError> {
        match (record.kind, record.user_id) {
            (TokenKind::Api, None) | (TokenKind::Personal, Some(_)) => {}
            _ => {
                return Err(StoreError::Conflict(
                    "a personal token needs exactly its user",
                ));
            }
        }
        // Locked until the token is stored, so a concurrent removal of the user or revoke of
        // the issuer waits and then deletes (and announces) this token too.
        if !Self::lock_account(tx, record.account_id).await? {
            return Err(StoreError::NotFound("account"));
        }
        if let Some(user) = record.user_id {
            let sql = "SELECT 1 AS one FROM finout_auth_users WHERE id = $1 AND account_id = $2";
            let query = bind_str(bind_str(sqlx::query(sql), user), record.account_id);
            let owner = B::fetch_optional(On::Tx(tx), query)
                .await
                .map_err(backend_error)?;
            if owner.is_none() {
                return Err(StoreError::NotFound("user"));
            }
        }
        if let Some(parent) = &record.issued_by {
            let sql = "SELECT 1 AS one FROM finout_auth_tokens \
                       WHERE client_id = $1 AND account_id = $2";
            let query = bind_str(bind_str(sqlx::query(sql), parent), record.account_id);
            let issuer = B::fetch_optional(On::Tx(tx), query)
                .await
                .map_err(backend_error)?;
            if issuer.is_none() {
                return Err(StoreError::NotFound("issuing token"));
            }
        }
        let mut purged = PurgedTokens::default();
        if let Some(limits) = limits {
            purged = Self::check_caps(tx, record, limits).await?;
        }
        let query = sqlx::query(
            "INSERT INTO finout_auth_tokens (client_id, kind, account_id, user_id, \
             description, role, secret_hash, created_at, expires_at, created_by, \
             last_used_at, issued_by, previous_secret_hash, previous_valid_until, disabled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        );
        let query = bind_str(query, &record.client_id);
        let query = bind_str(query, record.kind.as_str());
        let query = bind_str(query, record.account_id);
        let query = B::bind_text(query, record.user_id.map(|u| u.to_string()));
        let query = bind_str(query, &record.description);
        let query = bind_str(query, json(&record.role));
        let query = bind_str(query, record.secret_hash.as_phc());
        let query = B::bind_time(query, Some(utc(record.created_at)));
        let query = B::bind_time(query, record.expires_at.map(utc));
        let query = B::bind_text(query, record.created_by.map(|u| u.to_string()));
        let query = B::bind_time(query, record.last_used_at.map(utc));
        let query = B::bind_text(query, record.issued_by.as_ref().map(ToString::to_string));
        let previous = record.previous_secret.as_ref();
        let query = B::bind_text(query, previous.map(|p| p.hash.as_phc().to_owned()));
        let query = B::bind_time(query, previous.map(|p| utc(p.valid_until)));
        let query = B::bind_time(query, record.disabled_at.map(utc));
        B::execute(On::Tx(tx), query)
            .await
            .map_err(|e| write_error(e, "client id", "account"))?;
        Ok(purged)
    }

    pub(super) async fn delete_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        let mut tx = self.write().await?;
        if !Self::lock_account(&mut tx, account).await? {
            return Ok(None);
        }
        let sql = format!(
            "{} DELETE FROM finout_auth_tokens WHERE client_id IN (SELECT client_id FROM tree) \
             RETURNING {RETURNED_COLUMNS}",
            token_tree(
                "SELECT client_id FROM finout_auth_tokens WHERE client_id = $1 AND account_id = $2"
            )
        );
        let query = bind_str(bind_str(sqlx::query(&sql), client_id), account);
        let rows = B::fetch_all(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?;
        let mut root = None;
        let mut issued = Vec::new();
        for row in &rows {
            let record = record::<B>(row)?;
            if record.client_id == *client_id {
                root = Some(record);
            } else {
                issued.push(record.client_id);
            }
        }
        let Some(record) = root else {
            return Ok(None);
        };
        B::notify(&mut tx, std::slice::from_ref(client_id)).await?;
        B::notify(&mut tx, &issued).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(Some(RevokedToken { record, issued }))
    }

    /// Rotate, disable or enable a token, under its account's lock, announcing it.
    pub(super) async fn update_token(
        &self,
        account: AccountId,
        client_id: &ClientId,
        change: TokenChange,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.write().await?;
        if !Self::lock_account(&mut tx, account).await? {
            return Ok(None);
        }
        // Read under the lock, changed as every store changes it, written back whole.
        let sql = format!(
            "SELECT {RETURNED_COLUMNS} FROM finout_auth_tokens \
             WHERE client_id = $1 AND account_id = $2"
        );
        let query = bind_str(bind_str(sqlx::query(&sql), client_id), account);
        let Some(row) = B::fetch_optional(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        let mut record = record::<B>(&row)?;
        change.apply_to(&mut record);
        let query = sqlx::query(
            "UPDATE finout_auth_tokens SET secret_hash = $1, previous_secret_hash = $2, \
             previous_valid_until = $3, disabled_at = $4 WHERE client_id = $5 AND account_id = $6",
        );
        let previous = record.previous_secret.as_ref();
        let query = bind_str(query, record.secret_hash.as_phc());
        let query = B::bind_text(query, previous.map(|p| p.hash.as_phc().to_owned()));
        let query = B::bind_time(query, previous.map(|p| utc(p.valid_until)));
        let query = B::bind_time(query, record.disabled_at.map(utc));
        let query = bind_str(bind_str(query, client_id), account);
        B::execute(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?;
        B::notify(&mut tx, std::slice::from_ref(client_id)).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(Some(record))
    }

    pub(super) async fn remove_user(
        &self,
        account: AccountId,
        id: UserId,
    ) -> Result<Option<Vec<ClientId>>, StoreError> {
        let mut tx = self.write().await?;
        // The account's row first: a token issued to the user (or by one of their tokens)
        // concurrently either commits before (and is deleted and announced below) or finds
        // no user (or no issuer).
        if !Self::lock_account(&mut tx, account).await? {
            return Ok(None);
        }
        let sql = "SELECT 1 AS one FROM finout_auth_users WHERE id = $1 AND account_id = $2";
        let query = bind_str(bind_str(sqlx::query(sql), id), account);
        let found = B::fetch_optional(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?;
        if found.is_none() {
            return Ok(None);
        }
        let sql = format!(
            "{} DELETE FROM finout_auth_tokens WHERE client_id IN (SELECT client_id FROM tree) \
             RETURNING client_id",
            token_tree(
                "SELECT client_id FROM finout_auth_tokens WHERE user_id = $1 AND account_id = $2"
            )
        );
        let query = bind_str(bind_str(sqlx::query(&sql), id), account);
        let rows = B::fetch_all(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?;
        let ids = client_ids::<B>(&rows)?;
        let query = sqlx::query("DELETE FROM finout_auth_users WHERE id = $1 AND account_id = $2");
        let query = bind_str(bind_str(query, id), account);
        let removed = B::execute(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?;
        if removed == 0 {
            // Removed meanwhile by another writer: the transaction rolls back on drop.
            return Ok(None);
        }
        B::notify(&mut tx, &ids).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(Some(ids))
    }
}
