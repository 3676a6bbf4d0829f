//! gRPC rejections (feature `tonic`): see [`GrpcRejection`].

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;

use super::{
    rejection::{RejectionResponse, retry_after_secs},
    request_id::{REQUEST_ID_HEADER, RequestId},
};
use crate::{
    admin::error::AdminError,
    error::{AuthError, ErrorCode, StoreError},
};

/// gRPC rejections (feature `tonic`): a rejected call answered as gRPC
/// clients expect — a trailers-only response (HTTP 200, `content-type: application/grpc`,
/// `grpc-status` and `grpc-message` in the headers, no body) — so a tonic client gets a
/// `Status` with the right code instead of a transport error. `Retry-After` and
/// `x-request-id` are kept as metadata.
///
/// | finout-auth code | gRPC status |
/// | --- | --- |
/// | `missing_credentials`, `malformed_credentials`, `invalid_credentials`, `token_expired` | 16 `UNAUTHENTICATED` |
/// | `forbidden` | 7 `PERMISSION_DENIED` |
/// | `too_many_attempts`, `too_many_requests` | 8 `RESOURCE_EXHAUSTED` |
/// | `auth_busy`, `auth_unavailable` | 14 `UNAVAILABLE` |
/// | `internal_error` | 13 `INTERNAL` |
///
/// ```
/// use finout_auth::{AuthLayer, Authenticator, middleware::GrpcRejection, store::MemoryTokenStore};
/// # use std::sync::Arc;
/// # let authenticator = Authenticator::new(Arc::new(MemoryTokenStore::new()));
/// // tonic::transport::Server::builder().layer(layer).add_service(...)
/// let layer = AuthLayer::new(authenticator).rejection(GrpcRejection);
/// # let _ = layer;
/// ```
///
/// In a tonic handler the principal is in the request's extensions:
/// `request.extensions().get::<finout_auth::Principal>()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection;

/// The gRPC status code for one of the crate's error codes.
pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    match code {
        ErrorCode::MissingCredentials
        | ErrorCode::MalformedCredentials
        | ErrorCode::InvalidCredentials
        | ErrorCode::TokenExpired => tonic::Code::Unauthenticated,
        ErrorCode::Forbidden => tonic::Code::PermissionDenied,
        ErrorCode::TooManyAttempts | ErrorCode::TooManyRequests => tonic::Code::ResourceExhausted,
        ErrorCode::AuthBusy | ErrorCode::AuthUnavailable => tonic::Code::Unavailable,
        _ => tonic::Code::Internal,
    }
}

/// The `Status` a rejection is: its gRPC code and the code's fixed message, prefixed with
/// the code (`invalid_credentials: The client id or ...`), and `retry-after` (whole seconds)
/// in its metadata where the error has one, as [`GrpcRejection`] answers it.
impl From<&AuthError> for tonic::Status {
    fn from(error: &AuthError) -> Self {
        let code = error.code();
        status(
            grpc_code(code),
            code.as_str(),
            code.message(),
            error.retry_after(),
        )
    }
}

/// So a tonic handler can `?` an [`AuthError`] (e.g. from
/// [`Principal::require`](crate::Principal::require)): the same `Status` as from `&AuthError`.
impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        tonic::Status::from(&error)
    }
}

/// The `Status` an admin error is: its gRPC code (see the table in [`AdminError`]'s docs),
/// `<code>: <message>`, and `retry-after` in the metadata where meaningful.
impl From<&AdminError> for tonic::Status {
    fn from(error: &AdminError) -> Self {
        use tonic::Code;
        error.log_failure();
        let grpc = match error {
            AdminError::Forbidden(_) => Code::PermissionDenied,
            AdminError::NotFound(_) | AdminError::Store(StoreError::NotFound(_)) => Code::NotFound,
            AdminError::Invalid(_) => Code::InvalidArgument,
            // Not RESOURCE_EXHAUSTED (the rate limits'): waiting does not lift a cap.
            AdminError::LimitReached(_) | AdminError::Store(StoreError::LimitReached(_)) => {
                Code::FailedPrecondition
            }
            AdminError::Store(StoreError::Conflict(_)) => Code::AlreadyExists,
            AdminError::Busy { .. } | AdminError::Store(StoreError::Backend(_)) => {
                Code::Unavailable
            }
            AdminError::Hash(_) => Code::Internal,
        };
        status(grpc, error.code(), &error.message(), error.retry_after())
    }
}

/// So a tonic handler can `?` an [`AdminError`]: the same `Status` as from `&AdminError`.
impl From<AdminError> for tonic::Status {
    fn from(error: AdminError) -> Self {
        tonic::Status::from(&error)
    }
}

/// A `Status` in the crate's shape: `<code>: <message>`, and `retry-after` in the metadata.
fn status(
    grpc: tonic::Code,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> tonic::Status {
    let mut status = tonic::Status::new(grpc, format!("{code}: {message}"));
    if let Some(after) = retry_after {
        status.metadata_mut().insert(
            "retry-after",
            tonic::metadata::MetadataValue::from(retry_after_secs(after)),
        );
    }
    status
}

impl RejectionResponse for GrpcRejection {
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>> {
        self.response_with_id(error, &RequestId::fresh())
    }

    fn response_with_id(&self, error: &AuthError, request_id: &RequestId) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::default());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        // `grpc-status` and a percent-encoded `grpc-message`, as tonic writes them.
        let _ = tonic::Status::from(error).add_header(headers);
        headers.insert(REQUEST_ID_HEADER, request_id.header_value());
        // Already copied from the status's metadata; `insert` keeps a single value.
        if let Some(after) = error.retry_after() {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(after)),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_to_its_grpc_status_in_a_trailers_only_answer() {
        for (error, code) in [
            (AuthError::MissingCredentials, 16),
            (AuthError::InvalidCredentials, 16),
            (AuthError::TokenExpired, 16),
            (AuthError::Forbidden, 7),
            (
                AuthError::TooManyAttempts {
                    retry_after: Duration::from_millis(1_500),
                },
                8,
            ),
            (
                AuthError::TooManyRequests {
                    retry_after: Duration::from_secs(1),
                },
                8,
            ),
            (
                AuthError::AuthBusy {
                    retry_after: Duration::from_secs(1),
                },
                14,
            ),
            (AuthError::LayerMissing, 13),
        ] {
            let id = RequestId::fresh();
            let response = GrpcRejection.response_with_id(&error, &id);
            assert_eq!(response.status(), http::StatusCode::OK);
            let headers = response.headers();
            assert_eq!(headers["content-type"], "application/grpc");
            assert_eq!(headers["grpc-status"], code.to_string().as_str(), "{error}");
            let message = headers["grpc-message"].to_str().unwrap();
            assert!(message.starts_with(error.code().as_str()), "{message}");
            assert_eq!(headers[REQUEST_ID_HEADER], id.as_str());
            assert_eq!(
                headers.get(header::RETRY_AFTER).is_some(),
                error.retry_after().is_some()
            );
        }
        let throttled = AuthError::TooManyAttempts {
            retry_after: Duration::from_millis(1_500),
        };
        assert_eq!(
            GrpcRejection.response(&throttled).headers()[header::RETRY_AFTER],
            "2"
        );
    }
}
