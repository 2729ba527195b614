//! Which team owns a group. The webhook processor sets the owner when a creation completes;
//! administrators adopt or move groups (`Groups::assign_owner`). Every group route asks
//! here first.

use std::sync::Arc;

use crate::domain::GroupId;
use crate::error::ApiError;
use crate::storage::{GroupRecord, GroupStore, Storage};

#[derive(Clone)]
pub struct Ownership {
    groups: Arc<dyn GroupStore>,
}

impl Ownership {
    pub fn new(storage: &Storage) -> Self {
        Ownership {
            groups: storage.groups.clone(),
        }
    }

    /// The group, if `team` owns it and it is active; otherwise 404, exactly as for an
    /// unknown group, so other teams' groups stay invisible.
    pub async fn owned_by(&self, team: &str, group_id: &GroupId) -> Result<GroupRecord, ApiError> {
        self.groups
            .group(group_id)
            .await?
            .filter(|g| g.active && g.owner_team.as_deref() == Some(team))
            .ok_or_else(|| ApiError::NotFound(format!("group {group_id} not found")))
    }
}
