//! The mock's error answers, in Finout's shape (`{"error","message","requestId"}`, rendered by
//! [`finout_auth::middleware::ErrorBody`]), and the JSON body extractor whose rejection is
//! one of them.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, State, rejection::PathRejection},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use finout_auth::{
    AdminError, ErrorCode, StoreError,
    metrics::Metrics,
    middleware::{ErrorBody, REQUEST_ID_HEADER},
};
use serde::de::DeserializeOwned;

/// What a handler answers.
pub(crate) type Answer<T> = Result<T, MockError>;

/// An error answer in Finout's shape: `{"error","message","requestId"}`.
#[derive(Debug)]
pub struct MockError {
    status: StatusCode,
    code: Code,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

/// An error code: one of the library's, or one only the mock's API answers.
#[derive(Debug, Clone, Copy)]
enum Code {
    Auth(ErrorCode),
    NotFound,
    InvalidRequest,
    Conflict,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A code of Finout's V2 answers (`QUERY_RUNNING`, `RESULTS_EXPIRED`, ...).
    V2(&'static str),
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::Auth(code) => code.as_str(),
            Code::NotFound => "not_found",
            Code::InvalidRequest => "invalid_request",
            Code::Conflict => "conflict",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::V2(code) => code,
        }
    }
}

impl MockError {
    /// One of the library's codes, with its fixed message.
    pub(crate) fn auth(code: ErrorCode) -> Self {
        Self::auth_with(code, code.message())
    }

    pub(crate) fn auth_with(code: ErrorCode, message: impl Into<String>) -> Self {
        MockError {
            status: code.status(),
            code: Code::Auth(code),
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn not_found(what: &str) -> Self {
        MockError {
            status: StatusCode::NOT_FOUND,
            code: Code::NotFound,
            message: format!("{what} not found"),
            retry_after: None,
        }
    }

    /// 409 `conflict`: a cap on what an account keeps is reached.
    pub(crate) fn limit(message: impl Into<String>) -> Self {
        MockError {
            status: StatusCode::CONFLICT,
            code: Code::Conflict,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A V2 answer with its own status and code.
    pub(crate) fn v2(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        MockError {
            status,
            code: Code::V2(code),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 413 `payload_too_large`: a body past [`MAX_BODY_BYTES`](crate::limits::MAX_BODY_BYTES).
    pub(crate) fn too_large() -> Self {
        MockError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: Code::PayloadTooLarge,
            message: format!(
                "the body is larger than {} bytes",
                crate::limits::MAX_BODY_BYTES
            ),
            retry_after: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        MockError {
            status: StatusCode::BAD_REQUEST,
            code: Code::InvalidRequest,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for MockError {
    fn into_response(self) -> Response {
        let id = crate::request_id::current();
        let mut response = (
            self.status,
            [(REQUEST_ID_HEADER, id.header_value())],
            Json(ErrorBody::with_request_id(
                self.code.as_str(),
                &self.message,
                &id,
            )),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        if let Code::Auth(code) = self.code {
            // For `count_answered`: the metrics count the library's codes.
            response.extensions_mut().insert(code);
        }
        response
    }
}

impl From<AdminError> for MockError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Forbidden(why) => MockError::auth_with(ErrorCode::Forbidden, why),
            AdminError::NotFound(what) => MockError::not_found(what),
            AdminError::Invalid(why) => MockError::invalid(why.to_string()),
            AdminError::Store(StoreError::Conflict(what)) => MockError {
                status: StatusCode::CONFLICT,
                code: Code::Conflict,
                message: format!("{what} already exists"),
                retry_after: None,
            },
            AdminError::LimitReached(what) => MockError::limit(format!("limit reached: {what}")),
            AdminError::Busy { retry_after } => MockError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..MockError::auth(ErrorCode::AuthBusy)
            },
            AdminError::Store(StoreError::NotFound(what)) => MockError::not_found(what),
            other => {
                tracing::warn!(target: "finout_mock", error = %other, "admin operation failed");
                MockError::auth(ErrorCode::AuthUnavailable)
            }
        }
    }
}

/// Count the library's codes among the handlers' error answers (a 403 for a write the
/// token's role does not allow, say) in the authenticator's metrics.
pub(crate) async fn count_answered(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        metrics.record_rejection(*code);
    }
    response
}

/// The answer to a path no route serves.
pub(crate) async fn no_route() -> MockError {
    MockError::not_found("route")
}

/// The answer to a method a route does not serve.
pub(crate) async fn no_method() -> MockError {
    MockError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: Code::MethodNotAllowed,
        message: "method not allowed on this route".to_owned(),
        retry_after: None,
    }
}

/// The deepest a request body may nest arrays and objects (the top-level one is level 1).
/// What the mock keeps wraps a client's JSON at most [`STORED_WRAPPING`] levels deeper (a
/// tag's `versions[].fields`), so every document it saves stays far below serde_json's
/// recursion limit of 128 and is read back when the mock starts again.
pub(crate) const MAX_JSON_DEPTH: usize = 32;
/// How many levels the mock's stored documents add above a body's own.
const STORED_WRAPPING: usize = 3;
// serde_json refuses documents nesting deeper than 128 levels.
const _: () = assert!(MAX_JSON_DEPTH + STORED_WRAPPING < 128);

/// Whether `json` nests arrays and objects more than `max` levels deep, brackets inside
/// strings (escapes honoured) not counting: one pass, no allocation, before anything is
/// parsed. Exact for valid JSON; for anything else the parser answers after.
fn too_deep(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// axum's own test (`Json`'s): `application/json` or any `application/*+json`.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

/// A JSON body whose rejection is answered in Finout's shape rather than axum's plain text:
/// 415 without a JSON content type, 413 past [`MAX_BODY_BYTES`](crate::limits::MAX_BODY_BYTES), 400
/// nested deeper than [`MAX_JSON_DEPTH`] (checked before it is parsed) or, naming the field
/// and what it expects ([`field_error`](crate::field_error)), for anything else.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = MockError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(MockError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: Code::UnsupportedMediaType,
                message: "send the body as application/json".to_owned(),
                retry_after: None,
            });
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => MockError::too_large(),
                _ => MockError::invalid(e.body_text()),
            })?;
        if too_deep(&bytes, MAX_JSON_DEPTH) {
            return Err(MockError::invalid(format!(
                "the body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
            )));
        }
        crate::field_error::from_json(&bytes)
            .map(Body)
            .map_err(MockError::invalid)
    }
}

/// Path parameters whose rejection (e.g. a segment that is not UTF-8) is a 400 in
/// Finout's shape rather than axum's plain text.
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = MockError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| Path(t))
            .map_err(|e| MockError::invalid(path_refused(&e)))
    }
}

/// Query parameters whose rejection is a 400 in Finout's shape.
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = MockError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        crate::field_error::from_query(parts.uri.query().unwrap_or_default())
            .map(Params)
            .map_err(MockError::invalid)
    }
}

/// A path parameter axum could not read, named (`id: not valid UTF-8`).
fn path_refused(e: &PathRejection) -> String {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(e) = e else {
        return "the path: cannot be read".to_owned();
    };
    // The routes' names (`client_id`) as Finout's docs spell them (`clientId`).
    let camel = |key: &str| {
        let mut parts = key.split('_');
        let first = parts.next().unwrap_or_default().to_owned();
        parts.fold(first, |mut name, part| {
            let mut chars = part.chars();
            name.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            name.push_str(chars.as_str());
            name
        })
    };
    match e.kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => format!("{}: not valid UTF-8", camel(key)),
        ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::DeserializeError { key, .. } => {
            format!("{}: not an accepted value", camel(key))
        }
        _ => "the path: cannot be read".to_owned(),
    }
}
