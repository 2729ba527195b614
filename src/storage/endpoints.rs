//! Teams' webhook endpoints, the delivery of each team event to each of them, and the log
//! of attempts (DESIGN §12).

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;

use super::Result;
use crate::domain::endpoint::EventTypeFilter;
use crate::domain::events::TeamEvent;

/// An endpoint as listed: its settings and its health, never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"team": "sales", "id": "ep_0f3k2m9q8w7e6r5t4y3u2i1o0p", "url": "https://orders.internal/hooks/wa", "description": "orders service", "event_types": ["group.*"], "disabled": false, "backlog": 0, "last_success_at": "2026-12-05T10:15:00.000Z", "created_at": "2026-12-01T09:00:00.000Z", "updated_at": "2026-12-01T09:00:00.000Z"}))]
pub struct EndpointRecord {
    pub team: String,
    /// `config` for the endpoint of the team's configuration (read-only), else `ep_…`.
    pub id: String,
    /// Without credentials; query and fragment hidden.
    pub url: String,
    pub description: String,
    /// Exact types or `group.*` / `webhook.*`; null: every type.
    pub event_types: Option<Vec<String>>,
    pub disabled: bool,
    /// Deliveries waiting (pending) for this endpoint, disabled or not.
    pub backlog: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// Start of the current run of failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<String>,
    /// The class of the last failure (e.g. `answered 500 Internal Server Error`, `timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new endpoint made through the API.
pub struct NewEndpoint<'a> {
    pub team: &'a str,
    pub id: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: Option<&'a [String]>,
    pub sealed_secret: &'a str,
    pub disabled: bool,
}

/// A `PATCH`: the fields given.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    /// Some(None): every type again.
    pub event_types: Option<Option<Vec<String>>>,
    pub disabled: Option<bool>,
}

/// Which of a team's events a replay queues again.
pub enum ReplaySelection<'a> {
    /// Events stored at or after this time (RFC 3339 as storage writes it).
    Since(&'a str),
    EventIds(&'a [String]),
}

pub enum ReplayOutcome {
    Queued(u64),
    /// These event ids are not the team's; nothing was queued.
    Unknown(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(AttemptOutcome::Succeeded),
            "failed" => Some(AttemptOutcome::Failed),
            _ => None,
        }
    }
}

/// One attempt as the attempts log shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"event_id": "evt_2f1c…", "attempt": 2, "outcome": "failed", "http_status": 500, "error": "answered 500 Internal Server Error", "duration_ms": 12, "at": "2026-12-05T10:15:07.000Z"}))]
pub struct AttemptRecord {
    /// The team event (also the `webhook-id` of the request).
    pub event_id: String,
    /// 1 for the first attempt of this event at this endpoint; replays go on counting.
    pub attempt: i64,
    pub outcome: AttemptOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i64>,
    /// The class of failure; never the receiver's body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at: String,
    #[serde(skip)]
    pub seq: i64,
}

pub struct AttemptFilter<'a> {
    pub outcome: Option<AttemptOutcome>,
    pub event_id: Option<&'a str>,
    /// Attempts older than this one (its `seq`): the next page.
    pub before: Option<i64>,
    pub limit: u32,
}

/// An endpoint a replica took for its turn: where to send and with which keys.
#[derive(Debug, Clone)]
pub struct EndpointTarget {
    pub team: String,
    pub id: String,
    pub url: String,
    pub sealed_secret: Option<String>,
    pub previous_sealed_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub failing_since: Option<i64>,
    pub consecutive_failures: i64,
}

/// A delivery due now, with its event.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    /// The number of this attempt (1 = first).
    pub attempt: i64,
    /// Unix ms: retries stop `webhooks.retry_for` after this.
    pub first_due_at: i64,
    pub event: TeamEvent,
}

/// What became of one attempt.
#[derive(Debug, Clone)]
pub struct SettledAttempt {
    pub delivery_id: i64,
    pub event_id: String,
    pub attempt: i64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// Unix ms when the attempt was made.
    pub at_ms: i64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Pending again, due at this unix ms.
    RetryAt(i64),
    /// Failed for good (retry_for ran out, or 410): kept, listed, replayable.
    Failed,
}

/// How the endpoint stands after a turn's attempts.
#[derive(Debug, Clone)]
pub enum EndpointHealth {
    /// At least one success and no failure after it.
    Healthy,
    /// The turn ended with a failure: tried again at `paused_until` (unix ms).
    Failing {
        paused_until: i64,
        error: String,
        /// Disabled by this failure, with this reason.
        disable: Option<String>,
    },
}

#[async_trait]
pub trait EndpointStore: Send + Sync {
    // ---- what teams and administrators manage ---------------------------------------------

    /// Makes the `config` endpoint of each team in `configured` (team, url) match
    /// configuration; a team no longer configured loses its `config` endpoint and its
    /// deliveries. A changed URL is a fresh, enabled endpoint.
    async fn sync_config_endpoints(&self, configured: &[(String, String)]) -> Result<()>;
    async fn create_endpoint(&self, endpoint: &NewEndpoint<'_>) -> Result<()>;
    async fn count_endpoints(&self, team: &str) -> Result<i64>;
    async fn endpoint(&self, team: &str, id: &str) -> Result<Option<EndpointRecord>>;
    /// A team's endpoints, or everyone's (`None`), by team and creation.
    async fn list_endpoints(&self, team: Option<&str>) -> Result<Vec<EndpointRecord>>;
    /// Applies a `PATCH`; false when there is no such endpoint. Enabling clears the failure
    /// state and makes the backlog due at once, in event order.
    async fn update_endpoint(&self, team: &str, id: &str, change: &EndpointChange) -> Result<bool>;
    /// Deletes the endpoint, its deliveries and attempts; false when there was none.
    async fn delete_endpoint(&self, team: &str, id: &str) -> Result<bool>;
    /// The new secret signs from now on; the current one too, until `previous_until` (ms).
    async fn rotate_secret(
        &self,
        team: &str,
        id: &str,
        sealed_secret: &str,
        previous_until: i64,
    ) -> Result<bool>;
    /// Every stored secret (team, id, sealed, previous sealed), for `storage rekey`.
    async fn sealed_secrets(&self) -> Result<Vec<(String, String, String, Option<String>)>>;
    async fn reseal_secret(
        &self,
        team: &str,
        id: &str,
        sealed: &str,
        previous: Option<&str>,
    ) -> Result<()>;
    /// Newest first.
    async fn list_attempts(
        &self,
        team: &str,
        id: &str,
        filter: &AttemptFilter<'_>,
    ) -> Result<Vec<AttemptRecord>>;
    /// Queues the selected events again (same event id, so the same `webhook-id`); those
    /// the endpoint's filter takes when it never had them are queued too.
    async fn replay(
        &self,
        team: &str,
        id: &str,
        selection: &ReplaySelection<'_>,
        filter: Option<&EventTypeFilter>,
    ) -> Result<ReplayOutcome>;

    // ---- what the delivery worker does -----------------------------------------------------

    /// Enabled endpoints with a delivery due and no replica on them, least recently served
    /// first.
    async fn due_endpoints(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>>;
    /// Takes the endpoint for a turn until `until_ms`, unless another replica holds it, it
    /// is disabled or paused.
    async fn take_endpoint(
        &self,
        team: &str,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<EndpointTarget>>;
    /// Extends this replica's turn; false when it was lost.
    async fn renew_endpoint(
        &self,
        team: &str,
        id: &str,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool>;
    async fn release_endpoint(&self, team: &str, id: &str, owner: &str) -> Result<()>;
    /// The endpoint's deliveries due at `now_ms`, oldest due first, then in event order.
    async fn due_deliveries(
        &self,
        team: &str,
        id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>>;
    /// Stores a turn's attempts and the endpoint's health in one transaction. A disable
    /// also stores the `webhook.endpoint_disabled` team event. Deliveries that became due
    /// before `expire_before` (ms) and are still pending fail, when the endpoint fails.
    /// True when this call disabled the endpoint.
    async fn settle(
        &self,
        target: &EndpointTarget,
        attempts: &[SettledAttempt],
        health: &EndpointHealth,
        expire_before: i64,
    ) -> Result<bool>;
    /// Pending deliveries per team, for `wagw_webhook_backlog`.
    async fn backlog_by_team(&self) -> Result<Vec<(String, i64)>>;
    async fn prune_attempts(&self, before_ms: i64, limit: u32) -> Result<u64>;
}
