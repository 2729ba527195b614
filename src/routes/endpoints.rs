//! `/v1/webhook-endpoints`: the team's own webhook endpoints (scope `webhooks`, DESIGN §12),
//! and `GET /v1/admin/webhook-endpoints` for the platform team.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::extract::scope::{UnnarrowedAdmin, Webhooks};
use super::extract::{Authorized, BodyKind, Input, JsonInput, NoInput, Parts};
use super::responses::{BodyRefusals, Refusals};
use super::{FieldReader, JsonObject};
use crate::config::check_webhook_host;
use crate::context;
use crate::domain::endpoint::{EndpointId, EventTypeFilter, parse_description};
use crate::domain::events::EventType;
use crate::domain::{FieldErrors, PageLimit, decode_cursor, encode_cursor};
use crate::error::ApiError;
use crate::services::endpoints::{EndpointSpec, Endpoints};
use crate::storage::{
    AttemptFilter, AttemptOutcome, AttemptRecord, EndpointChange, EndpointRecord, ReplaySelection,
};

/// Longest endpoint URL.
const URL_BYTES: usize = 2048;
/// Event ids one replay may name.
const REPLAY_IDS: std::ops::RangeInclusive<usize> = 1..=1000;

// ---- answers --------------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointRecord>,
}

/// A new endpoint, with its secret: shown this once.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"team": "sales", "id": "ep_0f3k2m9q8w7e6r5t4y3u2i1o0p", "url": "https://orders.internal/hooks/wa", "description": "orders service", "event_types": ["group.*"], "disabled": false, "backlog": 0, "created_at": "2026-12-01T09:00:00.000Z", "updated_at": "2026-12-01T09:00:00.000Z", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="}))]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: EndpointRecord,
    /// `whsec_` and base64: the key of the `webhook-signature` HMAC (Standard Webhooks).
    /// Shown only here and at rotation; store it as a secret.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret. For `webhooks.secret_overlap` (default 24 h) each delivery carries
    /// the old and the new signature, space-separated.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptPaging {
    /// Present when older attempts follow: pass it as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptList {
    /// Newest first.
    pub attempts: Vec<AttemptRecord>,
    pub paging: AttemptPaging,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayQueued {
    /// Deliveries queued (each with the event's id as `webhook-id`, as the first time).
    pub queued: u64,
}

// ---- documentation of bodies and parameters -------------------------------------------------

fn url_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri".into())))
        .max_length(Some(URL_BYTES))
        .description(Some(
            "http(s) URL; internal addresses are allowed, link-local and cloud metadata ones are not",
        ))
}

fn event_types_schema() -> ArrayBuilder {
    let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    names.extend(EventTypeFilter::FAMILIES);
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
        .min_items(Some(1))
        .max_items(Some(EventTypeFilter::MAX_ITEMS))
        .description(Some(
            "Exact team event types or a family (`group.*`); absent: every type",
        ))
}

fn description_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(256))
}

fn disabled_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Boolean).description(Some(
        "A disabled endpoint receives nothing; its events accrue (`backlog`) and go out in order once enabled",
    ))
}

/// `POST /v1/webhook-endpoints`.
pub struct CreateEndpointBody;

impl PartialSchema for CreateEndpointBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("url", url_schema())
            .property("description", description_schema())
            .property("event_types", event_types_schema())
            .property("disabled", disabled_schema().default(Some(false.into())))
            .required("url")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .examples([json!({"url": "https://orders.internal/hooks/wa", "description": "orders service", "event_types": ["group.*"]})])
            .into()
    }
}

impl ToSchema for CreateEndpointBody {}

/// `PATCH /v1/webhook-endpoints/{id}`.
pub struct UpdateEndpointBody;

impl PartialSchema for UpdateEndpointBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("url", url_schema())
            .property("description", description_schema())
            .property(
                "event_types",
                event_types_schema().description(Some(
                    "Exact types or a family (`group.*`); null: every type again",
                )),
            )
            .property("disabled", disabled_schema())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .examples([json!({"disabled": false})])
            .into()
    }
}

impl ToSchema for UpdateEndpointBody {}

/// `POST /v1/webhook-endpoints/{id}/replay`.
pub struct ReplayBody;

impl PartialSchema for ReplayBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "since",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .description(Some(
                        "Every event of the team stored at or after this instant that the endpoint's filter takes",
                    )),
            )
            .property(
                "event_ids",
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(128)))
                    .min_items(Some(*REPLAY_IDS.start()))
                    .max_items(Some(*REPLAY_IDS.end()))
                    .description(Some("These team events (ids as in the feed), whatever the filter")),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .description(Some("Exactly one of `since` and `event_ids`"))
            .examples([json!({"since": "2026-12-05T00:00:00Z"})])
            .into()
    }
}

impl ToSchema for ReplayBody {}

/// `{id}` in the path.
pub struct EndpointPath;

impl IntoParams for EndpointPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            utoipa::openapi::path::ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("`config` (configuration's endpoint) or `ep_…`"))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(EndpointId::PATTERN)),
                ))
                .build(),
        ]
    }
}

/// The attempts log's filters and paging.
pub struct AttemptParams;

impl IntoParams for AttemptParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let query = |name: &str, description: &str, schema: ObjectBuilder| {
            utoipa::openapi::path::ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        vec![
            query(
                "outcome",
                "Only attempts with this outcome",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["succeeded", "failed"])),
            ),
            query(
                "event_id",
                "Only attempts of this team event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(128)),
            ),
            query(
                "after",
                "Cursor from `paging.after`",
                ObjectBuilder::new().schema_type(Type::String),
            ),
            query(
                "limit",
                "Page size, 1–1000, default 100",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(1000)),
            ),
        ]
    }
}

// ---- inputs ---------------------------------------------------------------------------------

/// An endpoint URL: http(s), within 2,048 bytes, no fragment, and never a link-local or
/// cloud metadata address (the rule of configuration's webhooks, README "Security rules").
fn endpoint_url(raw: &str) -> Result<String, String> {
    if raw.len() > URL_BYTES {
        return Err(format!("must be at most {URL_BYTES} bytes"));
    }
    let parsed = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http(s) URL".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a fragment (#…): it is never sent".into());
    }
    check_webhook_host(raw)?;
    Ok(raw.to_owned())
}

/// `event_types`: a non-empty list of known types or families.
fn read_event_types(r: &mut FieldReader<'_>) -> Option<Option<EventTypeFilter>> {
    if !r.contains("event_types") {
        return Some(None);
    }
    let items = r.optional_array("event_types")?;
    let parsed = super::parse_list(
        r.errors,
        "event_types",
        items,
        1..=EventTypeFilter::MAX_ITEMS,
        EventTypeFilter::parse_item,
        String::clone,
    );
    (parsed.len() == items.len()).then(|| Some(EventTypeFilter::new(parsed)))
}

fn read_description(r: &mut FieldReader<'_>) -> Option<Option<String>> {
    if !r.contains("description") {
        return Some(None);
    }
    r.optional_parsed("description", parse_description)
        .map(Some)
}

fn read_disabled(r: &mut FieldReader<'_>) -> Option<Option<bool>> {
    if !r.contains("disabled") {
        return Some(None);
    }
    r.optional_bool("disabled").map(Some)
}

pub struct CreateEndpoint(EndpointSpec);

impl JsonInput for CreateEndpoint {
    fn read(r: &mut FieldReader<'_>) -> Option<Self> {
        let url = r.required_parsed("url", endpoint_url);
        let description = read_description(r);
        let event_types = read_event_types(r);
        let disabled = read_disabled(r);
        r.deny_unknown(&["url", "description", "event_types", "disabled"]);
        Some(CreateEndpoint(EndpointSpec {
            url: url?,
            description: description?.unwrap_or_default(),
            event_types: event_types?,
            disabled: disabled?.unwrap_or(false),
        }))
    }
}

/// An endpoint id in the path (400 naming `id` when it cannot be one).
pub struct EndpointInPath(EndpointId);

fn endpoint_in_path(parts: &Parts<'_>, errors: &mut FieldErrors) -> Option<EndpointId> {
    errors.check(
        "id",
        EndpointId::parse(parts.path("id").unwrap_or_default()),
    )
}

impl Input for EndpointInPath {
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(endpoint_in_path(parts, errors).map(EndpointInPath))
    }
}

pub struct UpdateEndpoint {
    id: EndpointId,
    change: EndpointChange,
}

impl Input for UpdateEndpoint {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let id = endpoint_in_path(parts, errors);
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let url = if r.contains("url") {
            r.required_parsed("url", endpoint_url).map(Some)
        } else {
            Some(None)
        };
        let description = read_description(&mut r);
        // null: every type again.
        let event_types = if r.is_null("event_types") {
            Some(Some(None))
        } else {
            read_event_types(&mut r).map(|t| t.map(|f| Some(f.items().to_vec())))
        };
        let disabled = read_disabled(&mut r);
        r.deny_unknown(&["url", "description", "event_types", "disabled"]);
        Ok((|| {
            Some(UpdateEndpoint {
                id: id?,
                change: EndpointChange {
                    url: url?,
                    description: description?,
                    event_types: event_types?,
                    disabled: disabled?,
                },
            })
        })())
    }
}

pub struct AttemptsQuery {
    id: EndpointId,
    outcome: Option<AttemptOutcome>,
    event_id: Option<String>,
    before: Option<i64>,
    limit: u32,
}

impl Input for AttemptsQuery {
    const QUERY: &'static [&'static str] = &["outcome", "event_id", "after", "limit"];

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let id = endpoint_in_path(parts, errors);
        let limit = errors.check("limit", PageLimit::LOG.parse(parts.query("limit")));
        let outcome = match parts.query("outcome") {
            None => Some(None),
            Some(raw) => errors
                .check(
                    "outcome",
                    AttemptOutcome::parse(raw)
                        .ok_or_else(|| "must be succeeded or failed".to_owned()),
                )
                .map(Some),
        };
        let event_id = match parts.query("event_id") {
            None => Some(None),
            Some(raw) => errors
                .check(
                    "event_id",
                    if (1..=128).contains(&raw.len()) && !raw.chars().any(char::is_control) {
                        Ok(raw.to_owned())
                    } else {
                        Err("must be 1-128 characters".to_owned())
                    },
                )
                .map(Some),
        };
        let before = match parts.query("after") {
            None => Some(None),
            Some(raw) => errors.check("after", decode_cursor(raw)).map(Some),
        };
        Ok((|| {
            Some(AttemptsQuery {
                id: id?,
                outcome: outcome?,
                event_id: event_id?,
                before: before?,
                limit: limit?,
            })
        })())
    }
}

pub struct Replay {
    id: EndpointId,
    since: Option<String>,
    event_ids: Option<Vec<String>>,
}

impl Input for Replay {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let id = endpoint_in_path(parts, errors);
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let since = if r.contains("since") {
            r.optional_parsed("since", |s| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| {
                        t.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    })
                    .map_err(|_| "must be an RFC 3339 instant such as 2026-12-05T00:00:00Z".into())
            })
            .map(Some)
        } else {
            Some(None)
        };
        let event_ids = if r.contains("event_ids") {
            r.optional_array("event_ids").and_then(|items| {
                let ids = super::parse_list(
                    r.errors,
                    "event_ids",
                    items,
                    REPLAY_IDS,
                    |s| {
                        if (1..=128).contains(&s.len()) && !s.chars().any(char::is_control) {
                            Ok(s.to_owned())
                        } else {
                            Err("must be 1-128 characters".to_owned())
                        }
                    },
                    String::clone,
                );
                (ids.len() == items.len()).then_some(Some(ids))
            })
        } else {
            Some(None)
        };
        let both = r.contains("since") && r.contains("event_ids");
        let neither = !r.contains("since") && !r.contains("event_ids");
        if both {
            r.errors
                .push("event_ids", "give either since or event_ids, not both");
        } else if neither {
            r.errors.push("since", "give since or event_ids");
        }
        r.deny_unknown(&["since", "event_ids"]);
        Ok((|| {
            if both || neither {
                return None;
            }
            Some(Replay {
                id: id?,
                since: since?,
                event_ids: event_ids?,
            })
        })())
    }
}

// ---- handlers -------------------------------------------------------------------------------

/// Make a webhook endpoint for the caller's team. Each team event goes to every enabled
/// endpoint of the team whose `event_types` take it, signed per Standard Webhooks with the
/// endpoint's secret, which this answer shows once. The secret is stored encrypted (without
/// `storage.encryption_key`: 409). A team has at most 20 endpoints (409).
#[utoipa::path(
    tag = "webhook-endpoints",
    request_body = CreateEndpointBody,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = CreatedEndpoint),
        (status = 409, description = "No storage.encryption_key is set, or the team has 20 endpoints", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals, BodyRefusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[post("/webhook-endpoints")]
pub async fn create_webhook_endpoint(
    call: Authorized<Webhooks, CreateEndpoint>,
    endpoints: web::Data<Endpoints>,
) -> Result<HttpResponse, ApiError> {
    let team = &call.principal.team;
    let (endpoint, secret) = endpoints.create(team, call.input.0).await?;
    context::note_detail(
        "endpoint",
        json!({"id": endpoint.id, "url": endpoint.url, "event_types": endpoint.event_types, "disabled": endpoint.disabled}),
    );
    tracing::info!(team, endpoint_id = endpoint.id, "webhook endpoint created");
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/webhook-endpoints/{}", endpoint.id),
        ))
        .json(CreatedEndpoint { endpoint, secret }))
}

/// The team's endpoints with their health: `backlog` (deliveries waiting),
/// `last_success_at`, `failing_since`, `disabled_reason`. Never a secret.
#[utoipa::path(
    tag = "webhook-endpoints",
    responses(
        (status = 200, description = "The team's endpoints", body = EndpointList),
        Refusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[get("/webhook-endpoints")]
pub async fn list_webhook_endpoints(
    call: Authorized<Webhooks, NoInput>,
    endpoints: web::Data<Endpoints>,
) -> Result<web::Json<EndpointList>, ApiError> {
    Ok(web::Json(EndpointList {
        endpoints: endpoints.list(Some(&call.principal.team)).await?,
    }))
}

/// One of the team's endpoints; another team's answers 404, as an unknown one does.
#[utoipa::path(
    tag = "webhook-endpoints",
    params(EndpointPath),
    responses(
        (status = 200, description = "The endpoint", body = EndpointRecord),
        Refusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[get("/webhook-endpoints/{id}")]
pub async fn get_webhook_endpoint(
    call: Authorized<Webhooks, EndpointInPath>,
    endpoints: web::Data<Endpoints>,
) -> Result<web::Json<EndpointRecord>, ApiError> {
    Ok(web::Json(
        endpoints
            .get(&call.principal.team, call.input.0.as_str())
            .await?,
    ))
}

/// Change an endpoint: the fields given. `disabled: false` enables it again: its failure
/// record is cleared and its backlog goes out at once, in event order. A new `url` starts
/// with a clean failure record. `event_types` applies to events stored from now on. The
/// `config` endpoint is read-only (409).
#[utoipa::path(
    tag = "webhook-endpoints",
    params(EndpointPath),
    request_body = UpdateEndpointBody,
    responses(
        (status = 200, description = "The endpoint as changed", body = EndpointRecord),
        (status = 409, description = "The endpoint of the configuration is read-only", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals, BodyRefusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[patch("/webhook-endpoints/{id}")]
pub async fn update_webhook_endpoint(
    call: Authorized<Webhooks, UpdateEndpoint>,
    endpoints: web::Data<Endpoints>,
) -> Result<web::Json<EndpointRecord>, ApiError> {
    let UpdateEndpoint { id, change } = call.input;
    context::note_detail(
        "change",
        json!({"endpoint_id": id.as_str(), "url": change.url.as_deref().map(crate::domain::url::without_credentials),
               "event_types": change.event_types, "disabled": change.disabled,
               "description": change.description.is_some()}),
    );
    let endpoint = endpoints.update(&call.principal.team, &id, change).await?;
    Ok(web::Json(endpoint))
}

/// Delete an endpoint with its deliveries and attempts log. The `config` endpoint is
/// read-only (409).
#[utoipa::path(
    tag = "webhook-endpoints",
    params(EndpointPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The endpoint of the configuration is read-only", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[delete("/webhook-endpoints/{id}")]
pub async fn delete_webhook_endpoint(
    call: Authorized<Webhooks, EndpointInPath>,
    endpoints: web::Data<Endpoints>,
) -> Result<HttpResponse, ApiError> {
    let id = &call.input.0;
    context::note_detail("endpoint_id", id.as_str());
    endpoints.delete(&call.principal.team, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new secret for the endpoint, shown once. For `webhooks.secret_overlap` (default 24 h)
/// every delivery carries two signatures, space-separated in `webhook-signature`: the new
/// secret's and the old one's, so receivers can switch at their pace. The `config` endpoint
/// is read-only (409).
#[utoipa::path(
    tag = "webhook-endpoints",
    params(EndpointPath),
    responses(
        (status = 200, description = "The new secret", body = RotatedSecret),
        (status = 409, description = "The endpoint of the configuration is read-only, or no storage.encryption_key is set", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[post("/webhook-endpoints/{id}/rotate-secret")]
pub async fn rotate_webhook_endpoint_secret(
    call: Authorized<Webhooks, EndpointInPath>,
    endpoints: web::Data<Endpoints>,
) -> Result<web::Json<RotatedSecret>, ApiError> {
    let id = &call.input.0;
    context::note_detail("endpoint_id", id.as_str());
    let secret = endpoints.rotate(&call.principal.team, id).await?;
    tracing::info!(team = call.principal.team, endpoint_id = %id, "webhook endpoint secret rotated");
    Ok(web::Json(RotatedSecret { secret }))
}

/// The endpoint's delivery attempts, newest first: the event, the attempt's number, its
/// outcome, Meta-independent details (the receiver's HTTP status, or the class of failure
/// such as `timeout`), and how long it took.
#[utoipa::path(
    tag = "webhook-endpoints",
    params(EndpointPath, AttemptParams),
    responses(
        (status = 200, description = "One page of attempts", body = AttemptList),
        Refusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[get("/webhook-endpoints/{id}/attempts")]
pub async fn list_webhook_attempts(
    call: Authorized<Webhooks, AttemptsQuery>,
    endpoints: web::Data<Endpoints>,
) -> Result<web::Json<AttemptList>, ApiError> {
    let q = &call.input;
    let mut attempts = endpoints
        .attempts(
            &call.principal.team,
            q.id.as_str(),
            &AttemptFilter {
                outcome: q.outcome,
                event_id: q.event_id.as_deref(),
                before: q.before,
                limit: q.limit + 1,
            },
        )
        .await?;
    let more = attempts.len() > q.limit as usize;
    attempts.truncate(q.limit as usize);
    let after = more
        .then(|| attempts.last().map(|a| encode_cursor(a.seq)))
        .flatten();
    Ok(web::Json(AttemptList {
        attempts,
        paging: AttemptPaging { after },
    }))
}

/// Deliver events again to this endpoint, with the same `webhook-id` as before: every
/// event stored `since` an instant that the endpoint's `event_types` take, or the events
/// named by `event_ids` (ids of the team's events, as in the feed; an unknown one is a 400
/// and nothing is queued). A disabled endpoint gets them once enabled.
#[utoipa::path(
    tag = "webhook-endpoints",
    params(EndpointPath),
    request_body = ReplayBody,
    responses(
        (status = 202, description = "Queued", body = ReplayQueued),
        Refusals, BodyRefusals,
    ),
    security(("bearer" = ["webhooks"]))
)]
#[post("/webhook-endpoints/{id}/replay")]
pub async fn replay_webhook_endpoint(
    call: Authorized<Webhooks, Replay>,
    endpoints: web::Data<Endpoints>,
) -> Result<HttpResponse, ApiError> {
    let Replay {
        id,
        since,
        event_ids,
    } = &call.input;
    let selection = match (since, event_ids) {
        (Some(since), _) => ReplaySelection::Since(since),
        (None, Some(ids)) => ReplaySelection::EventIds(ids),
        (None, None) => return Err(ApiError::field("since", "give since or event_ids")),
    };
    let queued = endpoints
        .replay(&call.principal.team, id.as_str(), &selection)
        .await?;
    context::note_detail(
        "replay",
        json!({"endpoint_id": id.as_str(), "since": since, "event_ids": event_ids.as_ref().map(Vec::len), "queued": queued}),
    );
    Ok(HttpResponse::Accepted().json(ReplayQueued { queued }))
}

/// Every team's webhook endpoints with their health, for the platform team: the
/// configured ones (id `config`) and those teams made. URLs without credentials or query;
/// never a secret. Needs an admin token without `phone_numbers` (403).
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "The teams' endpoints", body = EndpointList),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/webhook-endpoints")]
pub async fn admin_list_webhook_endpoints(
    _call: Authorized<UnnarrowedAdmin, NoInput>,
    endpoints: web::Data<Endpoints>,
) -> Result<web::Json<EndpointList>, ApiError> {
    Ok(web::Json(EndpointList {
        endpoints: endpoints.list(None).await?,
    }))
}
