//! Meta's 131208: a number driven too fast gets "too many group operations" on every group
//! operation for a while (`X-Business-Use-Case-Usage` says how long). The simulation allows
//! `group_operations_per_second` per number over a sliding second, then throttles the number
//! for a minute.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::meta::MetaFailure;

const WINDOW: Duration = Duration::from_secs(1);
/// What Meta advises after throttling, in minutes (its usage header's unit).
const THROTTLED_MINUTES: u64 = 1;

pub struct Pace {
    per_second: usize,
    numbers: HashMap<String, NumberPace>,
}

#[derive(Default)]
struct NumberPace {
    recent: VecDeque<Instant>,
    throttled_until: Option<Instant>,
}

impl Pace {
    pub fn new(per_second: u32) -> Self {
        Pace {
            per_second: usize::try_from(per_second).unwrap_or(usize::MAX),
            numbers: HashMap::new(),
        }
    }

    /// One group operation of `pn` at `now`.
    pub fn take(&mut self, pn: &str, now: Instant) -> Result<(), MetaFailure> {
        let per_second = self.per_second;
        let number = self.numbers.entry(pn.to_owned()).or_default();
        if let Some(until) = number.throttled_until {
            if now < until {
                return Err(MetaFailure::group_rate_limited(minutes_left(until, now)));
            }
            number.throttled_until = None;
        }
        while number
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            number.recent.pop_front();
        }
        if per_second > 0 && number.recent.len() >= per_second {
            number.throttled_until = Some(now + Duration::from_secs(THROTTLED_MINUTES * 60));
            number.recent.clear();
            return Err(MetaFailure::group_rate_limited(THROTTLED_MINUTES));
        }
        number.recent.push_back(now);
        Ok(())
    }

    pub fn throttle(&mut self, pn: &str, now: Instant, minutes: u64) {
        let number = self.numbers.entry(pn.to_owned()).or_default();
        number.throttled_until = Some(now + Duration::from_secs(minutes.max(1) * 60));
    }
}

fn minutes_left(until: Instant, now: Instant) -> u64 {
    until.duration_since(now).as_secs().div_ceil(60).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driven_too_fast_a_number_is_throttled_for_a_minute() {
        let mut pace = Pace::new(3);
        let t = Instant::now();
        for i in 0..3 {
            assert!(pace.take("1", t + Duration::from_millis(i)).is_ok());
        }
        let refused = pace.take("1", t + Duration::from_millis(5)).unwrap_err();
        assert_eq!(refused.code, 131208);
        assert_eq!(refused.regain_minutes, Some(1));
        assert!(pace.take("2", t).is_ok(), "other numbers are not throttled");
        assert!(pace.take("1", t + Duration::from_secs(59)).is_err());
        assert!(pace.take("1", t + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn a_steady_pace_is_never_throttled() {
        let mut pace = Pace::new(3);
        let t = Instant::now();
        for i in 0..30 {
            assert!(pace.take("1", t + Duration::from_millis(400 * i)).is_ok());
        }
    }
}
