//! Group operations: one Graph call each, with the registry following what Meta accepted.
//! Built once per HTTP worker, because the Graph client (awc) is per worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::creation::Creations;
use super::ownership::Ownership;
use crate::config::TeamSettings;
use crate::context;
use crate::domain::{
    GroupDescription, GroupFields, GroupId, GroupSubject, JoinApprovalMode, JoinRequestId,
    LanguageCode, PageCursor, ParticipantId, PhoneNumberId, ProfilePicture, TemplateName,
};
use crate::error::ApiError;
use crate::graph::{
    GraphClient, JoinRequestOutcome, JoinRequestPage, UpstreamGroup, UpstreamGroupPage,
};
use crate::storage::{CreateRequest, GroupPage, GroupRecord, GroupStore};

#[derive(Clone)]
pub struct Groups {
    graph: GraphClient,
    store: Arc<dyn GroupStore>,
    ownership: Ownership,
    creations: Creations,
}

/// A group of Meta's listing of a number, with the team that owns it in the gateway.
pub struct ListedGroup {
    pub group: UpstreamGroup,
    pub owner: Option<String>,
}

/// An invitation template as sent.
pub struct Invitation {
    pub to: ParticipantId,
    pub template: TemplateName,
    pub language: LanguageCode,
    pub parameters: Vec<String>,
}

/// An adoption or move of a group between teams.
pub struct Assignment {
    pub previous_owner: Option<String>,
    /// The subject Meta reported while confirming the group.
    pub subject: Option<String>,
}

impl Groups {
    pub fn new(
        graph: GraphClient,
        store: Arc<dyn GroupStore>,
        ownership: Ownership,
        creations: Creations,
    ) -> Self {
        Groups {
            graph,
            store,
            ownership,
            creations,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        subject: &GroupSubject,
        description: Option<&GroupDescription>,
        mode: Option<JoinApprovalMode>,
        wait: Duration,
    ) -> Result<CreateRequest, ApiError> {
        self.creations
            .create(&self.graph, team, pn, subject, description, mode, wait)
            .await
    }

    /// The team's active groups on a number, from the registry.
    pub async fn list(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        limit: u32,
        cursor: PageCursor,
    ) -> Result<GroupPage, ApiError> {
        Ok(self.store.list_groups(team, pn, limit, cursor).await?)
    }

    /// `{id, …requested fields}` from Meta.
    pub async fn get(
        &self,
        group: &GroupRecord,
        fields: &GroupFields,
    ) -> Result<Map<String, Value>, ApiError> {
        Ok(self
            .graph
            .get_group(&group.phone_number_id, &group.group_id, fields)
            .await?)
    }

    /// Meta's request id of the change, when it gave one.
    pub async fn update(
        &self,
        group: &GroupRecord,
        subject: Option<&GroupSubject>,
        description: Option<&GroupDescription>,
    ) -> Result<Option<String>, ApiError> {
        Ok(self
            .graph
            .update_group(
                &group.phone_number_id,
                &group.group_id,
                subject,
                description,
            )
            .await?)
    }

    pub async fn set_picture(
        &self,
        group: &GroupRecord,
        picture: &ProfilePicture,
    ) -> Result<Option<String>, ApiError> {
        Ok(self
            .graph
            .set_profile_picture(&group.phone_number_id, &group.group_id, picture)
            .await?)
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

    pub async fn invite_link(&self, group: &GroupRecord) -> Result<String, ApiError> {
        Ok(self
            .graph
            .get_invite_link(&group.phone_number_id, &group.group_id)
            .await?)
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

    /// Meta's message id of the invitation.
    pub async fn invite(
        &self,
        group: &GroupRecord,
        invitation: &Invitation,
    ) -> Result<Option<String>, ApiError> {
        Ok(self
            .graph
            .send_invitation(
                &group.phone_number_id,
                &group.group_id,
                &invitation.to,
                &invitation.template,
                &invitation.language,
                &invitation.parameters,
            )
            .await?)
    }

    pub async fn join_requests(
        &self,
        group: &GroupRecord,
        limit: Option<u32>,
        after: Option<&str>,
        before: Option<&str>,
    ) -> Result<JoinRequestPage, ApiError> {
        Ok(self
            .graph
            .list_join_requests(
                &group.phone_number_id,
                &group.group_id,
                limit,
                after,
                before,
            )
            .await?)
    }

    pub async fn approve(
        &self,
        group: &GroupRecord,
        ids: &[JoinRequestId],
    ) -> Result<JoinRequestOutcome, ApiError> {
        Ok(self
            .graph
            .approve_join_requests(&group.phone_number_id, &group.group_id, ids)
            .await?)
    }

    pub async fn reject(
        &self,
        group: &GroupRecord,
        ids: &[JoinRequestId],
    ) -> Result<JoinRequestOutcome, ApiError> {
        Ok(self
            .graph
            .reject_join_requests(&group.phone_number_id, &group.group_id, ids)
            .await?)
    }

    /// Meta's request id of the removal, when it gave one.
    pub async fn remove_participants(
        &self,
        group: &GroupRecord,
        participants: &[ParticipantId],
    ) -> Result<Option<String>, ApiError> {
        Ok(self
            .graph
            .remove_participants(&group.phone_number_id, &group.group_id, participants)
            .await?)
    }

    /// Meta's listing of the number's active groups, each with its owner in the gateway.
    pub async fn listing(
        &self,
        pn: &PhoneNumberId,
        limit: u32,
        after: Option<&str>,
        before: Option<&str>,
    ) -> Result<(Vec<ListedGroup>, UpstreamGroupPage), ApiError> {
        let mut page = self.graph.list_groups(pn, limit, after, before).await?;
        let ids: Vec<String> = page.groups.iter().map(|g| g.id.clone()).collect();
        let mut owners = self.ownership.owners(&ids).await?;
        let listed = std::mem::take(&mut page.groups)
            .into_iter()
            .map(|group| ListedGroup {
                owner: owners.remove(&group.id),
                group,
            })
            .collect();
        Ok((listed, page))
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
                    format!("`{team}` is not a configured team"),
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
            .ownership
            .assign(group_id, pn, team, subject.as_deref())
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
