//! Durations written with a unit (`"500ms"`, `"10s"`, `"15m"`, `"24h"`, `"5d"`), as the keys
//! added since December take them (`storage.cache_ttl`, …); older `*_seconds` keys stay
//! integers.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A positive duration read from a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let split = raw
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("`{raw}` needs a unit: ms, s, m, h or d (e.g. \"60s\")"))?;
        let (digits, unit) = raw.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{raw}` is not a duration like \"60s\" or \"24h\""))?;
        let millis_per_unit = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "`{raw}` has an unknown unit (use ms, s, m, h or d)"
                ));
            }
        };
        n.checked_mul(millis_per_unit)
            .filter(|ms| *ms > 0)
            .map(|ms| ConfigDuration(Duration::from_millis(ms)))
            .ok_or_else(|| format!("`{raw}` is not a positive duration"))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ConfigDuration::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_are_positive() {
        let secs = |s| ConfigDuration::parse(s).map(|d| d.0);
        assert_eq!(secs("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(secs("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(secs("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(secs("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(secs("5d"), Ok(Duration::from_secs(432_000)));
        for bad in ["60", "0s", "s", "10w", "-5s", "1.5s", ""] {
            assert!(secs(bad).is_err(), "{bad} was accepted");
        }
    }
}
