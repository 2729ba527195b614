//! Meta's 131208 ("too many group operations from this phone number") holds back every group
//! operation of the number, on every replica, until Meta's advised time (README,
//! "Guardrails"). The hold is kept in Redis when `rate_limit.store = "redis"` (storage while
//! Redis does not answer), in storage otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::PhoneNumberId;
use crate::ratelimit::RedisStore;
use crate::storage::BackoffStore;

/// The holds of every number, shared by the workers of one replica.
#[derive(Clone)]
pub struct Backoffs {
    redis: Option<Arc<RedisStore>>,
    store: Arc<dyn BackoffStore>,
    /// Holds this replica stored or read: one still running needs no round trip.
    known: Arc<Mutex<HashMap<PhoneNumberId, i64>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn redis_key(pn: &PhoneNumberId) -> String {
    format!("wagw:backoff:groups:{pn}")
}

impl Backoffs {
    pub fn new(redis: Option<Arc<RedisStore>>, store: Arc<dyn BackoffStore>) -> Self {
        Backoffs {
            redis,
            store,
            known: Arc::default(),
        }
    }

    /// Seconds left of the number's hold, if one runs. A store that cannot be read holds
    /// nothing back: the hold protects Meta's quota, it is not worth refusing every call for.
    pub async fn remaining_seconds(&self, pn: &PhoneNumberId) -> Option<u64> {
        let now = now_ms();
        let known = self.known(pn).filter(|until| *until > now);
        let until = match known {
            Some(until) => until,
            None => {
                let shared = match &self.redis {
                    Some(redis) => match redis.held_until(&redis_key(pn)).await {
                        Some(until) => Some(until),
                        None => self.stored(pn).await,
                    },
                    None => self.stored(pn).await,
                };
                let until = shared.filter(|until| *until > now)?;
                self.remember(pn, until);
                until
            }
        };
        let left_ms = u64::try_from(until - now).unwrap_or(0);
        Some(left_ms.div_ceil(1000).max(1))
    }

    /// Holds the number's group operations back for `seconds` from now, on every replica.
    pub async fn hold(&self, pn: &PhoneNumberId, seconds: u64) {
        let until = now_ms() + i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        self.remember(pn, until);
        tracing::warn!(
            phone_number_id = %pn,
            seconds,
            "Meta throttles this number's group operations (131208): held back on every replica"
        );
        if let Some(redis) = &self.redis
            && redis.hold_until(&redis_key(pn), until).await.is_some()
        {
            return;
        }
        if let Err(e) = self.store.hold_group_operations(pn.as_ref(), until).await {
            tracing::error!(error = %e, "cannot store the 131208 backoff; other replicas will not know it");
        }
    }

    async fn stored(&self, pn: &PhoneNumberId) -> Option<i64> {
        match self.store.group_operations_held_until(pn.as_ref()).await {
            Ok(until) => until,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the 131208 backoff");
                None
            }
        }
    }

    fn known(&self, pn: &PhoneNumberId) -> Option<i64> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pn)
            .copied()
    }

    fn remember(&self, pn: &PhoneNumberId, until: i64) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        known.retain(|_, u| *u > now);
        let entry = known.entry(pn.clone()).or_insert(until);
        *entry = (*entry).max(until);
    }
}
