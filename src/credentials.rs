//! The header contract: reading the two credential headers from a request.
//!
//! Parsing is pure and total: any [`HeaderMap`] yields either [`Credentials`] or an
//! [`AuthError`] (`missing_credentials` / `malformed_credentials`), never a panic. It borrows
//! from the headers, so the hot path allocates nothing. [`Credentials::from_headers`] reads
//! both headers in place; the layer's path takes the secret header out first
//! ([`TakenSecret`]) and applies the same rules to what it took.
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
    // Validated visible ASCII; kept as bytes so the hot path never re-checks UTF-8.
    client_id: &'a [u8],
    secret: &'a [u8],
}

impl<'a> Credentials<'a> {
    /// Build credentials from already validated parts (e.g. in tests or non-HTTP transports).
    ///
    /// The same rules as for headers apply: 1-256 visible ASCII bytes each.
    pub fn new(client_id: &'a str, secret: &'a str) -> Result<Self, AuthError> {
        Ok(Credentials {
            client_id: validate(client_id.as_bytes())?,
            secret: validate(secret.as_bytes())?,
        })
    }

    /// Read both headers. Exactly one value per header, 1-256 visible ASCII bytes.
    ///
    /// A header that is absent answers `missing_credentials` (checked first, for both);
    /// a header present but unacceptable answers `malformed_credentials`.
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, AuthError> {
        Self::from_values(
            single(headers.get_all(CLIENT_ID_HEADER).iter()),
            single(headers.get_all(SECRET_KEY_HEADER).iter()),
        )
    }

    /// The layer's path: the rules of [`from_headers`](Self::from_headers), with the secret
    /// header already taken out of `headers`.
    pub(crate) fn from_taken(
        headers: &'a HeaderMap,
        secret: &'a TakenSecret,
    ) -> Result<Self, AuthError> {
        Self::from_values(
            single(headers.get_all(CLIENT_ID_HEADER).iter()),
            secret
                .0
                .as_ref()
                .map(|(value, repeated)| (value, *repeated)),
        )
    }

    /// The rules of [`from_headers`](Self::from_headers), applied to each header's first
    /// value and whether it had more: `None` when a header is absent.
    fn from_values(
        client_id: Option<(&'a HeaderValue, bool)>,
        secret: Option<(&'a HeaderValue, bool)>,
    ) -> Result<Self, AuthError> {
        let (Some(client_id), Some(secret)) = (client_id, secret) else {
            return Err(AuthError::MissingCredentials);
        };
        let one = |(value, repeated): (&'a HeaderValue, bool)| {
            if repeated {
                Err(AuthError::MalformedCredentials(MalformedReason::Duplicate))
            } else {
                Ok(value.as_bytes())
            }
        };
        let (client_id, secret) = (one(client_id)?, one(secret)?);
        Ok(Credentials {
            client_id: validate(client_id)?,
            secret: validate(secret)?,
        })
    }

    /// The presented client id.
    pub fn client_id(&self) -> &'a str {
        ascii(self.client_id)
    }

    /// The presented secret key. Handle with care: never log it.
    pub fn secret(&self) -> &'a str {
        ascii(self.secret)
    }

    pub(crate) fn client_id_bytes(&self) -> &'a [u8] {
        self.client_id
    }

    pub(crate) fn secret_bytes(&self) -> &'a [u8] {
        self.secret
    }
}

/// Validated bytes are visible ASCII, hence UTF-8.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id())
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The secret header, taken out of a request's headers so that the inner service never sees
/// it, whatever the outcome: its first value, and whether it had more.
pub(crate) struct TakenSecret(Option<(HeaderValue, bool)>);

impl TakenSecret {
    /// Whether the request had the secret header at all.
    pub(crate) fn is_present(&self) -> bool {
        self.0.is_some()
    }

    /// Remove every value of the secret header from `headers`, in one lookup.
    ///
    /// [`HeaderMap::len`] counts values, so what the removal took tells whether the header
    /// was repeated. Not through [`HeaderMap::entry`]: it makes room for an insert before it
    /// looks, and hyper sizes a request's map exactly to its headers, so every request would
    /// reallocate the map.
    #[inline]
    pub(crate) fn take(headers: &mut HeaderMap) -> Self {
        let before = headers.len();
        TakenSecret(
            headers
                .remove(&SECRET_KEY_HEADER)
                .map(|first| (first, before - headers.len() > 1)),
        )
    }
}

/// A header's first value, and whether another follows; `None` when absent.
fn single<'a>(
    mut values: impl Iterator<Item = &'a HeaderValue>,
) -> Option<(&'a HeaderValue, bool)> {
    let first = values.next()?;
    Some((first, values.next().is_some()))
}

fn validate(bytes: &[u8]) -> Result<&[u8], AuthError> {
    let malformed = |reason| Err(AuthError::MalformedCredentials(reason));
    if bytes.is_empty() {
        return malformed(MalformedReason::Empty);
    }
    if bytes.len() > MAX_CREDENTIAL_LEN {
        return malformed(MalformedReason::TooLong);
    }
    // Not short-circuiting, so the compiler can check many bytes per instruction.
    let visible = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b.wrapping_sub(0x21) < 0x5e));
    if !visible {
        return malformed(MalformedReason::InvalidByte);
    }
    Ok(bytes)
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

    fn sized(values: &[(&'static str, &'static str)]) -> HeaderMap {
        // As hyper builds a request's map: sized exactly to the headers it parsed.
        let mut map = HeaderMap::with_capacity(values.len());
        for (name, value) in values {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn take_removes_every_value_and_reports_repeats() {
        let mut map = sized(&[
            ("host", "example.test"),
            ("x-finout-secret-key", "first"),
            ("x-finout-secret-key", "second"),
        ]);
        let (first, repeated) = TakenSecret::take(&mut map).0.expect("present");
        assert_eq!(first, "first");
        assert!(repeated);
        assert!(map.get(&SECRET_KEY_HEADER).is_none());
        assert_eq!(map.len(), 1);

        let mut map = sized(&[("x-finout-secret-key", "only")]);
        let (first, repeated) = TakenSecret::take(&mut map).0.expect("present");
        assert_eq!((first.to_str().unwrap(), repeated), ("only", false));
        assert!(map.is_empty());

        assert!(TakenSecret::take(&mut sized(&[("host", "h")])).0.is_none());
    }

    #[test]
    fn take_does_not_grow_an_exactly_sized_map() {
        // `HeaderMap::entry` would reserve room for an insert first: a reallocation for
        // every request hyper hands over.
        let mut map = sized(&[
            ("host", "example.test"),
            ("x-finout-client-id", "id"),
            ("x-finout-secret-key", "secret"),
        ]);
        let capacity = map.capacity();
        assert!(TakenSecret::take(&mut map).0.is_some());
        assert_eq!(map.capacity(), capacity);
        assert!(TakenSecret::take(&mut map).0.is_none());
        assert_eq!(map.capacity(), capacity);
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
