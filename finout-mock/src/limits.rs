//! The mock's limits that are part of its public API (re-exported at the crate root).

use std::time::Duration;

/// The largest request body accepted, in bytes; past it, 413 `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Requests a minute per account on `/admin` and `/metrics`.
pub const ADMIN_PER_MINUTE: u32 = 600;
/// V1 writes (virtual tags, their metadata, endpoints) a minute per account, all together.
pub const V1_WRITES_PER_MINUTE: u32 = 600;

/// How long a V2 cost-and-usage query takes to complete by default.
pub const DEFAULT_QUERY_DELAY: Duration = Duration::from_secs(2);
/// The longest query delay: 100 years.
pub const MAX_QUERY_DELAY: Duration = Duration::from_secs(100 * 365 * 86_400);
