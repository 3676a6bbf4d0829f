//! How a rejection is answered: the [`RejectionResponse`] trait, its default
//! [`JsonRejection`], and [`ErrorBody`], the one JSON error body of the crate (and of
//! `finout-mock`).

use std::{sync::OnceLock, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use serde::Serialize;
use uuid::Uuid;

use super::body::AuthBody;
use crate::error::{AuthError, ErrorCode};

/// Turns a rejection into a response. Implement it (or pass a closure
/// `Fn(&AuthError) -> Response<Full<Bytes>>`) to answer in another shape, e.g. a gRPC
/// status for tonic.
pub trait RejectionResponse: Clone + Send + Sync + 'static {
    /// The response for `error`.
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>>;
}

impl<F> RejectionResponse for F
where
    F: Fn(&AuthError) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>> {
        self(error)
    }
}

/// The default rejection: the code's status, `Retry-After` where meaningful, and the JSON
/// [`ErrorBody`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRejection;

impl RejectionResponse for JsonRejection {
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>> {
        json_error_response(error)
    }
}

/// The JSON body of an error answer: `{"error": "<code>", "message": "<text>", "requestId":
/// "<uuid>"}` (camelCase, as Finout's API writes it), with a fresh request id.
///
/// ```
/// use finout_auth::middleware::ErrorBody;
/// let json = serde_json::to_value(ErrorBody::new("not_found", "view not found")).unwrap();
/// assert_eq!(json["error"], "not_found");
/// assert_eq!(json["requestId"].as_str().unwrap().len(), 36);
/// ```
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    request_id: Uuid,
}

impl<'a> ErrorBody<'a> {
    /// The body for `error` (a code such as `not_found`) and a human-readable `message`.
    pub fn new(error: &'a str, message: &'a str) -> Self {
        ErrorBody {
            error,
            message,
            request_id: Uuid::new_v4(),
        }
    }
}

/// The default JSON rejection response for `error` (what [`JsonRejection`] answers).
pub fn json_error_response(error: &AuthError) -> Response<Full<Bytes>> {
    let code = error.code();
    // `{"error":"<code>","message":"<text>","requestId":"` is fixed per code: serialize it
    // once, then append only the request id, so a rejection costs no escaping.
    static PREFIXES: OnceLock<Vec<String>> = OnceLock::new();
    let prefixes = PREFIXES.get_or_init(|| {
        ErrorCode::ALL
            .iter()
            .map(|code| {
                let body = ErrorBody {
                    request_id: Uuid::nil(),
                    ..ErrorBody::new(code.as_str(), code.message())
                };
                let mut json = serde_json::to_string(&body).unwrap_or_default();
                // Drop the placeholder id and the closing `"}`.
                json.truncate(json.len() - uuid::fmt::Hyphenated::LENGTH - 2);
                json
            })
            .collect()
    });
    let prefix = prefixes.get(code.index()).map_or("", String::as_str);
    let mut body = Vec::with_capacity(prefix.len() + uuid::fmt::Hyphenated::LENGTH + 2);
    body.extend_from_slice(prefix.as_bytes());
    let mut id = Uuid::encode_buffer();
    body.extend_from_slice(Uuid::new_v4().hyphenated().encode_lower(&mut id).as_bytes());
    body.extend_from_slice(b"\"}");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(after) = error.retry_after() {
        headers.insert(header::RETRY_AFTER, retry_after_value(after));
    }
    response
}

fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// A rejection ready to be answered, as the middleware's response futures hold it until
/// polled.
pub(crate) struct Ready(Option<Response<Full<Bytes>>>);

impl Ready {
    pub(crate) fn new(response: Response<Full<Bytes>>) -> Self {
        Ready(Some(response))
    }

    /// The response, once.
    pub(crate) fn take<B>(&mut self) -> Response<AuthBody<B>> {
        self.0
            .take()
            .expect("response future polled after completion")
            .map(AuthBody::rejection)
    }
}
