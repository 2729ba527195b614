//! Token buckets: one per team (protects the gateway and other teams) and optionally one per
//! phone number (Meta's quota is shared by every team using the number).
//!
//! Buckets live in this process (`store = "local"`), or in Redis (`store = "redis"`) so that
//! every replica draws from the same bucket: one script per check takes a token atomically.
//! When Redis does not answer, the replica keeps serving on its own buckets and says so (log
//! line, `wagw_rate_limit_redis_up` 0, `/readyz`), trying Redis again a second later.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// A bucket's size and refill: `burst` calls at once, `per_second` more each second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Why a call was refused: how long to wait, and the bucket's size for RateLimit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after: Duration,
    pub limit: u32,
}

/// Buckets per key; keys without configured limits are never refused.
pub struct Buckets<K> {
    buckets: HashMap<K, (Bucket, u32)>,
    rates: HashMap<K, Rate>,
    clock: DefaultClock,
}

fn quota(settings: &Rate) -> Option<Quota> {
    let per_second = NonZeroU32::new(settings.per_second)?;
    let burst = NonZeroU32::new(settings.burst)?;
    Some(Quota::per_second(per_second).allow_burst(burst))
}

impl<K: Hash + Eq> Buckets<K> {
    pub fn new(limits: impl IntoIterator<Item = (K, Rate)>) -> Self
    where
        K: Clone,
    {
        let limits: Vec<(K, Rate)> = limits.into_iter().collect();
        let rates = limits.iter().cloned().collect();
        let buckets = limits
            .into_iter()
            .filter_map(|(key, settings)| {
                let q = quota(&settings)?;
                Some((
                    key,
                    (
                        RateLimiter::direct(q).with_middleware::<StateInformationMiddleware>(),
                        settings.burst,
                    ),
                ))
            })
            .collect();
        Buckets {
            buckets,
            rates,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one token, or says how long until one is available.
    pub fn check(&self, key: &K) -> Result<(), Refusal> {
        let Some((bucket, limit)) = self.buckets.get(key) else {
            return Ok(());
        };
        match bucket.check() {
            Ok(_) => Ok(()),
            Err(not_until) => Err(Refusal {
                retry_after: not_until.wait_time_from(self.clock.now()),
                limit: *limit,
            }),
        }
    }
}

/// Counts `per_second` / `burst` buckets in Redis: GCRA over Redis's own clock, so replicas
/// need not agree on the time. Answers `{1, 0}` when a token was taken, else `{0, ms to
/// wait}`. The key expires once its bucket would be full again.
const TAKE_TOKEN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if allow_at > now then
  return {0, math.ceil((allow_at - now) / 1000)}
end
redis.call('SET', KEYS[1], string.format('%d', tat + interval),
  'PX', math.ceil(burst * interval / 1000) + 1000)
return {1, 0}
";

/// After Redis failed, this long on local buckets before asking it again.
const REDIS_RETRY_AFTER_MS: i64 = 1_000;
/// A check that takes longer than this falls back to the local bucket.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// The Redis all replicas count in, shared by the team and phone-number limiters.
pub struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
    up: AtomicBool,
    /// Unix ms before which Redis is not asked again after a failure.
    down_until: AtomicI64,
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start is used once it answers.
    pub fn new(url: &str) -> Result<Arc<RedisStore>, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        metrics::gauge!(crate::metrics::RATE_LIMIT_REDIS_UP).set(1.0);
        Ok(Arc::new(RedisStore {
            connection,
            script: redis::Script::new(TAKE_TOKEN),
            up: AtomicBool::new(true),
            down_until: AtomicI64::new(0),
        }))
    }

    /// Whether the last check reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks Redis now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        let answer = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 250 ms".into()),
        }
    }

    /// Takes a token from the bucket `key`; None when Redis could not be asked.
    async fn take(&self, key: &str, rate: Rate) -> Option<Result<(), Refusal>> {
        let now = chrono::Utc::now().timestamp_millis();
        if now < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        let interval_us = 1_000_000 / u64::from(rate.per_second.max(1));
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(interval_us).arg(rate.burst);
        let answer = tokio::time::timeout(
            REDIS_TIMEOUT,
            invocation.invoke_async::<(i64, i64)>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok((taken, wait_ms))) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared by all replicas");
                    metrics::gauge!(crate::metrics::RATE_LIMIT_REDIS_UP).set(1.0);
                }
                Some(if taken == 1 {
                    Ok(())
                } else {
                    Err(Refusal {
                        retry_after: Duration::from_millis(wait_ms.max(0) as u64),
                        limit: rate.burst,
                    })
                })
            }
            failed => {
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer within 250 ms".to_owned(),
                };
                self.down_until
                    .store(now + REDIS_RETRY_AFTER_MS, Ordering::Relaxed);
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(
                        error,
                        "Redis does not answer: rate limits fall back to this replica's own buckets"
                    );
                    metrics::gauge!(crate::metrics::RATE_LIMIT_REDIS_UP).set(0.0);
                }
                None
            }
        }
    }
}

/// Buckets per key, in this process or shared through Redis.
pub struct Limiter<K> {
    local: Buckets<K>,
    shared: Option<Arc<RedisStore>>,
    /// Names the keys in Redis: `wagw:rl:{kind}:{key}`.
    kind: &'static str,
}

impl<K: Hash + Eq + Clone + Display> Limiter<K> {
    pub fn new(
        kind: &'static str,
        limits: impl IntoIterator<Item = (K, Rate)>,
        shared: Option<Arc<RedisStore>>,
    ) -> Self {
        Limiter {
            local: Buckets::new(limits),
            shared,
            kind,
        }
    }

    /// Takes one token, or says how long until one is available.
    pub async fn check(&self, key: &K) -> Result<(), Refusal> {
        let Some(rate) = self.local.rates.get(key).copied() else {
            return Ok(());
        };
        if let Some(redis) = &self.shared {
            let name = format!("wagw:rl:{}:{key}", self.kind);
            if let Some(answer) = redis.take(&name, rate).await {
                return answer;
            }
            metrics::counter!(crate::metrics::RATE_LIMIT_LOCAL_FALLBACKS, "limit" => self.kind)
                .increment(1);
        }
        self.local.check(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_how_long_to_wait() {
        let buckets = Buckets::new([(
            "sales",
            Rate {
                per_second: 1,
                burst: 2,
            },
        )]);
        assert!(buckets.check(&"sales").is_ok());
        assert!(buckets.check(&"sales").is_ok());
        let refusal = buckets.check(&"sales").unwrap_err();
        assert_eq!(refusal.limit, 2);
        assert!(refusal.retry_after <= Duration::from_secs(1));
        assert!(
            buckets.check(&"unlimited").is_ok(),
            "keys without limits pass"
        );
    }
}
