//! Wall-clock time in the forms the gateway stores and answers. A leaf: imports nothing of
//! the crate.

/// Now, RFC 3339 UTC with milliseconds: the form every stored timestamp takes, so that
/// timestamps compare as strings.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The instant `age` ago, in the stored form (cut-offs compared with stored timestamps).
pub fn ago(age: std::time::Duration) -> String {
    let age = chrono::Duration::from_std(age).unwrap_or_else(|_| chrono::Duration::days(36_500));
    chrono::Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, in Unix milliseconds (delivery schedules compare numbers).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Meta's Unix-seconds timestamps, as RFC 3339.
pub fn unix_to_rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}

/// Now in whole seconds, RFC 3339 (team events Meta gave no time for).
pub fn now_secs() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(unix_to_rfc3339(1755548877), "2025-08-18T20:27:57Z");
        assert_eq!(ms_to_rfc3339(1755548877123), "2025-08-18T20:27:57.123Z");
        assert!(now().ends_with('Z'));
    }
}
