//! Connection URLs (`--store`, `--feed-store`, `--redis`) as they may be shown: in logs,
//! error messages and `Debug`, a password is `***`.

use std::{borrow::Cow, convert::Infallible, fmt, str::FromStr};

/// What stands for a password.
const MASK: &str = "***";

/// A URL given on the command line, which may carry a password: shown (`Display`, `Debug`)
/// with the password masked; [`expose`](Self::expose) gives it whole, to connect with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretUrl(String);

impl SecretUrl {
    /// The URL with its password: to connect, never to show.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretUrl(s.to_owned()))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&mask_url(&self.0), f)
    }
}

/// `url` with its password masked: `postgres://user:***@host/db`, `redis://:***@host`, and
/// any query parameter whose name holds `pass` (`?password=***`).
///
/// Errs on the side of hiding: the user information runs to the *last* `@` (a password with
/// an unescaped `/`, `?` or `#` stays hidden, at the cost of hiding more of a URL whose
/// query holds an `@`), and text that has an `@` but no `://` is not echoed at all.
pub(crate) fn mask_url(url: &str) -> Cow<'_, str> {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return if url.contains('@') {
            Cow::Borrowed(MASK)
        } else {
            mask_query(url)
        };
    };
    let rest = &url[start..];
    match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let tail = mask_query(&rest[at..]);
            match userinfo.find(':') {
                Some(colon) => Cow::Owned(format!(
                    "{}{}:{MASK}{tail}",
                    &url[..start],
                    &userinfo[..colon]
                )),
                // A user without a password.
                None => match tail {
                    Cow::Borrowed(_) => Cow::Borrowed(url),
                    Cow::Owned(tail) => Cow::Owned(format!("{}{userinfo}{tail}", &url[..start])),
                },
            }
        }
        None => match mask_query(rest) {
            Cow::Borrowed(_) => Cow::Borrowed(url),
            Cow::Owned(rest) => Cow::Owned(format!("{}{rest}", &url[..start])),
        },
    }
}

/// `text` with the value of every query parameter whose name holds `pass` masked.
fn mask_query(text: &str) -> Cow<'_, str> {
    let Some(q) = text.find('?') else {
        return Cow::Borrowed(text);
    };
    let (head, query) = text.split_at(q + 1);
    let (query, fragment) = query.split_at(query.find('#').unwrap_or(query.len()));
    let mut changed = false;
    let pairs: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                changed = true;
                Cow::Owned(format!("{key}={MASK}"))
            }
            _ => Cow::Borrowed(pair),
        })
        .collect();
    if changed {
        Cow::Owned(format!("{head}{}{fragment}", pairs.join("&")))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_masked_and_the_rest_kept() {
        for (url, shown) in [
            (
                "postgres://app:hunter2@db.internal:5432/mock",
                "postgres://app:***@db.internal:5432/mock",
            ),
            // Password only (Redis).
            ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
            // Empty password: still masked, so an empty one is not told apart.
            ("postgres://app:@db/mock", "postgres://app:***@db/mock"),
            // In the query string.
            (
                "postgresql://app@db/mock?sslmode=require&password=hunter2",
                "postgresql://app@db/mock?sslmode=require&password=***",
            ),
            (
                "postgres://app:hunter2@db/mock?PassWord=hunter2#x",
                "postgres://app:***@db/mock?PassWord=***#x",
            ),
        ] {
            assert_eq!(mask_url(url), shown);
        }
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in [
            "postgres://app@db.internal:5432/mock",
            "postgres://db/mock?sslmode=require",
            "redis://127.0.0.1:6379",
            "sqlite://finout-mock.db",
            "sqlite:mock.db?mode=rwc",
            "memory",
            "",
        ] {
            assert_eq!(mask_url(url), url);
        }
    }

    #[test]
    fn what_cannot_be_parsed_never_shows_a_password() {
        for url in [
            // An unescaped `/`, `?`, `#` or `@` in the password.
            "postgres://app:hun/ter2@db/mock",
            "postgres://app:hun?ter2@db/mock",
            "postgres://app:hun#ter2@db/mock",
            "postgres://app:hun@ter2@db/mock",
            // No `//`, or no scheme at all.
            "postgres:app:hunter2@db/mock",
            "app:hunter2@db",
            "postgress://app:hunter2@db/mock",
            "?password=hunter2",
            "x://?a&password&pass=hunter2&&=",
            "://:hunter2@",
        ] {
            let shown = mask_url(url);
            assert!(!shown.contains("ter2"), "{url} shown as {shown}");
        }
    }

    #[test]
    fn display_and_debug_mask() {
        let url: SecretUrl = "postgres://app:hunter2@db/mock".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db/mock");
        assert_eq!(format!("{url:?}"), "\"postgres://app:***@db/mock\"");
        assert_eq!(url.expose(), "postgres://app:hunter2@db/mock");
    }
}
