//! Reconciliation (DESIGN §15): the registry compared with Meta's list of a number's active
//! groups. A group the registry holds as active that Meta no longer lists is marked deleted
//! (its team gets `group.deleted` with `data.reason: "reconciled"`); a group Meta lists that
//! no team owns is answered as unowned, ready for adoption. Runs on demand
//! (`POST /v1/admin/phone-numbers/{pn}/reconcile`) and every `graph.reconcile_interval`, one
//! replica at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::now;
use crate::domain::PhoneNumberId;
use crate::error::ApiError;
use crate::graph::{GraphClient, MetaPage, UpstreamGroup};
use crate::platform::Directory;
use crate::storage::Storage;

/// Meta's largest page of groups.
const PAGE: u32 = 1024;
/// Pages read at most in one pass: 10,000 groups (Meta's limit per number) fit in 10.
const MAX_PAGES: usize = 100;
/// The lease every replica's periodic job competes for.
const LEASE: &str = "reconcile";

/// What one reconciliation of a number found.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"checked": 12, "marked_deleted": ["Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD"], "unowned": [{"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM5NDMyMDM5NjQxNQZDZD", "subject": "Made elsewhere", "created_at": "2026-11-26T10:15:00Z"}]}))]
pub struct Reconciliation {
    /// Groups Meta listed as active on the number.
    pub checked: usize,
    /// Groups the registry held as active that Meta no longer lists: now deleted.
    pub marked_deleted: Vec<String>,
    /// Groups Meta lists that no team owns: adopt them with `PUT /v1/admin/groups/{id}/owner`.
    pub unowned: Vec<UpstreamGroup>,
}

#[derive(Clone)]
pub struct Reconciler {
    storage: Storage,
}

impl Reconciler {
    pub fn new(storage: Storage) -> Self {
        Reconciler { storage }
    }

    /// Compares the number's groups with Meta's list. Safe while traffic flows: a group the
    /// registry learnt of after the listing began is never taken for vanished, and marking
    /// deleted touches only groups still active.
    pub async fn reconcile(
        &self,
        graph: &GraphClient,
        pn: &PhoneNumberId,
    ) -> Result<Reconciliation, ApiError> {
        let started = now();
        let mut listed: BTreeMap<String, UpstreamGroup> = BTreeMap::new();
        let mut page = MetaPage {
            limit: Some(PAGE),
            after: None,
            before: None,
        };
        let mut complete = false;
        for _ in 0..MAX_PAGES {
            let answer = graph.list_groups(pn, &page).await?;
            for group in answer.groups {
                listed.insert(group.id.clone(), group);
            }
            // Meta links a next page only when there is one; a cursor given twice ends it.
            match answer.paging.after {
                Some(after) if page.after.as_ref() != Some(&after) => page.after = Some(after),
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        if !complete {
            return Err(ApiError::Internal(format!(
                "Meta's listing of {pn} did not end within {MAX_PAGES} pages; nothing was changed"
            )));
        }
        let store = &self.storage.reconcile;
        let registered = store.active_groups(pn.as_ref()).await?;
        let mut marked_deleted = Vec::new();
        let mut owners = BTreeMap::new();
        for group in registered {
            if listed.contains_key(&group.group_id) {
                owners.insert(group.group_id, group.owner_team);
            } else if group.created_at < started && store.mark_vanished(&group.group_id).await? {
                marked_deleted.push(group.group_id);
            }
        }
        let mut unowned = Vec::new();
        for (id, group) in listed.iter() {
            match owners.get(id) {
                Some(Some(_)) => {}
                known => {
                    if known.is_none() {
                        store
                            .note_unowned(pn.as_ref(), id, group.subject.as_deref())
                            .await?;
                    }
                    unowned.push(group.clone());
                }
            }
        }
        if !marked_deleted.is_empty() || !unowned.is_empty() {
            tracing::info!(
                phone_number_id = %pn,
                marked_deleted = marked_deleted.len(),
                unowned = unowned.len(),
                "reconciled the registry with Meta"
            );
        }
        Ok(Reconciliation {
            checked: listed.len(),
            marked_deleted,
            unowned,
        })
    }

    /// Every `interval`, the replica that takes the lease reconciles every number in force;
    /// the lease lasts most of an interval, so replicas do not run it side by side.
    pub async fn run_every(&self, graph: GraphClient, directory: Directory, interval: Duration) {
        let holder = uuid::Uuid::new_v4().to_string();
        let lease_ms = i64::try_from(interval.as_millis() * 9 / 10).unwrap_or(i64::MAX / 2);
        loop {
            tokio::time::sleep(interval).await;
            let now_ms = chrono::Utc::now().timestamp_millis();
            match self
                .storage
                .reconcile
                .take_lease(LEASE, &holder, now_ms, now_ms + lease_ms)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the reconciliation lease");
                    continue;
                }
            }
            let numbers: Vec<PhoneNumberId> = directory.current().numbers.keys().cloned().collect();
            for pn in numbers {
                if let Err(e) = self.reconcile(&graph, &pn).await {
                    tracing::warn!(phone_number_id = %pn, error = %e, "reconciliation failed; tried again next interval");
                }
            }
        }
    }
}
