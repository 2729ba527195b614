//! A group creation: recorded, asked of Meta, completed by Meta's `group_create` webhook
//! (which alone carries the group id and invite link), and waited for by callers that passed
//! `wait_seconds`.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;

use crate::clock::ago;
use crate::context;
use crate::domain::events::Completion;
use crate::domain::events::has_errors;
use crate::domain::lenient;
use crate::domain::{
    GroupDescription, GroupSubject, ItemError, JoinApprovalMode, PhoneNumberId, RequestId,
};
use crate::error::ApiError;
use crate::graph::{GraphClient, UpstreamError};
use crate::platform::Directory;
use crate::storage::{
    CreateRequest, CreationOutcome, GroupQuota, GroupStore, PendingCreation, QuotaScope, Recorded,
    RegistryTx, RequestStatus, Storage,
};
use crate::supervisor::Supervisor;

/// Wakes callers waiting (`wait_seconds`) for a creation to complete.
#[derive(Clone, Default)]
pub struct Waiters {
    inner: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Waiters {
    /// Waits for `request_id`'s completion from now on; the entry goes when the returned
    /// guard is dropped, on every path out of the caller (early returns and errors included),
    /// so abandoned waits never accumulate.
    pub fn subscribe(&self, request_id: &str) -> Waiting {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let notify = map.entry(request_id.to_owned()).or_default().clone();
        Waiting {
            waiters: self.clone(),
            request_id: request_id.to_owned(),
            notify,
        }
    }

    /// Requests someone waits for now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn wake(&self, request_id: &str) {
        let notify = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request_id);
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Wakes every waiter, each of which reads its creation again (a completion may have
    /// been announced while nobody could hear it).
    pub fn wake_all(&self) {
        let all: Vec<Arc<Notify>> = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, n)| n)
            .collect();
        for notify in all {
            notify.notify_waiters();
        }
    }

    /// Drops the entry once nobody else holds it.
    fn release(&self, request_id: &str, notify: &Arc<Notify>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and this one: nobody else waits.
        if Arc::strong_count(notify) <= 2
            && map.get(request_id).is_some_and(|n| Arc::ptr_eq(n, notify))
        {
            map.remove(request_id);
        }
    }
}

/// One caller's wait for a creation (`Waiters::subscribe`); released when dropped.
pub struct Waiting {
    waiters: Waiters,
    request_id: String,
    notify: Arc<Notify>,
}

impl std::ops::Deref for Waiting {
    type Target = Notify;
    fn deref(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.waiters.release(&self.request_id, &self.notify);
    }
}

/// Creations, shared by every worker.
#[derive(Clone)]
pub struct Creations {
    storage: Storage,
    groups: Arc<dyn GroupStore>,
    waiters: Waiters,
    /// What a creation refused for a busy subject is told to wait: the subject is freed
    /// when the holder's call to Meta ends (at most graph.timeout_ms) or its webhook lands.
    subject_retry_after: Duration,
    /// The numbers' and teams' `max_groups` in force.
    directory: Directory,
}

/// What became of the call that asks Meta for a group.
enum Sent {
    /// Meta accepted it and named its request: its webhook will name it too.
    Named(String),
    /// Meta may have created the group, but its request id never arrived (no answer in
    /// time, the connection dropped after the request was sent, an answer without an id).
    Unknown,
}

/// Whether Meta may have acted on a creation whose call failed this way. Only Meta's own
/// refusal (its error envelope), or a call that never left (unreachable, a local budget),
/// is known to have created nothing.
fn outcome_unknown(e: &UpstreamError) -> bool {
    match e {
        UpstreamError::Timeout => true,
        // 0: the connection broke after the request went out; 2xx: Meta said yes, unreadably.
        UpstreamError::BadResponse { http_status, .. } => {
            *http_status == 0 || (200..300).contains(http_status)
        }
        _ => false,
    }
}

/// How often the watchdog looks for creations whose call died with its process, and for
/// creations that waited too long for Meta's webhook.
const WATCH_EVERY: Duration = Duration::from_secs(5);

impl Creations {
    pub fn new(
        storage: Storage,
        waiters: Waiters,
        subject_retry_after: Duration,
        directory: Directory,
    ) -> Self {
        Creations {
            groups: storage.groups.clone(),
            storage,
            waiters,
            subject_retry_after,
            directory,
        }
    }

    /// The creation as its team sees it; None for another team's or an unknown one.
    pub async fn get(
        &self,
        team: &str,
        request_id: &RequestId,
    ) -> Result<Option<CreateRequest>, ApiError> {
        Ok(self
            .groups
            .creation(request_id.as_ref())
            .await?
            .filter(|r| r.team == team))
    }

    /// Records a new creation, before Meta is asked for anything. 409 while another creation
    /// (of any team, on any replica) with the same number and subject waits without Meta's
    /// request id: a webhook matched by number and subject must name one creation only, or
    /// a team could receive the group (and invite link) made for another.
    pub async fn record(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        subject: &GroupSubject,
    ) -> Result<PendingCreation, ApiError> {
        let creation = PendingCreation {
            request_id: RequestId::new().to_string(),
            team: team.to_owned(),
            phone_number_id: pn.to_string(),
            subject: subject.to_string(),
        };
        let (number, team_max) = self.directory.max_groups(team, pn);
        let quota = GroupQuota {
            number: Some(number),
            team: team_max,
        };
        match self.groups.record_creation(&creation, quota).await? {
            Recorded::Yes => {}
            Recorded::SubjectBusy => {
                return Err(ApiError::CreationInProgress {
                    retry_after_seconds: self.subject_retry_after.as_secs().max(1),
                });
            }
            Recorded::OverQuota { scope, limit, .. } => {
                metrics::counter!(crate::metrics::GROUP_QUOTA_REFUSALS).increment(1);
                return Err(ApiError::GroupQuotaExceeded {
                    scope: match scope {
                        QuotaScope::PhoneNumber => "phone number",
                        QuotaScope::Team => "team",
                    },
                    limit,
                });
            }
        }
        context::note_create_request(&creation.request_id);
        Ok(creation)
    }

    /// Marks a recorded creation failed before Meta was asked (nothing left the gateway).
    pub async fn abandon(&self, creation: &PendingCreation, why: &str) -> Result<(), ApiError> {
        let request_id = RequestId::parse(&creation.request_id).map_err(ApiError::Internal)?;
        self.groups
            .fail_creation(&request_id, &ItemError::new(0, why.to_owned()))
            .await?;
        Ok(())
    }

    /// Asks Meta for the recorded creation, once, and waits up to `wait` for the webhook that
    /// completes it. Answers the creation as it then stands (pending, created or failed).
    ///
    /// Meta is never asked twice. When its answer is lost (timeout, dropped connection), the
    /// creation stays pending and is resolved by Meta's webhook, matched by number and
    /// subject; only Meta's refusal (or no webhook in time) makes it failed.
    pub async fn send(
        &self,
        graph: &GraphClient,
        creation: &PendingCreation,
        subject: &GroupSubject,
        description: Option<&GroupDescription>,
        mode: Option<JoinApprovalMode>,
        wait: Duration,
    ) -> Result<CreateRequest, ApiError> {
        let request_id = RequestId::parse(&creation.request_id).map_err(ApiError::Internal)?;
        let pn = PhoneNumberId::parse(&creation.phone_number_id).map_err(ApiError::Internal)?;
        // Subscribed before Meta is called, so a webhook that beats its answer still wakes us.
        let notify = self.waiters.subscribe(request_id.as_ref());
        let sent = match graph.create_group(&pn, subject, description, mode).await {
            Ok(Some(meta_id)) => Sent::Named(meta_id),
            Ok(None) => Sent::Unknown,
            Err(e) if outcome_unknown(&e) => {
                tracing::warn!(error = %e, request_id = %request_id, "Meta's answer to a creation was lost: it is not sent again and waits for Meta's webhook");
                Sent::Unknown
            }
            Err(e) => {
                let item = match e.problem() {
                    Some(p) => ItemError::new(p.code, p.message),
                    None => ItemError::new(0, e.to_string()),
                };
                self.groups.fail_creation(&request_id, &item).await?;
                return Err(e.into());
            }
        };
        match sent {
            Sent::Named(meta_id) => self.attach_meta_request_id(&request_id, &meta_id).await?,
            Sent::Unknown => self.await_webhook(request_id.as_ref()).await?,
        }
        self.wait(request_id.as_ref(), &notify, wait).await
    }

    /// The team's creation `request_id` as it stands, waiting up to `wait` while it is
    /// pending (a retry with the creation's `Idempotency-Key`). None when it is not kept.
    pub async fn current(
        &self,
        team: &str,
        request_id: &str,
        wait: Duration,
    ) -> Result<Option<CreateRequest>, ApiError> {
        let Some(creation) = self.groups.creation(request_id).await? else {
            return Ok(None);
        };
        if creation.team != team {
            return Ok(None);
        }
        if creation.status != RequestStatus::Pending || wait.is_zero() {
            return Ok(Some(creation));
        }
        let notify = self.waiters.subscribe(request_id);
        self.wait(request_id, &notify, wait).await.map(Some)
    }

    async fn wait(
        &self,
        request_id: &str,
        notify: &Notify,
        wait: Duration,
    ) -> Result<CreateRequest, ApiError> {
        let deadline = Instant::now() + wait;
        let mut current = self.load(request_id).await?;
        while current.status == RequestStatus::Pending && Instant::now() < deadline {
            let mut notified = pin!(notify.notified());
            notified.as_mut().enable();
            current = self.load(request_id).await?;
            if current.status != RequestStatus::Pending {
                break;
            }
            let _ =
                tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), notified)
                    .await;
            current = self.load(request_id).await?;
        }
        Ok(current)
    }

    async fn load(&self, request_id: &str) -> Result<CreateRequest, ApiError> {
        self.groups
            .creation(request_id)
            .await?
            .ok_or_else(|| ApiError::Internal("a stored creation vanished".into()))
    }

    /// Records Meta's request id, then applies a creation webhook that may have overtaken
    /// Meta's own answer (its team event, kept ownerless until now, becomes the team's).
    async fn attach_meta_request_id(
        &self,
        request_id: &RequestId,
        meta_request_id: &str,
    ) -> Result<(), ApiError> {
        let mut tx = self.storage.begin().await?;
        tx.attach_meta_request_id(request_id, meta_request_id)
            .await?;
        let early = tx.early_creation_event(meta_request_id).await?;
        let event = early
            .as_ref()
            .map(|(pn, item)| (meta_request_id, pn.as_deref(), item));
        self.complete_and_commit(tx, event).await
    }

    /// Marks a creation whose outcome is unknown as waiting for Meta's webhook by number and
    /// subject, and applies such a webhook when it already arrived (kept ownerless until
    /// now, since its request id named no creation).
    async fn await_webhook(&self, request_id: &str) -> Result<(), ApiError> {
        let mut tx = self.storage.begin().await?;
        let mut arrived = None;
        if let Some(waiting) = tx.mark_outcome_unknown(request_id).await?
            && let Some((meta_id, item)) = tx.unclaimed_creation_event(&waiting).await?
        {
            let id = RequestId::parse(&waiting.request_id).map_err(ApiError::Internal)?;
            tx.attach_meta_request_id(&id, &meta_id).await?;
            arrived = Some((waiting, meta_id, item));
        }
        let event = arrived.as_ref().map(|(waiting, meta_id, item)| {
            (
                meta_id.as_str(),
                Some(waiting.phone_number_id.as_str()),
                item,
            )
        });
        self.complete_and_commit(tx, event).await
    }

    /// Applies a creation's webhook `event` (Meta's request id, the event's number, the
    /// item) when there is one and claims the group for the creation, then commits; the
    /// creation's waiters are woken only after the commit, so they read it.
    async fn complete_and_commit(
        &self,
        mut tx: Box<dyn RegistryTx>,
        event: Option<(&str, Option<&str>, &Value)>,
    ) -> Result<(), ApiError> {
        let mut completed = None;
        if let Some((meta_request_id, pn, item)) = event {
            completed = complete(tx.as_mut(), meta_request_id, pn, item).await?;
            if let Some(done) = &completed {
                tx.claim_for_creation(done).await?;
            }
        }
        tx.commit().await?;
        if let Some(done) = completed {
            self.waiters.wake(&done.request_id);
        }
        Ok(())
    }

    /// Starts the watchdog on the current runtime: creations whose call to Meta died with
    /// its process (older than `call_bound`, the longest a call may take, and still without
    /// Meta's request id) wait for the webhook like any whose outcome is unknown; creations
    /// without a webhook after `give_up_after` are failed.
    pub fn spawn_watchdog(
        &self,
        call_bound: Duration,
        give_up_after: Duration,
        supervisor: &Supervisor,
    ) {
        let creations = self.clone();
        supervisor.spawn("creation-watchdog", move || {
            let creations = creations.clone();
            async move {
                loop {
                    if let Err(e) = creations.watch(call_bound, give_up_after).await {
                        tracing::error!(error = %e, "creation watchdog failed; will retry");
                    }
                    tokio::time::sleep(WATCH_EVERY).await;
                }
            }
        });
    }

    async fn watch(&self, call_bound: Duration, give_up_after: Duration) -> Result<(), ApiError> {
        for request_id in self.groups.stale_creations(&ago(call_bound), 100).await? {
            tracing::warn!(
                request_id,
                "a creation's call to Meta ended with its process: it is not sent again and waits for Meta's webhook"
            );
            self.await_webhook(&request_id).await?;
        }
        let error = serde_json::json!({
            "code": 0,
            "message": format!("Meta's group_create webhook did not arrive within {} s", give_up_after.as_secs()),
        });
        for request_id in self
            .groups
            .expire_creations(&ago(give_up_after), &error)
            .await?
        {
            tracing::warn!(
                request_id,
                "a creation got no webhook from Meta in time and is failed"
            );
            self.waiters.wake(&request_id);
        }
        Ok(())
    }
}

/// Most overtaken creations settled in one catch-up.
const CATCH_UP_BATCH: i64 = 100;

/// Settles what replicas processing webhooks side by side can leave behind (SKIP LOCKED lets
/// each take a different POST of the same group): a creation whose `group_create` event was
/// processed before Meta's request id was attached to it, and events of a group that another
/// replica processed before the creation naming its owner was committed, which are stored
/// without a team. Such events are held (ownerless) for at most `hold_for` and given to the
/// creation's team once it is known, re-queued at the end of its feed. Answers the creations
/// completed, whose waiters are to be woken after the commit, and whether any event found its
/// team (deliveries are then due).
pub(crate) async fn catch_up(
    tx: &mut dyn RegistryTx,
    hold_for: Duration,
) -> crate::storage::Result<(Vec<String>, bool)> {
    let mut completed = Vec::new();
    for (_, meta_request_id) in tx
        .creations_overtaken_by_their_webhook(CATCH_UP_BATCH)
        .await?
    {
        let Some((pn, item)) = tx.early_creation_event(&meta_request_id).await? else {
            continue;
        };
        if let Some(done) = complete(tx, &meta_request_id, pn.as_deref(), &item).await? {
            tx.claim_for_creation(&done).await?;
            completed.push(done.request_id);
        }
    }
    let held = tx.completions_with_ownerless_events(&ago(hold_for)).await?;
    for done in &held {
        tx.claim_for_creation(done).await?;
    }
    let delivered = !completed.is_empty() || !held.is_empty();
    Ok((completed, delivered))
}

/// Applies a `group_create` event to the creation Meta's `request_id` names: the group now
/// exists and belongs to the team that asked, or the creation failed with Meta's error.
/// Answers the creation when one was pending. Waking its waiters is the caller's job, after
/// the commit.
pub(crate) async fn complete(
    tx: &mut dyn RegistryTx,
    meta_request_id: &str,
    event_pn: Option<&str>,
    item: &Value,
) -> crate::storage::Result<Option<Completion>> {
    let pending = match tx.pending_creation(meta_request_id).await? {
        Some(pending) => pending,
        // Meta's answer, with this request id, never reached the gateway: the creation waits
        // among those whose outcome is unknown, found by number and subject.
        None => {
            let subject = item.get("subject").and_then(Value::as_str);
            let (Some(pn), Some(subject)) = (event_pn, subject) else {
                return Ok(None);
            };
            let Some(waiting) = tx.waiting_creation(pn, subject, meta_request_id).await? else {
                return Ok(None);
            };
            if let Ok(id) = RequestId::parse(&waiting.request_id) {
                tx.attach_meta_request_id(&id, meta_request_id).await?;
            }
            waiting
        }
    };
    let group_id = item.get("group_id").and_then(lenient::as_id);
    let outcome = match group_id {
        Some(group_id) if !has_errors(item) => CreationOutcome::Created {
            group_id,
            phone_number_id: event_pn.unwrap_or(&pending.phone_number_id).to_owned(),
            subject: item
                .get("subject")
                .and_then(Value::as_str)
                .unwrap_or(&pending.subject)
                .to_owned(),
            invite_link: item
                .get("invite_link")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        _ => CreationOutcome::Failed {
            error: item
                .get("errors")
                .and_then(Value::as_array)
                .and_then(|e| e.first().cloned())
                .unwrap_or_else(
                    || serde_json::json!({"code": 0, "message": "Meta reported no group id"}),
                ),
        },
    };
    tx.finish_creation(&pending, &outcome).await?;
    Ok(Some(Completion {
        request_id: pending.request_id,
        team: pending.team,
        phone_number_id: pending.phone_number_id,
        meta_request_id: meta_request_id.to_owned(),
        group_id: match outcome {
            CreationOutcome::Created { group_id, .. } => Some(group_id),
            CreationOutcome::Failed { .. } => None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However a waiting caller leaves (an answer, an error, a dropped request), its entry
    /// goes with it; an entry another caller still waits on stays.
    #[tokio::test]
    async fn a_wait_leaves_no_entry_behind_on_any_way_out() {
        let waiters = Waiters::default();
        let first = waiters.subscribe("req-1");
        let second = waiters.subscribe("req-1");
        assert_eq!(waiters.len(), 1);
        drop(first);
        assert_eq!(waiters.len(), 1, "the second caller still waits");
        drop(second);
        assert!(waiters.is_empty());

        // An early return with `?` after subscribing.
        async fn fails_midway(waiters: &Waiters) -> Result<(), &'static str> {
            let _waiting = waiters.subscribe("req-2");
            Err("storage failed")?;
            Ok(())
        }
        assert!(fails_midway(&waiters).await.is_err());
        assert!(waiters.is_empty());

        // A caller dropped mid-wait (the client went away).
        let waiting = waiters.subscribe("req-3");
        let wait = tokio::spawn(async move {
            waiting.notified().await;
        });
        tokio::task::yield_now().await;
        wait.abort();
        let _ = wait.await;
        assert!(waiters.is_empty());

        // A wake ends the entry; a later subscriber gets a fresh one that an old guard
        // does not remove.
        let old = waiters.subscribe("req-4");
        waiters.wake("req-4");
        let new = waiters.subscribe("req-4");
        drop(old);
        assert_eq!(waiters.len(), 1);
        drop(new);
        assert!(waiters.is_empty());
    }
}
