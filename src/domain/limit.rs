use std::time::Duration;

use super::integer_schema;

/// Parses an optional integer query parameter within `min..=max`, falling
/// back to `default` when it is absent.
pub fn parse_limit(raw: Option<&str>, min: u32, max: u32, default: u32) -> Result<u32, String> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let message = || format!("must be an integer between {min} and {max}");
    // Digits only: `u32::from_str` would also take a leading '+', which is
    // not something we want to promise clients.
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(message());
    }
    match raw.parse::<u32>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        // Overflow is just another out-of-range value.
        _ => Err(message()),
    }
}

/// A page size: `min..=max`, `default` when absent. One definition serves the check and the
/// documented parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

impl PageLimit {
    /// Group listings, the registry's and Meta's (Meta's own bound).
    pub const LISTING: PageLimit = PageLimit {
        min: 1,
        max: 1024,
        default: 25,
    };
    /// Logs read forwards: the events feeds and the audit log.
    pub const LOG: PageLimit = PageLimit {
        min: 1,
        max: 1000,
        default: 100,
    };

    pub fn parse(self, raw: Option<&str>) -> Result<u32, String> {
        parse_limit(raw, self.min, self.max, self.default)
    }

    pub fn schema(self) -> utoipa::openapi::Object {
        integer_schema(self.min..=self.max, self.default)
    }
}

/// How long a request may block waiting for Meta's asynchronous result
/// (e.g. group creation) before returning a pending status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct WaitSeconds(u32);

documented_by!(WaitSeconds, integer_schema(0..=WaitSeconds::MAX, 0));

impl WaitSeconds {
    /// Long enough for Meta's webhook to arrive, short enough not to hit
    /// typical proxy timeouts.
    pub const MAX: u32 = 30;

    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        parse_limit(raw, 0, Self::MAX, 0).map(Self)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0))
    }
}

impl std::fmt::Display for WaitSeconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_when_absent() {
        assert_eq!(parse_limit(None, 1, 100, 25), Ok(25));
    }

    #[test]
    fn limit_accepts_inclusive_bounds() {
        assert_eq!(parse_limit(Some("1"), 1, 100, 25), Ok(1));
        assert_eq!(parse_limit(Some("100"), 1, 100, 25), Ok(100));
        assert_eq!(parse_limit(Some("007"), 1, 100, 25), Ok(7));
    }

    #[test]
    fn limit_rejects_out_of_range_and_non_integers() {
        let message = Err("must be an integer between 1 and 100".to_owned());
        for raw in [
            "0",
            "101",
            "",
            " 5",
            "5 ",
            "+5",
            "-1",
            "1.5",
            "ten",
            "99999999999999999999",
        ] {
            assert_eq!(parse_limit(Some(raw), 1, 100, 25), message, "{raw:?}");
        }
    }

    #[test]
    fn wait_seconds_range_and_default() {
        assert_eq!(WaitSeconds::parse(None), Ok(WaitSeconds::default()));
        assert_eq!(WaitSeconds::parse(None).map(WaitSeconds::get), Ok(0));
        assert_eq!(WaitSeconds::parse(Some("0")).map(WaitSeconds::get), Ok(0));
        let max = WaitSeconds::parse(Some("30")).expect("valid");
        assert_eq!(max.get(), 30);
        assert_eq!(max.as_duration(), Duration::from_secs(30));
        assert_eq!(max.to_string(), "30");
        assert_eq!(
            WaitSeconds::parse(Some("31")),
            Err("must be an integer between 0 and 30".to_owned())
        );
        assert!(WaitSeconds::parse(Some("-1")).is_err());
        assert!(WaitSeconds::parse(Some("")).is_err());
    }
}
