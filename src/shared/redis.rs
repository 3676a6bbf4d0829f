//! [`RedisShared`]: the shared state in Redis (feature `redis`), one Lua script per decision
//! so that each is atomic across replicas, on the `redis` crate's `ConnectionManager` (one
//! multiplexed connection per process, reconnected in the background).
//!
//! Why the `redis` crate: it is the maintained reference client (the redis-rs project), its
//! `Script` runs `EVALSHA` and falls back to `EVAL` on `NOSCRIPT` (a restarted Redis), and
//! its `ConnectionManager` connects lazily and reconnects by itself, which is what a
//! fall-back-and-return design needs. `fred` would serve too; it brings a larger API and
//! dependency tree for features (clustering, pub/sub, pools) not used here.
//!
//! # Keys and memory
//!
//! Every key starts with the prefix (default `finout-auth:`) and has a TTL, so Redis holds
//! only live state: a rate bucket for its longest period plus a second, a token's slots for
//! the lease plus a second, a failure window for its window, verified secrets for their
//! TTL. A rate bucket is about 100 bytes per key and quota; a failure window about 120
//! bytes per client id that failed in the window; verified secrets 32 bytes per secret plus
//! the key. Give Redis a `maxmemory` with `volatile-ttl` eviction so that a flood of
//! failures evicts the state closest to its end, never answering errors.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use redis::{Client, Script, aio::ConnectionManager, aio::ConnectionManagerConfig};

use super::{RateDecision, SharedError, SharedState, WindowDecision, random_id};
use crate::middleware::Quota;

/// What every timed script starts with: `now` in µs, from ARGV[1] or ('') the server's clock.
const NOW: &str = r#"
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
"#;

const RATE: &str = r#"
-- KEYS[1]: the bucket, a hash from quota index to its theoretical arrival time (µs)
-- ARGV[1]: now in µs ('' for the server's clock); ARGV[2]: the key's TTL in ms
-- ARGV[3..]: per quota, the interval and the tolerance in µs
local n = (#ARGV - 2) / 2
local fields = {}
for i = 1, n do fields[i] = tostring(i) end
local tats = redis.call('HMGET', KEYS[1], unpack(fields))
local wait = 0
local old, new = {}, {}
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(tats[i]) or now
  if tat < now then tat = now end
  local over = tat - now - tolerance
  if over > wait then wait = over end
  old[i] = tat
  new[i] = tat + interval
end
-- Where the key stands after the decision: the quota with the least remaining, of several
-- the one whose remaining grows last; `reset` is until it grows by one (µs).
local best, remaining, reset = 1, -1, 0
for i = 1, n do
  local interval = tonumber(ARGV[1 + 2 * i])
  local x = now + tonumber(ARGV[2 + 2 * i]) - (wait > 0 and old[i] or new[i])
  local left = math.floor(x / interval) + 1
  if left < 0 then left = 0 end
  local grows = interval - x % interval
  if x < 0 then grows = -x end
  if remaining < 0 or left < remaining or (left == remaining and grows > reset) then
    best, remaining, reset = i, left, grows
  end
end
if wait > 0 then return {0, 0, math.ceil(wait), best - 1, math.ceil(reset)} end
local args = {}
for i = 1, n do
  args[2 * i - 1] = tostring(i)
  args[2 * i] = string.format('%.0f', new[i])
end
redis.call('HSET', KEYS[1], unpack(args))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, remaining, 0, best - 1, math.ceil(reset)}
"#;

const ACQUIRE: &str = r#"
-- KEYS[1]: a sorted set from slot id to its lease's end (µs)
-- ARGV: now in µs (''), the slot id, the maximum, the lease in µs
local lease = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + lease), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1000)
return 1
"#;

const RENEW: &str = r#"
-- KEYS[1]: as ACQUIRE; ARGV: now in µs (''), the slot id, the lease in µs
local lease = tonumber(ARGV[3])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%.0f', now + lease), ARGV[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease / 1000) + 1000)
end
return 1
"#;

const RESERVE: &str = r#"
-- KEYS[1]: the window, a hash (w: its id, n: places taken, t: refused already)
-- ARGV: the limit, the window in ms, the id of a window opened now
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'w', ARGV[3], 'n', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n'))
if n >= tonumber(ARGV[1]) then
  local first = redis.call('HSETNX', KEYS[1], 't', 1)
  return {'0', tostring(redis.call('PTTL', KEYS[1])), tostring(first)}
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
return {'1', redis.call('HGET', KEYS[1], 'w')}
"#;

const GIVE_BACK: &str = r#"
-- KEYS[1]: as RESERVE; ARGV[1]: the window the place was taken in
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
end
return 1
"#;

const REMEMBER: &str = r#"
-- KEYS[1]: a set of tags; ARGV: the tag, the TTL in ms
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// Shared state in Redis (feature `redis`). Clones share the connection.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use finout_auth::shared::{RedisShared, Shared};
/// let shared = Shared::new(RedisShared::new("redis://127.0.0.1:6379")?);
/// # let _ = shared; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisShared {
    connection: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    rate: Script,
    acquire: Script,
    renew: Script,
    reserve: Script,
    give_back: Script,
    remember: Script,
}

impl fmt::Debug for RedisShared {
    // The URL may hold a password: not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisShared")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn failed(error: redis::RedisError) -> SharedError {
    // The kind and the server's words; never the URL (a password).
    SharedError(format!(
        "redis: {:?}: {}",
        error.kind(),
        error.detail().unwrap_or("")
    ))
}

fn micros(duration: Duration) -> u128 {
    duration.as_micros()
}

fn now_arg(now: Option<i128>) -> String {
    now.map(|nanos| (nanos / 1_000).to_string())
        .unwrap_or_default()
}

impl RedisShared {
    /// Connect lazily to the Redis at `url` (`redis://[user:password@]host:port[/db]`, or
    /// `rediss://` with the `redis` crate's TLS features): nothing is sent until the first
    /// decision, and a Redis that is not up yet only makes the first decisions fall back.
    pub fn new(url: &str) -> Result<Self, SharedError> {
        let client = Client::open(url).map_err(failed)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(failed)?;
        Ok(RedisShared {
            connection,
            prefix: "finout-auth:".to_owned(),
            scripts: std::sync::Arc::new(Scripts {
                rate: Script::new(&format!("{NOW}{RATE}")),
                acquire: Script::new(&format!("{NOW}{ACQUIRE}")),
                renew: Script::new(&format!("{NOW}{RENEW}")),
                reserve: Script::new(RESERVE),
                give_back: Script::new(GIVE_BACK),
                remember: Script::new(REMEMBER),
            }),
        })
    }

    /// Start every key with `prefix` (default `finout-auth:`): services sharing one Redis
    /// but not their limits use different prefixes.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

#[async_trait]
impl SharedState for RedisShared {
    async fn rate(
        &self,
        key: &str,
        quotas: &[Quota],
        now: Option<i128>,
    ) -> Result<RateDecision, SharedError> {
        let mut invocation = self.scripts.rate.key(self.key(key));
        let longest = quotas.iter().map(Quota::period).max().unwrap_or_default();
        invocation
            .arg(now_arg(now))
            .arg(longest.as_millis().saturating_add(1_000).to_string());
        for quota in quotas {
            let interval = micros(quota.period()) as f64 / f64::from(quota.limit());
            let tolerance = interval * f64::from(quota.limit() - 1);
            invocation
                .arg(format!("{interval}"))
                .arg(format!("{tolerance}"));
        }
        let (admitted, remaining, wait, quota, reset): (i64, i64, i64, i64, i64) = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(RateDecision {
            admitted: admitted == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after: Duration::from_micros(u64::try_from(wait.max(0)).unwrap_or(0)),
            quota: usize::try_from(quota).unwrap_or(0),
            reset: Duration::from_micros(u64::try_from(reset).unwrap_or(0)),
        })
    }

    async fn acquire_slot(
        &self,
        key: &str,
        slot: &str,
        max: u32,
        lease: Duration,
        now: Option<i128>,
    ) -> Result<bool, SharedError> {
        let taken: i64 = self
            .scripts
            .acquire
            .key(self.key(key))
            .arg(now_arg(now))
            .arg(slot)
            .arg(max)
            .arg(micros(lease).to_string())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(taken == 1)
    }

    async fn renew_slot(
        &self,
        key: &str,
        slot: &str,
        lease: Duration,
        now: Option<i128>,
    ) -> Result<(), SharedError> {
        let _: i64 = self
            .scripts
            .renew
            .key(self.key(key))
            .arg(now_arg(now))
            .arg(slot)
            .arg(micros(lease).to_string())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn release_slot(&self, key: &str, slot: &str) -> Result<(), SharedError> {
        let _: i64 = redis::cmd("ZREM")
            .arg(self.key(key))
            .arg(slot)
            .query_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn reserve_failure(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<WindowDecision, SharedError> {
        let answer: Vec<String> = self
            .scripts
            .reserve
            .key(self.key(key))
            .arg(limit)
            .arg(window.as_millis().max(1).to_string())
            .arg(random_id())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        match answer.as_slice() {
            [taken, window] if taken == "1" => Ok(WindowDecision::Taken {
                window: window.clone(),
            }),
            [_, left, first] => Ok(WindowDecision::Full {
                retry_after: Duration::from_millis(left.parse::<u64>().unwrap_or(0)),
                first: first == "1",
            }),
            _ => Err(SharedError(
                "redis: unexpected answer to a reservation".into(),
            )),
        }
    }

    async fn give_back_failure(&self, key: &str, window: &str) -> Result<(), SharedError> {
        let _: i64 = self
            .scripts
            .give_back
            .key(self.key(key))
            .arg(window)
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn is_verified(&self, key: &str, tag: &[u8; 32]) -> Result<bool, SharedError> {
        redis::cmd("SISMEMBER")
            .arg(self.key(key))
            .arg(&tag[..])
            .query_async(&mut self.connection())
            .await
            .map_err(failed)
    }

    async fn remember_verified(
        &self,
        key: &str,
        tag: &[u8; 32],
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let _: i64 = self
            .scripts
            .remember
            .key(self.key(key))
            .arg(&tag[..])
            .arg(ttl.as_millis().max(1).to_string())
            .invoke_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn touch_verified(&self, key: &str, ttl: Duration) -> Result<(), SharedError> {
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(self.key(key))
            .arg(ttl.as_millis().max(1).to_string())
            .query_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn forget_verified(&self, key: &str) -> Result<(), SharedError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.connection())
            .await
            .map_err(failed)?;
        Ok(())
    }
}
