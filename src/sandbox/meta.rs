//! Meta's failures as Meta writes them: the Graph error envelope for a refused call, and the
//! `{code, message, title, error_data}` object inside bulk answers and webhooks.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use super::ids;

/// One refusal by the simulated Meta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaFailure {
    pub status: StatusCode,
    pub code: i64,
    pub subcode: Option<i64>,
    pub title: String,
    pub details: String,
    /// 131208: the minutes Meta's `X-Business-Use-Case-Usage` advises waiting.
    pub regain_minutes: Option<u64>,
}

impl std::fmt::Display for MetaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(#{}) {}: {}", self.code, self.title, self.details)
    }
}

impl MetaFailure {
    fn new(status: StatusCode, code: i64, title: &str, details: impl Into<String>) -> Self {
        MetaFailure {
            status,
            code,
            subcode: None,
            title: title.to_owned(),
            details: details.into(),
            regain_minutes: None,
        }
    }

    /// Meta's `message`: the code and the title.
    pub fn message(&self) -> String {
        format!("(#{}) {}", self.code, self.title)
    }

    /// The error object used inside `failed_join_requests`, `errors[]` and webhooks.
    pub fn item(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message(),
            "title": self.title,
            "error_data": { "details": self.details },
        })
    }

    /// The Graph error envelope of a refused call.
    pub fn envelope(&self) -> Value {
        let mut error = json!({
            "message": self.message(),
            "type": "OAuthException",
            "code": self.code,
            "error_data": { "messaging_product": "whatsapp", "details": self.details },
            "fbtrace_id": ids::fbtrace_id(),
        });
        if let Some(sub) = self.subcode {
            error["error_subcode"] = json!(sub);
        }
        json!({ "error": error })
    }

    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "Send the phone number's access token as Authorization: Bearer <token>",
        )
    }

    pub fn invalid_parameter(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 100, "Invalid parameter", details)
    }

    /// What Graph answers for an object the token cannot reach or a path it does not serve.
    pub fn unsupported(method: &str, object: &str) -> Self {
        let mut failure = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            &format!("Unsupported {} request", method.to_ascii_lowercase()),
            format!(
                "Object with ID '{object}' does not exist, cannot be loaded due to missing \
                 permissions, or does not support this operation"
            ),
        );
        failure.subcode = Some(33);
        failure
    }

    /// A message to a group where nobody but the business is (no one joined yet).
    pub fn single_member_group() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131020,
            "Bad Group",
            "Cannot send messages to single member groups; wait until someone joins",
        )
    }

    /// A message type Meta's Groups API does not deliver to groups.
    pub fn unsupported_in_groups(kind: &str) -> Self {
        Self::invalid_parameter(format!(
            "messages of type {kind} cannot be sent to a group (text, image, video, audio, \
             document and template can)"
        ))
    }

    pub fn unknown_group(group_id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131041,
            "Group unknown",
            format!("Group {group_id} does not exist or the business is not a member of it"),
        )
    }

    pub fn invalid_cursor() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131059,
            "Invalid cursor",
            "The cursor is expired or corrupt; restart from the first page",
        )
    }

    pub fn partial_success(title: &str, details: impl Into<String>) -> Self {
        Self::new(StatusCode::PARTIAL_CONTENT, 131201, title, details)
    }

    pub fn duplicate_participant(input: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131202,
            "Duplicate participant",
            format!("{input} appears more than once in the participants"),
        )
    }

    pub fn participant_overlimit(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131204,
            "Participant overlimit",
            details,
        )
    }

    pub fn suspended(group_id: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            131207,
            "Group suspended",
            format!("Group {group_id} is suspended by WhatsApp"),
        )
    }

    pub fn picture_not_square(width: usize, height: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131209,
            "Profile picture not square",
            format!("The picture is {width}x{height}; its height must equal its width"),
        )
    }

    pub fn picture_too_small(width: usize, height: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131210,
            "Profile picture too small",
            format!("The picture is {width}x{height}; it must be at least 192x192"),
        )
    }

    pub fn group_limit(limit: usize) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131211,
            "Group create limit reached",
            format!("This phone number already has {limit} groups"),
        )
    }

    /// Too many group operations from this number (Meta answers 429 and says in its usage
    /// header when access returns).
    pub fn group_rate_limited(minutes: u64) -> Self {
        let mut failure = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            131208,
            "Group Rate Limit Hit",
            "There were too many group operations from this phone number in a short period",
        );
        failure.regain_minutes = Some(minutes);
        failure
    }

    pub fn not_a_participant(input: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131212,
            "Participant not in group",
            format!("{input} is not a participant of the group"),
        )
    }

    pub fn unknown_join_request(id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131213,
            "Join request does not exist",
            format!("Join request {id} does not exist or was already decided"),
        )
    }
}

impl ResponseError for MetaFailure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.code == 190 {
            // Graph names the OAuth problem in this header too.
            res.insert_header((
                header::WWW_AUTHENTICATE,
                "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token\"",
            ));
        }
        if let Some(minutes) = self.regain_minutes {
            let usage = json!({ "0": [{
                "type": "whatsapp_business_management",
                "call_count": 100,
                "total_cputime": 1,
                "total_time": 1,
                "estimated_time_to_regain_access": minutes,
            }]});
            res.insert_header(("X-Business-Use-Case-Usage", usage.to_string()));
        }
        res.json(self.envelope())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_metas() {
        let e = MetaFailure::unknown_group("G1").envelope();
        assert_eq!(e["error"]["code"], 131041);
        assert_eq!(e["error"]["type"], "OAuthException");
        assert_eq!(e["error"]["error_data"]["messaging_product"], "whatsapp");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("(#131041)")
        );
        assert!(e["error"]["fbtrace_id"].is_string());
        assert!(e["error"].get("error_subcode").is_none());
        let u = MetaFailure::unsupported("POST", "999").envelope();
        assert_eq!(u["error"]["error_subcode"], 33);
    }

    #[test]
    fn the_gateway_reads_it_back() {
        let failure = MetaFailure::suspended("G1");
        let body = serde_json::to_vec(&failure.envelope()).unwrap();
        let parsed = crate::graph::parse_error(failure.status.as_u16(), &body, None);
        let problem = parsed.problem().unwrap();
        assert_eq!(problem.code, 131207);
        assert_eq!(parsed.status(), StatusCode::FORBIDDEN);
    }
}
