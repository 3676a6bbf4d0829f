//! Every answer carries an `x-request-id` header, whoever answered it (a handler, a layer,
//! the 404 and 405 fallbacks): the client's own, if acceptable
//! ([`RequestId::of`](finout_auth::middleware::RequestId::of)), else a fresh UUID. An error
//! answer's `requestId` is that same id, so a client can quote either.

use axum::{extract::Request, middleware::Next, response::Response};
use finout_auth::middleware::{REQUEST_ID_HEADER, RequestId};

tokio::task_local! {
    /// The id of the request being answered on this task.
    static CURRENT: RequestId;
}

/// Name the request (its header, for the layers within, which read it there), answer it,
/// and put the id on the answer unless a layer within did already.
pub(crate) async fn name(mut request: Request, next: Next) -> Response {
    let id = RequestId::of(request.headers());
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, id.header_value());
    let header = id.header_value();
    let mut response = CURRENT.scope(id, next.run(request)).await;
    response
        .headers_mut()
        .entry(REQUEST_ID_HEADER)
        .or_insert(header);
    response
}

/// The id of the request being answered (a fresh one outside [`name`]).
pub(crate) fn current() -> RequestId {
    CURRENT
        .try_with(RequestId::clone)
        .unwrap_or_else(|_| RequestId::fresh())
}
