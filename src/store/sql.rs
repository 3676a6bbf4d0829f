//! What the SQLite and PostgreSQL stores share: the SQL (written once, with `$n`
//! placeholders both understand), row decoding and error mapping. [`sql_store!`] expands
//! the two store traits for one backend.

use time::{OffsetDateTime, UtcOffset};

use crate::{
    error::StoreError,
    principal::{DataAccess, Role},
    token::{ClientId, SecretHash, TokenKind, TokenRecord},
};

pub(super) const TOKEN_COLUMNS: &str = "t.client_id, t.kind, t.account_id, t.user_id, \
     t.description, t.role, t.secret_hash, t.created_at, t.expires_at, t.created_by, \
     t.last_used_at";

/// The same, unqualified: SQLite's RETURNING takes no table names.
pub(super) const RETURNED_COLUMNS: &str = "client_id, kind, account_id, user_id, \
     description, role, secret_hash, created_at, expires_at, created_by, last_used_at";

pub(super) fn utc(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(UtcOffset::UTC)
}

pub(super) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

/// Map constraint violations to the store's error kinds; anything else is a backend error.
pub(super) fn write_error(
    e: sqlx::Error,
    conflict: &'static str,
    missing: &'static str,
) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(conflict),
            sqlx::error::ErrorKind::ForeignKeyViolation => StoreError::NotFound(missing),
            _ => backend(e),
        },
        _ => backend(e),
    }
}

fn corrupt(what: &'static str) -> StoreError {
    #[derive(Debug, thiserror::Error)]
    #[error("corrupt row: bad {0}")]
    struct Corrupt(&'static str);
    StoreError::backend(Corrupt(what))
}

pub(super) fn parse_roles(json: &str) -> Result<Vec<Role>, StoreError> {
    serde_json::from_str(json).map_err(|_| corrupt("roles"))
}

pub(super) fn roles_json(roles: &[Role]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".into())
}

pub(super) fn parse_data_access(json: Option<String>) -> Result<DataAccess, StoreError> {
    match json {
        None => Ok(DataAccess::All),
        Some(json) => serde_json::from_str::<Vec<String>>(&json)
            .map(DataAccess::only)
            .map_err(|_| corrupt("data access")),
    }
}

pub(super) fn data_access_json(access: &DataAccess) -> Option<String> {
    access
        .ids()
        .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
}

pub(super) fn role_json(role: &Role) -> String {
    serde_json::to_string(role).unwrap_or_else(|_| "null".into())
}

pub(super) fn parse_id<T: std::str::FromStr>(s: &str, what: &'static str) -> Result<T, StoreError> {
    s.parse().map_err(|_| corrupt(what))
}

/// The raw columns of a token row, decoded by each backend.
pub(super) struct TokenRow {
    pub client_id: String,
    pub kind: String,
    pub account_id: String,
    pub user_id: Option<String>,
    pub description: String,
    pub role: String,
    pub secret_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub created_by: Option<String>,
    pub last_used_at: Option<OffsetDateTime>,
}

impl TokenRow {
    pub(super) fn into_record(self) -> Result<TokenRecord, StoreError> {
        let kind = match self.kind.as_str() {
            "api" => TokenKind::Api,
            "personal" => TokenKind::Personal,
            _ => return Err(corrupt("kind")),
        };
        let mut record = TokenRecord::new(
            ClientId::from(self.client_id),
            kind,
            parse_id(&self.account_id, "account id")?,
            self.user_id.map(|u| parse_id(&u, "user id")).transpose()?,
            self.description,
            serde_json::from_str(&self.role).map_err(|_| corrupt("role"))?,
            SecretHash::from_phc(self.secret_hash),
            utc(self.created_at),
            self.expires_at.map(utc),
            self.created_by
                .map(|u| parse_id(&u, "created_by"))
                .transpose()?,
        );
        record.last_used_at = self.last_used_at.map(utc);
        Ok(record)
    }
}

/// Implements `TokenStore` and `TokenAdminStore` for `$store` (with a `pool` field of
/// `sqlx::Pool<$db>` and a `notify(&mut tx, &ClientId)` method for the change feed).
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::Row as _;
        use time::OffsetDateTime;

        use $crate::{
            error::StoreError,
            principal::{Account, AccountId, User, UserId},
            store::{
                ResolvedToken, TokenAdminStore, TokenFilter, TokenStore, UserUpdate,
                sql::{self, TokenRow},
            },
            token::{ClientId, TokenInfo, TokenKind, TokenRecord},
        };

        fn token_row(row: &<$db as sqlx::Database>::Row) -> Result<TokenRow, sqlx::Error> {
            Ok(TokenRow {
                client_id: row.try_get("client_id")?,
                kind: row.try_get("kind")?,
                account_id: row.try_get("account_id")?,
                user_id: row.try_get("user_id")?,
                description: row.try_get("description")?,
                role: row.try_get("role")?,
                secret_hash: row.try_get("secret_hash")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                created_by: row.try_get("created_by")?,
                last_used_at: row.try_get("last_used_at")?,
            })
        }

        fn client_ids(rows: &[<$db as sqlx::Database>::Row]) -> Result<Vec<ClientId>, StoreError> {
            rows.iter()
                .map(|row| row.try_get::<String, _>("client_id").map(ClientId::from))
                .collect::<Result<_, _>>()
                .map_err(sql::backend)
        }

        fn record(row: &<$db as sqlx::Database>::Row) -> Result<TokenRecord, StoreError> {
            token_row(row).map_err(sql::backend)?.into_record()
        }

        fn user(row: &<$db as sqlx::Database>::Row) -> Result<User, StoreError> {
            let id: String = row.try_get("id").map_err(sql::backend)?;
            let account_id: String = row.try_get("account_id").map_err(sql::backend)?;
            let roles: String = row.try_get("roles").map_err(sql::backend)?;
            let data_access: Option<String> = row.try_get("data_access").map_err(sql::backend)?;
            Ok(User {
                id: sql::parse_id(&id, "user id")?,
                account_id: sql::parse_id(&account_id, "account id")?,
                email: row.try_get("email").map_err(sql::backend)?,
                roles: sql::parse_roles(&roles)?,
                data_access: sql::parse_data_access(data_access)?,
            })
        }

        #[async_trait]
        impl TokenStore for $store {
            async fn find_token(
                &self,
                client_id: &ClientId,
            ) -> Result<Option<ResolvedToken>, StoreError> {
                let query = format!(
                    "SELECT {}, u.email AS user_email, u.roles AS user_roles, \
                     u.account_id AS user_account_id, u.data_access AS user_data_access \
                     FROM finout_auth_tokens t \
                     LEFT JOIN finout_auth_users u ON u.id = t.user_id \
                     WHERE t.client_id = $1",
                    sql::TOKEN_COLUMNS
                );
                let Some(row) = sqlx::query(&query)
                    .bind(client_id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(sql::backend)?
                else {
                    return Ok(None);
                };
                let record = record(&row)?;
                let user = match record.user_id {
                    None => None,
                    Some(user_id) => {
                        let email: Option<String> =
                            row.try_get("user_email").map_err(sql::backend)?;
                        let roles: Option<String> =
                            row.try_get("user_roles").map_err(sql::backend)?;
                        let (Some(email), Some(roles)) = (email, roles) else {
                            return Ok(None); // the user is gone: so is the token
                        };
                        let data_access: Option<String> =
                            row.try_get("user_data_access").map_err(sql::backend)?;
                        Some(User {
                            id: user_id,
                            account_id: record.account_id,
                            email,
                            roles: sql::parse_roles(&roles)?,
                            data_access: sql::parse_data_access(data_access)?,
                        })
                    }
                };
                Ok(Some(ResolvedToken::new(record, user)))
            }

            async fn record_usage(
                &self,
                used: &[(ClientId, OffsetDateTime)],
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(sql::backend)?;
                for (client_id, at) in used {
                    sqlx::query(
                        "UPDATE finout_auth_tokens SET last_used_at = $2 \
                         WHERE client_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    )
                    .bind(client_id.as_str())
                    .bind(sql::utc(*at))
                    .execute(&mut *tx)
                    .await
                    .map_err(sql::backend)?;
                }
                tx.commit().await.map_err(sql::backend)
            }
        }

        #[async_trait]
        impl TokenAdminStore for $store {
            async fn insert_account(&self, account: Account) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO finout_auth_accounts (id, name) VALUES ($1, $2)")
                    .bind(account.id.to_string())
                    .bind(&account.name)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| sql::write_error(e, "account id", "account"))?;
                Ok(())
            }

            async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
                let row = sqlx::query("SELECT id, name FROM finout_auth_accounts WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(sql::backend)?;
                row.map(|row| {
                    Ok(Account {
                        id,
                        name: row.try_get("name").map_err(sql::backend)?,
                    })
                })
                .transpose()
            }

            async fn insert_user(&self, user: User) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO finout_auth_users (id, account_id, email, roles, data_access) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(user.id.to_string())
                .bind(user.account_id.to_string())
                .bind(&user.email)
                .bind(sql::roles_json(&user.roles))
                .bind(sql::data_access_json(&user.data_access))
                .execute(&self.pool)
                .await
                .map_err(|e| sql::write_error(e, "user id or email", "account"))?;
                Ok(())
            }

            async fn get_user(
                &self,
                account: AccountId,
                id: UserId,
            ) -> Result<Option<User>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, account_id, email, roles, data_access FROM finout_auth_users \
                     WHERE id = $1 AND account_id = $2",
                )
                .bind(id.to_string())
                .bind(account.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(sql::backend)?;
                row.as_ref().map(user).transpose()
            }

            async fn list_users(&self, account: AccountId) -> Result<Vec<User>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, account_id, email, roles, data_access FROM finout_auth_users \
                     WHERE account_id = $1 ORDER BY email",
                )
                .bind(account.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(sql::backend)?;
                rows.iter().map(user).collect()
            }

            async fn update_user(
                &self,
                account: AccountId,
                id: UserId,
                update: UserUpdate,
            ) -> Result<Option<Vec<ClientId>>, StoreError> {
                let mut tx = self.pool.begin().await.map_err(sql::backend)?;
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
                let query = format!(
                    "UPDATE finout_auth_users SET {} WHERE id = $1 AND account_id = $2",
                    sets.join(", ")
                );
                let mut query = sqlx::query(&query)
                    .bind(id.to_string())
                    .bind(account.to_string());
                if let Some(roles) = &update.roles {
                    query = query.bind(sql::roles_json(roles));
                }
                if let Some(access) = &update.data_access {
                    query = query.bind(sql::data_access_json(access));
                }
                let updated = query.execute(&mut *tx).await.map_err(sql::backend)?;
                if updated.rows_affected() == 0 {
                    return Ok(None);
                }
                let ids: Vec<ClientId> = sqlx::query(
                    "SELECT client_id FROM finout_auth_tokens WHERE user_id = $1",
                )
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(sql::backend)
                .and_then(|rows| client_ids(&rows))?;
                for client_id in &ids {
                    Self::notify(&mut tx, client_id).await?;
                }
                tx.commit().await.map_err(sql::backend)?;
                Ok(Some(ids))
            }

            async fn remove_user(
                &self,
                account: AccountId,
                id: UserId,
            ) -> Result<Option<Vec<ClientId>>, StoreError> {
                let mut tx = self.pool.begin().await.map_err(sql::backend)?;
                let ids: Vec<ClientId> = sqlx::query(
                    "DELETE FROM finout_auth_tokens WHERE user_id = $1 AND account_id = $2 \
                     RETURNING client_id",
                )
                .bind(id.to_string())
                .bind(account.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(sql::backend)
                .and_then(|rows| client_ids(&rows))?;
                let removed = sqlx::query(
                    "DELETE FROM finout_auth_users WHERE id = $1 AND account_id = $2",
                )
                .bind(id.to_string())
                .bind(account.to_string())
                .execute(&mut *tx)
                .await
                .map_err(sql::backend)?;
                if removed.rows_affected() == 0 {
                    // Not this account's user: the transaction rolls back on drop.
                    return Ok(None);
                }
                for client_id in &ids {
                    Self::notify(&mut tx, client_id).await?;
                }
                tx.commit().await.map_err(sql::backend)?;
                Ok(Some(ids))
            }

            async fn insert_token(&self, record: TokenRecord) -> Result<(), StoreError> {
                match (record.kind, record.user_id) {
                    (TokenKind::Api, None) | (TokenKind::Personal, Some(_)) => {}
                    _ => {
                        return Err(StoreError::Conflict(
                            "a personal token needs exactly its user",
                        ));
                    }
                }
                let mut tx = self.pool.begin().await.map_err(sql::backend)?;
                if let Some(user) = record.user_id {
                    let owner = sqlx::query(
                        "SELECT 1 AS one FROM finout_auth_users WHERE id = $1 AND account_id = $2",
                    )
                    .bind(user.to_string())
                    .bind(record.account_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql::backend)?;
                    if owner.is_none() {
                        return Err(StoreError::NotFound("user"));
                    }
                }
                sqlx::query(
                    "INSERT INTO finout_auth_tokens (client_id, kind, account_id, user_id, \
                     description, role, secret_hash, created_at, expires_at, created_by, \
                     last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(record.client_id.as_str())
                .bind(record.kind.as_str())
                .bind(record.account_id.to_string())
                .bind(record.user_id.map(|u| u.to_string()))
                .bind(&record.description)
                .bind(sql::role_json(&record.role))
                .bind(record.secret_hash.as_phc())
                .bind(sql::utc(record.created_at))
                .bind(record.expires_at.map(sql::utc))
                .bind(record.created_by.map(|u| u.to_string()))
                .bind(record.last_used_at.map(sql::utc))
                .execute(&mut *tx)
                .await
                .map_err(|e| sql::write_error(e, "client id", "account"))?;
                tx.commit().await.map_err(sql::backend)
            }

            async fn delete_token(
                &self,
                account: AccountId,
                client_id: &ClientId,
            ) -> Result<Option<TokenRecord>, StoreError> {
                let mut tx = self.pool.begin().await.map_err(sql::backend)?;
                let query = format!(
                    "DELETE FROM finout_auth_tokens WHERE client_id = $1 AND account_id = $2 \
                     RETURNING {}",
                    sql::RETURNED_COLUMNS
                );
                let row = sqlx::query(&query)
                    .bind(client_id.as_str())
                    .bind(account.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql::backend)?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let record = record(&row)?;
                Self::notify(&mut tx, client_id).await?;
                tx.commit().await.map_err(sql::backend)?;
                Ok(Some(record))
            }

            async fn list_tokens(
                &self,
                account: AccountId,
                filter: TokenFilter,
            ) -> Result<Vec<TokenInfo>, StoreError> {
                let (condition, user) = match filter {
                    TokenFilter::All => ("", None),
                    TokenFilter::Api => (" AND t.kind = 'api'", None),
                    TokenFilter::PersonalOf(user) => (" AND t.user_id = $2", Some(user.to_string())),
                };
                let query = format!(
                    "SELECT {} FROM finout_auth_tokens t WHERE t.account_id = $1{condition} \
                     ORDER BY t.created_at, t.client_id",
                    sql::TOKEN_COLUMNS
                );
                let mut query = sqlx::query(&query).bind(account.to_string());
                if let Some(user) = user {
                    query = query.bind(user);
                }
                let rows = query.fetch_all(&self.pool).await.map_err(sql::backend)?;
                rows.iter().map(|row| record(row).map(|r| r.info())).collect()
            }
        }
    };
}

pub(super) use sql_store;
