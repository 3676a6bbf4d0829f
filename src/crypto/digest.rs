//! Keyed digests: what the caches keep of a secret that argon2 accepted (or refused), and
//! the constant-time comparison of two of them.

use subtle::ConstantTimeEq;

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
