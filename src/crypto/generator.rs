//! New credentials: the pluggable [`CredentialGenerator`] and its default,
//! [`UuidV4Generator`].

use std::fmt;

use crate::model::{ClientId, SecretKey};

/// Makes new client ids and secrets. The default, [`UuidV4Generator`], makes UUID v4
/// strings like Finout's.
pub trait CredentialGenerator: fmt::Debug + Send + Sync + 'static {
    /// A new, unique client id.
    fn client_id(&self) -> ClientId;
    /// A new secret key, from a cryptographically secure source.
    fn secret_key(&self) -> SecretKey;
}

/// Client ids and secrets as hyphenated UUID v4 strings (36 characters, 122 random bits).
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV4Generator;

impl CredentialGenerator for UuidV4Generator {
    fn client_id(&self) -> ClientId {
        ClientId::from(uuid::Uuid::new_v4().to_string())
    }

    fn secret_key(&self) -> SecretKey {
        // uuid's v4 draws from a CSPRNG seeded by the OS.
        let mut buf = uuid::Uuid::encode_buffer();
        SecretKey::new(&*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_generator_makes_v4_strings() {
        let g = UuidV4Generator;
        for s in [
            g.client_id().as_str().to_owned(),
            g.secret_key().expose_secret().to_owned(),
        ] {
            assert_eq!(s.len(), 36);
            let parsed = uuid::Uuid::parse_str(&s).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
        }
        assert_ne!(g.client_id(), g.client_id());
    }
}
