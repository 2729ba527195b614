//! `/v1/phone-numbers/{pn}/groups` and `/v1/groups/{group_id}/…`.

use std::pin::pin;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldReader, JsonBody, JsonObject, QueryMap, finish, owned_group, parse_list};
use crate::auth::{Principal, Scope};
use crate::domain::{
    FieldErrors, GroupDescription, GroupFields, GroupId, GroupSubject, JoinApprovalMode,
    JoinRequestId, LanguageCode, ParticipantId, PhoneNumberId, ProfilePicture, RequestId,
    TemplateName, WaitSeconds, parse_limit,
};
use crate::error::{ApiError, Problem};
use crate::graph::{FailedJoinRequest, GraphClient, ItemError, JoinRequestPage, Paging};
use crate::idempotency::{self, IdempotencyKey, IdempotencyStore, StoredResponse};
use crate::registry::{
    CreateRequest, GroupSummary, PageCursor, Registry, RequestStatus, decode_cursor,
};

/// Most template parameters after the group id that one invitation may carry.
const MAX_TEMPLATE_PARAMETERS: usize = 10;
/// Most join requests decided in one call.
const MAX_JOIN_REQUESTS: usize = 100;

// ---- documentation types (the wire shapes; validation reads the JSON field by field) ----

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"subject": "New Purchase Inquiry", "description": "Jim would like to learn about new car purchase options.", "join_approval_mode": "auto_approve"}))]
pub struct CreateGroupBody {
    /// 1–128 characters, not blank; surrounding whitespace is trimmed.
    pub subject: String,
    /// At most 2048 characters.
    pub description: Option<String>,
    /// Default `auto_approve`.
    pub join_approval_mode: Option<JoinApprovalMode>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"groups": [{"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "subject": "New Purchase Inquiry", "created_at": "2026-11-26T10:15:00.000Z"}], "paging": {"after": "c2VxOjQy"}}))]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
    pub paging: Paging,
}

#[derive(Serialize, ToSchema)]
pub struct Participant {
    #[schema(example = "16505551234")]
    pub wa_id: String,
}

/// Only `id` and the requested fields are present, under Meta's names.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "subject": "New Purchase Inquiry", "description": "Car options", "participants": [{"wa_id": "16505551234"}], "join_approval_mode": "auto_approve", "suspended": false, "creation_timestamp": 1755548877, "total_participant_count": 1}))]
pub struct GroupInfo {
    pub id: String,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub participants: Option<Vec<Participant>>,
    pub join_approval_mode: Option<JoinApprovalMode>,
    pub suspended: Option<bool>,
    /// Unix seconds.
    pub creation_timestamp: Option<i64>,
    /// Participants, the business excluded.
    pub total_participant_count: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"subject": "Watch Enthusiasts"}))]
pub struct UpdateGroupBody {
    pub subject: Option<String>,
    pub description: Option<String>,
}

/// Meta accepted the change; its outcome arrives as a group event.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "status": "accepted"}))]
pub struct Accepted {
    pub group_id: String,
    /// Always `accepted`.
    pub status: String,
    /// Meta's request id, when it gave one; group events carry it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_request_id: Option<String>,
}

/// A multipart upload of the picture.
#[derive(ToSchema)]
pub struct PictureUpload {
    /// The JPEG: square, at least 192×192, at most 5 MiB.
    #[schema(format = Binary, content_media_type = "image/jpeg")]
    pub file: Vec<u8>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"invite_link": "https://chat.whatsapp.com/LINK_ID"}))]
pub struct InviteLink {
    pub invite_link: String,
}

#[derive(Deserialize, ToSchema)]
pub struct InvitationTemplate {
    /// The approved group-invite template's name.
    #[schema(example = "group_invite")]
    pub name: String,
    #[schema(example = "en_US")]
    pub language: String,
    /// Text parameters that follow the group id in the template body.
    pub parameters: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US"}}))]
pub struct InvitationBody {
    /// Phone number or WhatsApp ID of the person to invite.
    pub to: String,
    pub template: InvitationTemplate,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3"}))]
pub struct InvitationSent {
    pub message_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"join_request_ids": ["MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw"]}))]
pub struct JoinRequestIdsBody {
    pub join_request_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApprovedJoinRequests {
    pub approved: Vec<String>,
    pub failed: Vec<FailedJoinRequest>,
}

#[derive(Serialize, ToSchema)]
pub struct RejectedJoinRequests {
    pub rejected: Vec<String>,
    pub failed: Vec<FailedJoinRequest>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"participants": ["+16505551234"]}))]
pub struct RemoveParticipantsBody {
    /// 1–8 phone numbers or WhatsApp IDs, no duplicates.
    pub participants: Vec<String>,
}

fn query<'q>(q: &'q QueryMap, name: &str) -> Option<&'q str> {
    q.get(name).map(String::as_str)
}

fn group_path(errors: &mut FieldErrors, raw: &str) -> Option<GroupId> {
    errors.check("group_id", GroupId::parse(raw))
}

/// Path parameters and body have been validated; every `None` left means an error was
/// recorded, so reaching here with one is a gateway bug.
fn validated<T>(v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::Internal("validated input missing".into()))
}

// ---- handlers -------------------------------------------------------------------------

/// Create a group. Meta finishes the creation asynchronously; the group id and invite link
/// arrive by webhook. With `wait_seconds` the call waits for that webhook.
#[utoipa::path(
    tag = "groups",
    operation_id = "create_group",
    params(
        ("phone_number_id" = String, Path, description = "Business phone number ID (1–32 digits)", example = "12784358810"),
        ("wait_seconds" = Option<u32>, Query, description = "0–30: hold the answer until the creation completes", minimum = 0, maximum = 30),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body from the same team within 24 h returns the first answer (header Idempotent-Replayed: true) without creating a second group; the same key with another body is 422"),
    ),
    request_body = CreateGroupBody,
    responses(
        (status = 201, description = "Creation completed while waiting (see `status`)", body = CreateRequest),
        (status = 202, description = "Creation requested; poll Location", body = CreateRequest,
            headers(("Location" = String, description = "/v1/group-requests/{request_id}"))),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope or phone number not granted", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Meta is throttling", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/phone-numbers/{phone_number_id}/groups")]
pub async fn create_group(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<QueryMap>,
    body: JsonBody,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
    store: web::Data<IdempotencyStore>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let pn = errors.check("phone_number_id", PhoneNumberId::parse(&path));
    let wait = errors.check(
        "wait_seconds",
        WaitSeconds::parse(query(&q, "wait_seconds")),
    );
    // Fingerprinted over the raw bytes, before they are interpreted.
    let idempotency_key = IdempotencyKey::from_request(&req, &body);
    let body = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let subject = r
        .required_str("subject")
        .and_then(|s| r.errors.check("subject", GroupSubject::parse(s)));
    let description = r
        .optional_str("description")
        .and_then(|s| r.errors.check("description", GroupDescription::parse(s)));
    let mode = r.optional_str("join_approval_mode").and_then(|s| {
        r.errors
            .check("join_approval_mode", JoinApprovalMode::parse(s))
    });
    r.deny_unknown(&["subject", "description", "join_approval_mode"]);
    let idempotency_key = errors.check(idempotency::HEADER_NAME, idempotency_key);
    finish(errors)?;
    let (pn, wait, subject) = (validated(pn)?, validated(wait)?, validated(subject)?);
    let idempotency_key = validated(idempotency_key)?;
    principal.require(Scope::GroupsWrite)?;
    principal.require_number(&pn)?;

    store
        .run(&principal.team, idempotency_key, async {
            create_and_wait(
                &registry,
                &graph,
                &principal.team,
                &pn,
                &subject,
                description.as_ref(),
                mode,
                wait,
            )
            .await
        })
        .await
}

/// Records the creation, asks Meta, and waits up to `wait` for the webhook that completes it.
async fn create_and_wait(
    registry: &Registry,
    graph: &GraphClient,
    team: &str,
    pn: &PhoneNumberId,
    subject: &GroupSubject,
    description: Option<&GroupDescription>,
    mode: Option<JoinApprovalMode>,
    wait: WaitSeconds,
) -> Result<StoredResponse, ApiError> {
    let request_id = RequestId::new();
    registry
        .insert_create_request(&request_id, team, pn, subject.as_ref())
        .await?;
    crate::audit::note_create_request(request_id.as_ref());
    // Subscribed before Meta is called, so a webhook that beats its answer still wakes us.
    let notify = registry.waiters().subscribe(request_id.as_ref());
    let result = graph.create_group(pn, subject, description, mode).await;
    match result {
        Err(e) => {
            let item = match e.problem() {
                Some(p) => ItemError {
                    code: p.code,
                    message: p.message,
                    title: None,
                    details: None,
                },
                None => ItemError {
                    code: 0,
                    message: e.to_string(),
                    title: None,
                    details: None,
                },
            };
            registry.fail_create_request(&request_id, &item).await?;
            registry.waiters().release(request_id.as_ref(), notify);
            return Err(e.into());
        }
        Ok(Some(meta_id)) => {
            registry
                .attach_meta_request_id(&request_id, &meta_id)
                .await?
        }
        Ok(None) => {
            tracing::warn!("Meta accepted a creation without a request_id; it cannot be completed")
        }
    }

    let deadline = Instant::now() + wait.as_duration();
    let mut current = load_request(registry, request_id.as_ref()).await?;
    while current.status == RequestStatus::Pending && Instant::now() < deadline {
        let mut notified = pin!(notify.notified());
        notified.as_mut().enable();
        current = load_request(registry, request_id.as_ref()).await?;
        if current.status != RequestStatus::Pending {
            break;
        }
        let _ = tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), notified)
            .await;
        current = load_request(registry, request_id.as_ref()).await?;
    }
    registry.waiters().release(request_id.as_ref(), notify);
    let location = format!("/v1/group-requests/{}", current.request_id);
    let status = if current.status == RequestStatus::Pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok(StoredResponse::json(status, Some(location), &current))
}

async fn load_request(registry: &Registry, id: &str) -> Result<CreateRequest, ApiError> {
    registry
        .create_request(id)
        .await?
        .ok_or_else(|| ApiError::Internal("a stored creation vanished".into()))
}

/// The caller's active groups on a number, from the registry, in creation order.
#[utoipa::path(
    tag = "groups",
    operation_id = "list_groups",
    params(
        ("phone_number_id" = String, Path, description = "Business phone number ID", example = "12784358810"),
        ("limit" = Option<u32>, Query, description = "1–1024, default 25", minimum = 1, maximum = 1024),
        ("after" = Option<String>, Query, description = "Cursor from `paging.after`"),
        ("before" = Option<String>, Query, description = "Cursor from `paging.before`"),
    ),
    responses(
        (status = 200, description = "One page of the team's groups", body = GroupList),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope or phone number not granted", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/phone-numbers/{phone_number_id}/groups")]
pub async fn list_groups(
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<QueryMap>,
    registry: web::Data<Registry>,
) -> Result<web::Json<GroupList>, ApiError> {
    let mut errors = FieldErrors::new();
    let pn = errors.check("phone_number_id", PhoneNumberId::parse(&path));
    let limit = errors.check("limit", parse_limit(query(&q, "limit"), 1, 1024, 25));
    let cursor = match (query(&q, "after"), query(&q, "before")) {
        (Some(_), Some(_)) => {
            errors.push("before", "cannot be combined with after");
            None
        }
        (Some(a), None) => errors
            .check("after", decode_cursor(a))
            .map(PageCursor::After),
        (None, Some(b)) => errors
            .check("before", decode_cursor(b))
            .map(PageCursor::Before),
        (None, None) => Some(PageCursor::First),
    };
    finish(errors)?;
    let (pn, limit, cursor) = (validated(pn)?, validated(limit)?, validated(cursor)?);
    principal.require(Scope::GroupsRead)?;
    principal.require_number(&pn)?;
    let page = registry
        .list_groups(&principal.team, &pn, limit, cursor)
        .await?;
    Ok(web::Json(GroupList {
        groups: page.groups,
        paging: Paging {
            after: page.after,
            before: page.before,
        },
    }))
}

/// Group info from Meta, limited to `fields`.
#[utoipa::path(
    tag = "groups",
    operation_id = "get_group",
    params(
        ("group_id" = String, Path, description = "Group ID"),
        ("fields" = Option<String>, Query, description = "Comma list of subject, description, participants, join_approval_mode, suspended, creation_timestamp, total_participant_count; absent = all", example = "subject,participants"),
    ),
    responses(
        (status = 200, description = "The group, with the requested fields", body = GroupInfo),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/groups/{group_id}")]
pub async fn get_group(
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<QueryMap>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    let fields = errors.check("fields", GroupFields::parse(query(&q, "fields")));
    finish(errors)?;
    let (group_id, fields) = (validated(group_id)?, validated(fields)?);
    principal.require(Scope::GroupsRead)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let info = graph
        .get_group(&group.phone_number_id, &group_id, &fields)
        .await?;
    Ok(HttpResponse::Ok().json(info))
}

/// Change the subject and/or description.
#[utoipa::path(
    tag = "groups",
    operation_id = "update_group",
    params(("group_id" = String, Path, description = "Group ID")),
    request_body = UpdateGroupBody,
    responses(
        (status = 202, description = "Meta accepted the change; the outcome arrives as a group event", body = Accepted),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[patch("/groups/{group_id}")]
pub async fn update_group(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    let body = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let subject = r
        .optional_str("subject")
        .and_then(|s| r.errors.check("subject", GroupSubject::parse(s)));
    let description = r
        .optional_str("description")
        .and_then(|s| r.errors.check("description", GroupDescription::parse(s)));
    r.deny_unknown(&["subject", "description"]);
    let sent_any = ["subject", "description"].iter().any(|k| body.contains(k));
    if body.is_valid() && !sent_any {
        errors.push(
            "subject",
            "at least one of subject or description is required",
        );
    }
    finish(errors)?;
    let group_id = validated(group_id)?;
    principal.require(Scope::GroupsWrite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let upstream_request_id = graph
        .update_group(
            &group.phone_number_id,
            &group_id,
            subject.as_ref(),
            description.as_ref(),
        )
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        group_id: group_id.to_string(),
        status: "accepted".into(),
        upstream_request_id,
    }))
}

/// Set the group's picture: a square JPEG of at least 192×192, at most 5 MiB, sent as the raw
/// body (`image/jpeg`) or as part `file` of `multipart/form-data`.
#[utoipa::path(
    tag = "groups",
    operation_id = "set_group_profile_picture",
    params(("group_id" = String, Path, description = "Group ID")),
    request_body(
        description = "The JPEG as the body, or multipart/form-data with the JPEG in part `file`",
        content(
            (Vec<u8> = "image/jpeg"),
            (PictureUpload = "multipart/form-data"),
        )
    ),
    responses(
        (status = 202, description = "Meta accepted the picture; the outcome arrives as a group event", body = Accepted),
        (status = 400, description = "Not a JPEG, not square or too small", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 5 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither image/jpeg nor multipart/form-data", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[put("/groups/{group_id}/profile-picture")]
pub async fn set_group_profile_picture(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    let bytes = super::picture::read_picture(&req, payload).await?;
    let picture = errors.check("file", ProfilePicture::parse(bytes));
    finish(errors)?;
    let (group_id, picture) = (validated(group_id)?, validated(picture)?);
    principal.require(Scope::GroupsWrite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let upstream_request_id = graph
        .set_profile_picture(&group.phone_number_id, &group_id, &picture)
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        group_id: group_id.to_string(),
        status: "accepted".into(),
        upstream_request_id,
    }))
}

/// Delete the group; every participant is removed.
#[utoipa::path(
    tag = "groups",
    operation_id = "delete_group",
    params(("group_id" = String, Path, description = "Group ID")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope not granted", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:delete"]))
)]
#[delete("/groups/{group_id}")]
pub async fn delete_group(
    principal: Principal,
    path: web::Path<String>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    finish(errors)?;
    let group_id = validated(group_id)?;
    principal.require(Scope::GroupsDelete)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    graph
        .delete_group(&group.phone_number_id, &group_id)
        .await?;
    // Meta accepted; a failure webhook would make it active again.
    registry.set_group_active(group_id.as_ref(), false).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The group's current invite link.
#[utoipa::path(
    tag = "invitations",
    operation_id = "get_invite_link",
    params(("group_id" = String, Path, description = "Group ID")),
    responses(
        (status = 200, description = "The link", body = InviteLink),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/groups/{group_id}/invite-link")]
pub async fn get_invite_link(
    principal: Principal,
    path: web::Path<String>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<InviteLink>, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    finish(errors)?;
    let group_id = validated(group_id)?;
    principal.require(Scope::GroupsRead)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let invite_link = graph
        .get_invite_link(&group.phone_number_id, &group_id)
        .await?;
    Ok(web::Json(InviteLink { invite_link }))
}

/// Reset the invite link: earlier links stop working.
#[utoipa::path(
    tag = "invitations",
    operation_id = "reset_invite_link",
    params(("group_id" = String, Path, description = "Group ID")),
    responses(
        (status = 200, description = "The new link", body = InviteLink),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/invite-link")]
pub async fn reset_invite_link(
    principal: Principal,
    path: web::Path<String>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<InviteLink>, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    finish(errors)?;
    let group_id = validated(group_id)?;
    principal.require(Scope::GroupsWrite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let invite_link = graph
        .reset_invite_link(&group.phone_number_id, &group_id)
        .await?;
    registry
        .set_invite_link(group_id.as_ref(), &invite_link)
        .await?;
    Ok(web::Json(InviteLink { invite_link }))
}

/// Send the group-invite template to one person (a billable message).
#[utoipa::path(
    tag = "invitations",
    operation_id = "send_invitation",
    params(
        ("group_id" = String, Path, description = "Group ID"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body within 24 h returns the first answer without sending a second message; the same key with another body is 422"),
    ),
    request_body = InvitationBody,
    responses(
        (status = 202, description = "Meta accepted the message", body = InvitationSent),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope not granted", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:invite"]))
)]
#[post("/groups/{group_id}/invitations")]
pub async fn send_invitation(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
    store: web::Data<IdempotencyStore>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    // Fingerprinted over the raw bytes, before they are interpreted.
    let idempotency_key = IdempotencyKey::from_request(&req, &body);
    let body = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let to = r
        .required_str("to")
        .and_then(|s| r.errors.check("to", ParticipantId::parse(s)));
    let template = r.required_object("template");
    r.deny_unknown(&["to", "template"]);
    let (mut name, mut language, mut parameters) = (None, None, Vec::new());
    if let Some(t) = template {
        let mut nested = FieldErrors::new();
        let mut tr = FieldReader::nested(t, &mut nested);
        name = tr
            .required_str("name")
            .and_then(|s| tr.errors.check("name", TemplateName::parse(s)));
        language = tr
            .required_str("language")
            .and_then(|s| tr.errors.check("language", LanguageCode::parse(s)));
        if let Some(list) = tr.optional_array("parameters") {
            if list.len() > MAX_TEMPLATE_PARAMETERS {
                tr.errors.push(
                    "parameters",
                    format!("must have at most {MAX_TEMPLATE_PARAMETERS} entries"),
                );
            }
            for (i, p) in list.iter().enumerate() {
                match p.as_str() {
                    Some(s) if !s.trim().is_empty() && s.chars().count() <= 1024 => {
                        parameters.push(s.to_owned())
                    }
                    _ => tr.errors.push(
                        format!("parameters[{i}]"),
                        "must be a non-blank string of at most 1024 characters",
                    ),
                }
            }
        }
        tr.deny_unknown(&["name", "language", "parameters"]);
        for e in nested.into_vec() {
            errors.push(format!("template.{}", e.field), e.message);
        }
    }
    let idempotency_key = errors.check(idempotency::HEADER_NAME, idempotency_key);
    finish(errors)?;
    let idempotency_key = validated(idempotency_key)?;
    let (group_id, to, name, language) = (
        validated(group_id)?,
        validated(to)?,
        validated(name)?,
        validated(language)?,
    );
    principal.require(Scope::GroupsInvite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    store
        .run(&principal.team, idempotency_key, async {
            let message_id = graph
                .send_invitation(
                    &group.phone_number_id,
                    &group_id,
                    &to,
                    &name,
                    &language,
                    &parameters,
                )
                .await?;
            Ok(StoredResponse::json(
                StatusCode::ACCEPTED,
                None,
                &InvitationSent { message_id },
            ))
        })
        .await
}

/// Open join requests (groups that require approval).
#[utoipa::path(
    tag = "join requests",
    operation_id = "list_join_requests",
    params(
        ("group_id" = String, Path, description = "Group ID"),
        ("limit" = Option<u32>, Query, description = "1–1024", minimum = 1, maximum = 1024),
        ("after" = Option<String>, Query, description = "Cursor from `paging.after`"),
        ("before" = Option<String>, Query, description = "Cursor from `paging.before`"),
    ),
    responses(
        (status = 200, description = "Open join requests", body = JoinRequestPage),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/groups/{group_id}/join-requests")]
pub async fn list_join_requests(
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<QueryMap>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<JoinRequestPage>, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    let limit = match query(&q, "limit") {
        None => Some(None),
        Some(raw) => errors
            .check("limit", parse_limit(Some(raw), 1, 1024, 25))
            .map(Some),
    };
    let after = cursor_param(&mut errors, &q, "after");
    let before = cursor_param(&mut errors, &q, "before");
    finish(errors)?;
    let (group_id, limit) = (validated(group_id)?, validated(limit)?);
    principal.require(Scope::GroupsRead)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let page = graph
        .list_join_requests(&group.phone_number_id, &group_id, limit, after, before)
        .await?;
    Ok(web::Json(page))
}

/// Meta's cursors are opaque base64-ish strings; anything else is refused before it is sent.
fn cursor_param<'q>(errors: &mut FieldErrors, q: &'q QueryMap, name: &str) -> Option<&'q str> {
    let raw = query(q, name)?;
    let ok = (1..=512).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'-' | b'_' | b'+' | b'/'));
    if ok {
        Some(raw)
    } else {
        errors.push(name, "is not a valid cursor");
        None
    }
}

fn join_request_ids(
    req: &HttpRequest,
    body: &[u8],
    path: &str,
) -> Result<(GroupId, Vec<JoinRequestId>), ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, path);
    let body = JsonObject::parse(req, body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let items = r.required_array("join_request_ids");
    r.deny_unknown(&["join_request_ids"]);
    let ids = items
        .map(|items| {
            parse_list(
                r.errors,
                "join_request_ids",
                items,
                1,
                MAX_JOIN_REQUESTS,
                JoinRequestId::parse,
                JoinRequestId::clone,
            )
        })
        .unwrap_or_default();
    finish(errors)?;
    Ok((validated(group_id)?, ids))
}

/// Approve join requests. A partial success (Meta's 206) is a 200 with `failed` filled in.
#[utoipa::path(
    tag = "join requests",
    operation_id = "approve_join_requests",
    params(("group_id" = String, Path, description = "Group ID")),
    request_body = JoinRequestIdsBody,
    responses(
        (status = 200, description = "Approved, and those Meta could not approve", body = ApprovedJoinRequests),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/join-requests/approve")]
pub async fn approve_join_requests(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<ApprovedJoinRequests>, ApiError> {
    let (group_id, ids) = join_request_ids(&req, &body, &path)?;
    principal.require(Scope::GroupsWrite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let outcome = graph
        .approve_join_requests(&group.phone_number_id, &group_id, &ids)
        .await?;
    Ok(web::Json(ApprovedJoinRequests {
        approved: outcome.succeeded,
        failed: outcome.failed,
    }))
}

/// Reject join requests. A partial success is a 200 with `failed` filled in.
#[utoipa::path(
    tag = "join requests",
    operation_id = "reject_join_requests",
    params(("group_id" = String, Path, description = "Group ID")),
    request_body = JoinRequestIdsBody,
    responses(
        (status = 200, description = "Rejected, and those Meta could not reject", body = RejectedJoinRequests),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/join-requests/reject")]
pub async fn reject_join_requests(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<RejectedJoinRequests>, ApiError> {
    let (group_id, ids) = join_request_ids(&req, &body, &path)?;
    principal.require(Scope::GroupsWrite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let outcome = graph
        .reject_join_requests(&group.phone_number_id, &group_id, &ids)
        .await?;
    Ok(web::Json(RejectedJoinRequests {
        rejected: outcome.succeeded,
        failed: outcome.failed,
    }))
}

/// Remove participants; they can no longer rejoin through the invite link.
#[utoipa::path(
    tag = "groups",
    operation_id = "remove_participants",
    params(("group_id" = String, Path, description = "Group ID")),
    request_body = RemoveParticipantsBody,
    responses(
        (status = 202, description = "Meta accepted the removal; the outcome arrives as a group event", body = Accepted),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group owned by the team", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/participants/remove")]
pub async fn remove_participants(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = group_path(&mut errors, &path);
    let body = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let items = r.required_array("participants");
    r.deny_unknown(&["participants"]);
    let participants = items
        .map(|items| {
            parse_list(
                r.errors,
                "participants",
                items,
                1,
                8,
                ParticipantId::parse,
                |p| p.digits().to_owned(),
            )
        })
        .unwrap_or_default();
    finish(errors)?;
    let group_id = validated(group_id)?;
    principal.require(Scope::GroupsWrite)?;
    let group = owned_group(&registry, &principal, &group_id).await?;
    let upstream_request_id = graph
        .remove_participants(&group.phone_number_id, &group_id, &participants)
        .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        group_id: group_id.to_string(),
        status: "accepted".into(),
        upstream_request_id,
    }))
}
