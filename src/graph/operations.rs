//! One `GraphClient` method per Graph operation: what it sends, whether it may be sent
//! again, and what of Meta's answer it returns.

use actix_web::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::error::{PARTIAL_SUCCESS, UpstreamError, UpstreamProblem};
use super::transport::{GraphAnswer, GraphClient, Operation, Payload};
use super::wire::{
    FailedJoinRequest, JoinRequest, JoinRequestOutcome, JoinRequestPage, MetaPage, UpstreamGroup,
    UpstreamGroupPage, cursors, items, message_content, normalise_group_field, timestamp,
};
use crate::context;
use crate::domain::{
    GroupDescription, GroupFields, GroupId, GroupMessage, GroupSubject, ItemError,
    JoinApprovalMode, JoinRequestId, LanguageCode, ParticipantId, ParticipantRef, PhoneNumberId,
    ProfilePicture, TemplateName, lenient,
};

impl GraphClient {
    /// A change Meta accepts and reports on by webhook: its request id, when it gave one.
    async fn accepted(
        &self,
        pn: &PhoneNumberId,
        op: Operation,
    ) -> Result<Option<String>, UpstreamError> {
        let answer = self.call(pn, op).await?;
        ensure_not_refused(&answer)?;
        Ok(answer.body.get("request_id").and_then(lenient::as_id))
    }

    /// `POST /{pn}/groups`. Meta answers with its request id only; the group id and invite
    /// link arrive later by webhook.
    pub async fn create_group(
        &self,
        pn: &PhoneNumberId,
        subject: &GroupSubject,
        description: Option<&GroupDescription>,
        join_approval_mode: Option<JoinApprovalMode>,
    ) -> Result<Option<String>, UpstreamError> {
        let mut body = json!({ "messaging_product": "whatsapp", "subject": subject.as_ref() });
        if let Some(d) = description {
            body["description"] = json!(d.as_ref());
        }
        if let Some(mode) = join_approval_mode {
            body["join_approval_mode"] = json!(mode.as_str());
        }
        let path = format!("{pn}/groups");
        let answer = self
            .call(pn, Operation::post("create_group", path, body))
            .await?;
        Ok(answer.body.get("request_id").and_then(lenient::as_id))
    }

    /// `GET /{pn}/groups`: every active group of the number, as Meta lists them.
    pub async fn list_groups(
        &self,
        pn: &PhoneNumberId,
        page: &MetaPage,
    ) -> Result<UpstreamGroupPage, UpstreamError> {
        let op = Operation::read("list_groups", format!("{pn}/groups")).with_query(page.query());
        let answer = self.call(pn, op).await?;
        // Meta documents `data.groups`; a bare `data` list is accepted too.
        let data = &answer.body["data"];
        let list = data.get("groups").unwrap_or(data);
        let groups = items(list, |g| {
            Some(UpstreamGroup {
                id: lenient::as_id(g.get("id")?)?,
                subject: g.get("subject").and_then(Value::as_str).map(str::to_owned),
                created_at: timestamp(g, "created_at"),
            })
        });
        Ok(UpstreamGroupPage {
            groups,
            paging: cursors(&answer.body),
        })
    }

    /// `GET /{group_id}?fields=…`: answers `{id, …requested fields}` under Meta's names.
    pub async fn get_group(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        fields: &GroupFields,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let query = vec![("fields", fields.as_query())];
        let answer = self
            .call(
                pn,
                Operation::read("get_group", group.to_string()).with_query(query),
            )
            .await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(group.as_ref()));
        for field in fields.iter() {
            let name = field.as_str();
            if let Some(v) = answer.body.get(name) {
                out.insert(name.into(), normalise_group_field(name, v));
            }
        }
        Ok(out)
    }

    /// `POST /{group_id}` with a new subject and/or description.
    pub async fn update_group(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        subject: Option<&GroupSubject>,
        description: Option<&GroupDescription>,
    ) -> Result<Option<String>, UpstreamError> {
        let mut body = json!({ "messaging_product": "whatsapp" });
        if let Some(s) = subject {
            body["subject"] = json!(s.as_ref());
        }
        if let Some(d) = description {
            body["description"] = json!(d.as_ref());
        }
        self.accepted(pn, Operation::post("update_group", group.to_string(), body))
            .await
    }

    /// `POST /{group_id}` as multipart with the picture in part `file`, as Meta's media upload.
    pub async fn set_profile_picture(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        picture: &ProfilePicture,
    ) -> Result<Option<String>, UpstreamError> {
        let boundary = format!("wagw-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(picture.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"profile.jpg\"\r\n\
                 Content-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(picture.bytes());
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let multipart = Payload::Multipart { boundary, body };
        let op = Operation::send(
            "set_profile_picture",
            Method::POST,
            group.to_string(),
            multipart,
        );
        self.accepted(pn, op).await
    }

    /// `DELETE /{group_id}`; deleting twice deletes once, so it may be retried.
    pub async fn delete_group(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
    ) -> Result<(), UpstreamError> {
        let answer = self
            .call(
                pn,
                Operation::send(
                    "delete_group",
                    Method::DELETE,
                    group.to_string(),
                    Payload::None,
                )
                .replayable(),
            )
            .await?;
        ensure_not_refused(&answer)
    }

    /// `GET /{group_id}/invite_link`.
    pub async fn get_invite_link(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
    ) -> Result<String, UpstreamError> {
        let read = Operation::read("get_invite_link", invite_link_path(group));
        invite_link_of(&self.call(pn, read).await?)
    }

    /// `POST /{group_id}/invite_link`: a new link; the old one stops working.
    pub async fn reset_invite_link(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
    ) -> Result<String, UpstreamError> {
        let body = json!({ "messaging_product": "whatsapp" });
        let reset = Operation::post("reset_invite_link", invite_link_path(group), body);
        invite_link_of(&self.call(pn, reset).await?)
    }

    /// `POST /{pn}/messages`: the invite template, with the group id as the first body
    /// parameter (Meta turns it into the invite link on delivery).
    pub async fn send_invitation(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        to: &ParticipantId,
        template: &TemplateName,
        language: &LanguageCode,
        parameters: &[String],
    ) -> Result<Option<String>, UpstreamError> {
        let mut params = vec![json!({ "type": "group_id", "group_id": group.as_ref() })];
        params.extend(
            parameters
                .iter()
                .map(|p| json!({ "type": "text", "text": p })),
        );
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to.as_ref(),
            "type": "template",
            "template": {
                "name": template.as_ref(),
                "language": { "code": language.as_ref() },
                "components": [ { "type": "body", "parameters": params } ]
            }
        });
        let path = format!("{pn}/messages");
        let answer = self
            .call(
                pn,
                Operation::send("send_invitation", Method::POST, path, Payload::Json(body))
                    .messaging(),
            )
            .await?;
        Ok(answer.body["messages"][0]
            .get("id")
            .and_then(lenient::as_id))
    }

    /// `POST /{pn}/messages` into a group: Meta's ordinary send, addressed with
    /// `recipient_type: "group"` and the group id as `to`. Never replayed: a second attempt
    /// would post the message twice. The audit record gets the message id, never the content.
    pub async fn send_group_message(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        message: &GroupMessage,
    ) -> Result<Option<String>, UpstreamError> {
        let kind = message.message_type().as_str();
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "group",
            "to": group.as_ref(),
            "type": kind,
        });
        body[kind] = message_content(message);
        context::note_detail("message_type", kind);
        let path = format!("{pn}/messages");
        let answer = self
            .call(
                pn,
                Operation::post("send_group_message", path, body).messaging(),
            )
            .await?;
        let message_id = answer.body["messages"][0]
            .get("id")
            .and_then(lenient::as_id);
        if let Some(id) = &message_id {
            context::note_detail("message_id", id.as_str());
        }
        Ok(message_id)
    }

    /// `GET /{group_id}/join_requests`.
    pub async fn list_join_requests(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        page: &MetaPage,
    ) -> Result<JoinRequestPage, UpstreamError> {
        let path = format!("{group}/join_requests");
        let op = Operation::read("list_join_requests", path).with_query(page.query());
        let answer = self.call(pn, op).await?;
        let join_requests = items(&answer.body["data"], |item| {
            let text = |key: &str| item.get(key).and_then(lenient::as_id);
            Some(JoinRequest {
                join_request_id: lenient::as_id(item.get("join_request_id")?)?,
                wa_id: text("wa_id"),
                user_id: text("user_id"),
                parent_user_id: text("parent_user_id"),
                username: text("username"),
                created_at: timestamp(item, "creation_timestamp"),
            })
        });
        Ok(JoinRequestPage {
            join_requests,
            paging: cursors(&answer.body),
        })
    }

    /// `POST /{group_id}/join_requests` approves, `DELETE` rejects. Meta's 206 is a partial
    /// success.
    pub async fn decide_join_requests(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        ids: &[JoinRequestId],
        decision: JoinRequestDecision,
    ) -> Result<JoinRequestOutcome, UpstreamError> {
        let (op, method, succeeded_key) = decision.call();
        let body = json!({
            "messaging_product": "whatsapp",
            "join_requests": ids.iter().map(AsRef::as_ref).collect::<Vec<&str>>(),
        });
        let path = format!("{group}/join_requests");
        let answer = self
            .call(pn, Operation::send(op, method, path, Payload::Json(body)))
            .await?;
        let succeeded = answer.body[succeeded_key]
            .as_array()
            .map(|ids| ids.iter().filter_map(lenient::as_id).collect())
            .unwrap_or_default();
        let failed = answer.body["failed_join_requests"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some(FailedJoinRequest {
                            join_request_id: lenient::as_id(item.get("join_request_id")?)?,
                            error: item["errors"]
                                .get(0)
                                .map(ItemError::from_meta)
                                .unwrap_or_else(ItemError::unknown),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(JoinRequestOutcome {
            partial: (answer.status == StatusCode::PARTIAL_CONTENT)
                .then(|| partial_success(&answer)),
            succeeded,
            failed,
        })
    }

    /// `DELETE /{group_id}/participants`.
    pub async fn remove_participants(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        participants: &[ParticipantRef],
    ) -> Result<Option<String>, UpstreamError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "participants": participants.iter().map(|p| match p {
                ParticipantRef::Phone(phone) => json!({ "user": phone.as_ref() }),
                ParticipantRef::User(user) => json!({ "user_id": user.as_ref() }),
            }).collect::<Vec<_>>(),
        });
        let path = format!("{group}/participants");
        // Not replayed: its outcome arrives by webhook and a replay would report twice.
        let op = Operation::send(
            "remove_participants",
            Method::DELETE,
            path,
            Payload::Json(body),
        );
        self.accepted(pn, op).await
    }
}

/// Meta's partial success (206): the code and message of its top-level `errors`, 131201
/// when it gave none.
fn partial_success(answer: &GraphAnswer) -> UpstreamProblem {
    let error = &answer.body["errors"][0];
    UpstreamProblem {
        code: error
            .get("code")
            .and_then(lenient::as_int)
            .unwrap_or(PARTIAL_SUCCESS),
        error_subcode: None,
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("Not all of the request succeeded")
            .to_owned(),
        fbtrace_id: answer.fbtrace_id.clone(),
    }
}

/// Some Graph answers say `{"success": false}` with a 200.
fn ensure_not_refused(answer: &GraphAnswer) -> Result<(), UpstreamError> {
    match answer.body.get("success").and_then(lenient::as_bool) {
        Some(false) => Err(UpstreamError::BadResponse {
            http_status: answer.status.as_u16(),
            detail: "Meta answered success=false".into(),
        }),
        _ => Ok(()),
    }
}

/// What the business decides for pending join requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRequestDecision {
    Approve,
    Reject,
}

impl JoinRequestDecision {
    /// The operation's name, Meta's method for it, and the key of Meta's answer that lists the
    /// requests decided.
    fn call(self) -> (&'static str, Method, &'static str) {
        match self {
            JoinRequestDecision::Approve => (
                "approve_join_requests",
                Method::POST,
                "approved_join_requests",
            ),
            JoinRequestDecision::Reject => (
                "reject_join_requests",
                Method::DELETE,
                "rejected_join_requests",
            ),
        }
    }
}

/// Where a group's invite link is read and reset.
fn invite_link_path(group: &GroupId) -> String {
    format!("{group}/invite_link")
}

fn invite_link_of(answer: &GraphAnswer) -> Result<String, UpstreamError> {
    answer
        .body
        .get("invite_link")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| UpstreamError::BadResponse {
            http_status: answer.status.as_u16(),
            detail: "the answer has no invite_link".into(),
        })
}
