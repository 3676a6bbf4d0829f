//! How a rejection is answered: the [`RejectionResponse`] trait, its default
//! [`JsonRejection`], and [`ErrorBody`], the one JSON error body of the crate (and of
//! `finout-mock`).

use std::{borrow::Cow, sync::OnceLock, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use uuid::Uuid;

use super::{
    auth::Anonymous,
    body::AuthBody,
    request_id::{REQUEST_ID_HEADER, RequestId},
};
use crate::{
    error::{AuthError, ErrorCode},
    metrics::Metrics,
    model::Principal,
};

/// Turns a rejection into a response. Implement it (or pass a closure
/// `Fn(&AuthError) -> Response<Full<Bytes>>`) to answer in another shape, e.g. a gRPC
/// status for tonic.
pub trait RejectionResponse: Clone + Send + Sync + 'static {
    /// The response for `error`.
    fn response(&self, error: &AuthError) -> Response<Full<Bytes>>;

    /// The response for `error` to the request `request_id` (what the middleware calls).
    /// By default [`response`](Self::response) with an `x-request-id` header added (unless
    /// it set one).
    fn response_with_id(&self, error: &AuthError, request_id: &RequestId) -> Response<Full<Bytes>> {
        let mut response = self.response(error);
        if !response.headers().contains_key(REQUEST_ID_HEADER) {
            response
                .headers_mut()
                .insert(REQUEST_ID_HEADER, request_id.header_value());
        }
        response
    }
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

    fn response_with_id(&self, error: &AuthError, request_id: &RequestId) -> Response<Full<Bytes>> {
        json_error_response_with_id(error, request_id)
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
    request_id: Cow<'a, str>,
}

impl<'a> ErrorBody<'a> {
    /// The body for `error` (a code such as `not_found`) and a human-readable `message`.
    pub fn new(error: &'a str, message: &'a str) -> Self {
        ErrorBody {
            error,
            message,
            request_id: Cow::Owned(Uuid::new_v4().to_string()),
        }
    }

    /// The body for `error` and `message` naming the request `request_id` (e.g.
    /// [`RequestId::of`] the request's headers, to echo an incoming `x-request-id`).
    pub fn with_request_id(error: &'a str, message: &'a str, request_id: &'a RequestId) -> Self {
        ErrorBody {
            error,
            message,
            request_id: Cow::Borrowed(request_id.as_str()),
        }
    }
}

/// The default JSON rejection response for `error`, with a fresh request id.
pub fn json_error_response(error: &AuthError) -> Response<Full<Bytes>> {
    json_error_response_with_id(error, &RequestId::fresh())
}

/// The default JSON rejection response for `error` to the request `request_id` (what
/// [`JsonRejection`] answers): the id in the body's `requestId` and the `x-request-id`
/// header.
pub fn json_error_response_with_id(
    error: &AuthError,
    request_id: &RequestId,
) -> Response<Full<Bytes>> {
    let code = error.code();
    // `{"error":"<code>","message":"<text>","requestId":"` is fixed per code: serialize it
    // once, then append only the request id, so a rejection costs no escaping.
    static PREFIXES: OnceLock<Vec<String>> = OnceLock::new();
    let prefixes = PREFIXES.get_or_init(|| {
        ErrorCode::ALL
            .iter()
            .map(|code| {
                let body = ErrorBody {
                    request_id: Cow::Owned(Uuid::nil().to_string()),
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
    let id = request_id.as_str();
    let mut body = Vec::with_capacity(prefix.len() + id.len() + 2);
    body.extend_from_slice(prefix.as_bytes());
    // A request id is only ever `A-Z a-z 0-9 . _ : -`: nothing to escape.
    body.extend_from_slice(id.as_bytes());
    body.extend_from_slice(b"\"}");
    json_answer(
        Bytes::from(body),
        code.status(),
        request_id,
        error.retry_after(),
    )
}

#[cfg(feature = "axum")]
/// An [`ErrorBody`] answer for any code and message (the admin's errors, whose messages vary
/// and so cannot be serialized ahead as the rejections' are).
pub(crate) fn error_body_response(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> Response<Full<Bytes>> {
    let request_id = RequestId::fresh();
    let body = ErrorBody::with_request_id(code, message, &request_id);
    // Serializing strs into a Vec cannot fail; an empty body would still carry the status.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    json_answer(Bytes::from(json), status, &request_id, retry_after)
}

/// The status, `content-type`, `x-request-id` and `Retry-After` of every JSON error answer.
fn json_answer(
    body: Bytes,
    status: StatusCode,
    request_id: &RequestId,
    retry_after: Option<Duration>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(REQUEST_ID_HEADER, request_id.header_value());
    if let Some(after) = retry_after {
        headers.insert(header::RETRY_AFTER, retry_after_value(after));
    }
    response
}

fn retry_after_value(after: Duration) -> HeaderValue {
    HeaderValue::from(retry_after_secs(after))
}

/// `Retry-After` in whole seconds, rounded up and at least 1: a client told 0 would retry
/// at once, before the wait it was given.
pub(crate) fn retry_after_secs(after: Duration) -> u64 {
    let secs = after
        .as_secs()
        .saturating_add(u64::from(after.subsec_nanos() > 0));
    secs.max(1)
}

/// The handle a layer counts its rejection of `request` into: its own if it was given one,
/// else that of the authenticator that let the request in, found through the request (its
/// [`Principal`], or an optional `AuthLayer`'s [`Anonymous`] mark). `None` outside every
/// `AuthLayer`: then nothing counts it.
pub(crate) fn counter<'a, B>(
    own: Option<&'a Metrics>,
    request: &'a Request<B>,
) -> Option<&'a Metrics> {
    own.or_else(|| {
        let extensions = request.extensions();
        match extensions.get::<Principal>() {
            Some(principal) => principal.metrics(),
            None => extensions.get::<Anonymous>().map(|anonymous| &anonymous.0),
        }
    })
}

/// A rejection ready to be answered, as the middleware's response futures hold it until
/// polled.
pub(crate) struct Ready(Option<Response<Full<Bytes>>>);

impl Ready {
    pub(crate) fn new(response: Response<Full<Bytes>>) -> Self {
        Ready(Some(response))
    }

    /// A layer's rejection of `code`, counted into `metrics` (see [`counter`]).
    pub(crate) fn counted(
        response: Response<Full<Bytes>>,
        code: ErrorCode,
        metrics: Option<&Metrics>,
    ) -> Self {
        if let Some(metrics) = metrics {
            metrics.record_rejection(code);
        }
        Ready::new(response)
    }

    /// The response, once.
    pub(crate) fn take<B>(&mut self) -> Response<AuthBody<B>> {
        self.0
            .take()
            .expect("response future polled after completion")
            .map(AuthBody::rejection)
    }
}
