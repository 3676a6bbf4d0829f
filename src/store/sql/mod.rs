//! What the SQLite and PostgreSQL stores share: [`SqlStore`], the store logic over any
//! [`Backend`], with its statements written once (`$n` placeholders both understand); row
//! decoding and error mapping are in `rows`, the migration runner (the crate's own version
//! table) in `migrate`. Each backend's file says what differs: how it connects and locks for
//! migrations, its column types, and how it announces a change (PostgreSQL's change feed is
//! followed by `change_feed`).

mod backend;
#[cfg(feature = "postgres")]
pub(crate) mod change_feed;
mod expiry;
mod migrate;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod rows;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod tokens;

use sqlx::{Database, Pool, Transaction};
use time::OffsetDateTime;

use backend::{Backend, On, Query};
use rows::{
    backend_error, bind_str, client_ids, data_access_json, json, opt_text, parse_data_access,
    parse_json, record, text, user, utc, write_error,
};

use crate::{
    error::StoreError,
    model::{Account, AccountId, ClientId, TokenInfo, User, UserId},
    store::{
        batch::Batch,
        limits::UserLimits,
        traits::{ResolvedToken, TokenFilter, UserUpdate},
    },
};

const TOKEN_COLUMNS: &str = "t.client_id, t.kind, t.account_id, t.user_id, \
     t.description, t.role, t.secret_hash, t.created_at, t.expires_at, t.created_by, \
     t.last_used_at, t.issued_by, t.previous_secret_hash, t.previous_valid_until, t.disabled_at";

/// The same, unqualified: SQLite's RETURNING takes no table names.
const RETURNED_COLUMNS: &str = "client_id, kind, account_id, user_id, \
     description, role, secret_hash, created_at, expires_at, created_by, last_used_at, \
     issued_by, previous_secret_hash, previous_valid_until, disabled_at";

const USER_COLUMNS: &str = "id, account_id, email, roles, data_access";

/// The store logic, once for every backend. The public stores hold one and forward to it.
pub(super) struct SqlStore<B: Database> {
    pub(super) pool: Pool<B>,
}

impl<B: Database> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
        }
    }
}

impl<B: Backend> SqlStore<B> {
    /// A write transaction (see [`Backend::BEGIN_WRITE`]).
    async fn write(&self) -> Result<Transaction<'static, B>, StoreError> {
        self.pool
            .begin_with(B::BEGIN_WRITE)
            .await
            .map_err(backend_error)
    }

    pub(super) async fn find_token(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<ResolvedToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, u.email AS user_email, u.roles AS user_roles, \
             u.data_access AS user_data_access \
             FROM finout_auth_tokens t \
             LEFT JOIN finout_auth_users u ON u.id = t.user_id AND u.account_id = t.account_id \
             WHERE t.client_id = $1"
        );
        let query = bind_str(sqlx::query(&sql), client_id);
        let Some(row) = B::fetch_optional(On::Pool(&self.pool), query)
            .await
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        let record = record::<B>(&row)?;
        let user = match record.user_id {
            None => None,
            Some(user_id) => {
                let email = opt_text::<B>(&row, "user_email")?;
                let roles = opt_text::<B>(&row, "user_roles")?;
                let (Some(email), Some(roles)) = (email, roles) else {
                    return Ok(None); // the user is gone: so is the token
                };
                Some(User {
                    id: user_id,
                    account_id: record.account_id,
                    email,
                    roles: parse_json(&roles, "roles")?,
                    data_access: parse_data_access(opt_text::<B>(&row, "user_data_access")?)?,
                })
            }
        };
        Ok(Some(ResolvedToken::new(record, user)))
    }

    pub(super) async fn record_usage(
        &self,
        used: &[(ClientId, OffsetDateTime)],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (client_id, at) in used {
            let query = sqlx::query(
                "UPDATE finout_auth_tokens SET last_used_at = $2 \
                 WHERE client_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            );
            let query = B::bind_time(bind_str(query, client_id), Some(utc(*at)));
            B::execute(On::Tx(&mut tx), query)
                .await
                .map_err(backend_error)?;
        }
        tx.commit().await.map_err(backend_error)
    }

    fn account_insert<'q>(account: &Account) -> Query<'q, B> {
        let query = sqlx::query("INSERT INTO finout_auth_accounts (id, name) VALUES ($1, $2)");
        bind_str(bind_str(query, account.id), &account.name)
    }

    fn user_insert<'q>(user: &User) -> Query<'q, B> {
        let query = sqlx::query(
            "INSERT INTO finout_auth_users (id, account_id, email, roles, data_access) \
             VALUES ($1, $2, $3, $4, $5)",
        );
        let query = bind_str(bind_str(query, user.id), user.account_id);
        let query = bind_str(bind_str(query, &user.email), json(&user.roles));
        B::bind_text(query, data_access_json(&user.data_access))
    }

    pub(super) async fn insert_account(&self, account: Account) -> Result<(), StoreError> {
        B::execute(On::Pool(&self.pool), Self::account_insert(&account))
            .await
            .map_err(|e| write_error(e, "account id", "account"))?;
        Ok(())
    }

    /// Everything in `batch`, in one write transaction: an error rolls it all back.
    pub(super) async fn insert_batch(&self, batch: Batch) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for account in &batch.accounts {
            B::execute(On::Tx(&mut tx), Self::account_insert(account))
                .await
                .map_err(|e| write_error(e, "account id", "account"))?;
        }
        for user in &batch.users {
            B::execute(On::Tx(&mut tx), Self::user_insert(user))
                .await
                .map_err(|e| write_error(e, "user id or email", "account"))?;
        }
        for record in &batch.tokens {
            Self::insert_token_in(&mut tx, record, None).await?;
        }
        tx.commit().await.map_err(backend_error)
    }

    pub(super) async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let query = sqlx::query("SELECT id, name FROM finout_auth_accounts WHERE id = $1");
        let row = B::fetch_optional(On::Pool(&self.pool), bind_str(query, id))
            .await
            .map_err(backend_error)?;
        row.map(|row| {
            Ok(Account {
                id,
                name: text::<B>(&row, "name")?,
            })
        })
        .transpose()
    }

    pub(super) async fn insert_user(&self, user: User) -> Result<(), StoreError> {
        B::execute(On::Pool(&self.pool), Self::user_insert(&user))
            .await
            .map_err(|e| write_error(e, "user id or email", "account"))?;
        Ok(())
    }

    /// A user under the per-account cap: the account's row locked (as token writes lock
    /// it), so concurrent adds count one another.
    pub(super) async fn insert_user_within(
        &self,
        user: User,
        limits: UserLimits,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        if !Self::lock_account(&mut tx, user.account_id).await? {
            return Err(StoreError::NotFound("account"));
        }
        let sql = "SELECT COUNT(*) AS n FROM finout_auth_users WHERE account_id = $1";
        let users = Self::count(&mut tx, bind_str(sqlx::query(sql), user.account_id)).await?;
        if users >= u64::from(limits.per_account) {
            return Err(StoreError::LimitReached("users per account"));
        }
        B::execute(On::Tx(&mut tx), Self::user_insert(&user))
            .await
            .map_err(|e| write_error(e, "user id or email", "account"))?;
        tx.commit().await.map_err(backend_error)
    }

    pub(super) async fn get_user(
        &self,
        account: AccountId,
        id: UserId,
    ) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM finout_auth_users WHERE id = $1 AND account_id = $2"
        );
        let query = bind_str(bind_str(sqlx::query(&sql), id), account);
        let row = B::fetch_optional(On::Pool(&self.pool), query)
            .await
            .map_err(backend_error)?;
        row.as_ref().map(user::<B>).transpose()
    }

    pub(super) async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM finout_auth_users WHERE id = $1");
        let row = B::fetch_optional(On::Pool(&self.pool), bind_str(sqlx::query(&sql), id))
            .await
            .map_err(backend_error)?;
        row.as_ref().map(user::<B>).transpose()
    }

    pub(super) async fn list_users(&self, account: AccountId) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM finout_auth_users WHERE account_id = $1 ORDER BY email"
        );
        let query = bind_str(sqlx::query(&sql), account);
        let rows = B::fetch_all(On::Pool(&self.pool), query)
            .await
            .map_err(backend_error)?;
        rows.iter().map(user::<B>).collect()
    }

    pub(super) async fn update_user(
        &self,
        account: AccountId,
        id: UserId,
        update: UserUpdate,
    ) -> Result<Option<Vec<ClientId>>, StoreError> {
        let mut tx = self.write().await?;
        // The account's row first, as every token write does: a token issued to this user
        // meanwhile is either read below (and announced) or issued after the change.
        if !Self::lock_account(&mut tx, account).await? {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM finout_auth_users WHERE id = $1 AND account_id = $2"
        );
        let query = bind_str(bind_str(sqlx::query(&sql), id), account);
        let Some(row) = B::fetch_optional(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?
        else {
            return Ok(None);
        };
        if !update.holds_for(&user::<B>(&row)?) {
            return Err(StoreError::Conflict("user changed meanwhile"));
        }
        // `SET id = id` when nothing changes: still tells whether the user exists.
        let mut sets = vec!["id = id"];
        if update.roles.is_some() {
            sets.push("roles = $3");
        }
        if update.data_access.is_some() {
            sets.push(if update.roles.is_some() {
                "data_access = $4"
            } else {
                "data_access = $3"
            });
        }
        let sql = format!(
            "UPDATE finout_auth_users SET {} WHERE id = $1 AND account_id = $2",
            sets.join(", ")
        );
        let mut query = bind_str(bind_str(sqlx::query(&sql), id), account);
        if let Some(roles) = &update.roles {
            query = bind_str(query, json(roles));
        }
        if let Some(access) = &update.data_access {
            query = B::bind_text(query, data_access_json(access));
        }
        let updated = B::execute(On::Tx(&mut tx), query)
            .await
            .map_err(backend_error)?;
        if updated == 0 {
            return Ok(None);
        }
        let query = sqlx::query("SELECT client_id FROM finout_auth_tokens WHERE user_id = $1");
        let rows = B::fetch_all(On::Tx(&mut tx), bind_str(query, id))
            .await
            .map_err(backend_error)?;
        let ids = client_ids::<B>(&rows)?;
        B::notify(&mut tx, &ids).await?;
        tx.commit().await.map_err(backend_error)?;
        Ok(Some(ids))
    }

    pub(super) async fn list_tokens(
        &self,
        account: AccountId,
        filter: TokenFilter,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let (condition, user) = match filter {
            TokenFilter::All => ("", None),
            TokenFilter::Api => (" AND t.kind = 'api'", None),
            TokenFilter::PersonalOf(user) => (" AND t.user_id = $2", Some(user)),
        };
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM finout_auth_tokens t WHERE t.account_id = $1{condition} \
             ORDER BY t.created_at, t.client_id"
        );
        let mut query = bind_str(sqlx::query(&sql), account);
        if let Some(user) = user {
            query = bind_str(query, user);
        }
        let rows = B::fetch_all(On::Pool(&self.pool), query)
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| record::<B>(row).map(|r| r.info()))
            .collect()
    }
}
