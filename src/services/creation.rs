//! A group creation: recorded, asked of Meta, completed by Meta's `group_create` webhook
//! (which alone carries the group id and invite link), and waited for by callers that passed
//! `wait_seconds`.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;

use crate::context;
use crate::domain::events::Completion;
use crate::domain::events::has_errors;
use crate::domain::lenient;
use crate::domain::{
    GroupDescription, GroupSubject, ItemError, JoinApprovalMode, PhoneNumberId, RequestId,
};
use crate::error::ApiError;
use crate::graph::GraphClient;
use crate::storage::{
    CreateRequest, CreationOutcome, GroupStore, PendingCreation, RegistryTx, RequestStatus, Storage,
};

/// Wakes callers waiting (`wait_seconds`) for a creation to complete.
#[derive(Clone, Default)]
pub struct Waiters {
    inner: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Waiters {
    pub fn subscribe(&self, request_id: &str) -> Arc<Notify> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(request_id.to_owned()).or_default().clone()
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

    /// Drops the entry once nobody else holds it, so abandoned waits do not accumulate.
    pub fn release(&self, request_id: &str, notify: Arc<Notify>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&notify) <= 2 {
            map.remove(request_id);
        }
    }
}

/// Creations, shared by every worker.
#[derive(Clone)]
pub struct Creations {
    storage: Storage,
    groups: Arc<dyn GroupStore>,
    waiters: Waiters,
}

impl Creations {
    pub fn new(storage: Storage, waiters: Waiters) -> Self {
        Creations {
            groups: storage.groups.clone(),
            storage,
            waiters,
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

    /// Records the creation, asks Meta, and waits up to `wait` for the webhook that
    /// completes it. Answers the creation as it then stands (pending, created or failed).
    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        graph: &GraphClient,
        team: &str,
        pn: &PhoneNumberId,
        subject: &GroupSubject,
        description: Option<&GroupDescription>,
        mode: Option<JoinApprovalMode>,
        wait: Duration,
    ) -> Result<CreateRequest, ApiError> {
        let request_id = RequestId::new();
        let creation = PendingCreation {
            request_id: request_id.to_string(),
            team: team.to_owned(),
            phone_number_id: pn.to_string(),
            subject: subject.to_string(),
        };
        self.groups.insert_creation(&creation).await?;
        context::note_create_request(request_id.as_ref());
        // Subscribed before Meta is called, so a webhook that beats its answer still wakes us.
        let notify = self.waiters.subscribe(request_id.as_ref());
        match graph.create_group(pn, subject, description, mode).await {
            Err(e) => {
                let item = match e.problem() {
                    Some(p) => ItemError::new(p.code, p.message),
                    None => ItemError::new(0, e.to_string()),
                };
                self.groups.fail_creation(&request_id, &item).await?;
                self.waiters.release(request_id.as_ref(), notify);
                return Err(e.into());
            }
            Ok(Some(meta_id)) => self.attach_meta_request_id(&request_id, &meta_id).await?,
            Ok(None) => {
                tracing::warn!(
                    "Meta accepted a creation without a request_id; it cannot be completed"
                )
            }
        }
        let current = self.wait(request_id.as_ref(), &notify, wait).await;
        self.waiters.release(request_id.as_ref(), notify);
        current
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
        let mut completed = None;
        if let Some((pn, item)) = tx.early_creation_event(meta_request_id).await? {
            completed = complete(tx.as_mut(), meta_request_id, pn.as_deref(), &item).await?;
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
    let Some(pending) = tx.pending_creation(meta_request_id).await? else {
        return Ok(None);
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
