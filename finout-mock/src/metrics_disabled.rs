//! Without the `prometheus` feature: nothing is recorded, and `GET /metrics` answers 404 as
//! an unknown route does.

use axum::{extract::Request, middleware::Next, response::Response};

use crate::error::MockError;

/// Nothing to observe.
pub(crate) async fn observe(request: Request, next: Next) -> Response {
    next.run(request).await
}

/// As an unknown route.
pub(crate) async fn prometheus() -> MockError {
    MockError::not_found("route")
}
