//! [`SecretHasher`]: argon2id for the secrets a store keeps, and the [`CostCaps`] a stored
//! hash must stay within before any work is spent on it.

use std::cell::RefCell;

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use subtle::ConstantTimeEq;

thread_local! {
    /// argon2's working memory (19 MiB at the default parameters; grown to the largest
    /// parameters run, at most the caps' 64 MiB), kept between runs on the
    /// threads that run argon2 all day (the pools' of `crypto::pool`): allocating and freeing
    /// it every run lets the allocator's heap grow with every run (glibc raises its mmap
    /// threshold after the first free), so peak memory followed the number of runs, not the
    /// number of threads. `None` on other threads: they allocate per run.
    static SCRATCH: RefCell<Option<Vec<Block>>> = const { RefCell::new(None) };
}

/// Keep argon2's working memory on this thread between runs (a dedicated argon2 thread).
pub(crate) fn keep_scratch_on_this_thread() {
    let _ = SCRATCH.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.get_or_insert_with(Vec::new);
        }
    });
}

/// One argon2 run into `out`, in this thread's kept memory if it keeps one.
fn run_argon2(
    argon2: &Argon2<'_>,
    secret: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let kept = SCRATCH
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let blocks = slot.as_mut()?;
            let needed = argon2.params().block_count();
            if blocks.len() < needed {
                // Grown to the largest parameters seen (within the caps), never shrunk, so
                // that alternating parameters never reallocate.
                blocks.try_reserve_exact(needed - blocks.len()).ok()?;
                blocks.resize(needed, Block::default());
            }
            Some(argon2.hash_password_into_with_memory(secret, salt, out, &mut blocks[..needed]))
        })
        .ok()
        .flatten();
    match kept {
        Some(outcome) => outcome,
        None => argon2.hash_password_into(secret, salt, out),
    }
}

use crate::{
    error::BoxError,
    model::{SecretHash, SecretKey},
};

/// The most expensive argon2 parameters a stored hash may ask for before it is refused.
///
/// A hash is attacker-influenced data if a store row can be tampered with; without caps one
/// row asking for `m=4 GiB` could exhaust the server.
///
/// Start from the default and set what you change (more caps may come):
///
/// ```
/// use finout_auth::crypto::{CostCaps, SecretHasher};
/// let mut caps = CostCaps::default();
/// caps.max_memory_kib = 128 * 1024;
/// let hasher = SecretHasher::default().with_caps(caps);
/// assert_eq!(hasher.caps().max_memory_kib, 128 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Test hooks (feature `testing`); none in production.
    hooks: TestHooks,
}

/// What a test hasher does besides argon2 on each verification.
#[derive(Clone, Default)]
struct TestHooks {
    /// A stand-in for argon2's cost: sleep this long.
    sleep: Option<std::time::Duration>,
    /// Told the stored hash of each verification as it starts.
    observe: Option<Observer>,
}

/// A test's observer of verifications.
type Observer = std::sync::Arc<dyn Fn(&SecretHash) + Send + Sync>;

/// An argon2 parameter set was rejected.
#[derive(Debug, thiserror::Error)]
#[error("invalid argon2 parameters")]
pub struct InvalidParams(#[source] argon2::Error);

/// Hashing a secret failed: argon2 refused, or the thread it ran on failed.
#[derive(Debug, thiserror::Error)]
#[error("argon2 hashing failed")]
pub struct HashError(#[source] pub(crate) BoxError);

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
            .field("sleep", &self.hooks.sleep)
            .field("observed", &self.hooks.observe.is_some())
            .finish()
    }
}

impl Default for SecretHasher {
    fn default() -> Self {
        SecretHasher {
            params: Params::DEFAULT,
            caps: CostCaps::default(),
            hooks: TestHooks::default(),
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
        let params =
            Params::new(memory_kib, iterations, parallelism, None).map_err(InvalidParams)?;
        Ok(SecretHasher {
            params,
            ..SecretHasher::default()
        })
    }

    /// argon2id at the smallest cost argon2 allows (8 KiB, one pass, one lane): for test
    /// suites only, where a verification then takes microseconds even in a debug build.
    /// The name says it: a secret hashed this way is cheap to crack offline. Never ship it.
    pub fn insecure_for_tests_only() -> Self {
        SecretHasher::with_params(argon2::Params::MIN_M_COST, 1, 1)
            .unwrap_or_else(|_| SecretHasher::default())
    }

    /// [`insecure_for_tests_only`](Self::insecure_for_tests_only), whose verifications also
    /// sleep for `cost`: a verification that holds its thread as long as a real one would,
    /// without using the CPU, so that tests of admission and fairness behave the same on a
    /// loaded machine as on an idle one. Feature `testing`.
    #[cfg(any(test, feature = "testing"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    pub fn sleeping_for_tests(cost: std::time::Duration) -> Self {
        let mut hasher = SecretHasher::insecure_for_tests_only();
        hasher.hooks.sleep = Some(cost);
        hasher
    }

    /// Call `observe` with the stored hash of each verification as it starts, on the thread
    /// that runs it: for tests that check which tokens' verifications ran, and in what
    /// order. Feature `testing`.
    #[cfg(any(test, feature = "testing"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
    #[must_use]
    pub fn observing_verifications_for_tests(
        mut self,
        observe: impl Fn(&SecretHash) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.observe = Some(std::sync::Arc::new(observe));
        self
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
        fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> HashError {
            HashError(Box::new(e))
        }
        let salt = argon2::password_hash::try_generate_salt().map_err(boxed)?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let argon2 = self.argon2();
        run_argon2(&argon2, secret.expose_secret().as_bytes(), &salt, &mut out).map_err(boxed)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(boxed)?,
            salt: Some(Salt::new(&salt).map_err(boxed)?),
            hash: Some(Output::new(&out).map_err(boxed)?),
        };
        Ok(SecretHash::from_phc(phc.to_string()))
    }

    /// [`hash`](Self::hash) on tokio's blocking pool, so the async threads never run argon2.
    pub async fn hash_async(&self, secret: &SecretKey) -> Result<SecretHash, HashError> {
        let (hasher, secret) = (self.clone(), secret.clone());
        tokio::task::spawn_blocking(move || hasher.hash(&secret))
            .await
            .map_err(|e| HashError(Box::new(e)))?
    }

    /// Check `secret` against a stored hash: `Ok(true)` on a match. The hash is parsed and
    /// its parameters checked against the caps before any work is done. CPU-heavy (one
    /// argon2 run): call it from a blocking thread.
    pub fn verify(&self, secret: &[u8], stored: &SecretHash) -> Result<bool, RefusedHash> {
        if let Some(observe) = &self.hooks.observe {
            observe(stored);
        }
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
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(RefusedHash("no salt or no hash"));
        };
        let version = match parsed.version {
            None => Version::default(),
            Some(v) => Version::try_from(v).map_err(|_| RefusedHash("bad argon2 version"))?,
        };
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..expected.len()];
        run_argon2(&argon2, secret, salt.as_ref(), out)
            .map_err(|_| RefusedHash("argon2 rejected the hash"))?;
        if let Some(cost) = self.hooks.sleep {
            std::thread::sleep(cost);
        }
        Ok(bool::from(out.ct_eq(expected.as_ref())))
    }
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
    fn hashes_interoperate_with_the_argon2_crates_own() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let h = fast();
        let theirs = SecretHash::from_phc(h.argon2().hash_password(b"s").unwrap().to_string());
        assert_eq!(h.verify(b"s", &theirs), Ok(true));
        assert_eq!(h.verify(b"t", &theirs), Ok(false));
        let ours = h.hash(&SecretKey::new("s")).unwrap();
        let parsed = PasswordHash::new(ours.as_phc()).unwrap();
        assert!(h.argon2().verify_password(b"s", &parsed).is_ok());
        assert!(h.argon2().verify_password(b"t", &parsed).is_err());
    }

    #[test]
    fn kept_memory_gives_the_same_answers_whatever_the_parameters() {
        std::thread::spawn(|| {
            keep_scratch_on_this_thread();
            let (small, large) = (fast(), SecretHasher::with_params(2048, 1, 1).unwrap());
            let (a, b) = (
                small.hash(&SecretKey::new("a")).unwrap(),
                large.hash(&SecretKey::new("b")).unwrap(),
            );
            for _ in 0..2 {
                assert_eq!(small.verify(b"a", &a), Ok(true));
                assert_eq!(
                    small.verify(b"b", &b),
                    Ok(true),
                    "the hash's own parameters"
                );
                assert_eq!(small.verify(b"a", &b), Ok(false));
                assert_eq!(large.verify(b"b", &b), Ok(true));
            }
            let kept = SCRATCH.with(|s| s.borrow().as_ref().map(Vec::len));
            assert_eq!(
                kept,
                Some(large.params.block_count()),
                "kept, sized to the last run"
            );
        })
        .join()
        .unwrap();
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
}
