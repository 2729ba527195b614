//! `/v1/phone-numbers/{pn}/groups`, `/v1/groups/{group_id}/…` and
//! `/v1/group-requests/{request_id}`: each handler states its
//! scope and input in its signature (see `extract`), makes one service call and maps it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::extract::scope::{GroupsDelete, GroupsInvite, GroupsRead, GroupsWrite};
use super::extract::{Authorized, BodyKind, Granted, Input, JsonInput, NoInput, OwnedGroup, Parts};
use super::idempotency::{Begin, Idempotency, IdempotencyKey, Keyed, StoredResponse};
use super::params::{
    CursorPaging, FieldsParam, GroupPath, MetaPaging, PhoneNumberPath, RequestIdPath, WaitParam,
};
use super::responses::{
    BodyRefusals, CreationRefusals, IdempotencyRefusals, Refusals, UpstreamFailures,
};
use super::{FieldReader, JsonObject, parse_list};
use crate::domain::{
    FieldErrors, GroupDescription, GroupFields, GroupSubject, JoinApprovalMode, JoinRequestId,
    LanguageCode, META_CURSOR, PageCursor, PageLimit, Paging, ParticipantId, ParticipantRef,
    PhoneNumberId, ProfilePicture, RequestId, TemplateName, TemplateParameter, UserId, WaitSeconds,
    decode_cursor,
};
use crate::error::ApiError;
use crate::graph::{FailedJoinRequest, JoinRequestDecision, JoinRequestPage, MetaPage};
use crate::graph::{GraphClient, UpstreamProblem};
use crate::services::creation::Creations;
use crate::services::groups::Groups;
use crate::storage::{CreateRequest, GroupSummary, PendingCreation, RequestStatus};

/// Most template parameters after the group id that one invitation may carry.
const MAX_TEMPLATE_PARAMETERS: usize = 10;
/// Join requests decided in one call.
const JOIN_REQUESTS: std::ops::RangeInclusive<usize> = 1..=100;
/// Participants removed in one call.
const PARTICIPANTS: std::ops::RangeInclusive<usize> = 1..=8;

// ---- documentation types (the wire shapes; validation reads the JSON field by field) ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subject": "New Purchase Inquiry", "description": "Jim would like to learn about new car purchase options.", "join_approval_mode": "auto_approve"}))]
pub struct CreateGroupBody {
    /// 1–128 characters, not blank, no control character or bidirectional override;
    /// surrounding whitespace is trimmed.
    #[schema(value_type = GroupSubject)]
    pub subject: String,
    /// At most 2048 characters; line feeds but no other control character, no
    /// bidirectional override.
    #[schema(value_type = Option<GroupDescription>, nullable = false)]
    pub description: Option<String>,
    /// Default `auto_approve`.
    #[schema(nullable = false)]
    pub join_approval_mode: Option<JoinApprovalMode>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"groups": [{"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "subject": "New Purchase Inquiry", "created_at": "2026-11-26T10:15:00.000Z"}], "paging": {"after": "c2VxOjQy"}}))]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
    pub paging: Paging,
}

/// A participant as Meta names it: `wa_id` may be absent for users with a WhatsApp username,
/// who carry `user_id` (their business-scoped user id) and `username` instead.
#[derive(Serialize, ToSchema)]
pub struct Participant {
    #[schema(example = "16505551234")]
    pub wa_id: Option<String>,
    #[schema(value_type = Option<UserId>, example = "US.13491208655302741918")]
    pub user_id: Option<String>,
    /// With parent business-scoped user ids enabled.
    #[schema(example = "US.ENT.11815799212886844830")]
    pub parent_user_id: Option<String>,
    #[schema(example = "jane")]
    pub username: Option<String>,
}

/// Only `id` and the requested fields are present, under Meta's names.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "subject": "New Purchase Inquiry", "description": "Car options", "participants": [{"wa_id": "16505551234", "user_id": "US.13491208655302741918"}, {"user_id": "US.11815799212886844830", "username": "jane"}], "join_approval_mode": "auto_approve", "suspended": false, "creation_timestamp": 1755548877, "total_participant_count": 1}))]
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

/// At least one of the two, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupBody {
    pub subject: Option<String>,
    pub description: Option<String>,
}

// By hand: utoipa 5.5 parses `min_properties` on a struct but does not write it. With no
// other field allowed, one property means one of the two (`UpdateGroup::parse`).
impl PartialSchema for UpdateGroupBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("subject", GroupSubject::schema())
            .property("description", GroupDescription::schema())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .min_properties(Some(1))
            .examples([serde_json::json!({"subject": "Watch Enthusiasts"})])
            .into()
    }
}

impl ToSchema for UpdateGroupBody {}

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
#[serde(deny_unknown_fields)]
pub struct InvitationTemplate {
    /// The approved group-invite template's name.
    #[schema(value_type = TemplateName, example = "group_invite")]
    pub name: String,
    #[schema(value_type = LanguageCode, example = "en_US")]
    pub language: String,
    /// Text parameters that follow the group id in the template body.
    #[schema(schema_with = template_parameters, nullable = false)]
    pub parameters: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US"}}))]
pub struct InvitationBody {
    /// Phone number or WhatsApp ID of the person to invite.
    #[schema(value_type = ParticipantId)]
    pub to: String,
    pub template: InvitationTemplate,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3"}))]
pub struct InvitationSent {
    pub message_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"join_request_ids": ["MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw"]}))]
pub struct JoinRequestIdsBody {
    #[schema(schema_with = join_request_ids)]
    pub join_request_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApprovedJoinRequests {
    pub approved: Vec<String>,
    pub failed: Vec<FailedJoinRequest>,
    /// Present when Meta answered a partial success (its 206, code 131201).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<PartialSuccess>,
}

#[derive(Serialize, ToSchema)]
pub struct RejectedJoinRequests {
    pub rejected: Vec<String>,
    pub failed: Vec<FailedJoinRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<PartialSuccess>,
}

/// Meta's partial success, with a stable type like every problem's.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "https://wa-groups-gateway.dev/problems/partial-success", "upstream": {"code": 131201, "message": "Not all participant-level operations succeeded"}}))]
pub struct PartialSuccess {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub upstream: UpstreamProblem,
}

impl PartialSuccess {
    fn of(upstream: Option<UpstreamProblem>) -> Option<Self> {
        upstream.map(|upstream| PartialSuccess {
            problem_type: crate::error::problem_type("partial-success"),
            upstream,
        })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"participants": ["+16505551234", {"user_id": "US.13491208655302741918"}]}))]
pub struct RemoveParticipantsBody {
    /// 1–8 entries in all, no one twice (`+1650…` and `1650…` are one): phone numbers or
    /// WhatsApp IDs, or `{"user_id": …}` for users Meta names by business-scoped user id.
    #[schema(schema_with = participants)]
    pub participants: Vec<String>,
}

/// A list of `items`, `count` entries, none twice.
pub(crate) fn distinct_list(
    items: RefOr<Schema>,
    count: std::ops::RangeInclusive<usize>,
) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(items)
        .min_items(Some(*count.start()))
        .max_items(Some(*count.end()))
        .unique_items(true)
}

fn template_parameters() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(TemplateParameter::schema())
        .max_items(Some(MAX_TEMPLATE_PARAMETERS))
}

fn join_request_ids() -> ArrayBuilder {
    distinct_list(JoinRequestId::schema(), JOIN_REQUESTS)
}

fn participants() -> ArrayBuilder {
    let entry = utoipa::openapi::schema::OneOfBuilder::new()
        .item(ParticipantId::schema())
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("user_id", UserId::schema())
                .required("user_id")
                .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        );
    distinct_list(entry.into(), PARTICIPANTS)
}

// ---- inputs ---------------------------------------------------------------------------------

/// The query parameters `meta_page` reads.
pub(crate) const META_PAGE_QUERY: &[&str] = &["limit", "after", "before"];

/// Meta's paging parameters, passed through to Meta once checked: `limit` within 1–1024
/// (`default_limit` when absent), and cursors of Meta's opaque base64-ish alphabet.
pub(crate) fn meta_page(
    parts: &Parts<'_>,
    errors: &mut FieldErrors,
    default_limit: Option<u32>,
) -> Option<MetaPage> {
    let limit = match parts.query("limit") {
        None => Some(default_limit),
        raw => errors
            .check("limit", PageLimit::LISTING.parse(raw))
            .map(Some),
    };
    let mut cursor = |name: &str| errors.check(name, META_CURSOR.parse(parts.query(name)?));
    let (after, before) = (cursor("after"), cursor("before"));
    Some(MetaPage {
        limit: limit?,
        after,
        before,
    })
}

pub struct CreateGroup {
    wait: WaitSeconds,
    subject: GroupSubject,
    description: Option<GroupDescription>,
    mode: Option<JoinApprovalMode>,
}

impl Input for CreateGroup {
    const BODY: BodyKind = BodyKind::Json;
    const QUERY: &'static [&'static str] = &["wait_seconds"];

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let wait = errors.check(
            "wait_seconds",
            WaitSeconds::parse(parts.query("wait_seconds")),
        );
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let subject = r.required_parsed("subject", GroupSubject::parse);
        let description = r.optional_parsed("description", GroupDescription::parse);
        let mode = r.optional_parsed("join_approval_mode", JoinApprovalMode::parse);
        r.deny_unknown(&["subject", "description", "join_approval_mode"]);
        Ok(wait.zip(subject).map(|(wait, subject)| CreateGroup {
            wait,
            subject,
            description,
            mode,
        }))
    }
}

pub struct ListGroups {
    limit: u32,
    cursor: PageCursor,
}

impl Input for ListGroups {
    const QUERY: &'static [&'static str] = &["limit", "after", "before"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let limit = errors.check("limit", PageLimit::LISTING.parse(parts.query("limit")));
        let cursor = match (parts.query("after"), parts.query("before")) {
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
        Ok(limit
            .zip(cursor)
            .map(|(limit, cursor)| ListGroups { limit, cursor }))
    }
}

pub struct Fields(GroupFields);

impl Input for Fields {
    const QUERY: &'static [&'static str] = &["fields"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(errors
            .check("fields", GroupFields::parse(parts.query("fields")))
            .map(Fields))
    }
}

pub struct UpdateGroup {
    subject: Option<GroupSubject>,
    description: Option<GroupDescription>,
}

impl Input for UpdateGroup {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let subject = r.optional_parsed("subject", GroupSubject::parse);
        let description = r.optional_parsed("description", GroupDescription::parse);
        r.deny_unknown(&["subject", "description"]);
        let sent_any = ["subject", "description"].iter().any(|k| body.contains(k));
        if body.is_valid() && !sent_any {
            errors.push(
                "subject",
                "at least one of subject or description is required",
            );
        }
        Ok(Some(UpdateGroup {
            subject,
            description,
        }))
    }
}

pub struct Picture(ProfilePicture);

impl Input for Picture {
    const BODY: BodyKind = BodyKind::Picture;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(errors
            .check("file", ProfilePicture::parse(parts.body.to_vec()))
            .map(Picture))
    }
}

pub struct SendInvitation {
    to: ParticipantId,
    template: TemplateName,
    language: LanguageCode,
    parameters: Vec<String>,
}

impl JsonInput for SendInvitation {
    fn read(r: &mut FieldReader<'_>) -> Option<Self> {
        let to = r.required_parsed("to", ParticipantId::parse);
        let template = r.required_object("template");
        r.deny_unknown(&["to", "template"]);
        let (name, language, parameters) = match template {
            Some(t) => r.nested("template", t, |tr| {
                let name = tr.required_parsed("name", TemplateName::parse);
                let language = tr.required_parsed("language", LanguageCode::parse);
                let mut parameters = Vec::new();
                if let Some(list) = tr.optional_array("parameters") {
                    if list.len() > MAX_TEMPLATE_PARAMETERS {
                        tr.errors.push(
                            "parameters",
                            format!("must have at most {MAX_TEMPLATE_PARAMETERS} entries"),
                        );
                    }
                    for (i, p) in list.iter().enumerate() {
                        let field = format!("parameters[{i}]");
                        match p.as_str() {
                            Some(s) => {
                                if let Some(p) =
                                    tr.errors.check(&field, TemplateParameter::parse(s))
                                {
                                    parameters.push(String::from(p));
                                }
                            }
                            None => tr.errors.push(field, "must be a string"),
                        }
                    }
                }
                tr.deny_unknown(&["name", "language", "parameters"]);
                (name, language, parameters)
            }),
            None => (None, None, Vec::new()),
        };
        Some(SendInvitation {
            to: to?,
            template: name?,
            language: language?,
            parameters,
        })
    }
}

pub struct JoinRequestQuery(MetaPage);

impl Input for JoinRequestQuery {
    const QUERY: &'static [&'static str] = META_PAGE_QUERY;
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(meta_page(parts, errors, None).map(JoinRequestQuery))
    }
}

pub struct JoinRequestIds(Vec<JoinRequestId>);

impl JsonInput for JoinRequestIds {
    fn read(r: &mut FieldReader<'_>) -> Option<Self> {
        let items = r.required_array("join_request_ids");
        r.deny_unknown(&["join_request_ids"]);
        let ids = items.map(|items| {
            parse_list(
                r.errors,
                "join_request_ids",
                items,
                JOIN_REQUESTS,
                JoinRequestId::parse,
                JoinRequestId::clone,
            )
        });
        Some(JoinRequestIds(ids.unwrap_or_default()))
    }
}

pub struct Participants(Vec<ParticipantRef>);

impl JsonInput for Participants {
    fn read(r: &mut FieldReader<'_>) -> Option<Self> {
        let items = r.required_array("participants");
        r.deny_unknown(&["participants"]);
        let participants = items.map(|items| read_participants(r.errors, items));
        Some(Participants(participants.unwrap_or_default()))
    }
}

/// Each entry a phone number or WhatsApp id, or `{"user_id": …}`: 1–8 in all, nobody twice.
fn read_participants(errors: &mut FieldErrors, items: &[serde_json::Value]) -> Vec<ParticipantRef> {
    if !PARTICIPANTS.contains(&items.len()) {
        let (min, max) = (PARTICIPANTS.start(), PARTICIPANTS.end());
        errors.push("participants", format!("must have {min}-{max} entries"));
    }
    let mut out: Vec<ParticipantRef> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = format!("participants[{i}]");
        let parsed = match item {
            serde_json::Value::String(s) => errors
                .check(&name, ParticipantId::parse(s))
                .map(ParticipantRef::Phone),
            serde_json::Value::Object(map) => {
                if let Some(other) = map.keys().find(|k| k.as_str() != "user_id") {
                    errors.push(format!("{name}.{other}"), "is not a known field");
                }
                match map.get("user_id").map(|v| v.as_str()) {
                    Some(Some(u)) => errors
                        .check(&format!("{name}.user_id"), UserId::parse(u))
                        .map(ParticipantRef::User),
                    Some(None) => {
                        errors.push(format!("{name}.user_id"), "must be a string");
                        None
                    }
                    None => {
                        errors.push(format!("{name}.user_id"), "is required");
                        None
                    }
                }
            }
            _ => {
                errors.push(
                    name.clone(),
                    "must be a phone number or WhatsApp id, or an object {\"user_id\": …}",
                );
                None
            }
        };
        if let Some(p) = parsed {
            if out.iter().any(|seen| seen.identity() == p.identity()) {
                errors.push(name, "is a duplicate");
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn accepted(
    group: &crate::storage::GroupRecord,
    upstream_request_id: Option<String>,
) -> HttpResponse {
    HttpResponse::Accepted().json(Accepted {
        group_id: group.group_id.to_string(),
        status: "accepted".into(),
        upstream_request_id,
    })
}

// ---- handlers -------------------------------------------------------------------------

/// Create a group. Meta finishes the creation asynchronously; the group id and invite link
/// arrive by webhook. With `wait_seconds` the call waits for that webhook.
#[utoipa::path(
    tag = "groups",
    params(
        PhoneNumberPath,
        WaitParam,
        IdempotencyKey,
    ),
    request_body = CreateGroupBody,
    responses(
        (status = 201, description = "Creation completed while waiting (see `status`)", body = CreateRequest),
        (status = 202, description = "Creation requested; poll Location", body = CreateRequest,
            headers(("Location" = String, description = "/v1/group-requests/{request_id}"))),
        Refusals, BodyRefusals, CreationRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/phone-numbers/{phone_number_id}/groups")]
pub async fn create_group(
    call: Granted<GroupsWrite, Keyed<CreateGroup>>,
    graph: web::Data<GraphClient>,
    creations: web::Data<Creations>,
    idempotency: web::Data<Idempotency>,
) -> Result<HttpResponse, ApiError> {
    let (team, pn, Keyed { input, key }) = (&call.principal.team, &call.resource, call.input);
    let order = Order {
        creations: &creations,
        graph: &graph,
        team,
        pn,
        input: &input,
    };
    match &key {
        None => Ok(creation_answer(&order.send_new().await?).into_response(false)),
        Some(key) => order.send_once(&idempotency, key).await,
    }
}

/// One creation asked for, with what sending it needs.
struct Order<'a> {
    creations: &'a Creations,
    graph: &'a GraphClient,
    team: &'a str,
    pn: &'a PhoneNumberId,
    input: &'a CreateGroup,
}

impl Order<'_> {
    /// Records the creation and asks Meta.
    async fn send_new(&self) -> Result<CreateRequest, ApiError> {
        let creation = self
            .creations
            .record(self.team, self.pn, &self.input.subject)
            .await?;
        self.send(&creation).await
    }

    async fn send(&self, creation: &PendingCreation) -> Result<CreateRequest, ApiError> {
        let input = self.input;
        self.creations
            .send(
                self.graph,
                creation,
                &input.subject,
                input.description.as_ref(),
                input.mode,
                input.wait.as_duration(),
            )
            .await
    }

    /// At most one creation per `Idempotency-Key`: a replay answers the stored answer, or the
    /// creation the key names as it stands now.
    async fn send_once(
        &self,
        idempotency: &Idempotency,
        key: &IdempotencyKey,
    ) -> Result<HttpResponse, ApiError> {
        let team = self.team;
        match idempotency.begin(team, key).await? {
            Begin::Proceed => {}
            Begin::Replay(answer) => return Ok(answer.into_response(true)),
            Begin::Linked(request_id) => {
                let wait = self.input.wait.as_duration();
                let creation = self
                    .creations
                    .current(team, &request_id, wait)
                    .await?
                    .ok_or_else(|| {
                        ApiError::Conflict(
                            "the creation of this Idempotency-Key is no longer kept".into(),
                        )
                    })?;
                return Ok(creation_answer(&creation).into_response(true));
            }
        }
        // The key names the creation before Meta is asked, so a retry after a lost answer or
        // a crash answers this creation instead of asking Meta again.
        let creation = match self
            .creations
            .record(team, self.pn, &self.input.subject)
            .await
        {
            Ok(creation) => creation,
            Err(e) => {
                idempotency.abandon(team, key).await?;
                return Err(e);
            }
        };
        if let Err(e) = idempotency.link(team, key, &creation.request_id).await {
            self.creations
                .abandon(&creation, "the creation could not be recorded")
                .await?;
            idempotency.abandon(team, key).await?;
            return Err(e);
        }
        let sent = self.send(&creation).await;
        idempotency
            .settle(team, key, sent.map(|c| creation_answer(&c)))
            .await
    }
}

/// A creation as `create_group` answers it: 202 while pending, 201 once Meta's webhook
/// ended it; `Location` is where to poll.
fn creation_answer(creation: &CreateRequest) -> StoredResponse {
    let status = match creation.status {
        RequestStatus::Pending => StatusCode::ACCEPTED,
        _ => StatusCode::CREATED,
    };
    let location = format!("/v1/group-requests/{}", creation.request_id);
    StoredResponse::json(status, Some(location), creation)
}

/// The caller's active groups on a number, from the registry, in creation order.
#[utoipa::path(
    tag = "groups",
    params(PhoneNumberPath, CursorPaging),
    responses(
        (status = 200, description = "One page of the team's groups", body = GroupList),
        Refusals,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/phone-numbers/{phone_number_id}/groups")]
pub async fn list_groups(
    call: Granted<GroupsRead, ListGroups>,
    groups: web::Data<Groups>,
) -> Result<web::Json<GroupList>, ApiError> {
    let page = groups
        .list(
            &call.principal.team,
            call.phone_number(),
            call.input.limit,
            call.input.cursor,
        )
        .await?;
    Ok(web::Json(GroupList {
        groups: page.groups,
        paging: page.paging,
    }))
}

/// Group info from Meta, limited to `fields`.
#[utoipa::path(
    tag = "groups",
    params(GroupPath, FieldsParam),
    responses(
        (status = 200, description = "The group, with the requested fields", body = GroupInfo),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/groups/{group_id}")]
pub async fn get_group(
    call: OwnedGroup<GroupsRead, Fields>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let g = call.group();
    let info = graph
        .get_group(&g.phone_number_id, &g.group_id, &call.input.0)
        .await?;
    Ok(HttpResponse::Ok().json(info))
}

/// Change the subject and/or description.
#[utoipa::path(
    tag = "groups",
    params(GroupPath),
    request_body = UpdateGroupBody,
    responses(
        (status = 202, description = "Meta accepted the change; the outcome arrives as a group event", body = Accepted),
        Refusals, BodyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[patch("/groups/{group_id}")]
pub async fn update_group(
    call: OwnedGroup<GroupsWrite, UpdateGroup>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let (g, input) = (call.group(), &call.input);
    let upstream_request_id = graph
        .update_group(
            &g.phone_number_id,
            &g.group_id,
            input.subject.as_ref(),
            input.description.as_ref(),
        )
        .await?;
    Ok(accepted(call.group(), upstream_request_id))
}

/// Set the group's picture: a square JPEG of at least 192×192, at most 5 MiB, sent as the raw
/// body (`image/jpeg`) or as part `file` of `multipart/form-data`.
#[utoipa::path(
    tag = "groups",
    params(GroupPath),
    request_body(
        description = "The JPEG as the body, or multipart/form-data with the JPEG in part `file`",
        content(
            (Vec<u8> = "image/jpeg"),
            (PictureUpload = "multipart/form-data"),
        )
    ),
    responses(
        (status = 202, description = "Meta accepted the picture; the outcome arrives as a group event", body = Accepted),
        Refusals, BodyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[put("/groups/{group_id}/profile-picture")]
pub async fn set_group_profile_picture(
    call: OwnedGroup<GroupsWrite, Picture>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let g = call.group();
    let upstream_request_id = graph
        .set_profile_picture(&g.phone_number_id, &g.group_id, &call.input.0)
        .await?;
    Ok(accepted(call.group(), upstream_request_id))
}

/// Delete the group; every participant is removed.
#[utoipa::path(
    tag = "groups",
    params(GroupPath),
    responses(
        (status = 204, description = "Deleted"),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:delete"]))
)]
#[delete("/groups/{group_id}")]
pub async fn delete_group(
    call: OwnedGroup<GroupsDelete, NoInput>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, ApiError> {
    groups.delete(call.group()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The group's current invite link.
#[utoipa::path(
    tag = "invitations",
    params(GroupPath),
    responses(
        (status = 200, description = "The link", body = InviteLink),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/groups/{group_id}/invite-link")]
pub async fn get_invite_link(
    call: OwnedGroup<GroupsRead, NoInput>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<InviteLink>, ApiError> {
    let g = call.group();
    let invite_link = graph
        .get_invite_link(&g.phone_number_id, &g.group_id)
        .await?;
    Ok(web::Json(InviteLink { invite_link }))
}

/// Reset the invite link: earlier links stop working.
#[utoipa::path(
    tag = "invitations",
    params(GroupPath),
    responses(
        (status = 200, description = "The new link", body = InviteLink),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/invite-link")]
pub async fn reset_invite_link(
    call: OwnedGroup<GroupsWrite, NoInput>,
    groups: web::Data<Groups>,
) -> Result<web::Json<InviteLink>, ApiError> {
    let invite_link = groups.reset_invite_link(call.group()).await?;
    Ok(web::Json(InviteLink { invite_link }))
}

/// Send the group-invite template to one person (a billable message).
#[utoipa::path(
    tag = "invitations",
    params(GroupPath, IdempotencyKey),
    request_body = InvitationBody,
    responses(
        (status = 202, description = "Meta accepted the message", body = InvitationSent),
        Refusals, BodyRefusals, IdempotencyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:invite"]))
)]
#[post("/groups/{group_id}/invitations")]
pub async fn send_invitation(
    call: OwnedGroup<GroupsInvite, Keyed<SendInvitation>>,
    graph: web::Data<GraphClient>,
    idempotency: web::Data<Idempotency>,
) -> Result<HttpResponse, ApiError> {
    let (group, Keyed { input, key }) = (&call.resource, call.input);
    let send = graph.send_invitation(
        &group.phone_number_id,
        &group.group_id,
        &input.to,
        &input.template,
        &input.language,
        &input.parameters,
    );
    idempotency
        .run_accepted(&call.principal.team, key, async {
            Ok(InvitationSent {
                message_id: send.await?,
            })
        })
        .await
}

/// Open join requests (groups that require approval).
#[utoipa::path(
    tag = "join requests",
    params(GroupPath, MetaPaging),
    responses(
        (status = 200, description = "Open join requests", body = JoinRequestPage),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/groups/{group_id}/join-requests")]
pub async fn list_join_requests(
    call: OwnedGroup<GroupsRead, JoinRequestQuery>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<JoinRequestPage>, ApiError> {
    let g = call.group();
    let page = graph
        .list_join_requests(&g.phone_number_id, &g.group_id, &call.input.0)
        .await?;
    Ok(web::Json(page))
}

/// Approve join requests. A partial success (Meta's 206) is a 200 with `failed` filled in.
#[utoipa::path(
    tag = "join requests",
    params(GroupPath),
    request_body = JoinRequestIdsBody,
    responses(
        (status = 200, description = "Approved, and those Meta could not approve", body = ApprovedJoinRequests),
        Refusals, BodyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/join-requests/approve")]
pub async fn approve_join_requests(
    call: OwnedGroup<GroupsWrite, JoinRequestIds>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<ApprovedJoinRequests>, ApiError> {
    let (approved, failed, partial) =
        decide_join_requests(&call, &graph, JoinRequestDecision::Approve).await?;
    Ok(web::Json(ApprovedJoinRequests {
        approved,
        failed,
        partial_success: PartialSuccess::of(partial),
    }))
}

/// Reject join requests. A partial success is a 200 with `failed` filled in.
#[utoipa::path(
    tag = "join requests",
    params(GroupPath),
    request_body = JoinRequestIdsBody,
    responses(
        (status = 200, description = "Rejected, and those Meta could not reject", body = RejectedJoinRequests),
        Refusals, BodyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/join-requests/reject")]
pub async fn reject_join_requests(
    call: OwnedGroup<GroupsWrite, JoinRequestIds>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<RejectedJoinRequests>, ApiError> {
    let (rejected, failed, partial) =
        decide_join_requests(&call, &graph, JoinRequestDecision::Reject).await?;
    Ok(web::Json(RejectedJoinRequests {
        rejected,
        failed,
        partial_success: PartialSuccess::of(partial),
    }))
}

/// Asks Meta to approve or reject the call's join requests: those decided, and those Meta
/// could not decide (its partial success).
async fn decide_join_requests(
    call: &OwnedGroup<GroupsWrite, JoinRequestIds>,
    graph: &GraphClient,
    decision: JoinRequestDecision,
) -> Result<(Vec<String>, Vec<FailedJoinRequest>, Option<UpstreamProblem>), ApiError> {
    let (g, ids) = (call.group(), &call.input.0);
    let (pn, group) = (&g.phone_number_id, &g.group_id);
    let outcome = graph.decide_join_requests(pn, group, ids, decision).await?;
    Ok((outcome.succeeded, outcome.failed, outcome.partial))
}

/// Remove participants; they can no longer rejoin through the invite link.
#[utoipa::path(
    tag = "groups",
    params(GroupPath),
    request_body = RemoveParticipantsBody,
    responses(
        (status = 202, description = "Meta accepted the removal; the outcome arrives as a group event", body = Accepted),
        Refusals, BodyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["groups:write"]))
)]
#[post("/groups/{group_id}/participants/remove")]
pub async fn remove_participants(
    call: OwnedGroup<GroupsWrite, Participants>,
    graph: web::Data<GraphClient>,
) -> Result<HttpResponse, ApiError> {
    let g = call.group();
    let upstream_request_id = graph
        .remove_participants(&g.phone_number_id, &g.group_id, &call.input.0)
        .await?;
    Ok(accepted(call.group(), upstream_request_id))
}

// ---- creations ------------------------------------------------------------------------------

pub struct RequestPath(RequestId);

impl Input for RequestPath {
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let raw = parts.path("request_id").unwrap_or_default();
        Ok(errors
            .check("request_id", RequestId::parse(raw))
            .map(RequestPath))
    }
}

/// The state of a group creation: `pending` until Meta's webhook arrives, then `created`
/// (with `group_id` and `invite_link`) or `failed` (with Meta's `error`).
#[utoipa::path(
    tag = "groups",
    params(RequestIdPath),
    responses(
        (status = 200, description = "The creation", body = CreateRequest),
        Refusals,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/group-requests/{request_id}")]
pub async fn get_group_request(
    call: Authorized<GroupsRead, RequestPath>,
    creations: web::Data<Creations>,
) -> Result<web::Json<CreateRequest>, ApiError> {
    let id = &call.input.0;
    let request = creations
        .get(&call.principal.team, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("group request {id} not found")))?;
    // Like a group route: the team's own creation, on a number this token may use (a token
    // narrowed by `phone_numbers` must not read another number's invite links).
    let pn = PhoneNumberId::parse(&request.phone_number_id)
        .map_err(|_| ApiError::Internal("a stored creation has a malformed number".into()))?;
    call.principal.require_number(&pn)?;
    Ok(web::Json(request))
}
