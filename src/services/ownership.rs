//! Which team owns a group: asked by every group route, so answered from memory. The
//! webhook processor sets the owner when a creation completes; administrators adopt or move
//! groups (`Groups::assign_owner`).
//!
//! The cache stays exact: storage tells it of every committed change to a group's record, at
//! once in this process and, on PostgreSQL, as soon as another replica commits one (all of it
//! is forgotten when those announcements may have been missed: when the notification
//! connection drops and again once it is back). Whatever happens to notifications, no entry is
//! answered after `storage.cache_ttl`. It holds at most `MAX_CACHED` groups and starts with the
//! most recent ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::GroupId;
use crate::error::ApiError;
use crate::storage::{GroupChange, GroupRecord, GroupStore, Storage};
use crate::supervisor::Supervisor;

/// Most groups kept in memory (unknown ids included, so probing cannot grow it further).
const MAX_CACHED: usize = 100_000;
/// Groups read at start, most recent first.
const WARM_WITH: i64 = 10_000;

#[derive(Clone)]
pub struct Ownership {
    groups: Arc<dyn GroupStore>,
    cache: Arc<GroupCache>,
}

struct GroupCache {
    /// A group id → its record (None when storage does not know it), and when it was read.
    entries: RwLock<HashMap<String, (Option<GroupRecord>, Instant)>>,
    /// How long an entry may be answered (`storage.cache_ttl`).
    ttl: Duration,
    /// Counts changes: a record read from storage is kept only if no change came meanwhile,
    /// so an answer that was already stale when it arrived is never cached.
    changes: AtomicU64,
}

impl GroupCache {
    fn new(ttl: Duration) -> Self {
        GroupCache {
            entries: RwLock::default(),
            ttl,
            changes: AtomicU64::new(0),
        }
    }

    /// The cached record, unless it is older than the TTL (then storage is asked again).
    fn get(&self, group_id: &str) -> Option<Option<GroupRecord>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let (record, read_at) = entries.get(group_id)?;
        (read_at.elapsed() < self.ttl).then(|| record.clone())
    }

    /// Caches `record`, read when the change counter said `changes_before`.
    fn put(&self, group_id: &str, record: Option<GroupRecord>, changes_before: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.changes.load(Ordering::SeqCst) != changes_before {
            return;
        }
        if entries.len() >= MAX_CACHED && !entries.contains_key(group_id) {
            // Full: expired entries go first, then a tenth (any tenth: they are read again
            // when asked for).
            let ttl = self.ttl;
            entries.retain(|_, (_, read_at)| read_at.elapsed() < ttl);
            if entries.len() >= MAX_CACHED {
                let drop: Vec<String> = entries.keys().take(MAX_CACHED / 10).cloned().collect();
                for key in drop {
                    entries.remove(&key);
                }
            }
        }
        entries.insert(group_id.to_owned(), (record, Instant::now()));
    }

    fn forget(&self, change: GroupChange) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        self.changes.fetch_add(1, Ordering::SeqCst);
        match change {
            GroupChange::One(group_id) => {
                entries.remove(&group_id);
            }
            GroupChange::All => entries.clear(),
        }
    }
}

impl Ownership {
    /// Follows the registry's changes from now on; answers nothing older than `ttl`.
    pub fn new(storage: &Storage, ttl: Duration, supervisor: &Supervisor) -> Self {
        let cache = Arc::new(GroupCache::new(ttl));
        let watched = cache.clone();
        storage.watch_groups(Arc::new(move |change| watched.forget(change)), supervisor);
        Ownership {
            groups: storage.groups.clone(),
            cache,
        }
    }

    /// Reads the most recent groups, so the first calls after a start need no storage.
    pub async fn warm(&self) -> crate::storage::Result<usize> {
        let changes = self.cache.changes.load(Ordering::SeqCst);
        let recent = self.groups.recent_owned_groups(WARM_WITH).await?;
        let count = recent.len();
        for record in recent {
            let id = record.group_id.to_string();
            self.cache.put(&id, Some(record), changes);
        }
        Ok(count)
    }

    /// The group, if `team` owns it and it is active; otherwise 404, exactly as for an
    /// unknown group, so other teams' groups stay invisible.
    pub async fn owned_by(&self, team: &str, group_id: &GroupId) -> Result<GroupRecord, ApiError> {
        let record = match self.cache.get(group_id.as_ref()) {
            Some(record) => record,
            None => {
                let changes = self.cache.changes.load(Ordering::SeqCst);
                let record = self.groups.group(group_id).await?;
                self.cache.put(group_id.as_ref(), record.clone(), changes);
                record
            }
        };
        record
            .filter(|g| g.active && g.owner_team.as_deref() == Some(team))
            .ok_or_else(|| ApiError::NotFound(format!("group {group_id} not found")))
    }
}
