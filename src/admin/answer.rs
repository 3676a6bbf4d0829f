//! What an [`AdminError`] answers a client: one stable code and HTTP status per variant. The
//! middleware turns it into an axum response (feature `axum`, in the crate's
//! [`ErrorBody`](crate::middleware::ErrorBody) shape) and a `tonic::Status` (feature `tonic`).
//!
//! The table is in [`AdminError`]'s docs.

use std::{borrow::Cow, time::Duration};

use http::StatusCode;

use super::error::AdminError;
use crate::error::{ErrorCode, StoreError};

impl AdminError {
    /// The stable, machine-readable code of this error (the `error` field of the JSON body):
    /// `forbidden`, `not_found`, `invalid_request`, `limit_reached`, `conflict`, `auth_busy`,
    /// `auth_unavailable` or `internal_error`. See the table in [`AdminError`]'s docs.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Forbidden(_) => ErrorCode::Forbidden.as_str(),
            AdminError::NotFound(_) | AdminError::Store(StoreError::NotFound(_)) => "not_found",
            AdminError::Invalid(_) => "invalid_request",
            AdminError::LimitReached(_) | AdminError::Store(StoreError::LimitReached(_)) => {
                "limit_reached"
            }
            AdminError::Store(StoreError::Conflict(_)) => "conflict",
            AdminError::Busy { .. } => ErrorCode::AuthBusy.as_str(),
            AdminError::Store(StoreError::Backend(_)) => ErrorCode::AuthUnavailable.as_str(),
            AdminError::Hash(_) => ErrorCode::LayerMissing.as_str(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::NotFound(_) | AdminError::Store(StoreError::NotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
            AdminError::LimitReached(_)
            | AdminError::Store(StoreError::LimitReached(_) | StoreError::Conflict(_)) => {
                StatusCode::CONFLICT
            }
            AdminError::Busy { .. } | AdminError::Store(StoreError::Backend(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AdminError::Hash(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The text safe to show the client: what was refused and why for a refusal, a fixed
    /// message for a failure (a store's or hasher's detail is for logs only).
    pub fn message(&self) -> Cow<'static, str> {
        match self {
            AdminError::Forbidden(why) => Cow::Borrowed(why),
            AdminError::NotFound(what) | AdminError::Store(StoreError::NotFound(what)) => {
                Cow::Owned(format!("{what} not found"))
            }
            AdminError::Invalid(why) => Cow::Owned(why.to_string()),
            AdminError::LimitReached(what) | AdminError::Store(StoreError::LimitReached(what)) => {
                Cow::Owned(format!("limit reached: {what}"))
            }
            AdminError::Store(StoreError::Conflict(what)) => {
                Cow::Owned(format!("{what} already exists"))
            }
            AdminError::Busy { .. } => Cow::Borrowed(ErrorCode::AuthBusy.message()),
            AdminError::Store(StoreError::Backend(_)) => {
                Cow::Borrowed(ErrorCode::AuthUnavailable.message())
            }
            AdminError::Hash(_) => Cow::Borrowed("Issuing the token failed; retry shortly."),
        }
    }

    /// How long the client should wait before retrying, where that is meaningful: the
    /// hasher's estimate when busy, 1 s after a store failure (as an
    /// [`AuthError::AuthUnavailable`](crate::AuthError::AuthUnavailable) answers).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AdminError::Busy { retry_after } => Some(*retry_after),
            AdminError::Store(StoreError::Backend(_)) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// Log what the client is not told: a store's or hasher's failure.
    #[cfg(any(feature = "axum", feature = "tonic"))]
    pub(crate) fn log_failure(&self) {
        if matches!(
            self,
            AdminError::Store(StoreError::Backend(_)) | AdminError::Hash(_)
        ) {
            tracing::warn!(
                target: "finout_auth",
                error = %crate::error::Chain(self),
                code = self.code(),
                "admin operation failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{admin::validate::InvalidRequest, crypto::HashError};

    /// Every variant with its status, code, `Retry-After` and gRPC code.
    #[allow(dead_code)] // The gRPC code is read only with `tonic`.
    fn table() -> Vec<(AdminError, u16, &'static str, Option<&'static str>, i32)> {
        let leak = || std::io::Error::other("password=hunter2 at db.internal");
        vec![
            (
                AdminError::Forbidden("only an Admin user may"),
                403,
                "forbidden",
                None,
                7,
            ),
            (AdminError::NotFound("token"), 404, "not_found", None, 5),
            (
                AdminError::Store(StoreError::NotFound("user")),
                404,
                "not_found",
                None,
                5,
            ),
            (
                AdminError::Invalid(InvalidRequest::Description),
                400,
                "invalid_request",
                None,
                3,
            ),
            (
                AdminError::LimitReached("tokens per account"),
                409,
                "limit_reached",
                None,
                9,
            ),
            (
                AdminError::Store(StoreError::LimitReached("users per account")),
                409,
                "limit_reached",
                None,
                9,
            ),
            (
                AdminError::Store(StoreError::Conflict("client id")),
                409,
                "conflict",
                None,
                6,
            ),
            (
                AdminError::Busy {
                    retry_after: Duration::from_millis(2_100),
                },
                503,
                "auth_busy",
                Some("3"),
                14,
            ),
            (
                AdminError::Store(StoreError::backend(leak())),
                503,
                "auth_unavailable",
                Some("1"),
                14,
            ),
            (
                AdminError::Hash(HashError(Box::new(leak()))),
                500,
                "internal_error",
                None,
                13,
            ),
        ]
    }

    #[test]
    fn every_variant_has_one_status_and_code() {
        for (error, status, code, _, _) in table() {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.code(), code, "{error}");
            assert!(!error.message().contains("hunter2"), "{error}");
        }
    }

    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn every_variant_answers_its_status_code_and_retry_after_over_http() {
        use axum_core::response::IntoResponse;
        use http_body_util::BodyExt;

        for (error, status, code, retry_after, _) in table() {
            let what = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{what}");
            let headers = response.headers();
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(
                headers.get("retry-after").map(|v| v.to_str().unwrap()),
                retry_after,
                "{what}"
            );
            let id = headers["x-request-id"].to_str().unwrap().to_owned();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], code, "{what}");
            assert_eq!(json["requestId"], id.as_str());
            let message = json["message"].as_str().unwrap();
            assert!(
                !message.is_empty() && !message.contains("hunter2"),
                "{message}"
            );
        }
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn every_variant_is_one_grpc_status() {
        for (error, _, code, retry_after, grpc) in table() {
            let status = tonic::Status::from(&error);
            assert_eq!(status.code(), tonic::Code::from_i32(grpc), "{error}");
            assert!(status.message().starts_with(code), "{}", status.message());
            assert!(!status.message().contains("hunter2"));
            assert_eq!(
                status
                    .metadata()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap()),
                retry_after,
                "{error}"
            );
            assert_eq!(tonic::Status::from(error).code(), status.code());
        }
    }
}
