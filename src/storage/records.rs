//! What storage answers and takes: records, pages and outcomes, the same for every backend.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::events::TeamEvent;
use crate::domain::{FeedPosition, GroupId, ItemError, PageCursor, Paging, PhoneNumberId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Created,
    Failed,
}

impl RequestStatus {
    /// The status stored as `s`; None for a word this build does not write (never taken
    /// for `pending`: a creation in an unknown state is an error, not one still waiting).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RequestStatus::Pending),
            "created" => Some(RequestStatus::Created),
            "failed" => Some(RequestStatus::Failed),
            _ => None,
        }
    }
}

/// A group creation as the caller sees it (`GET /v1/group-requests/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "request_id": "req_3f1c2a7e0d1b4a559a439b2f4f9f3c10",
    "status": "created",
    "phone_number_id": "12784358810",
    "subject": "New Purchase Inquiry",
    "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
    "invite_link": "https://chat.whatsapp.com/LINK_ID"
}))]
pub struct CreateRequest {
    pub request_id: String,
    pub status: RequestStatus,
    pub phone_number_id: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    #[serde(skip)]
    pub team: String,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub group_id: GroupId,
    pub phone_number_id: PhoneNumberId,
    pub owner_team: Option<String>,
    pub subject: Option<String>,
    pub active: bool,
    pub suspended: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupSummary {
    #[schema(example = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD")]
    pub id: String,
    #[schema(example = "New Purchase Inquiry")]
    pub subject: Option<String>,
    /// RFC 3339.
    #[schema(example = "2026-11-26T10:15:00.000Z")]
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct GroupPage {
    pub groups: Vec<GroupSummary>,
    pub paging: Paging,
}

/// Outcome of storing a webhook POST.
#[derive(Debug, PartialEq, Eq)]
pub enum InboxOutcome {
    Stored(i64),
    Duplicate,
}

/// Who owns a group, as the registry knows it.
#[derive(Debug, Clone)]
pub struct GroupOwner {
    pub team: Option<String>,
    pub phone_number_id: String,
}

/// One page of a feed, and the seq to continue after when more follow.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<TeamEvent>,
    pub more_after: Option<FeedPosition>,
}

/// One audit record as `GET /v1/admin/audit` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "42",
    "occurred_at": "2026-11-26T10:15:00.123Z",
    "team": "sales",
    "jti": "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f",
    "method": "DELETE",
    "route": "/v1/groups/{group_id}",
    "phone_number_id": "12784358810",
    "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
    "request_id": "3f1c2a7e-0d1b-4a55-9a43-9b2f4f9f3c10",
    "upstream_status": 200,
    "fbtrace_id": "AbCdEfGh123",
    "status": 204
}))]
pub struct AuditRecord {
    /// Stable id of the record.
    pub id: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// One audited call: who made it, what it concerned, and how Meta and the gateway
/// answered. Written as the call ends; read back in an `AuditRecord`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// When the call arrived (RFC 3339, UTC).
    pub occurred_at: String,
    /// The caller's team; absent when the call was not authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The id of the caller's token (never the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    pub method: String,
    /// The route template, e.g. `/v1/groups/{group_id}`.
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// For a group creation: the gateway's request id (`/v1/group-requests/{request_id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_request_id: Option<String>,
    /// The call's `X-Request-Id`.
    pub request_id: String,
    /// HTTP status of Meta's answer to the last upstream attempt; absent when Meta was not
    /// called or did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// Meta's `error.code`, when Meta refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<i64>,
    /// Meta's trace id, for Meta's support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    /// The HTTP status the gateway answered.
    pub status: u16,
    /// Facts specific to the call: `issued_jti`, `issued_team` and `scopes` of an issued
    /// token, `revoked_jti`, `owner` and `previous_owner` of an ownership change.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub team: Option<String>,
    /// Records of the group, and of the creation that produced it.
    pub group_id: Option<String>,
    /// RFC 3339, UTC, milliseconds (the stored form).
    pub since: Option<String>,
    /// Only records older than this cursor's record.
    pub before_seq: Option<i64>,
    /// Only records about one of these numbers (records without a number are left out);
    /// None: every record.
    pub phone_numbers: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// The seq of the last record, when more records follow.
    pub next: Option<i64>,
}

/// A page of a feed: the events after `after` (a seq), at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct FeedPage {
    pub after: FeedPosition,
    pub limit: u32,
}

/// A page of the registry's groups.
#[derive(Debug, Clone, Copy)]
pub struct GroupsPage {
    pub limit: u32,
    pub cursor: PageCursor,
}

/// A team's claim on an `Idempotency-Key`. Answers older than `expired_before` and claims
/// without an answer older than `abandoned_before` (RFC 3339) free the key first.
#[derive(Debug, Clone, Copy)]
pub struct KeyClaim<'a> {
    pub team: &'a str,
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub expired_before: &'a str,
    pub abandoned_before: &'a str,
}

/// A group to give to a team (adoption or move), as Meta confirmed it.
#[derive(Debug, Clone, Copy)]
pub struct NewOwner<'a> {
    pub group_id: &'a GroupId,
    pub phone_number_id: &'a PhoneNumberId,
    pub team: &'a str,
    pub subject: Option<&'a str>,
}

/// A group seen in Meta's events that the gateway did not create.
#[derive(Debug, Clone, Copy)]
pub struct SeenGroup<'a> {
    pub group_id: &'a str,
    pub phone_number_id: &'a str,
    pub subject: Option<&'a str>,
    pub invite_link: Option<&'a str>,
}

/// A team event to store, from the stored Meta event `source`; `team` None keeps it
/// ownerless.
#[derive(Debug, Clone, Copy)]
pub struct NewTeamEvent<'a> {
    pub source: i64,
    pub team: Option<&'a str>,
    pub event: &'a TeamEvent,
}

/// A creation waiting for Meta's webhook.
#[derive(Debug, Clone)]
pub struct PendingCreation {
    pub request_id: String,
    pub team: String,
    pub phone_number_id: String,
    pub subject: String,
}

/// The limits a new creation must stay within (DESIGN §15): active groups and creations
/// still pending count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupQuota {
    /// The phone number's limit, over every team.
    pub number: Option<u32>,
    /// The team's limit on this phone number.
    pub team: Option<u32>,
}

impl GroupQuota {
    pub const NONE: GroupQuota = GroupQuota {
        number: None,
        team: None,
    };
}

/// Which quota a creation would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    PhoneNumber,
    Team,
}

/// What recording a creation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Yes,
    /// Another creation holds the (phone number, subject) until Meta names it.
    SubjectBusy,
    /// The quota is used up: `count` groups and pending creations against `limit`.
    OverQuota {
        scope: QuotaScope,
        limit: u32,
        count: i64,
    },
}

/// How Meta's webhook ended a creation.
#[derive(Debug, Clone)]
pub enum CreationOutcome {
    Created {
        group_id: String,
        /// Where Meta says the group lives (the creation's own number when it does not say).
        phone_number_id: String,
        subject: String,
        invite_link: Option<String>,
    },
    /// Meta's first error item.
    Failed { error: Value },
}

/// An `Idempotency-Key` as storage found it.
#[derive(Debug, Clone)]
pub enum Claim {
    /// First use: this request holds the key now.
    Claimed,
    /// Another request holds it: its fingerprint, and its answer once it has one.
    Held {
        fingerprint: String,
        answer: Option<StoredAnswer>,
    },
}

/// An answer kept for replay.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

/// One batch of pruning: rows older than `before` (RFC 3339, the stored form), at most
/// `limit` of them.
#[derive(Debug, Clone, Copy)]
pub struct PruneBatch<'a> {
    pub before: &'a str,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_status_reads_back_and_an_unknown_one_is_none() {
        for (word, status) in [
            ("pending", RequestStatus::Pending),
            ("created", RequestStatus::Created),
            ("failed", RequestStatus::Failed),
        ] {
            assert_eq!(RequestStatus::parse(word), Some(status));
        }
        for word in ["weird", "", "PENDING", "expired"] {
            assert_eq!(RequestStatus::parse(word), None, "{word:?}");
        }
    }
}
