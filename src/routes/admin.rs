//! `/v1/admin/…`: the platform team's endpoints (scope `admin`, honoured only for teams with
//! `admin = true`). Tokens, revocation, the audit log, group ownership, events no team sees
//! and the teams' webhook endpoints.

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::ArrayBuilder;
use utoipa::{PartialSchema, ToSchema};

use super::events::{EventList, event_list};
use super::extract::scope::{Admin, UnnarrowedAdmin};
use super::extract::{Authorized, BodyKind, Granted, Input, JsonInput, Parts};
use super::groups::{META_PAGE_QUERY, distinct_list, meta_page};
use super::params::{
    AUDIT_TEAM_CHARS, AuditFilters, GroupPath, LogPaging, MetaPaging, PhoneNumberPath, TokenIdPath,
};
use super::responses::{BodyRefusals, Refusals, UpstreamFailures};
use super::{FieldReader, JsonObject};
use crate::auth::{IssuedToken, TokenIssuer};
use crate::context;
use crate::domain::{
    FeedPosition, FieldErrors, GroupId, PageLimit, Paging, PhoneNumberId, Scope, TokenId,
    decode_cursor, decode_position, encode_cursor,
};
use crate::error::ApiError;
use crate::graph::MetaPage;
use crate::platform::Directory;
use crate::services::audit::AuditLog;
use crate::services::events::Feed;
use crate::services::groups::Groups;
use crate::services::revocation::RevocationList;
use crate::storage::{AuditFilter, AuditRecord};
use crate::tokens::{self, TokenRequest};

/// What the admin endpoints need from configuration.
pub struct AdminContext {
    /// The teams in force (configuration's and the admin API's).
    pub teams: Directory,
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
#[serde(deny_unknown_fields)]
#[schema(example = json!({"team": "sales", "phone_number_id": "12784358810"}))]
pub struct SetOwnerBody {
    /// A configured team holding a grant for `phone_number_id`.
    pub team: String,
    /// The business number the group belongs to at Meta.
    #[schema(value_type = PhoneNumberId)]
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
#[serde(deny_unknown_fields)]
#[schema(example = json!({"team": "sales", "scopes": ["groups:read", "groups:write"], "phone_numbers": ["12784358810"], "ttl_seconds": 2592000}))]
pub struct IssueTokenBody {
    /// A configured team: the token's `sub`.
    pub team: String,
    /// Known scopes; `admin` only for an administrator team.
    #[schema(schema_with = scopes)]
    pub scopes: Vec<String>,
    /// Narrows the token to these of the team's numbers (claim `phone_numbers`); absent = all.
    /// When the caller's own token has `phone_numbers`, this is required and must be a
    /// non-empty subset of the caller's numbers (403 otherwise): narrowing only narrows.
    #[schema(schema_with = phone_numbers, nullable = false)]
    pub phone_numbers: Option<Vec<String>>,
    /// Lifetime in seconds: at least 1, at most the gateway's configured
    /// `auth.max_token_ttl_seconds` (7776000 = 90 days unless configured otherwise; a longer
    /// one is a 400 naming `ttl_seconds`). Absent = 30 days, or the maximum when that is
    /// shorter. Tokens signed elsewhere are held to the same maximum (`exp - iat`).
    #[schema(minimum = 1)]
    #[schema(nullable = false)]
    pub ttl_seconds: Option<u64>,
}

fn scopes() -> ArrayBuilder {
    distinct_list(Scope::schema(), 1..=Scope::ALL.len())
}

fn phone_numbers() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(PhoneNumberId::schema())
        .min_items(Some(1))
        .unique_items(true)
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

// ---- inputs ---------------------------------------------------------------------------------

pub struct MetaListing(MetaPage);

impl Input for MetaListing {
    const QUERY: &'static [&'static str] = META_PAGE_QUERY;
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let page = meta_page(parts, errors, Some(PageLimit::LISTING.default));
        if parts.query("after").is_some() && parts.query("before").is_some() {
            errors.push("before", "cannot be combined with after");
        }
        Ok(page.map(MetaListing))
    }
}

pub struct SetOwner {
    group_id: GroupId,
    team: String,
    phone_number_id: PhoneNumberId,
}

impl Input for SetOwner {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let group_id = errors.check(
            "group_id",
            GroupId::parse(parts.path("group_id").unwrap_or_default()),
        );
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let team = r.required_str("team").map(str::to_owned);
        let pn = r.required_parsed("phone_number_id", PhoneNumberId::parse);
        r.deny_unknown(&["team", "phone_number_id"]);
        Ok((|| {
            Some(SetOwner {
                group_id: group_id?,
                team: team?,
                phone_number_id: pn?,
            })
        })())
    }
}

pub struct AuditQuery {
    limit: u32,
    filter: AuditFilter,
}

impl Input for AuditQuery {
    const QUERY: &'static [&'static str] = &["limit", "team", "group_id", "since", "after"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let limit = errors.check("limit", PageLimit::LOG.parse(parts.query("limit")));
        let team = parts.query("team").and_then(|t| {
            let ok = AUDIT_TEAM_CHARS.contains(&t.chars().count());
            errors.check(
                "team",
                ok.then(|| t.to_owned()).ok_or_else(|| {
                    let (min, max) = (AUDIT_TEAM_CHARS.start(), AUDIT_TEAM_CHARS.end());
                    format!("must be {min}-{max} characters")
                }),
            )
        });
        let group_id = parts
            .query("group_id")
            .and_then(|g| errors.check("group_id", GroupId::parse(g)))
            .map(String::from);
        let since = parts.query("since").and_then(|s| {
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
        let before_seq = parts
            .query("after")
            .and_then(|a| errors.check("after", decode_cursor(a)));
        Ok(limit.map(|limit| AuditQuery {
            limit,
            filter: AuditFilter {
                team,
                group_id,
                since,
                before_seq,
                // Set by the handler from the caller's token, never by the query.
                phone_numbers: None,
            },
        }))
    }
}

pub struct IssueToken(TokenRequest);

impl JsonInput for IssueToken {
    fn read(r: &mut FieldReader<'_>) -> Option<Self> {
        let team = r.required_str("team").map(str::to_owned);
        let scopes = r
            .required_array("scopes")
            .map(|items| strings(r.errors, "scopes", items));
        let phone_numbers = r
            .optional_array("phone_numbers")
            .map(|items| strings(r.errors, "phone_numbers", items));
        let ttl_seconds = r.optional_u64("ttl_seconds");
        r.deny_unknown(&["team", "scopes", "phone_numbers", "ttl_seconds"]);
        Some(IssueToken(TokenRequest {
            team: team?,
            scopes: scopes?,
            phone_numbers,
            ttl_seconds,
        }))
    }
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

/// A `jti` no token can carry (see `TokenId`) is a 400: answering 204 would claim a revocation
/// that protects nothing.
pub struct Jti(TokenId);

impl Input for Jti {
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(errors
            .check("jti", TokenId::parse(parts.path("jti").unwrap_or_default()))
            .map(Jti))
    }
}

pub struct UnownedQuery {
    limit: u32,
    after: FeedPosition,
}

impl Input for UnownedQuery {
    const QUERY: &'static [&'static str] = &["limit", "after"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let limit = errors.check("limit", PageLimit::LOG.parse(parts.query("limit")));
        let after = match parts.query("after") {
            None => Some(FeedPosition::default()),
            Some(raw) => errors.check("after", decode_position(raw)),
        };
        Ok(limit
            .zip(after)
            .map(|(limit, after)| UnownedQuery { limit, after }))
    }
}

// ---- handlers -------------------------------------------------------------------------------

/// Every active group of the number at Meta (owned by a team or not), with its owner. A token
/// with `phone_numbers` lists only its own numbers (403).
#[utoipa::path(
    tag = "admin",
    params(PhoneNumberPath, MetaPaging),
    responses(
        (status = 200, description = "One page of Meta's listing, with owners", body = AdminGroupList),
        Refusals, UpstreamFailures,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/phone-numbers/{phone_number_id}/groups")]
pub async fn admin_list_groups(
    call: Granted<Admin, MetaListing>,
    groups: web::Data<Groups>,
) -> Result<web::Json<AdminGroupList>, ApiError> {
    let (listed, page) = groups.listing(call.phone_number(), &call.input.0).await?;
    Ok(web::Json(AdminGroupList {
        groups: listed
            .into_iter()
            .map(|l| AdminGroup {
                id: l.group.id,
                subject: l.group.subject,
                created_at: l.group.created_at,
                owner: l.owner,
            })
            .collect(),
        paging: page.paging,
    }))
}

/// Give a group to a team: adopt a group created outside the gateway, or move one between
/// teams. Meta is asked first whether the group exists on that number (its error, such as
/// 131041 for an unknown group, is passed on). A token with `phone_numbers` moves only groups
/// whose current number and target number are both among its own (403).
#[utoipa::path(
    tag = "admin",
    params(GroupPath),
    request_body = SetOwnerBody,
    responses(
        (status = 200, description = "The group now belongs to the team", body = GroupOwnership),
        Refusals, BodyRefusals, UpstreamFailures,
    ),
    security(("bearer" = ["admin"]))
)]
#[put("/admin/groups/{group_id}/owner")]
pub async fn admin_set_group_owner(
    call: Authorized<Admin, SetOwner>,
    context: web::Data<AdminContext>,
    groups: web::Data<Groups>,
) -> Result<web::Json<GroupOwnership>, ApiError> {
    let SetOwner {
        group_id,
        team,
        phone_number_id: pn,
    } = &call.input;
    call.principal.require_number(pn)?;
    // A narrowed token moves only groups of its numbers: away from one too, not only to one.
    if call.principal.narrowed_to().is_some()
        && let Some(current) = groups.registered_number(group_id).await?
    {
        call.principal.require_number(&current)?;
    }
    let assignment = groups
        .assign_owner(context.teams.current().team_settings(), group_id, pn, team)
        .await?;
    Ok(web::Json(GroupOwnership {
        group_id: group_id.to_string(),
        phone_number_id: pn.to_string(),
        owner: team.clone(),
        previous_owner: assignment.previous_owner,
        subject: assignment.subject,
    }))
}

/// The audit log, newest first: every mutating call and every admin call, with the caller,
/// the route, the group and Meta's answer. A token with `phone_numbers` reads only the
/// records of its numbers (records without a number are left out).
#[utoipa::path(
    tag = "admin",
    params(AuditFilters, LogPaging),
    responses(
        (status = 200, description = "One page of audit records", body = AuditList),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/audit")]
pub async fn admin_list_audit(
    call: Authorized<Admin, AuditQuery>,
    log: web::Data<AuditLog>,
) -> Result<web::Json<AuditList>, ApiError> {
    // A narrowed token reads the records of its numbers only; a record without a number
    // concerns no single number and is left out.
    let mut filter = call.input.filter;
    filter.phone_numbers = call
        .principal
        .narrowed_to()
        .map(|numbers| numbers.iter().map(|n| n.to_string()).collect());
    let page = log.list(&filter, call.input.limit).await?;
    Ok(web::Json(AuditList {
        records: page.records,
        paging: AuditPaging {
            after: page.next.map(encode_cursor),
        },
    }))
}

/// Mint a token for a team. The same rules as `wa-groups-gateway token issue`: a configured
/// team, known scopes (`admin` only for an administrator team), numbers within the team's
/// grants, a TTL within `auth.max_token_ttl_seconds`. A caller whose token has
/// `phone_numbers` issues only tokens narrowed to a subset of its numbers (403).
#[utoipa::path(
    tag = "admin",
    request_body = IssueTokenBody,
    responses(
        (status = 201, description = "The token (shown once; only its jti is kept)", body = IssuedTokenBody),
        (status = 409, description = "No configured key can sign (only public keys)", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals, BodyRefusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[post("/admin/tokens")]
pub async fn admin_issue_token(
    call: Authorized<Admin, IssueToken>,
    context: web::Data<AdminContext>,
) -> Result<HttpResponse, ApiError> {
    let approved = tokens::approve(
        context.teams.current().team_settings(),
        context.max_token_ttl_seconds,
        &call.input.0,
    )
    .map_err(ApiError::fields)?;
    call.principal
        .require_may_issue_for(approved.phone_numbers.as_deref())?;
    let issuer = context.issuer.as_ref().ok_or_else(|| {
        ApiError::Conflict(
            "no configured key can sign tokens: give one auth.keys entry a secret (HS256) or a private key".into(),
        )
    })?;
    let IssuedToken {
        token,
        jti,
        expires_at,
    } = issuer.issue_approved(&approved)?;
    Ok(HttpResponse::Created()
        // The body holds a credential: no cache may keep it.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(IssuedTokenBody {
            token,
            jti,
            expires_at,
        }))
}

/// Revoke a token by its `jti`: refused (401) at once on this replica, within a second on
/// the others, and after restarts. Revoking an unknown or already revoked jti is not an
/// error (the gateway does not keep the tokens it did not issue); a `jti` no token can carry
/// is a 400 naming `jti`. Needs an admin token without `phone_numbers` (403).
#[utoipa::path(
    tag = "admin",
    params(TokenIdPath),
    responses(
        (status = 204, description = "Revoked"),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[delete("/admin/tokens/{jti}")]
pub async fn admin_revoke_token(
    call: Authorized<UnnarrowedAdmin, Jti>,
    revocations: web::Data<RevocationList>,
) -> Result<HttpResponse, ApiError> {
    let jti = &call.input.0;
    revocations.revoke(jti, &call.principal.team).await?;
    context::note_detail("revoked_jti", jti.as_str());
    tracing::info!(
        jti = jti.as_str(),
        by = call.principal.team,
        "token revoked"
    );
    Ok(HttpResponse::NoContent().finish())
}

// ---- events no team sees, and the state of the teams' webhook endpoints --------------------

/// Events of groups no team owns (created outside the gateway and not adopted), oldest
/// first. Adopting such a group makes its later events the new owner's. A token with
/// `phone_numbers` reads only those of its numbers.
#[utoipa::path(
    tag = "admin",
    params(LogPaging),
    responses(
        (status = 200, description = "One page of events no team owns", body = EventList),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/events/unowned")]
pub async fn admin_list_unowned_events(
    call: Authorized<Admin, UnownedQuery>,
    feed: web::Data<Feed>,
) -> Result<web::Json<EventList>, ApiError> {
    let numbers: Option<Vec<String>> = call
        .principal
        .narrowed_to()
        .map(|numbers| numbers.iter().map(|n| n.to_string()).collect());
    let page = feed
        .unowned(numbers.as_deref(), call.input.after, call.input.limit)
        .await?;
    Ok(web::Json(event_list(page)))
}

#[cfg(test)]
mod tests {
    use crate::domain::TokenId;

    /// The documented rule is the one `TokenId` enforces.
    #[test]
    fn the_documented_jti_rule_is_the_enforced_one() {
        let spec = serde_json::to_value(crate::openapi::spec()).expect("json");
        let jti = &spec["paths"]["/v1/admin/tokens/{jti}"]["delete"]["parameters"][0];
        assert_eq!(jti["name"], "jti");
        assert_eq!(jti["schema"]["pattern"], TokenId::RULE.pattern());
        assert_eq!(jti["schema"]["maxLength"], TokenId::MAX_LEN);
        assert_eq!(jti["schema"]["minLength"], 1);
    }
}
