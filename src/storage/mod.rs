//! Storage: the only module that speaks SQL. One trait per concern, each implemented by
//! every backend (SQLite today, in `sqlite`); services hold the traits, never a pool.
//!
//! Processing a webhook POST changes groups, creations, Meta's events and team events at
//! once, so those changes go through one unit of work (`RegistryTx`) that commits or rolls
//! back as a whole.

mod endpoints;
mod guardrails;
mod platform;
mod records;
pub mod sql;

use crate::supervisor::Supervisor;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::domain::events::{Completion, NewWebhookEvent};
use crate::domain::{FeedPosition, GroupId, ItemError, PhoneNumberId, RequestId};

pub use endpoints::*;
pub use guardrails::*;
pub use platform::*;
pub use records::*;

/// A storage failure. The backend's own error is kept as the source, for the logs.
#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StorageError(#[from] sqlx::Error);

pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    /// Storage was shut down (the process is stopping).
    pub fn closed() -> Self {
        StorageError(sqlx::Error::PoolClosed)
    }
}

/// Groups, their owners and the creations that produce them.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Records a pending creation that holds its (phone number, subject) until Meta's request
    /// id arrives or it ends. `false`, and nothing recorded, when another creation holds them.
    async fn insert_creation(&self, creation: &PendingCreation) -> Result<bool> {
        let recorded = self.record_creation(creation, GroupQuota::NONE).await?;
        Ok(recorded == Recorded::Yes)
    }
    /// `insert_creation` within `quota`: the count and the insert are one transaction that
    /// every other creation on the number (on any replica) waits for, so two creations never
    /// both take the last slot.
    async fn record_creation(
        &self,
        creation: &PendingCreation,
        quota: GroupQuota,
    ) -> Result<Recorded>;
    /// Marks a still pending creation failed.
    async fn fail_creation(&self, request_id: &RequestId, error: &ItemError) -> Result<()>;
    async fn creation(&self, request_id: &str) -> Result<Option<CreateRequest>>;
    async fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>>;
    async fn set_group_active(&self, group_id: &str, active: bool) -> Result<()>;
    async fn set_invite_link(&self, group_id: &str, link: &str) -> Result<()>;
    /// The team's active groups on a number, in creation order, one page at a time.
    async fn list_groups(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        page: GroupsPage,
    ) -> Result<GroupPage>;
    /// Makes `team` the owner of an active group on `pn`, adding it when unknown; answers
    /// the previous owner.
    async fn set_owner(&self, assignment: &NewOwner<'_>) -> Result<Option<String>>;
    /// The owning team of each of these groups that has one.
    async fn owners(&self, group_ids: &[String]) -> Result<HashMap<String, String>>;
    /// The most recently created groups that have an owner, at most `limit`.
    async fn recent_owned_groups(&self, limit: i64) -> Result<Vec<GroupRecord>>;
    /// Pending creations that have no Meta request id and are not marked
    /// `mark_outcome_unknown`, created before `created_before`: their call to Meta cannot
    /// still be running (its process died mid-call). Oldest first, `limit` at most.
    async fn stale_creations(&self, created_before: &str, limit: u32) -> Result<Vec<String>>;
    /// Whether a catch-up has anything to do: a pending creation overtaken by its stored
    /// webhook, or an ownerless event stored since `since` of a group a creation made (see
    /// `RegistryTx::creations_overtaken_by_their_webhook` and
    /// `completions_with_ownerless_events`). Read without taking the write lock.
    async fn has_stragglers(&self, since: &str) -> Result<bool>;
    /// Marks failed, with `error`, the creations still pending that were created before
    /// `created_before` (no webhook came in time), each with a `group.create_failed` event
    /// for its team, announced to every replica; answers their request ids.
    async fn expire_creations(&self, created_before: &str, error: &Value) -> Result<Vec<String>>;
    /// Deletes up to `batch.limit` creations that ended (created or failed) before
    /// `batch.before`; answers how many.
    async fn prune_creations(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// Meta's webhook POSTs, stored before Meta is told 200.
#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Stores POSTs (SHA-256 of the body, body) in one transaction; a body stored before,
    /// or earlier in the same list, is a duplicate.
    async fn store_posts(&self, posts: &[(&str, &[u8])]) -> Result<Vec<InboxOutcome>>;
    async fn store_post(&self, body_sha256: &str, body: &[u8]) -> Result<InboxOutcome> {
        let outcomes = self.store_posts(&[(body_sha256, body)]).await?;
        Ok(outcomes
            .into_iter()
            .next()
            .unwrap_or(InboxOutcome::Duplicate))
    }
    /// Counts a failed attempt at processing a POST; true when it is now set aside.
    async fn record_failure(&self, id: i64, error: &str, max_attempts: i64) -> Result<bool>;
    /// Deletes up to `batch.limit` POSTs processed or set aside before `batch.before`, and
    /// up to `batch.limit` of Meta's events received before it that no team event refers to;
    /// answers how many rows. Unprocessed POSTs are never pruned.
    async fn prune_inbox(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// Team events (the feed).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// A team's events on the given numbers after `after` (a seq), oldest first.
    async fn list(&self, team: &str, numbers: &[String], page: FeedPage) -> Result<EventPage>;
    /// Events of groups no team owns, oldest first; on `numbers` only, when given.
    async fn list_unowned(&self, numbers: Option<&[String]>, page: FeedPage) -> Result<EventPage>;
    /// The feed position of one of the team's events.
    async fn position_of(&self, team: &str, event_id: &str) -> Result<Option<FeedPosition>>;
    /// Deletes up to `batch.limit` team events stored before `batch.before`, with their
    /// delivery rows (a backlog kept for a disabled endpoint ends with retention); answers
    /// how many events.
    async fn prune_events(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn insert(&self, entry: &AuditEntry) -> Result<()>;
    /// Newest first, `limit` at most.
    async fn list(&self, filter: &AuditFilter, limit: u32) -> Result<AuditPage>;
    /// Deletes up to `batch.limit` records that occurred before `batch.before`; answers how
    /// many.
    async fn prune_audit(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// Revoked token ids.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Revoking twice is not an error.
    async fn revoke(&self, jti: &str, by: &str) -> Result<()>;
    /// Revocations stored after `seq`, as (seq, jti), in seq order.
    async fn revoked_since(&self, seq: i64) -> Result<Vec<(i64, String)>>;
    /// Forgets revocations made before `batch.before`: every token they could refuse has
    /// expired by then.
    async fn prune_revocations(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// Answers kept for `Idempotency-Key` replays.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Frees the key when its answer expired or its first request died, then claims it for
    /// this request or reports who holds it. A claim linked (`link`) to a creation that
    /// exists is never taken for dead: Meta may have been asked already.
    async fn claim(&self, claim: &KeyClaim<'_>) -> Result<Claim>;
    async fn complete(&self, team: &str, key: &str, answer: &StoredAnswer) -> Result<()>;
    /// Frees a claim whose request did nothing upstream.
    async fn abandon(&self, team: &str, key: &str) -> Result<()>;
    /// Records the creation (its `request_id`) the key's request works on, before Meta is
    /// asked.
    async fn link(&self, team: &str, key: &str, request_id: &str) -> Result<()>;
    /// The creation the key's request works on, if linked.
    async fn linked(&self, team: &str, key: &str) -> Result<Option<String>>;
    /// Deletes up to `batch.limit` keys claimed before `batch.before`; answers how many.
    async fn prune_keys(&self, batch: &PruneBatch<'_>) -> Result<u64>;
}

/// One unit of work over the registry: it commits whole, or not at all.
#[async_trait]
pub trait RegistryTx: Send {
    /// Takes up to `limit` stored POSTs not yet processed, oldest first, for this unit of
    /// work; POSTs another replica is processing are passed over.
    async fn claim_posts(&mut self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>>;
    /// Takes one stored POST, if it is still to be processed and nobody else holds it.
    async fn claim_post(&mut self, id: i64) -> Result<Option<Vec<u8>>>;
    /// Stores Meta's events, each with the stored POST it came in: their row ids, in order,
    /// None for one stored already.
    async fn insert_webhook_events(
        &mut self,
        events: &[(i64, &NewWebhookEvent)],
    ) -> Result<Vec<Option<i64>>>;
    /// Stores one of Meta's events; its row id, or None when it was stored already.
    async fn insert_webhook_event(
        &mut self,
        inbox_id: i64,
        event: &NewWebhookEvent,
    ) -> Result<Option<i64>> {
        let ids = self.insert_webhook_events(&[(inbox_id, event)]).await?;
        Ok(ids.into_iter().next().flatten())
    }
    async fn mark_inbox_processed(&mut self, inbox_id: i64) -> Result<()>;
    async fn attach_meta_request_id(
        &mut self,
        request_id: &RequestId,
        meta_request_id: &str,
    ) -> Result<()>;
    /// A `group_create` event stored before Meta's answer named its request: (phone
    /// number, item).
    async fn early_creation_event(
        &mut self,
        meta_request_id: &str,
    ) -> Result<Option<(Option<String>, Value)>>;
    async fn pending_creation(&mut self, meta_request_id: &str) -> Result<Option<PendingCreation>>;
    /// Records how a pending creation ended; a created group joins the registry, owned by
    /// the team that asked.
    async fn finish_creation(
        &mut self,
        pending: &PendingCreation,
        outcome: &CreationOutcome,
    ) -> Result<()>;
    /// Records a group the gateway did not create (ownerless until adopted).
    async fn note_group(&mut self, group: &SeenGroup<'_>) -> Result<()>;
    async fn set_group_active(&mut self, group_id: &str, active: bool) -> Result<()>;
    async fn set_group_subject(&mut self, group_id: &str, subject: &str) -> Result<()>;
    async fn set_group_suspended(&mut self, group_id: &str, suspended: bool) -> Result<()>;
    /// Adds `delta` to the participant count where the count is known.
    async fn adjust_participants(&mut self, group_id: &str, delta: i64) -> Result<()>;
    async fn group_owner(&mut self, group_id: &str) -> Result<Option<GroupOwner>>;
    /// Counts a billable message once: a message already counted is left as it is.
    async fn record_billable(&mut self, message: &BillableMessage<'_>) -> Result<()>;
    /// Stores a team event and, when a team owns it, the row that gets it delivered.
    async fn insert_team_event(&mut self, row: &NewTeamEvent<'_>) -> Result<()>;
    /// Gives the team of `completion` the ownerless events of its creation (and of its
    /// group), re-queued at the end of the feed so no cursor handed out skips them.
    async fn claim_for_creation(&mut self, completion: &Completion) -> Result<()>;
    /// Created groups that have ownerless team events stored since `since` (RFC 3339): events
    /// another replica processed while the creation naming their owner was not yet committed.
    /// Each answered as the completion to `claim_for_creation` with.
    async fn completions_with_ownerless_events(&mut self, since: &str) -> Result<Vec<Completion>>;
    /// Pending creations that know Meta's request id while Meta's `group_create` event for
    /// it is stored already (the event was processed before the id was attached): (request
    /// id, Meta request id), at most `limit`.
    async fn creations_overtaken_by_their_webhook(
        &mut self,
        limit: i64,
    ) -> Result<Vec<(String, String)>>;
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Marks a creation whose call to Meta ended without telling its outcome: still
    /// pending, without a Meta request id, it now waits for Meta's webhook by number and
    /// subject (`waiting_creation`). Answers it when it is such a creation.
    async fn mark_outcome_unknown(&mut self, request_id: &str) -> Result<Option<PendingCreation>>;
    /// The oldest creation marked `mark_outcome_unknown` on `phone_number_id` with this
    /// subject, provided no creation holds `meta_request_id` already.
    async fn waiting_creation(
        &mut self,
        phone_number_id: &str,
        subject: &str,
        meta_request_id: &str,
    ) -> Result<Option<PendingCreation>>;
    /// A stored `group_create` event on the creation's number, with its subject, received
    /// since the creation was made, whose Meta request id names no creation: (Meta request
    /// id, item). The oldest such.
    async fn unclaimed_creation_event(
        &mut self,
        creation: &PendingCreation,
    ) -> Result<Option<(String, Value)>>;
}

/// Every concern of one backend.
#[async_trait]
pub trait Backend:
    GroupStore
    + InboxStore
    + EventStore
    + AuditStore
    + TokenStore
    + IdempotencyStore
    + PlatformStore
    + BackoffStore
    + UsageStore
    + ReconcileStore
{
    async fn begin(&self) -> Result<Box<dyn RegistryTx>>;
    /// A unit of work holding only what can be derived again from data already committed
    /// (processing stored POSTs): its commit does not wait for the disk. It reaches the disk
    /// with the next ordinary commit (the log is written in order); a power cut before that
    /// loses it, and it is derived again.
    async fn begin_derived(&self) -> Result<Box<dyn RegistryTx>>;
    async fn ping(&self) -> Result<()>;
    /// Calls `on_done` with the request id of each creation another process completes (none
    /// on a backend only one process uses), and with None when some may have been missed
    /// (the notification connection dropped).
    fn watch_creations(&self, on_done: CreationWatcher, supervisor: &Supervisor);
    /// Calls `on_change` for each group whose record changes, as soon as the change is
    /// committed here, and (on a shared backend) when another process committed one.
    fn watch_groups(&self, on_change: GroupWatcher, supervisor: &Supervisor);
    /// Calls `on_change` with true whenever another process changed the stored teams or
    /// phone numbers, and with false when such changes may have been missed (the
    /// notification connection was opened, or opened again).
    fn watch_platform(&self, on_change: PlatformWatcher, supervisor: &Supervisor);
}

pub type PlatformWatcher = Arc<dyn Fn(bool) + Send + Sync>;

/// What changed in the registry's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// This group's record changed.
    One(String),
    /// Changes may have been missed (another process's announcements were not followed for
    /// a while): anything known about any group may be stale.
    All,
}

pub type GroupWatcher = Arc<dyn Fn(GroupChange) + Send + Sync>;
/// See `Backend::watch_creations`: a completed creation's request id, or None for "any".
pub type CreationWatcher = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// The gateway's storage, whichever backend `storage.url` names: one handle per concern,
/// all on the same backend.
#[derive(Clone)]
pub struct Storage {
    pub groups: Arc<dyn GroupStore>,
    pub inbox: Arc<dyn InboxStore>,
    pub events: Arc<dyn EventStore>,
    pub audit: Arc<dyn AuditStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub platform: Arc<dyn PlatformStore>,
    pub endpoints: Arc<dyn EndpointStore>,
    pub backoffs: Arc<dyn BackoffStore>,
    pub usage: Arc<dyn UsageStore>,
    pub reconcile: Arc<dyn ReconcileStore>,
    backend: Arc<dyn Backend>,
}

impl Storage {
    /// Opens (and migrates) the backend `url` names: `sqlite:…` or `postgres://…`, the latter
    /// with a pool of up to `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Storage> {
        let backend = Arc::new(sql::SqlStorage::connect(url, max_connections).await?);
        Ok(Storage {
            groups: backend.clone(),
            inbox: backend.clone(),
            events: backend.clone(),
            audit: backend.clone(),
            tokens: backend.clone(),
            idempotency: backend.clone(),
            platform: backend.clone(),
            endpoints: backend.clone(),
            backoffs: backend.clone(),
            usage: backend.clone(),
            reconcile: backend.clone(),
            backend,
        })
    }

    /// A unit of work over the registry.
    pub async fn begin(&self) -> Result<Box<dyn RegistryTx>> {
        self.backend.begin().await
    }

    pub async fn begin_derived(&self) -> Result<Box<dyn RegistryTx>> {
        self.backend.begin_derived().await
    }

    pub async fn ping(&self) -> Result<()> {
        self.backend.ping().await
    }

    /// See `Backend::watch_creations`.
    pub fn watch_creations(&self, on_done: CreationWatcher, supervisor: &Supervisor) {
        self.backend.watch_creations(on_done, supervisor)
    }

    /// See `Backend::watch_platform`.
    pub fn watch_platform(&self, on_change: PlatformWatcher, supervisor: &Supervisor) {
        self.backend.watch_platform(on_change, supervisor)
    }

    /// See `Backend::watch_groups`.
    pub fn watch_groups(&self, on_change: GroupWatcher, supervisor: &Supervisor) {
        self.backend.watch_groups(on_change, supervisor)
    }
}
