//! Reading the two credential headers from a request.
//!
//! Parsing is pure and total: any [`HeaderMap`] yields either [`Credentials`] or an
//! [`AuthError`] (`missing_credentials` / `malformed_credentials`), never a panic. It borrows
//! from the headers, so the hot path allocates nothing.
//!
//! ```
//! use finout_auth::{Credentials, CLIENT_ID_HEADER, SECRET_KEY_HEADER};
//! use http::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(CLIENT_ID_HEADER, "2b5e6c1a-0000-4000-8000-000000000001".parse().unwrap());
//! headers.insert(SECRET_KEY_HEADER, "s3cr3t".parse().unwrap());
//! let credentials = Credentials::from_headers(&headers).unwrap();
//! assert_eq!(credentials.client_id(), "2b5e6c1a-0000-4000-8000-000000000001");
//! // The secret never shows in Debug output.
//! assert!(!format!("{credentials:?}").contains("s3cr3t"));
//! ```

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{AuthError, MalformedReason};

/// `x-finout-client-id`: the header carrying the token's client id.
pub const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-finout-client-id");
/// `x-finout-secret-key`: the header carrying the token's secret key.
pub const SECRET_KEY_HEADER: HeaderName = HeaderName::from_static("x-finout-secret-key");

/// The longest credential value accepted, in bytes.
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// A client id and secret key as presented by a request, borrowed from its headers.
///
/// `Debug` shows the client id and hides the secret.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    client_id: &'a str,
    secret: &'a str,
}

impl<'a> Credentials<'a> {
    /// Build credentials from already validated parts (e.g. in tests or non-HTTP transports).
    ///
    /// The same rules as for headers apply: 1-256 visible ASCII bytes each.
    pub fn new(client_id: &'a str, secret: &'a str) -> Result<Self, AuthError> {
        validate(client_id.as_bytes())?;
        validate(secret.as_bytes())?;
        Ok(Credentials { client_id, secret })
    }

    /// Read both headers. Exactly one value per header, 1-256 visible ASCII bytes.
    ///
    /// A header that is absent answers `missing_credentials` (checked first, for both);
    /// a header present but unacceptable answers `malformed_credentials`.
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, AuthError> {
        let client_id = single(headers, &CLIENT_ID_HEADER);
        let secret = single(headers, &SECRET_KEY_HEADER);
        let (client_id, secret) = match (client_id, secret) {
            (Some(id), Some(secret)) => (id?, secret?),
            _ => return Err(AuthError::MissingCredentials),
        };
        Ok(Credentials {
            client_id: validate(client_id.as_bytes())?,
            secret: validate(secret.as_bytes())?,
        })
    }

    /// The presented client id.
    pub fn client_id(&self) -> &'a str {
        self.client_id
    }

    /// The presented secret key. Handle with care: never log it.
    pub fn secret(&self) -> &'a str {
        self.secret
    }
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// `None` when absent; `Some(Err)` when repeated.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<Result<&'a HeaderValue, AuthError>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(AuthError::MalformedCredentials(
            MalformedReason::Duplicate,
        )));
    }
    Some(Ok(first))
}

fn validate(bytes: &[u8]) -> Result<&str, AuthError> {
    let malformed = |reason| Err(AuthError::MalformedCredentials(reason));
    if bytes.is_empty() {
        return malformed(MalformedReason::Empty);
    }
    if bytes.len() > MAX_CREDENTIAL_LEN {
        return malformed(MalformedReason::TooLong);
    }
    if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return malformed(MalformedReason::InvalidByte);
    }
    // Visible ASCII is always valid UTF-8.
    std::str::from_utf8(bytes).or(malformed(MalformedReason::InvalidByte))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use proptest::prelude::*;

    fn headers(pairs: &[(&HeaderName, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                (*name).clone(),
                HeaderValue::from_bytes(value).expect("test header value"),
            );
        }
        map
    }

    fn code(map: &HeaderMap) -> Result<(String, String), ErrorCode> {
        Credentials::from_headers(map)
            .map(|c| (c.client_id().to_owned(), c.secret().to_owned()))
            .map_err(|e| e.code())
    }

    #[test]
    fn both_headers_once_parse() {
        let map = headers(&[(&CLIENT_ID_HEADER, b"id"), (&SECRET_KEY_HEADER, b"secret")]);
        assert_eq!(code(&map), Ok(("id".into(), "secret".into())));
    }

    #[test]
    fn absent_header_is_missing() {
        assert_eq!(code(&HeaderMap::new()), Err(ErrorCode::MissingCredentials));
        let only_id = headers(&[(&CLIENT_ID_HEADER, b"id")]);
        assert_eq!(code(&only_id), Err(ErrorCode::MissingCredentials));
        let only_secret = headers(&[(&SECRET_KEY_HEADER, b"s")]);
        assert_eq!(code(&only_secret), Err(ErrorCode::MissingCredentials));
    }

    #[test]
    fn duplicate_header_is_malformed() {
        let map = headers(&[
            (&CLIENT_ID_HEADER, b"id"),
            (&CLIENT_ID_HEADER, b"id"),
            (&SECRET_KEY_HEADER, b"s"),
        ]);
        assert_eq!(code(&map), Err(ErrorCode::MalformedCredentials));
    }

    #[test]
    fn empty_value_is_malformed() {
        let map = headers(&[(&CLIENT_ID_HEADER, b""), (&SECRET_KEY_HEADER, b"s")]);
        assert_eq!(code(&map), Err(ErrorCode::MalformedCredentials));
    }

    #[test]
    fn length_limit_is_256_bytes() {
        let ok = vec![b'a'; 256];
        let long = vec![b'a'; 257];
        let map = headers(&[(&CLIENT_ID_HEADER, &ok), (&SECRET_KEY_HEADER, &ok)]);
        assert!(code(&map).is_ok());
        let map = headers(&[(&CLIENT_ID_HEADER, b"id"), (&SECRET_KEY_HEADER, &long)]);
        assert_eq!(code(&map), Err(ErrorCode::MalformedCredentials));
    }

    #[test]
    fn spaces_tabs_and_obs_text_are_malformed() {
        for bad in [&b"a b"[..], b"a\tb", b"caf\xc3\xa9", b"\x80"] {
            let map = headers(&[(&CLIENT_ID_HEADER, b"id"), (&SECRET_KEY_HEADER, bad)]);
            assert_eq!(code(&map), Err(ErrorCode::MalformedCredentials), "{bad:?}");
        }
    }

    #[test]
    fn new_applies_the_header_rules() {
        assert!(Credentials::new("id", "secret").is_ok());
        assert!(Credentials::new("", "secret").is_err());
        assert!(Credentials::new("id", "se cret").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(
            ids in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..3),
            secrets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..3),
        ) {
            let mut map = HeaderMap::new();
            for v in &ids {
                if let Ok(v) = HeaderValue::from_bytes(v) { map.append(CLIENT_ID_HEADER, v); }
            }
            for v in &secrets {
                if let Ok(v) = HeaderValue::from_bytes(v) { map.append(SECRET_KEY_HEADER, v); }
            }
            match Credentials::from_headers(&map) {
                Ok(c) => {
                    prop_assert!(!c.client_id().is_empty() && c.client_id().len() <= 256);
                    prop_assert!(c.secret().bytes().all(|b| (0x21..=0x7e).contains(&b)));
                    prop_assert_eq!(map.get_all(CLIENT_ID_HEADER).iter().count(), 1);
                }
                Err(e) => prop_assert!(matches!(
                    e.code(),
                    ErrorCode::MissingCredentials | ErrorCode::MalformedCredentials
                )),
            }
        }
    }
}
