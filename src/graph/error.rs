//! How Meta's failures reach callers (README, "API overview", errors). Classification keys on
//! Meta's `error.code`, never on the HTTP status alone, because Meta sends the same status for
//! unrelated failures and business errors with odd statuses (206, 403).

use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Meta's error, as passed on to the caller.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct UpstreamProblem {
    /// Meta's `error.code`.
    pub code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

/// Codes Meta uses to say "slow down": the caller gets 429 with `Retry-After`.
pub const THROTTLE_CODES: &[i64] = &[4, 17, 32, 613, 80007, 130429, 131056, 131208, 133016];

/// Codes that mean Meta refused the gateway's own access token or its permissions: the
/// caller did nothing wrong, so this is the gateway's failure (502), logged loudly.
pub(crate) fn is_gateway_credential_code(code: i64) -> bool {
    matches!(code, 190 | 102 | 104 | 463 | 467 | 10) || (200..=299).contains(&code)
}

/// Codes worth one more try on an idempotent call (Meta marks them transient). Not 131208:
/// Meta asks for a pause of the whole number, and a replay would only prolong it.
pub const TRANSIENT_CODES: &[i64] = &[1, 2, 4, 17, 341, 80007, 130429, 131000, 131016];

/// Seconds suggested to a throttled caller when Meta gives no usage hint.
pub const DEFAULT_RETRY_AFTER_SECONDS: u64 = 60;

/// Meta's "too many group operations from this number": every replica holds the number's
/// group operations back until Meta's advised time (README, "Guardrails").
pub const GROUP_RATE_LIMIT: i64 = 131208;

/// Meta's "request partially succeeded" (HTTP 206) on participant-level operations.
pub const PARTIAL_SUCCESS: i64 = 131201;

/// One of Meta's Groups API error codes, as callers see it: a problem type of its own (the
/// slug after `…/problems/`), a title, and the status Meta's table gives it.
pub struct GroupCode {
    pub code: i64,
    pub slug: &'static str,
    pub title: &'static str,
    pub status: u16,
}

const fn group_code(code: i64, slug: &'static str, title: &'static str, status: u16) -> GroupCode {
    GroupCode {
        code,
        slug,
        title,
        status,
    }
}

/// Meta's Groups error codes (its "Groups API error codes" page, and 131203 from the join
/// request samples). Callers match on the problem type or on `upstream.code`; the status is
/// Meta's documented one, whatever status a given answer carried. 131205 and 131206 are
/// documented nowhere and are passed on as `upstream-error` with their code (README,
/// "Guardrails").
pub const GROUP_CODES: &[GroupCode] = &[
    group_code(
        131020,
        "group-without-participants",
        "Nobody has joined the group yet",
        400,
    ),
    group_code(
        131041,
        "group-unknown",
        "Meta does not know the group, or the number is not in it",
        400,
    ),
    group_code(
        131059,
        "invalid-cursor",
        "Meta's cursor expired; start again from the first page",
        400,
    ),
    group_code(
        131202,
        "duplicate-participant",
        "A participant is listed twice",
        400,
    ),
    group_code(
        131203,
        "participant-terms-not-accepted",
        "The participant has not accepted WhatsApp's terms",
        400,
    ),
    group_code(
        131204,
        "participant-limit",
        "The group has too many participants",
        400,
    ),
    group_code(131207, "group-suspended", "Meta suspended the group", 403),
    group_code(
        GROUP_RATE_LIMIT,
        "group-rate-limited",
        "Too many group operations on this phone number",
        429,
    ),
    group_code(
        131209,
        "picture-not-square",
        "The profile picture is not square",
        400,
    ),
    group_code(
        131210,
        "picture-too-small",
        "The profile picture is smaller than 192x192",
        400,
    ),
    group_code(
        131211,
        "group-create-limit-reached",
        "Meta's limit of groups for this phone number is reached",
        400,
    ),
    group_code(
        131212,
        "participant-not-in-group",
        "The participant is not in the group",
        400,
    ),
    group_code(
        131213,
        "join-request-unknown",
        "The join request does not exist",
        400,
    ),
    group_code(
        131214,
        "group-creation-disabled",
        "Meta disabled group creation for this business for now",
        400,
    ),
    group_code(
        131215,
        "phone-number-not-eligible",
        "The phone number may not use the Groups API",
        400,
    ),
];

/// The Groups error `code` stands for, if it is one.
pub fn group_code_of(code: i64) -> Option<&'static GroupCode> {
    GROUP_CODES.iter().find(|c| c.code == code)
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetaError {
    pub http_status: u16,
    pub code: i64,
    pub error_subcode: Option<i64>,
    pub message: String,
    pub fbtrace_id: Option<String>,
    pub is_transient: bool,
    /// From Meta's usage headers, when they say when access returns.
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("Meta did not answer within the gateway's deadline")]
    Timeout,
    #[error("Meta's API is unreachable: {0}")]
    Unreachable(String),
    #[error("Meta answered with an error: {}", .0.message)]
    Meta(MetaError),
    #[error("Meta's answer could not be understood (HTTP {http_status}): {detail}")]
    BadResponse { http_status: u16, detail: String },
    /// The gateway's own per-number bucket refused the call before it reached Meta.
    #[error("this phone number's request budget is used up; retry later")]
    LocalQuota { retry_after_seconds: u64 },
    /// Meta answered 131208 for this number a moment ago (on any replica): its group
    /// operations are held back, unsent, until Meta's advised time.
    #[error(
        "Meta throttles this phone number's group operations (131208); nothing was sent; retry in {retry_after_seconds} s"
    )]
    GroupBackoff { retry_after_seconds: u64 },
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::BadResponse { .. } => StatusCode::BAD_GATEWAY,
            UpstreamError::LocalQuota { .. } | UpstreamError::GroupBackoff { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            UpstreamError::Meta(e) => {
                if THROTTLE_CODES.contains(&e.code) {
                    StatusCode::TOO_MANY_REQUESTS
                } else if let Some(group) = group_code_of(e.code) {
                    StatusCode::from_u16(group.status).unwrap_or(StatusCode::BAD_REQUEST)
                } else if is_gateway_credential_code(e.code) || !(400..500).contains(&e.http_status)
                {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::from_u16(e.http_status).unwrap_or(StatusCode::BAD_GATEWAY)
                }
            }
        }
    }

    pub fn kind(&self) -> (&'static str, &'static str) {
        match self {
            UpstreamError::Timeout => ("upstream-timeout", "Meta did not answer in time"),
            UpstreamError::Unreachable(_) => ("upstream-unreachable", "Meta is unreachable"),
            UpstreamError::BadResponse { .. } => {
                ("upstream-bad-response", "Meta's answer was not understood")
            }
            UpstreamError::LocalQuota { .. } => ("rate-limited", "Phone number rate limit reached"),
            UpstreamError::GroupBackoff { .. } => (
                "group-rate-limited",
                "Too many group operations on this phone number",
            ),
            UpstreamError::Meta(e) if group_code_of(e.code).is_some() => group_code_of(e.code)
                .map(|g| (g.slug, g.title))
                .unwrap_or(("upstream-error", "Meta refused the request")),
            UpstreamError::Meta(e) if THROTTLE_CODES.contains(&e.code) => {
                ("upstream-throttled", "Meta is throttling")
            }
            UpstreamError::Meta(e) if is_gateway_credential_code(e.code) => (
                "upstream-credentials",
                "Meta refused the gateway's credentials",
            ),
            UpstreamError::Meta(e) if e.http_status >= 500 => ("upstream-failure", "Meta failed"),
            UpstreamError::Meta(_) => ("upstream-error", "Meta refused the request"),
        }
    }

    pub fn problem(&self) -> Option<UpstreamProblem> {
        match self {
            UpstreamError::Meta(e) => Some(UpstreamProblem {
                code: e.code,
                error_subcode: e.error_subcode,
                message: e.message.clone(),
                fbtrace_id: e.fbtrace_id.clone(),
            }),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            UpstreamError::LocalQuota {
                retry_after_seconds,
            }
            | UpstreamError::GroupBackoff {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            UpstreamError::Meta(e) if THROTTLE_CODES.contains(&e.code) => Some(
                e.retry_after_seconds
                    .unwrap_or(DEFAULT_RETRY_AFTER_SECONDS)
                    .max(1),
            ),
            _ => None,
        }
    }

    /// Whether another attempt of an idempotent call may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Timeout
            | UpstreamError::LocalQuota { .. }
            | UpstreamError::GroupBackoff { .. } => false,
            UpstreamError::Unreachable(_) => true,
            // 0: the connection failed mid-call; for a call that may be replayed, replay it.
            UpstreamError::BadResponse { http_status, .. } => {
                *http_status >= 500 || *http_status == 0
            }
            UpstreamError::Meta(e) if e.code == GROUP_RATE_LIMIT => false,
            UpstreamError::Meta(e) => {
                e.http_status >= 500 || e.is_transient || TRANSIENT_CODES.contains(&e.code)
            }
        }
    }

    pub fn log(&self) {
        match self {
            UpstreamError::Meta(e) if is_gateway_credential_code(e.code) => tracing::error!(
                code = e.code,
                fbtrace_id = e.fbtrace_id.as_deref().unwrap_or(""),
                "Meta refused the gateway's access token: check phone_numbers.*.access_token"
            ),
            UpstreamError::Meta(e) => tracing::warn!(
                code = e.code,
                http_status = e.http_status,
                fbtrace_id = e.fbtrace_id.as_deref().unwrap_or(""),
                "Meta answered with an error"
            ),
            other => tracing::warn!(error = %other, "upstream call failed"),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    message: String,
    #[serde(deserialize_with = "crate::domain::lenient::int")]
    code: i64,
    #[serde(default, deserialize_with = "crate::domain::lenient::opt_int")]
    error_subcode: Option<i64>,
    #[serde(default)]
    fbtrace_id: Option<String>,
    #[serde(default)]
    is_transient: Option<bool>,
}

/// Reads Meta's error envelope from a non-2xx answer; anything else is garbage (502).
pub fn parse_error(
    http_status: u16,
    body: &[u8],
    retry_after_seconds: Option<u64>,
) -> UpstreamError {
    match serde_json::from_slice::<Envelope>(body) {
        Ok(env) => UpstreamError::Meta(MetaError {
            http_status,
            code: env.error.code,
            error_subcode: env.error.error_subcode,
            message: env.error.message,
            fbtrace_id: env.error.fbtrace_id,
            is_transient: env.error.is_transient.unwrap_or(false),
            retry_after_seconds,
        }),
        Err(_) => UpstreamError::BadResponse {
            http_status,
            detail: "the body is not Meta's error envelope".into(),
        },
    }
}

/// Meta's `X-Business-Use-Case-Usage` / `X-App-Usage` headers may say how long until access
/// returns (`estimated_time_to_regain_access`, minutes).
pub fn retry_after_from_usage(header: Option<&str>) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(header?).ok()?;
    let mut minutes: Option<u64> = None;
    let mut visit = |v: &serde_json::Value| {
        if let Some(m) = v
            .get("estimated_time_to_regain_access")
            .and_then(serde_json::Value::as_u64)
        {
            minutes = Some(minutes.map_or(m, |cur| cur.max(m)));
        }
    };
    match &value {
        serde_json::Value::Object(map) => {
            visit(&value);
            for entries in map.values() {
                if let Some(list) = entries.as_array() {
                    list.iter().for_each(&mut visit);
                }
            }
        }
        _ => return None,
    }
    minutes.filter(|m| *m > 0).map(|m| m * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(http_status: u16, code: i64) -> UpstreamError {
        UpstreamError::Meta(MetaError {
            http_status,
            code,
            error_subcode: None,
            message: "m".into(),
            fbtrace_id: None,
            is_transient: false,
            retry_after_seconds: None,
        })
    }

    #[test]
    fn classification_follows_the_code_not_the_status() {
        assert_eq!(meta(400, 131208).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(meta(400, 4).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(meta(401, 190).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(meta(400, 190).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(meta(403, 131207).status(), StatusCode::FORBIDDEN);
        assert_eq!(meta(400, 131041).status(), StatusCode::BAD_REQUEST);
        assert_eq!(meta(500, 131000).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn every_group_code_has_its_own_problem_type_and_metas_status() {
        for group in GROUP_CODES {
            let e = meta(500, group.code);
            assert_eq!(e.kind().0, group.slug);
            assert_eq!(e.status().as_u16(), group.status, "{}", group.code);
            assert_eq!(e.problem().unwrap().code, group.code);
        }
        let slugs: std::collections::BTreeSet<_> = GROUP_CODES.iter().map(|g| g.slug).collect();
        assert_eq!(slugs.len(), GROUP_CODES.len(), "slugs are unique");
    }

    #[test]
    fn group_throttling_is_never_replayed() {
        assert!(!meta(429, GROUP_RATE_LIMIT).is_retryable());
        let mut transient = meta(429, GROUP_RATE_LIMIT);
        if let UpstreamError::Meta(e) = &mut transient {
            e.is_transient = true;
        }
        assert!(!transient.is_retryable());
    }

    #[test]
    fn throttling_always_suggests_a_wait() {
        assert_eq!(meta(429, 131208).retry_after(), Some(60));
        assert_eq!(meta(400, 131041).retry_after(), None);
    }

    #[test]
    fn usage_headers_give_the_wait_in_seconds() {
        let h =
            r#"{"123":[{"type":"whatsapp","call_count":100,"estimated_time_to_regain_access":5}]}"#;
        assert_eq!(retry_after_from_usage(Some(h)), Some(300));
        assert_eq!(retry_after_from_usage(Some("{}")), None);
        assert_eq!(retry_after_from_usage(Some("garbage")), None);
    }

    #[test]
    fn html_is_not_an_envelope() {
        let e = parse_error(500, b"<html>oops</html>", None);
        assert!(matches!(e, UpstreamError::BadResponse { .. }));
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn string_codes_are_read() {
        let e = parse_error(
            400,
            br#"{"error":{"message":"x","code":"131041","fbtrace_id":"T"}}"#,
            None,
        );
        assert_eq!(e.problem().unwrap().code, 131041);
    }
}
