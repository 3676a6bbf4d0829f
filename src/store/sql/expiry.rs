//! Expired tokens in the SQL stores: the live-token caps count only tokens not expired at
//! the new token's issue time; the retention caps purge the longest-expired tokens to make
//! room, in the insert's transaction; and [`SqlStore::purge_expired`] deletes those past
//! the retention, one account (one lock, one transaction) at a time. A purged token goes
//! with every token it issued, and every deletion is announced as a revoke is.

use std::collections::HashSet;

use sqlx::Transaction;
use time::OffsetDateTime;

use super::{
    SqlStore,
    backend::{Backend, On},
    rows::{backend_error, bind_str, client_ids, parse_id, text},
    tokens::token_tree,
};
use crate::{
    error::StoreError,
    model::{AccountId, ClientId, TokenRecord},
    store::{limits::TokenLimits, traits::PurgedTokens},
};

/// Whose tokens a count or a purge looks at: a user's (personal tokens) or an account's.
#[derive(Clone, Copy)]
enum Owner<'a> {
    User(&'a str),
    Account(&'a str),
}

impl Owner<'_> {
    fn column(self) -> &'static str {
        match self {
            Owner::User(_) => "user_id",
            Owner::Account(_) => "account_id",
        }
    }

    fn id(self) -> String {
        match self {
            Owner::User(id) | Owner::Account(id) => id.to_owned(),
        }
    }
}

/// `$1` the owner, `$2` now, `$3` how many: the owner's tokens expired at `$2`, the longest
/// expired first.
fn expired_of(owner: Owner<'_>, key: &str) -> String {
    format!(
        "SELECT client_id FROM finout_auth_tokens WHERE {} = $1 \
         AND expires_at IS NOT NULL AND {key} <= $2 ORDER BY {key}, client_id LIMIT $3",
        owner.column()
    )
}

impl<B: Backend> SqlStore<B> {
    /// The caps for `record` inside `tx` (its account locked): refuse past a live cap, else
    /// purge what the retention caps ask to make room. Returns what was purged.
    pub(super) async fn check_caps(
        tx: &mut Transaction<'static, B>,
        record: &TokenRecord,
        limits: TokenLimits,
    ) -> Result<PurgedTokens, StoreError> {
        let now = record.created_at;
        let user = record.user_id.map(|u| u.to_string());
        let account = record.account_id.to_string();
        if let Some(user) = &user
            && Self::live(tx, Owner::User(user), now).await? >= u64::from(limits.per_user)
        {
            return Err(StoreError::LimitReached("personal tokens per user"));
        }
        let in_account = Owner::Account(&account);
        if Self::live(tx, in_account, now).await? >= u64::from(limits.per_account) {
            return Err(StoreError::LimitReached("tokens per account"));
        }
        let mut purged = PurgedTokens::default();
        if let Some(user) = &user {
            Self::make_room(
                tx,
                Owner::User(user),
                limits.retained_user(),
                now,
                &mut purged,
            )
            .await?;
        }
        Self::make_room(tx, in_account, limits.retained_account(), now, &mut purged).await?;
        Ok(purged)
    }

    /// How many of `owner`'s tokens are live at `now`.
    async fn live(
        tx: &mut Transaction<'static, B>,
        owner: Owner<'_>,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM finout_auth_tokens WHERE {} = $1 \
             AND (expires_at IS NULL OR {} > $2)",
            owner.column(),
            B::instant("expires_at")
        );
        let query = B::bind_instant(bind_str(sqlx::query(&sql), owner.id()), now);
        Self::count(tx, query).await
    }

    /// Purge `owner`'s longest-expired tokens until fewer than `cap` of theirs remain.
    async fn make_room(
        tx: &mut Transaction<'static, B>,
        owner: Owner<'_>,
        cap: u32,
        now: OffsetDateTime,
        purged: &mut PurgedTokens,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM finout_auth_tokens WHERE {} = $1",
            owner.column()
        );
        let held = Self::count(tx, bind_str(sqlx::query(&sql), owner.id())).await?;
        let excess = (held + 1).saturating_sub(u64::from(cap));
        if excess > 0 {
            Self::purge_oldest(tx, owner, now, excess, purged).await?;
        }
        Ok(())
    }

    /// Delete up to `n` of `owner`'s tokens expired at `now`, the longest expired first, with
    /// what they issued; recorded in `purged`. Announcing them is the caller's.
    async fn purge_oldest(
        tx: &mut Transaction<'static, B>,
        owner: Owner<'_>,
        now: OffsetDateTime,
        n: u64,
        purged: &mut PurgedTokens,
    ) -> Result<(), StoreError> {
        let oldest = expired_of(owner, &B::instant("expires_at"));
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let query = B::bind_int(
            B::bind_instant(bind_str(sqlx::query(&oldest), owner.id()), now),
            limit,
        );
        let rows = B::fetch_all(On::Tx(tx), query)
            .await
            .map_err(backend_error)?;
        let expired = client_ids::<B>(&rows)?;
        if expired.is_empty() {
            return Ok(());
        }
        // The same selection again, as the tree's seed: under the account's lock it finds
        // the same tokens.
        let sql = format!(
            "{} DELETE FROM finout_auth_tokens WHERE client_id IN (SELECT client_id FROM tree) \
             RETURNING client_id",
            token_tree(&format!(
                "SELECT client_id FROM finout_auth_tokens WHERE client_id IN ({oldest})"
            ))
        );
        let query = B::bind_int(
            B::bind_instant(bind_str(sqlx::query(&sql), owner.id()), now),
            limit,
        );
        let rows = B::fetch_all(On::Tx(tx), query)
            .await
            .map_err(backend_error)?;
        let roots: HashSet<&ClientId> = expired.iter().collect();
        purged.issued.extend(
            client_ids::<B>(&rows)?
                .into_iter()
                .filter(|id| !roots.contains(id)),
        );
        purged.expired.extend(expired);
        Ok(())
    }

    /// Delete up to `max` tokens expired by `expired_by`, the longest expired first, with
    /// what they issued: one transaction per account, each holding its account's lock as
    /// every token write does (so a token issued meanwhile by one of them goes too).
    pub(super) async fn purge_expired(
        &self,
        expired_by: OffsetDateTime,
        max: u32,
    ) -> Result<PurgedTokens, StoreError> {
        let key = B::instant("expires_at");
        let sql = format!(
            "SELECT account_id FROM finout_auth_tokens \
             WHERE expires_at IS NOT NULL AND {key} <= $1 ORDER BY {key}, client_id LIMIT $2"
        );
        let mut purged = PurgedTokens::default();
        loop {
            let left = u64::from(max).saturating_sub(purged.expired.len() as u64);
            if left == 0 {
                return Ok(purged);
            }
            // The accounts of the `left` longest-expired tokens, in that order.
            let query = B::bind_int(
                B::bind_instant(sqlx::query(&sql), expired_by),
                i64::try_from(left).unwrap_or(i64::MAX),
            );
            let rows = B::fetch_all(On::Pool(&self.pool), query)
                .await
                .map_err(backend_error)?;
            if rows.is_empty() {
                return Ok(purged);
            }
            let found = rows.len() as u64;
            let before = purged.expired.len();
            let mut accounts: Vec<AccountId> = Vec::new();
            for row in &rows {
                let account = parse_id(&text::<B>(row, "account_id")?, "account id")?;
                if !accounts.contains(&account) {
                    accounts.push(account);
                }
            }
            for account in accounts {
                let left = u64::from(max).saturating_sub(purged.expired.len() as u64);
                if left == 0 {
                    break;
                }
                self.purge_account(account, expired_by, left, &mut purged)
                    .await?;
            }
            // Fewer found than asked for: none is left. Otherwise look again, as a tree may
            // have taken some of the longest expired along as issued tokens.
            if found < left || purged.expired.len() == before {
                return Ok(purged);
            }
        }
    }

    /// One account's share of a purge, in its own transaction.
    async fn purge_account(
        &self,
        account: AccountId,
        expired_by: OffsetDateTime,
        n: u64,
        purged: &mut PurgedTokens,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        if !Self::lock_account(&mut tx, account).await? {
            return Ok(());
        }
        let mut mine = PurgedTokens::default();
        let id = account.to_string();
        Self::purge_oldest(&mut tx, Owner::Account(&id), expired_by, n, &mut mine).await?;
        let ids: Vec<ClientId> = mine.all().cloned().collect();
        B::notify(&mut tx, &ids).await?;
        tx.commit().await.map_err(backend_error)?;
        purged.expired.extend(mine.expired);
        purged.issued.extend(mine.issued);
        Ok(())
    }
}
