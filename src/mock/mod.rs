//! Building blocks for Finout-compatible mock servers (feature `mock`), and what the
//! `finout-mock` binary is made of.
//!
//! [`Mock::router`] answers like Finout's API: the two credential headers, the same token
//! rules and error shapes, and deterministic fixture data per account.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use finout_auth::{Authenticator, TokenAdmin, mock::Mock, store::MemoryTokenStore};
//!
//! let store = Arc::new(MemoryTokenStore::new());
//! let authenticator = Authenticator::new(store.clone());
//! let admin = TokenAdmin::new(store).with_authenticator(authenticator.clone());
//! let app: axum::Router = Mock::new(admin, authenticator).router();
//! // axum::serve(listener, app).await?;
//! # let _ = app; Ok(()) }
//! ```
//!
//! Routes: `GET /healthz` and `GET /metrics` (Prometheus text) without credentials;
//! `GET /admin/whoami`; `POST|GET /admin/api-tokens`, `DELETE /admin/api-tokens/{clientId}`;
//! `POST|GET /admin/personal-tokens`, `DELETE /admin/personal-tokens/{clientId}`;
//! `POST /admin/users`, `PUT /admin/users/{id}/roles`, `DELETE /admin/users/{id}`;
//! `GET /v1/view`, `POST /v1/cost/query-by-view`, `GET|POST /v1/virtual-tags`,
//! `GET|PUT|DELETE /v1/virtual-tags/{id}` (kept in memory), `GET
//! /v1/megabill/query-language/keys`. Writes under `/v1` need a role other than `Read-only`
//! (403 otherwise); another account's resources answer 404. A personal token sees only the
//! views of its user's data access ([`DataAccess`]): others are missing from `/v1/view` and
//! answer 404 to `query-by-view`; API tokens see the whole account. At most 5 requests per
//! token are in flight on `/v1` (configurable); the next gets 429 `too_many_requests`.

pub mod fixtures;
pub mod seed;

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{FromRequest, Path, Request, State, rejection::JsonRejection},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{
    AccountId, AdminError, AuthLayer, Authenticator, ClientId, DataAccess, ErrorCode, NewToken,
    Principal, Role, StoreError, TokenAdmin, TokenInfo, User, UserId,
    limit::TokenConcurrencyLimitLayer, store::UserUpdate,
};

/// A Finout-compatible mock API over a token store.
#[derive(Debug, Clone)]
pub struct Mock {
    inner: Arc<MockInner>,
}

#[derive(Debug)]
struct MockInner {
    admin: TokenAdmin,
    authenticator: Authenticator,
    latency: Duration,
    max_in_flight: usize,
    /// Virtual tags, per account, by id. Kept in memory: they do not survive a restart.
    tags: Mutex<HashMap<AccountId, BTreeMap<String, Value>>>,
    /// Views replacing the fixtures, per account (from a seed).
    views: HashMap<AccountId, Vec<fixtures::View>>,
}

impl Mock {
    /// A mock over `admin`'s store, authenticating with `authenticator` (register it with
    /// the admin, so revocations take effect at once).
    pub fn new(admin: TokenAdmin, authenticator: Authenticator) -> Self {
        Mock {
            inner: Arc::new(MockInner {
                admin,
                authenticator,
                latency: Duration::ZERO,
                max_in_flight: 5,
                tags: Mutex::default(),
                views: HashMap::new(),
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut MockInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| MockInner {
            admin: shared.admin.clone(),
            authenticator: shared.authenticator.clone(),
            latency: shared.latency,
            max_in_flight: shared.max_in_flight,
            tags: Mutex::new(shared.tags()),
            views: shared.views.clone(),
        });
        f(&mut inner);
        Mock {
            inner: Arc::new(inner),
        }
    }

    /// Delay every `/v1` response by `latency` (to test clients against a slow API).
    #[must_use]
    pub fn latency(self, latency: Duration) -> Self {
        self.with(|m| m.latency = latency)
    }

    /// Requests in flight per token on `/v1` (Finout allows 5).
    #[must_use]
    pub fn max_in_flight(self, n: usize) -> Self {
        self.with(|m| m.max_in_flight = n)
    }

    /// Answer `account`'s views with `views` instead of the fixtures.
    #[must_use]
    pub fn views(self, account: AccountId, views: Vec<fixtures::View>) -> Self {
        self.with(|m| {
            m.views.insert(account, views);
        })
    }

    fn views_of(&self, account: AccountId) -> Vec<fixtures::View> {
        self.inner
            .views
            .get(&account)
            .cloned()
            .unwrap_or_else(|| fixtures::default_views(account))
    }

    /// The views `principal` may see: all of its account's for an API token, those of the
    /// user's data access for a personal token.
    fn visible_views(&self, principal: &Principal) -> Vec<fixtures::View> {
        let access = principal.data_access();
        let mut views = self.views_of(principal.account_id());
        views.retain(|v| access.allows(&v.id));
        views
    }

    /// Refuse data access naming a view the account does not have.
    fn check_views(&self, account: AccountId, access: &DataAccess) -> Answer<()> {
        let views = self.views_of(account);
        for id in access.ids().unwrap_or_default() {
            if !views.iter().any(|v| &v.id == id) {
                return Err(MockError::invalid(format!(
                    "dataAccess: no view with id {id:?} in this account"
                )));
            }
        }
        Ok(())
    }

    /// The admin behind this mock.
    pub fn admin(&self) -> &TokenAdmin {
        &self.inner.admin
    }

    /// The axum router: every route of the module docs.
    pub fn router(&self) -> Router {
        let admin = Router::new()
            .route("/admin/whoami", get(whoami))
            .route(
                "/admin/api-tokens",
                post(create_api_token).get(list_api_tokens),
            )
            .route("/admin/api-tokens/{client_id}", delete(revoke_api_token))
            .route(
                "/admin/personal-tokens",
                post(create_personal_token).get(list_personal_tokens),
            )
            .route(
                "/admin/personal-tokens/{client_id}",
                delete(revoke_personal_token),
            )
            .route("/admin/users", post(add_user))
            .route("/admin/users/{id}/roles", put(set_user_roles))
            .route("/admin/users/{id}", delete(remove_user));
        let v1 = Router::new()
            .route("/v1/view", get(views))
            .route("/v1/cost/query-by-view", post(query_by_view))
            .route("/v1/virtual-tags", get(list_tags).post(create_tag))
            .route(
                "/v1/virtual-tags/{id}",
                get(get_tag).put(replace_tag).delete(delete_tag),
            )
            .route("/v1/megabill/query-language/keys", get(keys))
            .layer(middleware::from_fn_with_state(self.clone(), delay))
            .layer(TokenConcurrencyLimitLayer::new(self.inner.max_in_flight));
        let open = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/metrics", get(metrics));
        admin
            .merge(v1)
            .layer(AuthLayer::new(self.inner.authenticator.clone()))
            .merge(open)
            .with_state(self.clone())
    }
}

impl MockInner {
    fn tags(&self) -> HashMap<AccountId, BTreeMap<String, Value>> {
        self.tags.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn delay(State(mock): State<Mock>, request: Request, next: Next) -> Response {
    if !mock.inner.latency.is_zero() {
        tokio::time::sleep(mock.inner.latency).await;
    }
    next.run(request).await
}

/// An error answer in Finout's shape: `{"error","message","requestId"}`.
#[derive(Debug)]
pub struct MockError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl MockError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        MockError {
            status,
            code,
            message: message.into(),
        }
    }

    fn auth(code: ErrorCode) -> Self {
        MockError::new(code.status(), code.as_str(), code.message())
    }

    fn not_found(what: &str) -> Self {
        MockError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    fn invalid(message: impl Into<String>) -> Self {
        MockError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl IntoResponse for MockError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code,
            "message": self.message,
            "requestId": uuid::Uuid::new_v4(),
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<AdminError> for MockError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Forbidden(why) => {
                MockError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden.as_str(), why)
            }
            AdminError::NotFound(what) => MockError::not_found(what),
            AdminError::Invalid(why) => MockError::invalid(why),
            AdminError::Store(StoreError::Conflict(what)) => MockError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            AdminError::Store(StoreError::NotFound(what)) => MockError::not_found(what),
            other => {
                tracing::warn!(target: "finout_auth::mock", error = %other, "admin operation failed");
                MockError::auth(ErrorCode::AuthUnavailable)
            }
        }
    }
}

/// A JSON body whose rejection is a 400 in Finout's shape rather than axum's plain text.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = MockError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(t)| Body(t))
            .map_err(|e: JsonRejection| MockError::invalid(e.body_text()))
    }
}

type Answer<T> = Result<T, MockError>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WhoAmI {
    #[serde(rename = "type")]
    kind: &'static str,
    account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    roles: Vec<Role>,
    token_role: Role,
    client_id: ClientId,
}

async fn whoami(principal: Principal) -> Json<WhoAmI> {
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
struct CreateToken {
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
struct CreatedToken {
    client_id: ClientId,
    secret_key: String,
    #[serde(rename = "type")]
    kind: crate::TokenKind,
    description: String,
    role: Role,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

fn created(issued: crate::IssuedToken) -> (StatusCode, Json<CreatedToken>) {
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

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenInfo>,
}

async fn create_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<CreateToken>,
) -> Answer<impl IntoResponse> {
    let session = mock.inner.admin.acting_as(&principal);
    Ok(created(session.issue_api_token(body.into_new()).await?))
}

async fn list_api_tokens(
    State(mock): State<Mock>,
    principal: Principal,
) -> Answer<Json<TokenList>> {
    let tokens = mock
        .inner
        .admin
        .acting_as(&principal)
        .list_api_tokens()
        .await?;
    Ok(Json(TokenList { tokens }))
}

async fn revoke_api_token(
    State(mock): State<Mock>,
    principal: Principal,
    Path(client_id): Path<String>,
) -> Answer<StatusCode> {
    let session = mock.inner.admin.acting_as(&principal);
    session.revoke_api_token(&ClientId::from(client_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_personal_token(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<CreateToken>,
) -> Answer<impl IntoResponse> {
    let session = mock.inner.admin.acting_as(&principal);
    Ok(created(
        session.issue_personal_token(body.into_new()).await?,
    ))
}

async fn list_personal_tokens(
    State(mock): State<Mock>,
    principal: Principal,
) -> Answer<Json<TokenList>> {
    let tokens = mock
        .inner
        .admin
        .acting_as(&principal)
        .list_personal_tokens()
        .await?;
    Ok(Json(TokenList { tokens }))
}

async fn revoke_personal_token(
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUser {
    email: String,
    roles: Vec<Role>,
    /// Absent or `null`: every view.
    #[serde(default)]
    data_access: DataAccess,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetRoles {
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
struct UserView {
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

async fn add_user(
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

async fn set_user_roles(
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

async fn remove_user(
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

async fn views(State(mock): State<Mock>, principal: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "data": mock.visible_views(&principal),
        "requestId": uuid::Uuid::new_v4(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryByView {
    view_id: String,
    date: DateRange,
    #[serde(default)]
    #[allow(dead_code)]
    cost_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateRange {
    unix_time_mill_seconds_start: i64,
    unix_time_mill_seconds_end: i64,
}

const MAX_RANGE_MS: i64 = 90 * 86_400_000;

async fn query_by_view(
    State(mock): State<Mock>,
    principal: Principal,
    Body(query): Body<QueryByView>,
) -> Answer<Json<serde_json::Value>> {
    let (start, end) = (
        query.date.unix_time_mill_seconds_start,
        query.date.unix_time_mill_seconds_end,
    );
    if end < start {
        return Err(MockError::invalid("the range ends before it starts"));
    }
    if end - start > MAX_RANGE_MS {
        return Err(MockError::invalid("the range may not exceed 90 days"));
    }
    // Another account's view, or one outside the user's data access, does not exist for
    // this caller.
    if !mock
        .visible_views(&principal)
        .iter()
        .any(|v| v.id == query.view_id)
    {
        return Err(MockError::not_found("view"));
    }
    Ok(Json(serde_json::json!({
        "data": fixtures::costs(&query.view_id, start, end),
        "request": { "viewId": query.view_id },
        "requestId": uuid::Uuid::new_v4(),
    })))
}

async fn metrics(State(mock): State<Mock>) -> impl IntoResponse {
    let m = mock.inner.authenticator.metrics();
    let mut text = String::new();
    let _ = writeln!(text, "# TYPE finout_auth_requests_total counter");
    let _ = writeln!(
        text,
        "finout_auth_requests_total{{outcome=\"ok\"}} {}",
        m.authenticated
    );
    for (code, n) in m.rejections {
        let _ = writeln!(
            text,
            "finout_auth_requests_total{{outcome=\"{}\"}} {n}",
            code.as_str()
        );
    }
    for (name, value) in [
        (
            "finout_auth_secret_verifications_total",
            m.secret_verifications,
        ),
        ("finout_auth_cache_hits_total", m.cache_hits),
        ("finout_auth_cache_misses_total", m.cache_misses),
        ("finout_auth_store_lookups_total", m.store_lookups),
    ] {
        let _ = writeln!(text, "# TYPE {name} counter\n{name} {value}");
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

const WRITE_TAGS: &str = "fin.virtualtags.write.tags";

fn require_write(principal: &Principal) -> Answer<()> {
    if principal.has_permission(WRITE_TAGS) {
        Ok(())
    } else {
        Err(MockError::auth(ErrorCode::Forbidden))
    }
}

fn with_tags<T>(
    mock: &Mock,
    account: AccountId,
    f: impl FnOnce(&mut BTreeMap<String, Value>) -> T,
) -> T {
    let mut tags = mock.inner.tags.lock().unwrap_or_else(|e| e.into_inner());
    f(tags.entry(account).or_default())
}

async fn list_tags(State(mock): State<Mock>, principal: Principal) -> Json<Value> {
    let account = principal.account_id();
    let tags: Vec<Value> = with_tags(&mock, account, |tags| tags.values().cloned().collect());
    Json(serde_json::json!({
        "accountId": account.to_string(),
        "requestId": uuid::Uuid::new_v4(),
        "virtualTags": tags,
    }))
}

/// Who wrote a tag, as Finout records it: the user's email, or an API token's client id.
async fn author(mock: &Mock, principal: &Principal) -> String {
    if let Some(user) = principal.user_id() {
        if let Ok(Some(user)) = mock
            .inner
            .admin
            .store()
            .get_user(principal.account_id(), user)
            .await
        {
            return user.email;
        }
    }
    principal.client_id().to_string()
}

/// Finout's timestamp format for virtual tags (a JavaScript `Date` string, in UTC).
fn js_date(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day] [year] [hour]:[minute]:[second] GMT+0000 (Greenwich Mean Time)"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// A tag as stored: the client's `name`, `rules` and `defaultValue` (other fields are
/// kept as given), then `id`, `accountId` and the `created*`/`updated*` fields set by the
/// mock, as Finout does. `previous` is the tag being replaced, if any.
fn stamp(
    body: Value,
    id: &str,
    account: AccountId,
    author: &str,
    previous: Option<&Value>,
) -> Answer<Value> {
    let Value::Object(mut fields) = body else {
        return Err(MockError::invalid("a virtual tag is a JSON object"));
    };
    if !fields.get("name").is_some_and(Value::is_string) {
        return Err(MockError::invalid("a virtual tag needs a string `name`"));
    }
    match fields.get("rules") {
        None => {
            fields.insert("rules".into(), Value::Array(Vec::new()));
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Err(MockError::invalid("`rules` must be an array")),
    }
    if fields
        .get("defaultValue")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return Err(MockError::invalid("`defaultValue` must be a string"));
    }
    let now = Value::String(js_date(OffsetDateTime::now_utc()));
    let author = Value::String(author.to_owned());
    let (created_by, created_at) = match previous {
        Some(p) => (p["createdBy"].clone(), p["createdAt"].clone()),
        None => (author.clone(), now.clone()),
    };
    fields.insert("id".into(), Value::String(id.to_owned()));
    fields.insert("accountId".into(), Value::String(account.to_string()));
    fields.insert("createdBy".into(), created_by);
    fields.insert("createdAt".into(), created_at);
    fields.insert("updatedBy".into(), author);
    fields.insert("updatedAt".into(), now);
    Ok(Value::Object(fields))
}

async fn create_tag(
    State(mock): State<Mock>,
    principal: Principal,
    Body(body): Body<Value>,
) -> Answer<impl IntoResponse> {
    require_write(&principal)?;
    let account = principal.account_id();
    let id = uuid::Uuid::new_v4().to_string();
    let tag = stamp(body, &id, account, &author(&mock, &principal).await, None)?;
    with_tags(&mock, account, |tags| tags.insert(id, tag.clone()));
    Ok((StatusCode::CREATED, Json(tag)))
}

async fn get_tag(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<Json<Value>> {
    with_tags(&mock, principal.account_id(), |tags| tags.get(&id).cloned())
        .map(Json)
        .ok_or_else(|| MockError::not_found("virtual tag"))
}

async fn replace_tag(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> Answer<Json<Value>> {
    require_write(&principal)?;
    let account = principal.account_id();
    let author = author(&mock, &principal).await;
    with_tags(&mock, account, |tags| match tags.get_mut(&id) {
        Some(existing) => {
            let tag = stamp(body, &id, account, &author, Some(existing))?;
            *existing = tag.clone();
            Ok(Json(tag))
        }
        None => Err(MockError::not_found("virtual tag")),
    })
}

async fn delete_tag(
    State(mock): State<Mock>,
    principal: Principal,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    require_write(&principal)?;
    with_tags(&mock, principal.account_id(), |tags| tags.remove(&id))
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| MockError::not_found("virtual tag"))
}

async fn keys(principal: Principal) -> Json<Value> {
    let keys: Vec<Value> = [
        ("AWS", "service", "Service"),
        ("AWS", "region", "Region"),
        ("AWS", "account", "Account"),
        ("Kubernetes", "namespace", "Namespace"),
        ("Kubernetes", "cluster", "Cluster"),
    ]
    .iter()
    .map(|(cost_center, key, display)| {
        serde_json::json!({"costCenter": cost_center, "key": key, "displayName": display})
    })
    .collect();
    Json(serde_json::json!({
        "keys": keys,
        "requestId": uuid::Uuid::new_v4(),
        "accountId": principal.account_id().to_string(),
    }))
}
