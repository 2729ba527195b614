//! `/v1/admin/…`: the platform team's endpoints (scope `admin`, honoured only for teams with
//! `admin = true`). Tokens, revocation, the audit log, and group ownership.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{JsonBody, JsonObject, QueryMap, finish};
use crate::audit::{self, AuditFilter, AuditLog, AuditRecord};
use crate::auth::{IssuedToken, Principal, Scope, TokenIssuer};
use crate::config::TeamSettings;
use crate::domain::{FieldErrors, GroupFields, GroupId, PhoneNumberId, parse_limit};
use crate::error::{ApiError, Problem};
use crate::graph::{GraphClient, Paging};
use crate::registry::{Registry, decode_cursor, encode_cursor};
use crate::revocation::{RevocationList, parse_jti};
use crate::tokens::{self, TokenRequest};

/// What the admin endpoints need from configuration.
pub struct AdminContext {
    pub teams: Arc<BTreeMap<String, TeamSettings>>,
    pub max_token_ttl_seconds: u64,
    /// None when no configured key can sign (verification-only deployments).
    pub issuer: Option<TokenIssuer>,
}

// ---- documentation types ------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct AdminGroup {
    #[schema(example = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// RFC 3339, as Meta reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The team that owns the group in the gateway; null when none does (created outside
    /// the gateway and not adopted yet).
    #[schema(example = "sales")]
    pub owner: Option<String>,
}

/// Meta's listing of the number's active groups, with each group's owner.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"groups": [
    {"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "subject": "New Purchase Inquiry", "created_at": "2026-11-26T10:15:00Z", "owner": "sales"},
    {"id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjBBD", "subject": "Made in WhatsApp Manager", "created_at": "2026-11-20T08:00:00Z", "owner": null}
], "paging": {"after": "QVFIUm..."}}))]
pub struct AdminGroupList {
    pub groups: Vec<AdminGroup>,
    /// Meta's cursors, passed through.
    pub paging: Paging,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"team": "sales", "phone_number_id": "12784358810"}))]
pub struct SetOwnerBody {
    /// A configured team holding a grant for `phone_number_id`.
    pub team: String,
    /// The business number the group belongs to at Meta.
    pub phone_number_id: String,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD", "phone_number_id": "12784358810", "owner": "sales", "previous_owner": "support", "subject": "New Purchase Inquiry"}))]
pub struct GroupOwnership {
    pub group_id: String,
    pub phone_number_id: String,
    pub owner: String,
    /// The team that owned it before; absent when nobody did (an adoption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_owner: Option<String>,
    /// The subject Meta reported while confirming the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPaging {
    /// Present when older records follow: pass it as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub records: Vec<AuditRecord>,
    pub paging: AuditPaging,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"team": "sales", "scopes": ["groups:read", "groups:write"], "phone_numbers": ["12784358810"], "ttl_seconds": 2592000}))]
pub struct IssueTokenBody {
    /// A configured team: the token's `sub`.
    pub team: String,
    /// Known scopes; `admin` only for an administrator team.
    pub scopes: Vec<String>,
    /// Narrows the token to these of the team's numbers (claim `phone_numbers`); absent = all.
    pub phone_numbers: Option<Vec<String>>,
    /// Lifetime in seconds: 1 to `auth.max_token_ttl_seconds` (default 90 days); absent =
    /// 30 days, or the maximum when that is shorter.
    #[schema(minimum = 1)]
    pub ttl_seconds: Option<u64>,
}

/// The token is shown once: the gateway keeps only its `jti`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImxvY2FsLWRldiIsInR5cCI6IkpXVCJ9.eyJ…", "jti": "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f", "expires_at": "2026-12-26T10:15:00Z"}))]
pub struct IssuedTokenBody {
    pub token: String,
    pub jti: String,
    /// RFC 3339.
    pub expires_at: String,
}

fn query<'q>(q: &'q QueryMap, name: &str) -> Option<&'q str> {
    q.get(name).map(String::as_str)
}

/// Every `None` left after `finish` means an error was recorded: reaching here is a bug.
fn validated<T>(v: Option<T>) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::Internal("validated input missing".into()))
}

/// Meta's paging cursors are opaque base64-ish strings; anything else is refused before it
/// is sent.
fn meta_cursor<'q>(errors: &mut FieldErrors, q: &'q QueryMap, name: &str) -> Option<&'q str> {
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

// ---- handlers -------------------------------------------------------------------------------

/// Every active group of the number at Meta (owned by a team or not), with its owner.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_groups",
    params(
        ("phone_number_id" = String, Path, description = "Business phone number ID", example = "12784358810"),
        ("limit" = Option<u32>, Query, description = "1–1024, default 25 (passed to Meta)", minimum = 1, maximum = 1024),
        ("after" = Option<String>, Query, description = "Meta's cursor from `paging.after`"),
        ("before" = Option<String>, Query, description = "Meta's cursor from `paging.before`"),
    ),
    responses(
        (status = 200, description = "One page of Meta's listing, with owners", body = AdminGroupList),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator, or number not granted to the administrator team", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/phone-numbers/{phone_number_id}/groups")]
pub async fn admin_list_groups(
    principal: Principal,
    path: web::Path<String>,
    q: web::Query<QueryMap>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<AdminGroupList>, ApiError> {
    let mut errors = FieldErrors::new();
    let pn = errors.check("phone_number_id", PhoneNumberId::parse(&path));
    let limit = errors.check("limit", parse_limit(query(&q, "limit"), 1, 1024, 25));
    let after = meta_cursor(&mut errors, &q, "after");
    let before = meta_cursor(&mut errors, &q, "before");
    if after.is_some() && before.is_some() {
        errors.push("before", "cannot be combined with after");
    }
    finish(errors)?;
    let (pn, limit) = (validated(pn)?, validated(limit)?);
    principal.require(Scope::Admin)?;
    principal.require_number(&pn)?;
    let page = graph.list_groups(&pn, limit, after, before).await?;
    let ids: Vec<String> = page.groups.iter().map(|g| g.id.clone()).collect();
    let mut owners = registry.owners(&ids).await?;
    Ok(web::Json(AdminGroupList {
        groups: page
            .groups
            .into_iter()
            .map(|g| AdminGroup {
                owner: owners.remove(&g.id),
                id: g.id,
                subject: g.subject,
                created_at: g.created_at,
            })
            .collect(),
        paging: Paging {
            after: page.after,
            before: page.before,
        },
    }))
}

/// Give a group to a team: adopt a group created outside the gateway, or move one between
/// teams. Meta is asked first whether the group exists on that number (its error, such as
/// 131041 for an unknown group, is passed on).
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_set_group_owner",
    params(("group_id" = String, Path, description = "Group ID")),
    request_body = SetOwnerBody,
    responses(
        (status = 200, description = "The group now belongs to the team", body = GroupOwnership),
        (status = 400, description = "Invalid input, unknown team, or number not granted to the team", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator, or number not granted to the administrator team", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Meta does not know the group on that number (upstream code 131041)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Meta failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[put("/admin/groups/{group_id}/owner")]
pub async fn admin_set_group_owner(
    principal: Principal,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonBody,
    context: web::Data<AdminContext>,
    registry: web::Data<Registry>,
    graph: web::Data<GraphClient>,
) -> Result<web::Json<GroupOwnership>, ApiError> {
    let mut errors = FieldErrors::new();
    let group_id = errors.check("group_id", GroupId::parse(&path));
    let body = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let team = r.required_str("team").map(str::to_owned);
    let pn = r
        .required_str("phone_number_id")
        .and_then(|s| r.errors.check("phone_number_id", PhoneNumberId::parse(s)));
    r.deny_unknown(&["team", "phone_number_id"]);
    finish(errors)?;
    let (group_id, team, pn) = (validated(group_id)?, validated(team)?, validated(pn)?);
    principal.require(Scope::Admin)?;
    principal.require_number(&pn)?;
    audit::note_phone_number(&pn);
    let team = team.as_str();
    match context.teams.get(team) {
        None => {
            return Err(ApiError::field(
                "team",
                format!("`{team}` is not a configured team"),
            ));
        }
        Some(t) if !t.phone_numbers.contains(&pn) => {
            return Err(ApiError::field(
                "phone_number_id",
                format!("{pn} is not granted to team `{team}`"),
            ));
        }
        Some(_) => {}
    }
    let fields = GroupFields::parse(Some("subject")).map_err(ApiError::Internal)?;
    let info = graph.get_group(&pn, &group_id, &fields).await?;
    let subject = info
        .get("subject")
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    let previous_owner = registry
        .set_owner(&group_id, &pn, team, subject.as_deref())
        .await?;
    audit::note_detail("owner", team);
    if let Some(previous) = &previous_owner {
        audit::note_detail("previous_owner", previous.as_str());
    }
    tracing::info!(group_id = %group_id, owner = team, previous_owner = previous_owner.as_deref().unwrap_or(""), "group owner set");
    Ok(web::Json(GroupOwnership {
        group_id: group_id.to_string(),
        phone_number_id: pn.to_string(),
        owner: team.to_owned(),
        previous_owner,
        subject,
    }))
}

/// The audit log, newest first: every mutating call and every admin call, with the caller,
/// the route, the group and Meta's answer.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_audit",
    params(
        ("team" = Option<String>, Query, description = "Only calls made by this team"),
        ("group_id" = Option<String>, Query, description = "Only calls about this group, including the creation that produced it"),
        ("since" = Option<String>, Query, description = "Only calls at or after this instant (RFC 3339)", example = "2026-11-26T00:00:00Z"),
        ("after" = Option<String>, Query, description = "Cursor from `paging.after`: the next (older) page"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of audit records", body = AuditList),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/audit")]
pub async fn admin_list_audit(
    principal: Principal,
    q: web::Query<QueryMap>,
    log: web::Data<AuditLog>,
) -> Result<web::Json<AuditList>, ApiError> {
    let mut errors = FieldErrors::new();
    let limit = errors.check("limit", parse_limit(query(&q, "limit"), 1, 1000, 100));
    let team = query(&q, "team").and_then(|t| {
        let ok = (1..=128).contains(&t.len());
        errors.check(
            "team",
            ok.then(|| t.to_owned())
                .ok_or_else(|| "must be 1-128 characters".to_owned()),
        )
    });
    let group_id = query(&q, "group_id")
        .and_then(|g| errors.check("group_id", GroupId::parse(g)))
        .map(String::from);
    let since = query(&q, "since").and_then(|s| {
        errors.check(
            "since",
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                })
                .map_err(|_| "must be an RFC 3339 instant such as 2026-11-26T00:00:00Z".into()),
        )
    });
    let before_seq = query(&q, "after").and_then(|a| errors.check("after", decode_cursor(a)));
    for name in q.keys() {
        if !["limit", "team", "group_id", "since", "after"].contains(&name.as_str()) {
            errors.push(name.as_str(), "is not a known parameter");
        }
    }
    finish(errors)?;
    let limit = validated(limit)?;
    principal.require(Scope::Admin)?;
    let filter = AuditFilter {
        team,
        group_id,
        since,
        before_seq,
    };
    let page = log.list(&filter, limit).await?;
    Ok(web::Json(AuditList {
        records: page.records,
        paging: AuditPaging {
            after: page.next.map(encode_cursor),
        },
    }))
}

/// Mint a token for a team. The same rules as `wa-groups-gateway token issue`: a configured
/// team, known scopes (`admin` only for an administrator team), numbers within the team's
/// grants, a TTL within `auth.max_token_ttl_seconds`.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_issue_token",
    request_body = IssueTokenBody,
    responses(
        (status = 201, description = "The token (shown once; only its jti is kept)", body = IssuedTokenBody),
        (status = 400, description = "Invalid input, unknown team or scope, admin for a non-admin team, number not granted, TTL too long", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No configured key can sign (only public keys)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[post("/admin/tokens")]
pub async fn admin_issue_token(
    principal: Principal,
    req: HttpRequest,
    body: JsonBody,
    context: web::Data<AdminContext>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let body = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = body.reader(&mut errors);
    let team = r.required_str("team").map(str::to_owned);
    let scopes = r
        .required_array("scopes")
        .map(|items| strings(r.errors, "scopes", items));
    let phone_numbers = r
        .optional_array("phone_numbers")
        .map(|items| strings(r.errors, "phone_numbers", items));
    let ttl_seconds = r.optional_u64("ttl_seconds");
    r.deny_unknown(&["team", "scopes", "phone_numbers", "ttl_seconds"]);
    finish(errors)?;
    let request = TokenRequest {
        team: validated(team)?,
        scopes: validated(scopes)?,
        phone_numbers,
        ttl_seconds,
    };
    principal.require(Scope::Admin)?;
    let approved = tokens::approve(&context.teams, context.max_token_ttl_seconds, &request)
        .map_err(ApiError::fields)?;
    let issuer = context.issuer.as_ref().ok_or_else(|| {
        ApiError::Conflict(
            "no configured key can sign tokens: give one auth.keys entry a secret (HS256) or a private key".into(),
        )
    })?;
    let IssuedToken {
        token,
        jti,
        expires_at,
    } = issuer
        .issue(
            &approved.team,
            &approved.scopes,
            approved.phone_numbers.clone(),
            approved.ttl_seconds,
        )
        .map_err(|e| ApiError::Internal(format!("cannot sign a token: {e}")))?;
    audit::note_detail("issued_jti", jti.as_str());
    audit::note_detail("issued_team", approved.team.as_str());
    audit::note_detail(
        "scopes",
        approved
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    );
    if let Some(numbers) = &approved.phone_numbers {
        audit::note_detail("phone_numbers", numbers.clone());
    }
    audit::note_detail("expires_at", expires_at.as_str());
    tracing::info!(jti, team = approved.team, "token issued");
    Ok(HttpResponse::Created()
        // The body holds a credential: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(IssuedTokenBody {
            token,
            jti,
            expires_at,
        }))
}

/// Each item must be a string; the strings themselves are judged by `tokens::approve`.
fn strings(errors: &mut FieldErrors, field: &str, items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                errors.push(format!("{field}[{i}]"), "must be a string");
                None
            }
        })
        .collect()
}

/// Revoke a token by its `jti`: refused (401) at once on this replica, within a second on
/// the others, and after restarts. Revoking an unknown or already revoked jti is not an
/// error (the gateway does not keep the tokens it did not issue).
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_revoke_token",
    params(("jti" = String, Path, description = "The token's `jti` claim", example = "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Invalid jti", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[delete("/admin/tokens/{jti}")]
pub async fn admin_revoke_token(
    principal: Principal,
    path: web::Path<String>,
    revocations: web::Data<RevocationList>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = FieldErrors::new();
    let jti = errors.check("jti", parse_jti(&path));
    finish(errors)?;
    let jti = validated(jti)?;
    principal.require(Scope::Admin)?;
    revocations.revoke(&jti, &principal.team).await?;
    audit::note_detail("revoked_jti", jti.as_str());
    tracing::info!(jti, by = principal.team, "token revoked");
    Ok(HttpResponse::NoContent().finish())
}

// ---- events no team sees, and the state of the teams' webhook endpoints --------------------

#[derive(Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub endpoints: Vec<crate::events::EndpointRecord>,
}

/// Events of groups no team owns (created outside the gateway and not adopted), oldest
/// first. Adopting such a group makes its later events the new owner's.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_unowned_events",
    params(
        ("after" = Option<String>, Query, description = "Cursor from `paging.after`"),
        ("limit" = Option<u32>, Query, description = "1–1000, default 100", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of events no team owns", body = super::events::EventList),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/events/unowned")]
pub async fn admin_list_unowned_events(
    principal: Principal,
    q: web::Query<QueryMap>,
    registry: web::Data<Registry>,
) -> Result<web::Json<super::events::EventList>, ApiError> {
    let mut errors = FieldErrors::new();
    let limit = errors.check(
        "limit",
        parse_limit(q.get("limit").map(String::as_str), 1, 1000, 100),
    );
    let after = match q.get("after") {
        None => Some(0),
        Some(raw) => errors.check("after", decode_cursor(raw)),
    };
    finish(errors)?;
    let (Some(limit), Some(after)) = (limit, after) else {
        return Err(ApiError::Internal("validated input missing".into()));
    };
    principal.require(Scope::Admin)?;
    let page = crate::events::EventStore::new(registry.pool().clone())
        .list_unowned(after, limit)
        .await?;
    Ok(web::Json(super::events::EventList {
        events: page.events,
        paging: super::events::EventPaging {
            after: page.more_after.map(encode_cursor),
        },
    }))
}

/// Each team's webhook endpoint: enabled or disabled (and why), failing since when, the last
/// success and failure. URLs are shown without credentials or query.
#[utoipa::path(
    tag = "admin",
    operation_id = "admin_list_webhook_endpoints",
    responses(
        (status = 200, description = "The teams' endpoints", body = WebhookEndpointList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/webhook-endpoints")]
pub async fn admin_list_webhook_endpoints(
    principal: Principal,
    registry: web::Data<Registry>,
) -> Result<web::Json<WebhookEndpointList>, ApiError> {
    principal.require(Scope::Admin)?;
    let mut endpoints = crate::events::EventStore::new(registry.pool().clone())
        .endpoints()
        .await?;
    for endpoint in &mut endpoints {
        endpoint.url = crate::events::delivery::redacted(&endpoint.url);
    }
    Ok(web::Json(WebhookEndpointList { endpoints }))
}
