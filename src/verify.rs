//! Secret hashing and verification: argon2id for what is stored, a keyed BLAKE3 digest for
//! what is cached.

use std::sync::OnceLock;

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier,
    Version,
};
use subtle::ConstantTimeEq;

use crate::token::{SecretHash, SecretKey};

/// The most expensive argon2 parameters a stored hash may ask for before it is refused.
///
/// A hash is attacker-influenced data if a store row can be tampered with; without caps one
/// row asking for `m=4 GiB` could exhaust the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostCaps {
    /// Memory, in KiB.
    pub max_memory_kib: u32,
    /// Iterations.
    pub max_iterations: u32,
    /// Lanes.
    pub max_parallelism: u32,
}

impl Default for CostCaps {
    /// 64 MiB, 8 iterations, 4 lanes: comfortably above the defaults.
    fn default() -> Self {
        CostCaps {
            max_memory_kib: 64 * 1024,
            max_iterations: 8,
            max_parallelism: 4,
        }
    }
}

/// Hashes new secrets with argon2id and verifies presented ones against stored hashes.
///
/// Defaults: argon2id, m = 19456 KiB, t = 2, p = 1 (the OWASP recommendation).
#[derive(Clone)]
pub struct SecretHasher {
    params: Params,
    caps: CostCaps,
    dummy: std::sync::Arc<OnceLock<String>>,
}

/// An argon2 parameter set was rejected.
#[derive(Debug, thiserror::Error)]
#[error("invalid argon2 parameters: {0}")]
pub struct InvalidParams(String);

/// Hashing a secret failed.
#[derive(Debug, thiserror::Error)]
#[error("argon2 hashing failed: {0}")]
pub struct HashError(String);

/// A stored hash was not checked: it is not an argon2id PHC string, or its cost parameters
/// exceed the [`CostCaps`]. The token cannot authenticate; the reason is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored secret hash refused: {0}")]
pub struct RefusedHash(pub &'static str);

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretHasher")
            .field("memory_kib", &self.params.m_cost())
            .field("iterations", &self.params.t_cost())
            .field("parallelism", &self.params.p_cost())
            .field("caps", &self.caps)
            .finish()
    }
}

impl Default for SecretHasher {
    fn default() -> Self {
        SecretHasher {
            params: Params::DEFAULT,
            caps: CostCaps::default(),
            dummy: Default::default(),
        }
    }
}

impl SecretHasher {
    /// A hasher with explicit argon2id cost parameters (memory in KiB, iterations, lanes).
    pub fn with_params(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, InvalidParams> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| InvalidParams(e.to_string()))?;
        Ok(SecretHasher {
            params,
            ..SecretHasher::default()
        })
    }

    /// Replace the caps applied to stored hashes.
    pub fn with_caps(mut self, caps: CostCaps) -> Self {
        self.caps = caps;
        self
    }

    /// The caps applied to stored hashes.
    pub fn caps(&self) -> CostCaps {
        self.caps
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hash a secret with a fresh random salt. Takes about as long as one verification.
    pub fn hash(&self, secret: &SecretKey) -> Result<SecretHash, HashError> {
        let hash = self
            .argon2()
            .hash_password(secret.expose_secret().as_bytes())
            .map_err(|e| HashError(e.to_string()))?;
        Ok(SecretHash::from_phc(hash.to_string()))
    }

    /// Check `secret` against a stored hash: `Ok(true)` on a match. The hash is parsed and
    /// its parameters checked against the caps before any work is done. CPU-heavy (one
    /// argon2 run): call it from a blocking thread.
    pub fn verify(&self, secret: &[u8], stored: &SecretHash) -> Result<bool, RefusedHash> {
        let parsed =
            PasswordHash::new(stored.as_phc()).map_err(|_| RefusedHash("not a PHC string"))?;
        if parsed.algorithm != ARGON2ID_IDENT {
            return Err(RefusedHash("not argon2id"));
        }
        let params = Params::try_from(&parsed).map_err(|_| RefusedHash("bad argon2 parameters"))?;
        if params.m_cost() > self.caps.max_memory_kib
            || params.t_cost() > self.caps.max_iterations
            || params.p_cost() > self.caps.max_parallelism
        {
            return Err(RefusedHash("argon2 cost above the caps"));
        }
        match self.argon2().verify_password(secret, &parsed) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(_) => Err(RefusedHash("argon2 rejected the hash")),
        }
    }

    /// Spend the same work as a real verification, for unknown client ids, so that their
    /// timing matches a wrong secret's.
    pub(crate) fn dummy_verify(&self, secret: &[u8]) {
        let phc = self.dummy.get_or_init(|| {
            self.hash(&SecretKey::new("00000000-0000-4000-8000-000000000000"))
                .map(|h| h.as_phc().to_owned())
                .unwrap_or_default()
        });
        let _ = self.verify(secret, &SecretHash::from_phc(phc.as_str()));
    }
}

/// Keyed BLAKE3 digests of secrets and client ids, for the caches: comparing digests in
/// constant time is how a cached token is checked without argon2. The keys are random per
/// process, so a memory dump of the caches reveals nothing usable elsewhere.
#[derive(Clone)]
pub(crate) struct DigestKey {
    secrets: [u8; 32],
    ids: [u8; 32],
}

pub(crate) type SecretDigest = [u8; 32];

impl DigestKey {
    pub(crate) fn random() -> Self {
        let mut keys = [0u8; 64];
        // The OS RNG failing is unrecoverable and would make every digest predictable.
        getrandom::fill(&mut keys).expect("the OS random number generator failed");
        let mut key = DigestKey {
            secrets: [0; 32],
            ids: [0; 32],
        };
        key.secrets.copy_from_slice(&keys[..32]);
        key.ids.copy_from_slice(&keys[32..]);
        zeroize::Zeroize::zeroize(&mut keys);
        key
    }

    /// The digest of a secret.
    pub(crate) fn digest(&self, secret: &[u8]) -> SecretDigest {
        *blake3::keyed_hash(&self.secrets, secret).as_bytes()
    }

    /// A mask for a client id, under an independent key.
    pub(crate) fn id_mask(&self, client_id: &[u8]) -> SecretDigest {
        *blake3::keyed_hash(&self.ids, client_id).as_bytes()
    }

    /// The key of one (client id, secret) attempt: the secret's digest masked with the id's.
    /// Both are outputs of independently keyed PRFs, so without the keys no one can aim an
    /// attempt at another's key; and a cached token, which keeps its id's mask, gets the key
    /// of a wrong secret from the digest it computes anyway.
    pub(crate) fn attempt(secret_digest: &SecretDigest, id_mask: &SecretDigest) -> SecretDigest {
        std::array::from_fn(|i| secret_digest[i] ^ id_mask[i])
    }
}

impl Drop for DigestKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secrets);
        zeroize::Zeroize::zeroize(&mut self.ids);
    }
}

/// Constant-time equality: the words' differences OR-ed together without a branch, then one
/// `subtle` comparison with zero (not one per byte, or per word).
pub(crate) fn digests_equal(a: &SecretDigest, b: &SecretDigest) -> bool {
    let word = |d: &SecretDigest, i: usize| {
        u64::from_ne_bytes(d[i * 8..i * 8 + 8].try_into().unwrap_or_default())
    };
    let diff = (0..4).fold(0u64, |diff, i| diff | (word(a, i) ^ word(b, i)));
    diff.ct_eq(&0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> SecretHasher {
        SecretHasher::with_params(1024, 1, 1).unwrap()
    }

    #[test]
    fn hash_then_verify() {
        let h = fast();
        let hash = h.hash(&SecretKey::new("right")).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(h.verify(b"right", &hash), Ok(true));
        assert_eq!(h.verify(b"wrong", &hash), Ok(false));
    }

    #[test]
    fn default_params_are_owasp() {
        let h = SecretHasher::default();
        assert_eq!(
            (h.params.m_cost(), h.params.t_cost(), h.params.p_cost()),
            (19456, 2, 1)
        );
    }

    #[test]
    fn hashes_over_the_caps_are_refused() {
        let h = fast().with_caps(CostCaps {
            max_memory_kib: 512,
            ..CostCaps::default()
        });
        let hash = fast().hash(&SecretKey::new("s")).unwrap();
        assert!(h.verify(b"s", &hash).is_err());
    }

    #[test]
    fn garbage_and_other_algorithms_are_refused() {
        let h = fast();
        for bad in [
            "",
            "nonsense",
            "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert!(h.verify(b"s", &SecretHash::from_phc(bad)).is_err());
        }
    }

    #[test]
    fn digests_are_keyed() {
        let (a, b) = (DigestKey::random(), DigestKey::random());
        assert_eq!(a.digest(b"s"), a.digest(b"s"));
        assert_ne!(a.digest(b"s"), b.digest(b"s"));
        assert!(digests_equal(&a.digest(b"s"), &a.digest(b"s")));
        assert!(!digests_equal(&a.digest(b"s"), &a.digest(b"t")));
        assert_ne!(a.id_mask(b"s"), a.digest(b"s"), "independent keys");
    }

    #[test]
    fn a_digest_differing_in_any_single_bit_is_unequal() {
        let a = DigestKey::random().digest(b"secret");
        assert!(digests_equal(&a, &a));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!digests_equal(&a, &b), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn attempts_differ_by_id_and_by_secret() {
        let k = DigestKey::random();
        let attempt =
            |id: &[u8], secret: &[u8]| DigestKey::attempt(&k.digest(secret), &k.id_mask(id));
        assert_eq!(attempt(b"id", b"s"), attempt(b"id", b"s"));
        assert_ne!(attempt(b"id", b"s"), attempt(b"id", b"t"));
        assert_ne!(attempt(b"id", b"s"), attempt(b"ie", b"s"));
    }
}
