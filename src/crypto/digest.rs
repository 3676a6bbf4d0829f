//! Keyed digests: what the caches keep of a secret that argon2 accepted (or refused), the
//! constant-time comparison of two of them, and the fingerprints logs show of values that
//! were not verified.

use std::fmt;

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

/// Short keyed fingerprints of presented values, for logs: a header value is written to a
/// log only once it was verified (a client id whose secret argon2 accepted); before that,
/// only its fingerprint, so that a secret sent in the client-id header (swapped headers), or
/// anything else an attacker sends, never lands in a log. The same value gives the same
/// fingerprint within a process, so lines about one caller can be correlated; the key is
/// random per process.
pub(crate) struct Fingerprints {
    key: [u8; 32],
}

/// The fingerprint of one value: 48 bits of a keyed BLAKE3 digest, written as 12 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 6]);

impl Fingerprints {
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random number generator failed");
        Fingerprints { key }
    }

    /// The fingerprint of `value`.
    pub(crate) fn of(&self, value: &[u8]) -> Fingerprint {
        let mut short = [0u8; 6];
        short.copy_from_slice(&blake3::keyed_hash(&self.key, value).as_bytes()[..6]);
        Fingerprint(short)
    }
}

impl Drop for Fingerprints {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprints([key])")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
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
    fn fingerprints_are_keyed_stable_and_short() {
        let (a, b) = (Fingerprints::random(), Fingerprints::random());
        assert_eq!(a.of(b"id"), a.of(b"id"));
        assert_ne!(a.of(b"id"), a.of(b"ie"));
        assert_ne!(a.of(b"id"), b.of(b"id"), "keyed per process");
        let text = a.of(b"2b5e6c1a-0000-4000-8000-000000000001").to_string();
        assert_eq!(text.len(), 12);
        assert!(text.bytes().all(|c| c.is_ascii_hexdigit()));
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
