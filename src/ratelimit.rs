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
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

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

/// Keeps the later of two hold times at KEYS[1]; ARGV: the time (Unix ms), its TTL (ms).
const HOLD_UNTIL: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";
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

    /// Stores `until_ms` at `key` unless a later time is stored there; the key expires with
    /// it. None when Redis could not be asked.
    pub async fn hold_until(&self, key: &str, until_ms: i64) -> Option<()> {
        let now = chrono::Utc::now().timestamp_millis();
        if now < self.down_until.load(Ordering::Relaxed) || until_ms <= now {
            return None;
        }
        let mut connection = self.connection.clone();
        let script = redis::Script::new(HOLD_UNTIL);
        let mut invocation = script.key(key);
        invocation.arg(until_ms).arg(until_ms - now);
        let answer = tokio::time::timeout(
            REDIS_TIMEOUT,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(_)) => Some(()),
            _ => {
                self.down_until
                    .store(now + REDIS_RETRY_AFTER_MS, Ordering::Relaxed);
                None
            }
        }
    }

    /// The time stored at `key` by `hold_until` (0 when none); None when Redis could not be
    /// asked.
    pub async fn held_until(&self, key: &str) -> Option<i64> {
        let now = chrono::Utc::now().timestamp_millis();
        if now < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        let mut connection = self.connection.clone();
        let answer = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<i64>>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(until)) => Some(until.unwrap_or(0)),
            _ => {
                self.down_until
                    .store(now + REDIS_RETRY_AFTER_MS, Ordering::Relaxed);
                None
            }
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

/// Most addresses with a bucket of their own. Beyond it (a flood from many addresses), new
/// addresses share one bucket until idle ones are swept: memory stays bounded and the flood
/// is throttled as a whole.
const MAX_ADDRESSES: usize = 65_536;
/// How often buckets that are full again (idle addresses) are forgotten. The sweep walks
/// every bucket once, so it runs at most this often, never per call: a caller rotating
/// addresses cannot make each call cost a scan.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The bucket standing for every new address while the map is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// One bucket per client address, for callers without a valid token: they cost the gateway
/// work and log lines, and none of them is a team whose budget could be charged. Governor's
/// keyed limiter (GCRA, one small state per key, O(1) per check).
pub struct AddressBuckets {
    rate: Rate,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// Milliseconds since `started` of the last sweep.
    swept_at_ms: AtomicU64,
    started: Instant,
}

/// The key of an address: IPv4 as is; IPv6 by its /64, which one subscriber usually holds
/// whole (counting each of its addresses apart would give it 2^64 buckets).
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl AddressBuckets {
    /// A rate of 0 per second or a burst of 0 limits nothing.
    pub fn new(rate: Rate) -> Self {
        AddressBuckets {
            rate,
            limiter: quota(&rate).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            swept_at_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Takes one token from the address's bucket, or says how long until one is available.
    pub fn check(&self, addr: IpAddr) -> Result<(), Refusal> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        self.sweep_now_and_then(limiter);
        let mut key = address_key(addr);
        if limiter.len() >= MAX_ADDRESSES {
            key = OVERFLOW;
        }
        limiter.check_key(&key).map_err(|not_until| Refusal {
            retry_after: not_until.wait_time_from(self.clock.now()),
            limit: self.rate.burst,
        })
    }

    /// Addresses with a bucket now.
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the buckets that are full again, at most once per `SWEEP_EVERY` (the caller
    /// that wins the race sweeps; the others go on).
    fn sweep_now_and_then(&self, limiter: &DefaultKeyedRateLimiter<IpAddr>) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.swept_at_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .swept_at_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_bucket_and_an_ipv6_subnet_counts_once() {
        let buckets = AddressBuckets::new(Rate {
            per_second: 1,
            burst: 2,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(buckets.check(a).is_ok());
        assert!(buckets.check(a).is_ok());
        let refusal = buckets.check(a).unwrap_err();
        assert!(refusal.retry_after <= Duration::from_secs(1));
        assert!(buckets.check(b).is_ok(), "another address is not affected");
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(buckets.check(v6a).is_ok());
        assert!(buckets.check(v6b).is_ok());
        assert!(buckets.check(v6a).is_err(), "one /64 shares one bucket");
    }

    /// A flood from more addresses than the map holds costs bounded memory, and the map is
    /// emptied of idle addresses by a sweep, not by a scan on every call.
    #[test]
    fn a_flood_of_addresses_is_bounded_and_swept() {
        let buckets = AddressBuckets::new(Rate {
            per_second: 1,
            burst: 1,
        });
        for i in 0..(MAX_ADDRESSES as u32 + 5_000) {
            let _ = buckets.check(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert!(
            buckets.len() <= MAX_ADDRESSES + 1,
            "{} buckets for a flood",
            buckets.len()
        );
        // Once the flood's buckets are full again (1 s), the next sweep forgets them.
        std::thread::sleep(Duration::from_secs(1) + SWEEP_EVERY + Duration::from_millis(100));
        let late: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(buckets.check(late).is_ok());
        assert!(
            buckets.len() < 10,
            "{} buckets after the sweep",
            buckets.len()
        );
    }

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
