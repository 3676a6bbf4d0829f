//! Secrets: [`SecretKey`] (what a client presents; never logged) and [`SecretHash`] (what a
//! store keeps).

use std::{fmt, sync::Arc};

use zeroize::Zeroizing;

/// A token's secret (Finout's "Secret Key"), sent in `x-finout-secret-key`.
///
/// Shown to its owner exactly once, at issue. `Debug` prints `[redacted]`, there is no
/// `Display` and no `Serialize`, and the memory is zeroed on drop. Read it with
/// [`SecretKey::expose_secret`].
#[derive(Clone)]
pub struct SecretKey(Zeroizing<String>);

impl SecretKey {
    /// Wrap a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretKey(Zeroizing::new(secret.into()))
    }

    /// The secret itself. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// An argon2id hash of a secret, as a PHC string (`$argon2id$v=19$m=...`).
///
/// Not secret in itself, but useless to anyone reading logs, so `Debug` omits it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(Arc<str>);

impl SecretHash {
    /// Wrap a PHC string (validated when verified, not here).
    pub fn from_phc(phc: impl Into<Arc<str>>) -> Self {
        SecretHash(phc.into())
    }

    /// The PHC string.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash([phc string])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_debug_is_redacted() {
        let key = SecretKey::new("hunter2-hunter2");
        assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
        assert!(!format!("{key:#?}").contains("hunter2"));
    }
}
