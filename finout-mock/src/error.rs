//! The mock's error answers, in Finout's shape (`{"error","message","requestId"}`, rendered by
//! [`finout_auth::middleware::ErrorBody`]), and the JSON body extractor whose rejection is
//! one of them.

use axum::{
    Json,
    extract::{FromRequest, Request, State, rejection::JsonRejection},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use finout_auth::{AdminError, ErrorCode, StoreError, middleware::ErrorBody};
use serde::de::DeserializeOwned;

use crate::Mock;

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
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::Auth(code) => code.as_str(),
            Code::NotFound => "not_found",
            Code::InvalidRequest => "invalid_request",
            Code::Conflict => "conflict",
        }
    }
}

impl MockError {
    /// One of the library's codes, with its fixed message.
    pub(crate) fn auth(code: ErrorCode) -> Self {
        Self::auth_with(code, code.message())
    }

    fn auth_with(code: ErrorCode, message: impl Into<String>) -> Self {
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
        let mut response = (
            self.status,
            Json(ErrorBody::new(self.code.as_str(), &self.message)),
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
            AdminError::LimitReached(what) => MockError {
                status: StatusCode::CONFLICT,
                code: Code::Conflict,
                message: format!("limit reached: {what}; revoke a token first"),
                retry_after: None,
            },
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
    State(mock): State<Mock>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        mock.metrics().record_rejection(*code);
    }
    response
}

/// A JSON body whose rejection is a 400 in Finout's shape rather than axum's plain text.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = MockError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(t)| Body(t))
            .map_err(|e: JsonRejection| MockError::invalid(e.body_text()))
    }
}
