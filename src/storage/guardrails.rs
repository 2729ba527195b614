//! What the guardrails of DESIGN §15 keep: Meta's 131208 backoff of a number, shared by every
//! replica, and the billable messages counted for usage.

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;

use super::{PruneBatch, Result};

/// Until when a number's group operations are held back after Meta's 131208.
#[async_trait]
pub trait BackoffStore: Send + Sync {
    /// Holds the number's group operations back until `until_ms` (Unix ms); an earlier time
    /// never shortens a hold already stored.
    async fn hold_group_operations(&self, phone_number_id: &str, until_ms: i64) -> Result<()>;
    /// The end of the number's hold (Unix ms), if one was ever stored.
    async fn group_operations_held_until(&self, phone_number_id: &str) -> Result<Option<i64>>;
}

/// One billable message, as its first priced status tells it.
#[derive(Debug, Clone)]
pub struct BillableMessage<'a> {
    /// Meta's message id: a message is counted once, whatever statuses Meta sends for it.
    pub message_id: &'a str,
    /// The team owning the group when the status was processed; None for a group nobody owns.
    pub team: Option<&'a str>,
    pub phone_number_id: &'a str,
    /// The UTC day of the status (`YYYY-MM-DD`).
    pub day: &'a str,
    pub category: &'a str,
    pub pricing_model: Option<&'a str>,
}

/// Which usage to read: days `from` to `to` (`YYYY-MM-DD`, both included), of one team or of
/// every team.
#[derive(Debug, Clone)]
pub struct UsageFilter<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub team: Option<&'a str>,
}

/// Billable messages of one team, day, phone number and category.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"team": "sales", "day": "2026-12-01", "phone_number_id": "12784358810", "category": "group_marketing", "billable_messages": 42}))]
pub struct UsageRow {
    /// Null for groups no team owns.
    pub team: Option<String>,
    pub day: String,
    pub phone_number_id: String,
    /// Meta's pricing category (`group_marketing`, `group_utility`, `group_service`, …).
    pub category: String,
    pub billable_messages: i64,
}

/// What each team sent that Meta bills (DESIGN §15, "Usage").
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Counts per (team, day, phone number, category), ordered by day, number, category.
    async fn usage(&self, filter: &UsageFilter<'_>) -> Result<Vec<UsageRow>>;
    /// Deletes up to `batch.limit` counted messages of days before `batch.before`
    /// (`YYYY-MM-DD`); answers how many.
    async fn prune_usage(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// A group of the registry, active on a number.
#[derive(Debug, Clone)]
pub struct RegisteredGroup {
    pub group_id: String,
    pub owner_team: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// What reconciliation (DESIGN §15) reads and writes.
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// The registry's active groups on the number.
    async fn active_groups(&self, phone_number_id: &str) -> Result<Vec<RegisteredGroup>>;
    /// Marks the group deleted, if still active, with a `group.deleted` team event for its
    /// owner (`data.reason: "reconciled"`), announced to every replica; true when it did.
    async fn mark_vanished(&self, group_id: &str) -> Result<bool>;
    /// Records a group Meta lists that the registry does not know, without an owner.
    async fn note_unowned(
        &self,
        phone_number_id: &str,
        group_id: &str,
        subject: Option<&str>,
    ) -> Result<()>;
    /// Takes the lease `name` for `holder` until `until_ms` when it is free (expired at
    /// `now_ms`, or held by `holder`); true when taken.
    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool>;
}
