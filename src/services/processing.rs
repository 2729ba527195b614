//! Meta's webhooks, from the signed POST to registry changes and team events
//! (docs/architecture.md, "The webhook pipeline").
//!
//! A verified POST is stored before Meta is told 200 (`Ingress`); the processor then turns
//! stored POSTs into registry changes, team events and delivery rows, one unit of work at a
//! time, so a crash never half-applies a POST.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};

use super::creation::{self, Waiters};
use super::delivery::DeliveryHandle;
use crate::clock::now_secs;
use crate::domain::events::{
    Completion, EventType, GROUP_STATUS_ITEM, NewWebhookEvent, TeamEvent, event_id, has_errors,
};
use crate::domain::lenient;
use crate::domain::meta_webhook::{
    KNOWN_FIELDS, KNOWN_TYPES, SignatureCheck, extract_events, known_label,
};
use crate::storage::{
    BillableMessage, InboxOutcome, InboxStore, NewTeamEvent, RegistryTx, Result, SeenGroup,
    Storage, StorageError,
};
use crate::supervisor::Supervisor;

/// Why a POST was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("missing or wrong X-Hub-Signature-256")]
    BadSignature,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A verified POST waiting to be written, and who waits for the outcome.
struct PostToStore {
    digest: String,
    body: Bytes,
    stored: oneshot::Sender<Result<InboxOutcome>>,
}

/// Most POSTs written in one transaction.
const POSTS_PER_COMMIT: usize = 256;

/// The webhook ingress: checks Meta's signature, stores the POST, wakes the processor.
///
/// POSTs are written by one task, in group commits: every POST that arrived while the last
/// transaction was being written goes into the next one, so many concurrent POSTs cost one
/// write to disk, and each is still answered only once its own transaction committed.
pub struct Ingress {
    app_secret: SecretString,
    writer: mpsc::Sender<PostToStore>,
}

impl Ingress {
    pub fn new(
        app_secret: SecretString,
        storage: &Storage,
        processor: ProcessorHandle,
        supervisor: &Supervisor,
    ) -> Self {
        let (writer, queue) = mpsc::channel(4 * POSTS_PER_COMMIT);
        // Shared so that a restarted writer takes over the same queue.
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let inbox = storage.inbox.clone();
        supervisor.spawn("webhook-ingress", move || {
            write_posts(inbox.clone(), queue.clone(), processor.clone())
        });
        Ingress { app_secret, writer }
    }

    /// The check a POST's body must pass, from its `X-Hub-Signature-256`: refused at once
    /// when the header is missing or malformed, before any of the body is read.
    pub fn signature_check(
        &self,
        header: Option<&str>,
    ) -> std::result::Result<SignatureCheck, IngressError> {
        SignatureCheck::new(self.app_secret.expose_secret().as_bytes(), header).ok_or_else(|| {
            metrics::counter!(crate::metrics::WEBHOOK_POSTS, "outcome" => "bad_signature")
                .increment(1);
            IngressError::BadSignature
        })
    }

    /// Stores a POST whose body passed `check` (fed every chunk as it arrived); answers
    /// whether it was a redelivery.
    pub async fn accept(
        &self,
        check: SignatureCheck,
        body: Bytes,
    ) -> std::result::Result<bool, IngressError> {
        if !check.verify() {
            // Not logged here: anyone can send these; the HTTP layer counts them and logs
            // them at a bounded rate.
            metrics::counter!(crate::metrics::WEBHOOK_POSTS, "outcome" => "bad_signature")
                .increment(1);
            return Err(IngressError::BadSignature);
        }
        let digest = hex::encode(Sha256::digest(&body));
        let (stored, outcome) = oneshot::channel();
        let post = PostToStore {
            digest,
            body,
            stored,
        };
        let gone = StorageError::closed;
        self.writer.send(post).await.map_err(|_| gone())?;
        let duplicate = outcome.await.map_err(|_| gone())?? == InboxOutcome::Duplicate;
        metrics::counter!(
            crate::metrics::WEBHOOK_POSTS,
            "outcome" => if duplicate { "duplicate" } else { "stored" }
        )
        .increment(1);
        Ok(duplicate)
    }
}

/// Writes queued POSTs in group commits until the ingress is dropped.
async fn write_posts(
    inbox: Arc<dyn InboxStore>,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<PostToStore>>>,
    processor: ProcessorHandle,
) {
    let mut queue = queue.lock().await;
    let mut batch = Vec::with_capacity(POSTS_PER_COMMIT);
    while queue.recv_many(&mut batch, POSTS_PER_COMMIT).await > 0 {
        let posts: Vec<(&str, &[u8])> = batch
            .iter()
            .map(|p| (p.digest.as_str(), p.body.as_ref()))
            .collect();
        let written = inbox.store_posts(&posts).await;
        let outcomes = match written {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // One bad POST must not fail the others: each is written on its own.
            Err(_) if batch.len() > 1 => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for (digest, body) in &posts {
                    outcomes.push(inbox.store_post(digest, body).await);
                }
                outcomes
            }
            Err(e) => vec![Err(e)],
        };
        if outcomes
            .iter()
            .any(|o| matches!(o, Ok(InboxOutcome::Stored(_))))
        {
            processor.kick();
        }
        for (post, outcome) in batch.drain(..).zip(outcomes) {
            let _ = post.stored.send(outcome);
        }
    }
}

/// Wakes the processor when a POST was stored.
#[derive(Clone, Default)]
pub struct ProcessorHandle {
    notify: Arc<Notify>,
}

impl ProcessorHandle {
    pub fn kick(&self) {
        self.notify.notify_one();
    }
}

/// How long the processor lets stored POSTs gather once woken.
const GATHER_POSTS_FOR: Duration = Duration::from_millis(5);

/// Most stored POSTs processed in one unit of work.
const POSTS_PER_UNIT: usize = 50;

/// Attempts at processing one stored POST before it is set aside.
const MAX_PROCESSING_ATTEMPTS: i64 = 5;

/// Most changes applied in one unit of work. Small POSTs share one, so SQLite's write lock
/// is taken once for many of them even while Meta's POSTs keep arriving; a large POST goes
/// alone, so the lock is never held for long.
const CHANGES_PER_TRANSACTION: usize = 1_000;

/// The longest between two catch-ups, so held events reach their team within a second of
/// the creation that names it.
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Processor {
    storage: Storage,
    inbox: Arc<dyn InboxStore>,
    waiters: Waiters,
    deliveries: DeliveryHandle,
    /// How long an ownerless event may wait for the creation of its group
    /// (`webhooks.creation_timeout_seconds`).
    hold_for: Duration,
}

/// Spawns the processor on the current runtime; it first drains what a previous run left.
/// New team events wake the delivery worker through `deliveries`.
pub fn spawn_processor(
    storage: Storage,
    waiters: Waiters,
    deliveries: DeliveryHandle,
    hold_for: Duration,
    supervisor: &Supervisor,
) -> ProcessorHandle {
    let handle = ProcessorHandle::default();
    let notify = handle.notify.clone();
    // Creations other replicas complete wake the callers waiting here.
    let remote = waiters.clone();
    storage.watch_creations(
        Arc::new(move |done: Option<&str>| match done {
            Some(request_id) => remote.wake(request_id),
            None => remote.wake_all(),
        }),
        supervisor,
    );
    let processor = Processor {
        inbox: storage.inbox.clone(),
        storage,
        waiters,
        deliveries,
        hold_for,
    };
    supervisor.spawn("webhook-processing", move || {
        let (processor, notify) = (processor.clone(), notify.clone());
        async move { processor.run(&notify).await }
    });
    handle
}

impl Processor {
    /// Processes what is stored, then waits for more, for good.
    async fn run(&self, notify: &Notify) {
        let processor = self;
        loop {
            if let Err(e) = processor.drain().await {
                tracing::error!(error = %e, "webhook processing failed; will retry");
            }
            if let Err(e) = processor.catch_up().await {
                tracing::error!(error = %e, "settling events held for their creation failed; will retry");
            }
            // Wake on a kick, or poll every second: another replica's commit may have made
            // held events (see `creation::catch_up`) ready for their team.
            let _ = tokio::time::timeout(CATCH_UP_EVERY, notify.notified()).await;
            // While POSTs keep coming, let a few commits of them gather: one unit of work then
            // processes them all, and the ingress has the database to itself in between.
            tokio::time::sleep(GATHER_POSTS_FOR).await;
        }
    }

    /// Processes stored POSTs until none is left. Each unit of work claims the oldest POSTs
    /// (with PostgreSQL, those no other replica is processing); a replica that dies holds
    /// nothing after its transaction is gone, so another one takes the POSTs over.
    async fn drain(&self) -> Result<()> {
        loop {
            let mut tx = self.storage.begin_derived().await?;
            let claimed = tx.claim_posts(POSTS_PER_UNIT as i64).await?;
            let claimed_count = claimed.len();
            if claimed.is_empty() {
                return Ok(());
            }
            let mut group = Vec::new();
            let mut changes = 0;
            for (id, body) in claimed {
                let events = extract_events(&body);
                if !group.is_empty() && changes + events.len() > CHANGES_PER_TRANSACTION {
                    break;
                }
                changes += events.len();
                group.push((id, events));
            }
            // Fewer than asked for: none was left when they were claimed.
            let more = claimed_count == POSTS_PER_UNIT || group.len() < claimed_count;
            let mut failure = None;
            match self.process(tx, &group).await {
                Ok(completed) => self.wake(completed),
                // One bad POST must not hold back the others: apply them one by one.
                Err(_) if group.len() > 1 => {
                    for (id, _) in &group {
                        if let Err(e) = self.process_one(*id).await {
                            failure = Some(self.count_failure(*id, e).await?);
                        }
                    }
                }
                Err(e) => failure = Some(self.count_failure(group[0].0, e).await?),
            }
            self.deliveries.kick();
            // A failed POST is tried again on a later pass, not in a tight loop.
            if let Some(e) = failure {
                return Err(e);
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Gives held events and overtaken creations their team (`creation::catch_up`).
    async fn catch_up(&self) -> Result<()> {
        // Mostly there is nothing to do: asked first without the write lock.
        let since = crate::clock::ago(self.hold_for);
        if !self.storage.groups.has_stragglers(&since).await? {
            return Ok(());
        }
        let mut tx = self.storage.begin().await?;
        let (completed, deliveries_due) = creation::catch_up(tx.as_mut(), self.hold_for).await?;
        tx.commit().await?;
        if deliveries_due {
            self.deliveries.kick();
        }
        self.wake(completed);
        Ok(())
    }

    /// Processes one stored POST on its own, unless it was processed meanwhile.
    async fn process_one(&self, id: i64) -> Result<()> {
        let mut tx = self.storage.begin_derived().await?;
        let Some(body) = tx.claim_post(id).await? else {
            return Ok(());
        };
        let completed = self.process(tx, &[(id, extract_events(&body))]).await?;
        self.wake(completed);
        Ok(())
    }

    /// Only once the unit of work is committed may waiters look at the outcome.
    fn wake(&self, completed: Vec<String>) {
        for request_id in completed {
            self.waiters.wake(&request_id);
        }
    }

    /// Counts the failure of one stored POST; answers the error for the caller to report.
    async fn count_failure(&self, inbox_id: i64, error: StorageError) -> Result<StorageError> {
        let set_aside = self
            .inbox
            .record_failure(inbox_id, &error.to_string(), MAX_PROCESSING_ATTEMPTS)
            .await?;
        if set_aside {
            metrics::counter!(crate::metrics::WEBHOOK_POSTS, "outcome" => "set_aside").increment(1);
            tracing::error!(
                inbox_id,
                attempts = MAX_PROCESSING_ATTEMPTS,
                error = %error,
                "a stored webhook POST keeps failing and is set aside (kept in webhook_inbox); later POSTs go on"
            );
        }
        Ok(error)
    }

    /// Processes claimed POSTs in their unit of work: for each, its new events, their
    /// registry effects, the team events and delivery rows, and its inbox row marked
    /// processed. A crash at any point leaves all of it or none (the POSTs are then processed
    /// again). Answers the creations completed.
    async fn process(
        &self,
        mut tx: Box<dyn RegistryTx>,
        posts: &[(i64, Vec<NewWebhookEvent>)],
    ) -> Result<Vec<String>> {
        let mut completed = Vec::new();
        // Stored together, in one statement: applying them reads only the Meta events that
        // already have a team event, which these have not yet.
        let events: Vec<(i64, &NewWebhookEvent)> = posts
            .iter()
            .flat_map(|(inbox_id, events)| events.iter().map(|event| (*inbox_id, event)))
            .collect();
        let stored = tx.insert_webhook_events(&events).await?;
        for ((_, event), stored) in events.iter().zip(stored) {
            let Some(stored) = stored else {
                tracing::debug!(event_type = %event.event_type, "duplicate webhook event ignored");
                continue;
            };
            let completion = apply(tx.as_mut(), event).await?;
            record_team_event(tx.as_mut(), stored, event, completion.as_ref()).await?;
            if let Some(done) = completion {
                completed.push(done.request_id);
            }
        }
        for (inbox_id, _) in posts {
            tx.mark_inbox_processed(*inbox_id).await?;
        }
        tx.commit().await?;
        for (_, events) in posts {
            for event in events {
                metrics::counter!(
                    crate::metrics::WEBHOOK_EVENTS,
                    "field" => known_label(&event.field, KNOWN_FIELDS),
                    "type" => known_label(&event.event_type, KNOWN_TYPES)
                )
                .increment(1);
            }
        }
        Ok(completed)
    }
}

/// The registry follows the event: status, subject, suspension, participant count.
async fn apply(tx: &mut dyn RegistryTx, event: &NewWebhookEvent) -> Result<Option<Completion>> {
    let item = &event.payload;
    let Some(group) = event.group_id.as_deref() else {
        if event.event_type == "group_create"
            && let Some(req) = &event.meta_request_id
        {
            return creation::complete(tx, req, event.phone_number_id.as_deref(), item).await;
        }
        return Ok(None);
    };
    match (event.field.as_str(), event.event_type.as_str()) {
        (_, "group_create") => {
            let completion = match &event.meta_request_id {
                Some(req) => {
                    creation::complete(tx, req, event.phone_number_id.as_deref(), item).await?
                }
                None => None,
            };
            // A group made outside the gateway (or whose request was lost) is kept ownerless
            // so an administrator can adopt it.
            if completion.is_none()
                && !has_errors(item)
                && let Some(pn) = event.phone_number_id.as_deref()
            {
                tx.note_group(&SeenGroup {
                    group_id: group,
                    phone_number_id: pn,
                    subject: item["subject"].as_str(),
                    invite_link: item["invite_link"].as_str(),
                })
                .await?;
            }
            return Ok(completion);
        }
        // A failed deletion leaves the group as it was: active.
        (_, "group_delete") => tx.set_group_active(group, has_errors(item)).await?,
        (_, "group_participants_add") => {
            let n = item["added_participants"].as_array().map_or(0, Vec::len) as i64;
            tx.adjust_participants(group, n).await?;
        }
        (_, "group_participants_remove") => {
            // Only those actually removed; `failed_participants` are still in.
            let n = item["removed_participants"].as_array().map_or(0, Vec::len) as i64;
            tx.adjust_participants(group, -n).await?;
        }
        ("group_settings_update", _) | (_, "group_settings_update") => {
            let subject = &item["group_subject"];
            if subject.get("update_successful").and_then(lenient::as_bool) == Some(true)
                && let Some(text) = subject["text"].as_str()
            {
                tx.set_group_subject(group, text).await?;
            }
        }
        (_, GROUP_STATUS_ITEM) => count_billable(tx, group, event).await?,
        (_, "group_suspend") => tx.set_group_suspended(group, true).await?,
        (_, "group_suspend_cleared") => tx.set_group_suspended(group, false).await?,
        (field, kind) => {
            tracing::debug!(field, kind, "webhook event stored without registry change")
        }
    }
    Ok(None)
}

/// Usage (DESIGN §15): a status whose pricing says billable counts its message once, for
/// the team owning the group, on the UTC day of the status.
async fn count_billable(
    tx: &mut dyn RegistryTx,
    group: &str,
    event: &NewWebhookEvent,
) -> Result<()> {
    let item = &event.payload;
    let pricing = &item["pricing"];
    if pricing.get("billable").and_then(lenient::as_bool) != Some(true) {
        return Ok(());
    }
    let (Some(message_id), Some(category)) = (
        item.get("id").and_then(lenient::as_id),
        pricing.get("category").and_then(|c| c.as_str()),
    ) else {
        return Ok(());
    };
    let owner = tx.group_owner(group).await?;
    let Some(phone_number_id) = event
        .phone_number_id
        .clone()
        .or_else(|| owner.as_ref().map(|o| o.phone_number_id.clone()))
    else {
        return Ok(());
    };
    let occurred_at = event.occurred_at.clone().unwrap_or_else(now_secs);
    let day = occurred_at.get(..10).unwrap_or(&occurred_at);
    tx.record_billable(&BillableMessage {
        message_id: &message_id,
        team: owner.as_ref().and_then(|o| o.team.as_deref()),
        phone_number_id: &phone_number_id,
        day,
        category,
        pricing_model: pricing.get("pricing_model").and_then(|m| m.as_str()),
    })
    .await
}

/// Writes the team event of one freshly stored Meta event, after the registry applied it.
/// The group's owner at that moment gets it (and a delivery row); an event of a group
/// nobody owns is kept with no team.
async fn record_team_event(
    tx: &mut dyn RegistryTx,
    webhook_event_id: i64,
    event: &NewWebhookEvent,
    completion: Option<&Completion>,
) -> Result<()> {
    let Some(kind) = EventType::classify(&event.event_type, &event.payload) else {
        return Ok(());
    };
    let owner = match &event.group_id {
        Some(group) => tx.group_owner(group).await?,
        None => None,
    };
    let team = completion
        .map(|c| c.team.clone())
        .or_else(|| owner.as_ref().and_then(|o| o.team.clone()));
    let phone_number_id = event
        .phone_number_id
        .clone()
        .or_else(|| owner.as_ref().map(|o| o.phone_number_id.clone()))
        .or_else(|| completion.map(|c| c.phone_number_id.clone()));
    let Some(phone_number_id) = phone_number_id else {
        tracing::debug!(
            event_type = kind.as_str(),
            "group event without a phone number kept only as received"
        );
        return Ok(());
    };
    let request_id = if kind.is_creation() {
        completion.map(|c| c.request_id.clone())
    } else {
        event.meta_request_id.clone()
    };
    let team_event = TeamEvent {
        id: event_id(&event.event_key),
        event_type: kind,
        occurred_at: event.occurred_at.clone().unwrap_or_else(now_secs),
        phone_number_id,
        group_id: event.group_id.clone(),
        request_id,
        data: kind.data(&event.payload),
    };
    tx.insert_team_event(&NewTeamEvent {
        source: webhook_event_id,
        team: team.as_deref(),
        event: &team_event,
    })
    .await
}
