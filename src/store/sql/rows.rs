//! Rows and values: decoding a row into the model (a corrupt row is a backend error naming
//! the column), encoding what the schema keeps as JSON, and mapping sqlx errors.

use time::OffsetDateTime;

use super::backend::{Backend, Query};
use crate::{
    error::StoreError,
    model::{ClientId, DataAccess, PreviousSecret, SecretHash, TokenKind, TokenRecord, User},
};

pub(super) fn backend_error(e: sqlx::Error) -> StoreError {
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
            _ => backend_error(e),
        },
        _ => backend_error(e),
    }
}

/// A row that does not decode: a backend error naming the column.
#[derive(Debug, thiserror::Error)]
#[error("corrupt row: bad {0}")]
struct Corrupt(&'static str);

fn corrupt(what: &'static str) -> StoreError {
    StoreError::backend(Corrupt(what))
}

pub(super) fn required<T>(value: Option<T>, what: &'static str) -> Result<T, StoreError> {
    value.ok_or_else(|| corrupt(what))
}

pub(super) fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Roles, role lists and id lists always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

pub(super) fn parse_id<T: std::str::FromStr>(
    text: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    text.parse().map_err(|_| corrupt(what))
}

pub(super) fn parse_data_access(json: Option<String>) -> Result<DataAccess, StoreError> {
    json.map_or(Ok(DataAccess::All), |json| {
        parse_json::<Vec<String>>(&json, "data access").map(DataAccess::only)
    })
}

pub(super) fn data_access_json(access: &DataAccess) -> Option<String> {
    access.ids().map(|ids| json(&ids))
}

pub(super) fn utc(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(time::UtcOffset::UTC)
}

pub(super) fn text<B: Backend>(row: &B::Row, column: &'static str) -> Result<String, StoreError> {
    required(B::text(row, column).map_err(backend_error)?, column)
}

pub(super) fn opt_text<B: Backend>(
    row: &B::Row,
    column: &'static str,
) -> Result<Option<String>, StoreError> {
    B::text(row, column).map_err(backend_error)
}

pub(super) fn opt_time<B: Backend>(
    row: &B::Row,
    column: &'static str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(B::time(row, column).map_err(backend_error)?.map(utc))
}

pub(super) fn record<B: Backend>(row: &B::Row) -> Result<TokenRecord, StoreError> {
    let kind = match text::<B>(row, "kind")?.as_str() {
        "api" => TokenKind::Api,
        "personal" => TokenKind::Personal,
        _ => return Err(corrupt("kind")),
    };
    let user_id = opt_text::<B>(row, "user_id")?;
    let created_by = opt_text::<B>(row, "created_by")?;
    let mut record = TokenRecord::new(
        ClientId::from(text::<B>(row, "client_id")?),
        kind,
        parse_id(&text::<B>(row, "account_id")?, "account id")?,
        user_id.map(|u| parse_id(&u, "user id")).transpose()?,
        text::<B>(row, "description")?,
        parse_json(&text::<B>(row, "role")?, "role")?,
        SecretHash::from_phc(text::<B>(row, "secret_hash")?),
        required(opt_time::<B>(row, "created_at")?, "created_at")?,
        opt_time::<B>(row, "expires_at")?,
        created_by.map(|u| parse_id(&u, "created_by")).transpose()?,
    );
    record.last_used_at = opt_time::<B>(row, "last_used_at")?;
    record.issued_by = opt_text::<B>(row, "issued_by")?.map(ClientId::from);
    let previous = opt_text::<B>(row, "previous_secret_hash")?;
    let valid_until = opt_time::<B>(row, "previous_valid_until")?;
    record.previous_secret = match (previous, valid_until) {
        (Some(hash), Some(valid_until)) => Some(PreviousSecret {
            hash: SecretHash::from_phc(hash),
            valid_until,
        }),
        (None, None) => None,
        _ => return Err(corrupt("previous_valid_until")),
    };
    record.disabled_at = opt_time::<B>(row, "disabled_at")?;
    Ok(record)
}

pub(super) fn user<B: Backend>(row: &B::Row) -> Result<User, StoreError> {
    Ok(User {
        id: parse_id(&text::<B>(row, "id")?, "user id")?,
        account_id: parse_id(&text::<B>(row, "account_id")?, "account id")?,
        email: text::<B>(row, "email")?,
        roles: parse_json(&text::<B>(row, "roles")?, "roles")?,
        data_access: parse_data_access(opt_text::<B>(row, "data_access")?)?,
    })
}

pub(super) fn client_ids<B: Backend>(rows: &[B::Row]) -> Result<Vec<ClientId>, StoreError> {
    rows.iter()
        .map(|row| text::<B>(row, "client_id").map(ClientId::from))
        .collect()
}

pub(super) fn bind_str<'q, B: Backend>(query: Query<'q, B>, value: impl ToString) -> Query<'q, B> {
    B::bind_text(query, Some(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    #[test]
    fn roles_and_data_access_read_back_as_written() {
        let roles = vec![Role::Admin, Role::custom("FinOps", [])];
        assert_eq!(
            parse_json::<Vec<Role>>(&json(&roles), "roles").unwrap(),
            roles
        );
        let some = DataAccess::only(["b", "a"]);
        assert_eq!(parse_data_access(data_access_json(&some)).unwrap(), some);
        assert_eq!(
            parse_data_access(data_access_json(&DataAccess::All)).unwrap(),
            DataAccess::All
        );
        assert!(parse_data_access(Some("nonsense".into())).is_err());
    }
}
