//! The cryptography: argon2id hashing of secrets ([`SecretHasher`], with [`CostCaps`] on
//! stored hashes), the keyed digests the caches compare in constant time, and the generator
//! of new client ids and secrets ([`CredentialGenerator`]), and the bounded thread pools
//! argon2 runs on (`pool`).

pub(crate) mod digest;
mod generator;
mod hasher;
pub(crate) mod pool;

pub use generator::{CredentialGenerator, UuidV4Generator};
pub use hasher::{CostCaps, HashError, InvalidParams, RefusedHash, SecretHasher};
