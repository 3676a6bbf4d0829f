//! The client side: [`ClientCredentials`] attaches the two headers to outgoing requests, the
//! secret's value marked sensitive (`HeaderValue::set_sensitive`), so that HTTP/2's HPACK
//! never indexes it and a tracing layer that honours the flag (tower-http's
//! `SetSensitiveRequestHeadersLayer`, hyper's `Debug`) does not print it. As a tower layer,
//! [`ClientCredentials`] adds them to every request of a client service.
//!
//! ```
//! use finout_auth::client::ClientCredentials;
//! use http::Request;
//!
//! let credentials = ClientCredentials::new("my-client-id", "my-secret").unwrap();
//! let mut request = Request::new(());
//! credentials.apply(request.headers_mut());
//! assert!(request.headers()["x-finout-secret-key"].is_sensitive());
//! assert!(!format!("{credentials:?}").contains("my-secret"));
//! ```

use std::{
    fmt,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    credentials::{CLIENT_ID_HEADER, Credentials, SECRET_KEY_HEADER},
    error::{AuthError, MalformedReason},
};

/// A client id and secret to send; `Debug` never shows the secret.
#[derive(Clone)]
pub struct ClientCredentials {
    client_id: HeaderValue,
    secret: HeaderValue,
}

impl ClientCredentials {
    /// Checked as the server checks them (1-256 visible ASCII bytes each).
    pub fn new(client_id: &str, secret: &str) -> Result<Self, AuthError> {
        Credentials::new(client_id, secret)?;
        // Visible ASCII once checked: always a header value.
        let value = |s: &str| {
            HeaderValue::from_str(s)
                .map_err(|_| AuthError::MalformedCredentials(MalformedReason::InvalidByte))
        };
        let mut secret = value(secret)?;
        secret.set_sensitive(true);
        Ok(ClientCredentials {
            client_id: value(client_id)?,
            secret,
        })
    }

    /// Set both headers in `headers` (replacing any there).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(CLIENT_ID_HEADER, self.client_id.clone());
        headers.insert(SECRET_KEY_HEADER, self.secret.clone());
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl<S> Layer<S> for ClientCredentials {
    type Service = WithCredentials<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithCredentials {
            inner,
            credentials: self.clone(),
        }
    }
}

/// A client service that sends [`ClientCredentials`] with every request.
#[derive(Clone, Debug)]
pub struct WithCredentials<S> {
    inner: S,
    credentials: ClientCredentials,
}

impl<S, B> Service<Request<B>> for WithCredentials<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.credentials.apply(request.headers_mut());
        self.inner.call(request)
    }
}
