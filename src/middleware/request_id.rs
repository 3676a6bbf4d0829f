//! Request ids: every rejection names one, in its body (`requestId`) and its `x-request-id`
//! header, and the logs of an authentication carry the same id: the cold path's always, a
//! cached outcome's when DEBUG is on. An incoming `x-request-id` is reused, so put
//! tower-http's `SetRequestIdLayer::x_request_id` outside [`AuthLayer`](crate::AuthLayer) (it
//! sets that header on the request; one set up with another header name is not read) or send
//! one from the client; otherwise each rejection gets a fresh UUID v4.
//!
//! An incoming id is reused only if it is 1-128 bytes of `A-Z a-z 0-9 . _ : -` (what request
//! ids are made of, and safe in JSON and logs as it is); anything else is replaced.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

/// The header a request id travels in: `x-request-id`.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id reused.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request's id: reused from its `x-request-id` header when acceptable, else fresh.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Incoming(HeaderValue),
    Fresh([u8; uuid::fmt::Hyphenated::LENGTH]),
}

fn acceptable(bytes: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

impl RequestId {
    /// The id of a request with these headers.
    pub fn of(headers: &HeaderMap) -> Self {
        match headers.get(REQUEST_ID_HEADER) {
            Some(value) if acceptable(value.as_bytes()) => RequestId(Repr::Incoming(value.clone())),
            _ => Self::fresh(),
        }
    }

    /// A fresh id (a UUID v4).
    pub fn fresh() -> Self {
        let mut buffer = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        RequestId(Repr::Fresh(buffer))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Checked: visible ASCII only.
            Repr::Incoming(value) => value.to_str().unwrap_or(""),
            Repr::Fresh(buffer) => std::str::from_utf8(buffer).unwrap_or(""),
        }
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        match &self.0 {
            Repr::Incoming(value) => value.clone(),
            Repr::Fresh(buffer) => {
                HeaderValue::from_bytes(buffer).unwrap_or(HeaderValue::from_static(""))
            }
        }
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn an_acceptable_incoming_id_is_reused_and_anything_else_replaced() {
        for good in [&b"abc-123"[..], b"req_1.2:3", &[b'a'; MAX_REQUEST_ID_LEN]] {
            assert_eq!(RequestId::of(&with(good)).as_str().as_bytes(), good);
        }
        for bad in [
            &b""[..],
            b"a\"b",
            b"a b",
            b"a\\b",
            b"<script>",
            &[b'a'; MAX_REQUEST_ID_LEN + 1],
        ] {
            let id = RequestId::of(&with(bad));
            assert_ne!(id.as_str().as_bytes(), bad);
            assert!(Uuid::parse_str(id.as_str()).is_ok(), "{id}");
        }
        let fresh = RequestId::of(&HeaderMap::new());
        assert!(Uuid::parse_str(fresh.as_str()).is_ok());
        assert_eq!(fresh.header_value().to_str().unwrap(), fresh.as_str());
    }
}
