//! Token buckets: one per team (protects the gateway and other teams) and optionally one per
//! phone number (Meta's quota is shared by every team using the number).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    clock: DefaultClock,
}

fn quota(settings: &Rate) -> Option<Quota> {
    let per_second = NonZeroU32::new(settings.per_second)?;
    let burst = NonZeroU32::new(settings.burst)?;
    Some(Quota::per_second(per_second).allow_burst(burst))
}

impl<K: Hash + Eq> Buckets<K> {
    pub fn new(limits: impl IntoIterator<Item = (K, Rate)>) -> Self {
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

/// Most client addresses tracked at once. Beyond it, idle (full) buckets are forgotten
/// first; addresses that still do not fit share one bucket, so a flood from many addresses
/// costs bounded memory and is throttled as a whole.
const MAX_ADDRESSES: usize = 65_536;

/// One bucket per client address, for callers without a valid token: they cost the gateway
/// work and log lines, and none of them is a team whose budget could be charged.
pub struct AddressBuckets {
    rate: Rate,
    buckets: Mutex<HashMap<IpAddr, Tokens>>,
}

#[derive(Clone, Copy)]
struct Tokens {
    available: f64,
    at: Instant,
}

impl Tokens {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let gained =
            now.saturating_duration_since(self.at).as_secs_f64() * f64::from(rate.per_second);
        self.available = (self.available + gained).min(f64::from(rate.burst));
        self.at = now;
    }
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
    pub fn new(rate: Rate) -> Self {
        AddressBuckets {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the address's bucket, or says how long until one is available.
    pub fn check(&self, addr: IpAddr) -> Result<(), Refusal> {
        let now = Instant::now();
        let rate = self.rate;
        let burst = f64::from(rate.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = address_key(addr);
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&key) {
            // A full bucket is what a new address gets anyway: forgetting it changes nothing.
            buckets.retain(|_, t| {
                t.refill(rate, now);
                t.available < burst
            });
            if buckets.len() >= MAX_ADDRESSES {
                key = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
            }
        }
        let tokens = buckets.entry(key).or_insert(Tokens {
            available: burst,
            at: now,
        });
        tokens.refill(rate, now);
        if tokens.available >= 1.0 {
            tokens.available -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - tokens.available;
        Err(Refusal {
            retry_after: Duration::from_secs_f64(missing / f64::from(rate.per_second.max(1))),
            limit: rate.burst,
        })
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
