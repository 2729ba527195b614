//! Token buckets: one per team (protects the gateway and other teams) and optionally one per
//! phone number (Meta's quota is shared by every team using the number).

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

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
