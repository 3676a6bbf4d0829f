//! The options of `serve` (the default command).

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

use crate::redact::SecretUrl;

#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Token store: `sqlite://PATH`, `memory` or `postgres://...`.
    #[arg(
        long,
        env = "FINOUT_MOCK_STORE",
        hide_env_values = true,
        default_value = "sqlite://finout-mock.db"
    )]
    pub(crate) store: SecretUrl,
    /// PostgreSQL connections this mock opens at most (its change feed holds one more): 10
    /// mocks × (8 + 1) fit a default server's 100.
    #[arg(long, env = "FINOUT_MOCK_STORE_CONNECTIONS", default_value_t = finout_auth::store::DEFAULT_MAX_CONNECTIONS)]
    pub(crate) store_connections: u32,
    /// At start, keep trying a PostgreSQL store that refuses connections (not up yet, or
    /// full) for this many seconds, with backoff, instead of exiting.
    #[arg(long, default_value_t = 60)]
    pub(crate) store_retry_secs: u64,
    /// The change feed's own URL (the database's direct one), when --store goes through a
    /// pooler in transaction mode (PgBouncer), which cannot carry LISTEN.
    #[arg(long, env = "FINOUT_MOCK_FEED_STORE", hide_env_values = true)]
    pub(crate) feed_store: Option<SecretUrl>,
    /// Extra delay added to every /v1 and /v2 response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_ms: u64,
    /// How long a V2 cost-and-usage query stays queued/running, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub(crate) query_delay_ms: u64,
    /// Do not apply Finout's per-route V2 rate limits.
    #[arg(long)]
    pub(crate) no_rate_limits: bool,
    /// Share rate limits, in-flight limits, failure windows and verified secrets with every
    /// replica on the same store through this Redis (`redis://host:port`). The key of the
    /// verified secrets' tags is kept in the store's database (a test double's choice).
    #[arg(long, env = "FINOUT_MOCK_REDIS", hide_env_values = true)]
    pub(crate) redis: Option<SecretUrl>,
    /// What every key the mock writes to --redis starts with: deployments sharing one Redis
    /// but not their limits use different prefixes.
    #[arg(long, env = "FINOUT_MOCK_REDIS_PREFIX", default_value = "finout-mock:")]
    pub(crate) redis_prefix: String,
    /// A seed file (JSON) of accounts, users and tokens to load (idempotent; what a seed
    /// created and was revoked or removed since is not re-created).
    #[arg(long)]
    pub(crate) seed: Option<PathBuf>,
    /// Connections open at once; past it, new ones wait in the kernel's backlog.
    #[arg(long, default_value_t = 1024)]
    pub(crate) max_connections: usize,
    /// Seconds a request's headers may take (also closes connections idle that long).
    #[arg(long, default_value_t = 10)]
    pub(crate) header_timeout_secs: u64,
    /// Connections one account may hold; its next one is answered 429 and closed.
    #[arg(long, default_value_t = 64)]
    pub(crate) max_connections_per_account: usize,
    /// Seconds a request's body may take in total (408 and closed past it).
    #[arg(long, default_value_t = 10)]
    pub(crate) body_timeout_secs: u64,
    /// The slowest a body may arrive after its first second, in bytes a second.
    #[arg(long, default_value_t = 1024)]
    pub(crate) min_body_rate: u64,
    /// Seconds an answer's write may make no progress before the connection is closed.
    #[arg(long, default_value_t = 30)]
    pub(crate) write_timeout_secs: u64,
    /// Bytes of answers one account's clients may leave unread; past it, 429.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub(crate) answer_bytes_per_account: usize,
    /// On the first start, also write the bootstrap credentials to this file, as JSON
    /// `{"accountId","userId","clientId","secretKey","baseUrl"}` (mode 0600; replaced
    /// whole; if it cannot be written, the bootstrap is undone and the start fails). On a
    /// store bootstrapped before, which creates no credentials, the start fails at once
    /// (saying how to get a token) and the file is left as it is.
    #[arg(long, conflicts_with = "seed")]
    pub(crate) credentials_file: Option<PathBuf>,
    /// Print one JSON line on stdout, once listening, instead of the prose: the bootstrap
    /// credentials on the first start (as --credentials-file writes them), else
    /// `{"baseUrl"}`.
    #[arg(long)]
    pub(crate) json: bool,
}
