//! `/admin`: who the caller is, API and personal tokens, and users, with Finout's rules
//! (enforced by [`finout_auth::AdminSession`]: who may issue, list and revoke which token,
//! and the caps). Its refusals answer in Finout's error shape: 403 `forbidden`, 409
//! `conflict` for a cap, 400 `invalid_request` for a field past its limit.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use finout_auth::{
    AdminError, ClientId, IssuedToken, NewToken, Principal, Role, UserId,
    clock::Clock,
    model::{DataAccess, TokenInfo, TokenKind, User},
    store::UserUpdate,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    error::{Answer, Body, MockError, Path},
    mock::Mock,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WhoAmI {
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    roles: Vec<Role>,
    token_role: Role,
    client_id: ClientId,
}

pub(crate) async fn whoami(principal: Principal) -> Json<WhoAmI> {
    Json(WhoAmI {
        kind: match principal.user_id() {
            Some(_) => "user",
            None => "account",
        },
        account_id: principal.account_id().to_string(),
        user_id: principal.user_id().map(|u| u.to_string()),
        roles: principal
            .user_roles()
            .map_or_else(|| vec![principal.token_role().clone()], <[Role]>::to_vec),
        token_role: principal.token_role().clone(),
        client_id: principal.client_id().clone(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateToken {
    description: String,
    role: Role,
    #[serde(default)]
    expires_in_minutes: Option<u32>,
}

impl CreateToken {
    fn into_new(self) -> NewToken {
        let new = NewToken::new(self.description, self.role);
        match self.expires_in_minutes {
            Some(minutes) => new.expires_in_minutes(minutes),
            None => new,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedToken {
    client_id: ClientId,
    secret_key: String,
    #[serde(rename = "type")]
    kind: TokenKind,
    description: String,
    role: Role,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

fn created(issued: IssuedToken) -> (StatusCode, Json<CreatedToken>) {
    let info = issued.info;
    (
        StatusCode::CREATED,
        Json(CreatedToken {
            client_id: issued.client_id,
            secret_key: issued.secret_key.expose_secret().to_owned(),
            kind: info.kind,
            description: info.description,
            role: info.role,
            created_at: info.created_at,
            expires_at: info.expires_at,
        }),
    )
}

/// A token as the listings show it: what the library lists, and whether it has expired (it
/// stays listed for the retention, 30 days, before it is purged).
#[derive(Serialize)]
pub(crate) struct TokenView {
    #[serde(flatten)]
    info: TokenInfo,
    expired: bool,
}

#[derive(Serialize)]
pub(crate) struct TokenList {
    tokens: Vec<TokenView>,
}

impl TokenList {
    fn at(tokens: Vec<TokenInfo>, now: OffsetDateTime) -> Self {
        let tokens = tokens
            .into_iter()
            .map(|info| TokenView {
                expired: info.expires_at.is_some_and(|at| now >= at),
                info,
            })
            .collect();
        TokenList { tokens }
    }
}

pub(crate) async fn create_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<CreateToken>,
) -> Answer<impl IntoResponse> {
    let session = mock.inner.admin.acting_as(&principal);
    Ok(created(session.issue_api_token(body.into_new()).await?))
}

pub(crate) async fn list_api_tokens(
    State(mock): State<Mock>,
    principal: Principal,
) -> Answer<Json<TokenList>> {
    let tokens = mock
        .inner
        .admin
        .acting_as(&principal)
        .list_api_tokens()
        .await?;
    Ok(Json(TokenList::at(tokens, mock.inner.admin.clock().now())))
}

pub(crate) async fn revoke_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    let session = mock.inner.admin.acting_as(&principal);
    session.revoke_api_token(&ClientId::from(client_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn create_personal_token(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<CreateToken>,
) -> Answer<impl IntoResponse> {
    let session = mock.inner.admin.acting_as(&principal);
    Ok(created(
        session.issue_personal_token(body.into_new()).await?,
    ))
}

pub(crate) async fn list_personal_tokens(
    State(mock): State<Mock>,
    principal: Principal,
) -> Answer<Json<TokenList>> {
    let tokens = mock
        .inner
        .admin
        .acting_as(&principal)
        .list_personal_tokens()
        .await?;
    Ok(Json(TokenList::at(tokens, mock.inner.admin.clock().now())))
}

pub(crate) async fn revoke_personal_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    let session = mock.inner.admin.acting_as(&principal);
    session
        .revoke_personal_token(&ClientId::from(client_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /admin/{api,personal}-tokens/{clientId}/rotate`: `{"graceSeconds": N}`, how long
/// the replaced secret keeps working (absent: 0, at once; at most 604,800, 7 days).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Rotate {
    #[serde(default)]
    grace_seconds: u64,
}

/// A rotated token: the new secret (shown once) and until when the replaced one works.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotatedToken {
    #[serde(flatten)]
    token: CreatedToken,
    #[serde(with = "time::serde::rfc3339::option")]
    previous_secret_valid_until: Option<OffsetDateTime>,
}

async fn rotate(
    mock: &Mock,
    principal: &Principal,
    kind: TokenKind,
    client_id: String,
    body: Rotate,
) -> Answer<Json<RotatedToken>> {
    let grace = std::time::Duration::from_secs(body.grace_seconds);
    let session = mock.inner.admin.acting_as(principal);
    let rotated = session
        .rotate_token(kind, &ClientId::from(client_id), grace)
        .await?;
    let previous_secret_valid_until = rotated.info.previous_secret_valid_until;
    let (_, Json(token)) = created(rotated);
    Ok(Json(RotatedToken {
        token,
        previous_secret_valid_until,
    }))
}

pub(crate) async fn rotate_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
    Body(body): Body<Rotate>,
) -> Answer<Json<RotatedToken>> {
    rotate(&mock, &principal, TokenKind::Api, client_id, body).await
}

pub(crate) async fn rotate_personal_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
    Body(body): Body<Rotate>,
) -> Answer<Json<RotatedToken>> {
    rotate(&mock, &principal, TokenKind::Personal, client_id, body).await
}

async fn set_enabled(
    mock: &Mock,
    principal: &Principal,
    kind: TokenKind,
    client_id: String,
    enabled: bool,
) -> Answer<StatusCode> {
    let session = mock.inner.admin.acting_as(principal);
    let client_id = ClientId::from(client_id);
    if enabled {
        session.enable_token(kind, &client_id).await?;
    } else {
        session.disable_token(kind, &client_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn disable_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    set_enabled(&mock, &principal, TokenKind::Api, client_id, false).await
}

pub(crate) async fn enable_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    set_enabled(&mock, &principal, TokenKind::Api, client_id, true).await
}

pub(crate) async fn disable_personal_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    set_enabled(&mock, &principal, TokenKind::Personal, client_id, false).await
}

pub(crate) async fn enable_personal_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    set_enabled(&mock, &principal, TokenKind::Personal, client_id, true).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewUser {
    email: String,
    roles: Vec<Role>,
    /// Absent or `null`: every view.
    #[serde(default)]
    data_access: DataAccess,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SetRoles {
    roles: Vec<Role>,
    /// Absent: unchanged; `null`: every view; a list: those views.
    #[serde(default, deserialize_with = "present")]
    data_access: Option<DataAccess>,
}

/// Tell a field given as `null` (`Some(DataAccess::All)`) from an absent one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DataAccess>, D::Error> {
    DataAccess::deserialize(d).map(Some)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserView {
    id: String,
    email: String,
    roles: Vec<Role>,
    data_access: DataAccess,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id.to_string(),
            email: user.email,
            roles: user.roles,
            data_access: user.data_access,
        }
    }
}

fn user_id(id: &str) -> Answer<UserId> {
    id.parse().map_err(|_| MockError::not_found("user"))
}

pub(crate) async fn add_user(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<NewUser>,
) -> Answer<impl IntoResponse> {
    let session = mock.inner.admin.acting_as(&principal);
    if principal.is_admin_user() {
        // Only tell an admin which views exist.
        mock.check_views(principal.account_id(), &body.data_access)?;
    }
    let user = session
        .add_user_with_access(body.email, body.roles, body.data_access)
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(user))))
}

pub(crate) async fn set_user_roles(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<SetRoles>,
) -> Answer<Json<UserView>> {
    let id = user_id(&id)?;
    let session = mock.inner.admin.acting_as(&principal);
    let mut update = UserUpdate::default().roles(body.roles);
    if let Some(access) = body.data_access {
        if principal.is_admin_user() {
            mock.check_views(principal.account_id(), &access)?;
        }
        update = update.data_access(access);
    }
    session.update_user(id, update).await?;
    let user = mock
        .inner
        .admin
        .store()
        .get_user(principal.account_id(), id)
        .await
        .map_err(AdminError::from)?
        .ok_or_else(|| MockError::not_found("user"))?;
    Ok(Json(UserView::from(user)))
}

pub(crate) async fn remove_user(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    let id = user_id(&id)?;
    mock.inner
        .admin
        .acting_as(&principal)
        .remove_user(id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
