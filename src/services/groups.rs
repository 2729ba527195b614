//! Group operations that involve the registry as well as Meta: creating, listing, deleting,
//! resetting the link, Meta's listing with owners, and ownership changes. (Operations that
//! are one Graph call and nothing else go from the handler to the Graph client.) Built once
//! per HTTP worker, because the Graph client (awc) is per worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::TeamSettings;
use crate::context;
use crate::domain::{GroupFields, GroupId, PageCursor, PhoneNumberId};
use crate::error::ApiError;
use crate::graph::{GraphClient, MetaPage, UpstreamGroup, UpstreamGroupPage};
use crate::storage::{GroupPage, GroupRecord, GroupStore, GroupsPage, NewOwner};

#[derive(Clone)]
pub struct Groups {
    graph: GraphClient,
    store: Arc<dyn GroupStore>,
}

/// A group of Meta's listing of a number, with the team that owns it in the gateway.
pub struct ListedGroup {
    pub group: UpstreamGroup,
    pub owner: Option<String>,
}

/// An adoption or move of a group between teams.
pub struct Assignment {
    pub previous_owner: Option<String>,
    /// The subject Meta reported while confirming the group.
    pub subject: Option<String>,
}

impl Groups {
    pub fn new(graph: GraphClient, store: Arc<dyn GroupStore>) -> Self {
        Groups { graph, store }
    }

    /// The team's active groups on a number, from the registry.
    pub async fn list(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        limit: u32,
        cursor: PageCursor,
    ) -> Result<GroupPage, ApiError> {
        let page = GroupsPage { limit, cursor };
        Ok(self.store.list_groups(team, pn, page).await?)
    }

    pub async fn delete(&self, group: &GroupRecord) -> Result<(), ApiError> {
        self.graph
            .delete_group(&group.phone_number_id, &group.group_id)
            .await?;
        // Meta accepted; a failure webhook would make it active again.
        self.store
            .set_group_active(group.group_id.as_ref(), false)
            .await?;
        Ok(())
    }

    pub async fn reset_invite_link(&self, group: &GroupRecord) -> Result<String, ApiError> {
        let link = self
            .graph
            .reset_invite_link(&group.phone_number_id, &group.group_id)
            .await?;
        self.store
            .set_invite_link(group.group_id.as_ref(), &link)
            .await?;
        Ok(link)
    }

    /// Meta's listing of the number's active groups, each with its owner in the gateway.
    pub async fn listing(
        &self,
        pn: &PhoneNumberId,
        page: &MetaPage,
    ) -> Result<(Vec<ListedGroup>, UpstreamGroupPage), ApiError> {
        let mut page = self.graph.list_groups(pn, page).await?;
        let ids: Vec<String> = page.groups.iter().map(|g| g.id.clone()).collect();
        let mut owners = self.store.owners(&ids).await?;
        let listed = std::mem::take(&mut page.groups)
            .into_iter()
            .map(|group| ListedGroup {
                owner: owners.remove(&group.id),
                group,
            })
            .collect();
        Ok((listed, page))
    }

    /// The number the registry knows the group on, whether active or not; None when the
    /// registry does not know it.
    pub async fn registered_number(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<PhoneNumberId>, ApiError> {
        Ok(self
            .store
            .group(group_id)
            .await?
            .map(|group| group.phone_number_id))
    }

    /// Gives a group to a configured team holding a grant for `pn`, once Meta confirms the
    /// group exists on that number (its error, such as 131041, is passed on).
    pub async fn assign_owner(
        &self,
        teams: &BTreeMap<String, TeamSettings>,
        group_id: &GroupId,
        pn: &PhoneNumberId,
        team: &str,
    ) -> Result<Assignment, ApiError> {
        context::note_phone_number(pn.as_ref());
        match teams.get(team) {
            None => {
                return Err(ApiError::field(
                    "team",
                    format!("`{team}` is not a team (of the configuration or the admin API)"),
                ));
            }
            Some(t) if !t.phone_numbers.contains(pn) => {
                return Err(ApiError::field(
                    "phone_number_id",
                    format!("{pn} is not granted to team `{team}`"),
                ));
            }
            Some(_) => {}
        }
        let fields = GroupFields::parse(Some("subject")).map_err(ApiError::Internal)?;
        let info = self.graph.get_group(pn, group_id, &fields).await?;
        let subject = info
            .get("subject")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let previous_owner = self
            .store
            .set_owner(&NewOwner {
                group_id,
                phone_number_id: pn,
                team,
                subject: subject.as_deref(),
            })
            .await?;
        context::note_detail("owner", team);
        if let Some(previous) = &previous_owner {
            context::note_detail("previous_owner", previous.as_str());
        }
        tracing::info!(group_id = %group_id, owner = team, previous_owner = previous_owner.as_deref().unwrap_or(""), "group owner set");
        Ok(Assignment {
            previous_owner,
            subject,
        })
    }
}
