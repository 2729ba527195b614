//! `/v1/admin/teams` and `/v1/admin/phone-numbers`: teams and phone numbers managed at
//! runtime (DESIGN §11). Every route needs an admin token without `phone_numbers`, reads
//! included. Entries of configuration are listed, and read-only (409).

use actix_web::{HttpResponse, delete, get, put, web};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::extract::scope::UnnarrowedAdmin;
use super::extract::{Authorized, BodyKind, Input, NoInput, Parts};
use super::responses::{BodyRefusals, Refusals};
use super::{FieldReader, JsonObject};
use crate::config::RateLimitSettings;
use crate::context;
use crate::domain::{FieldErrors, PhoneNumberId, TeamName};
use crate::error::ApiError;
use crate::platform::{NumberEntry, Platform, TeamEntry};
use crate::services::registry::{NumberChange, Registry, TeamChange, token_fingerprint};
use crate::storage::Put;

/// `rate_limit.per_second`: what a bucket may refill.
pub const PER_SECOND: std::ops::RangeInclusive<u64> = 1..=10_000;
/// `rate_limit.burst`.
pub const BURST: std::ops::RangeInclusive<u64> = 1..=100_000;
/// `max_groups`: Meta allows a number at most 10,000 active groups.
pub const MAX_GROUPS: std::ops::RangeInclusive<u64> = 1..=10_000;
/// Numbers one team may be granted through the API.
pub const TEAM_NUMBERS: std::ops::RangeInclusive<usize> = 0..=100;
/// Bytes of an access token (Meta's are a few hundred).
pub const TOKEN_BYTES: std::ops::RangeInclusive<usize> = 1..=4096;

// ---- answers --------------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
pub struct RateLimitBody {
    /// Calls added to the bucket each second.
    #[schema(minimum = 1, maximum = 10000)]
    pub per_second: u32,
    /// Calls allowed at once.
    #[schema(minimum = 1, maximum = 100000)]
    pub burst: u32,
}

impl From<&RateLimitSettings> for RateLimitBody {
    fn from(r: &RateLimitSettings) -> Self {
        RateLimitBody {
            per_second: r.per_second,
            burst: r.burst,
        }
    }
}

/// Where an entry is defined: `config` (read-only through the API) or `api`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntrySource {
    Config,
    Api,
}

impl From<crate::platform::Source> for EntrySource {
    fn from(source: crate::platform::Source) -> Self {
        match source {
            crate::platform::Source::Config => EntrySource::Config,
            crate::platform::Source::Api => EntrySource::Api,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"name": "sales", "phone_numbers": ["12784358810"], "admin": false, "rate_limit": {"per_second": 20, "burst": 40}, "source": "api", "updated_at": "2026-12-05T10:15:00.000Z"}))]
pub struct TeamInfo {
    /// The `sub` of the team's tokens.
    pub name: String,
    #[schema(value_type = Vec<PhoneNumberId>)]
    pub phone_numbers: Vec<String>,
    pub admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_groups: Option<u32>,
    pub source: EntrySource,
    /// RFC 3339; entries of the API only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl TeamInfo {
    pub fn of(name: &str, entry: &TeamEntry) -> Self {
        TeamInfo {
            name: name.to_owned(),
            phone_numbers: entry
                .settings
                .phone_numbers
                .iter()
                .map(|pn| pn.to_string())
                .collect(),
            admin: entry.settings.admin,
            rate_limit: entry.settings.rate_limit.as_ref().map(Into::into),
            max_groups: entry.max_groups,
            source: entry.source.into(),
            updated_at: entry.updated_at.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TeamList {
    pub teams: Vec<TeamInfo>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"phone_number_id": "12784358810", "source": "api", "token_fingerprint": "3f2a9c1b", "teams": ["sales"], "updated_at": "2026-12-05T10:15:00.000Z"}))]
pub struct PhoneNumberInfo {
    #[schema(value_type = PhoneNumberId)]
    pub phone_number_id: String,
    pub source: EntrySource,
    /// The first 8 hex digits of SHA-256 of the access token: which token is in use,
    /// without showing it. The token itself is never returned.
    #[schema(pattern = "^[0-9a-f]{8}$")]
    pub token_fingerprint: String,
    /// The teams granted the number.
    pub teams: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_groups: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl PhoneNumberInfo {
    pub fn of(platform: &Platform, pn: &PhoneNumberId, entry: &NumberEntry) -> Self {
        PhoneNumberInfo {
            phone_number_id: pn.to_string(),
            source: entry.source.into(),
            token_fingerprint: token_fingerprint(&entry.access_token),
            teams: platform.teams_granted(pn),
            rate_limit: entry.rate_limit.as_ref().map(Into::into),
            max_groups: entry.max_groups,
            updated_at: entry.updated_at.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PhoneNumberList {
    pub phone_numbers: Vec<PhoneNumberInfo>,
}

// ---- request bodies (documentation; `PutTeam` and `PutPhoneNumber` read them) ---------------

fn rate_limit_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "per_second",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(*PER_SECOND.start()))
                .maximum(Some(*PER_SECOND.end())),
        )
        .property(
            "burst",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(*BURST.start()))
                .maximum(Some(*BURST.end())),
        )
        .required("per_second")
        .required("burst")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some("A token bucket; absent: not rate limited"))
}

fn max_groups_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(*MAX_GROUPS.start()))
        .maximum(Some(*MAX_GROUPS.end()))
}

/// `PUT /v1/admin/teams/{team}`: the whole team; a field left out takes its default.
pub struct PutTeamBody;

impl PartialSchema for PutTeamBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "phone_numbers",
                ArrayBuilder::new()
                    .items(PhoneNumberId::schema())
                    .max_items(Some(*TEAM_NUMBERS.end()))
                    .unique_items(true)
                    .description(Some(
                        "The numbers the team may use, each known to the gateway (config or API)",
                    )),
            )
            .property(
                "admin",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .default(Some(false.into())),
            )
            .property("rate_limit", rate_limit_schema())
            .property(
                "max_groups",
                max_groups_schema().description(Some("Active groups per number; absent: none")),
            )
            .required("phone_numbers")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .examples([json!({"phone_numbers": ["12784358810"], "rate_limit": {"per_second": 20, "burst": 40}})])
            .into()
    }
}

impl ToSchema for PutTeamBody {}

/// `PUT /v1/admin/phone-numbers/{phone_number_id}`.
pub struct PutPhoneNumberBody;

impl PartialSchema for PutPhoneNumberBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "access_token",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(*TOKEN_BYTES.start()))
                    .max_length(Some(*TOKEN_BYTES.end()))
                    .pattern(Some("^[!-~]+$"))
                    .write_only(Some(true))
                    .description(Some(
                        "Meta's access token for the number; stored encrypted, never returned",
                    )),
            )
            .property(
                "rate_limit",
                rate_limit_schema().description(Some(
                    "Protects Meta's quota of this number, shared by every team using it",
                )),
            )
            .property("max_groups", max_groups_schema())
            .required("access_token")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .examples([
                json!({"access_token": "EAAGm0PX4ZCpsBAExample", "rate_limit": {"per_second": 10, "burst": 20}}),
            ])
            .into()
    }
}

impl ToSchema for PutPhoneNumberBody {}

/// `{team}` in the path.
pub struct TeamPath;

impl IntoParams for TeamPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("team")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("Team name: the `sub` of its tokens"))
                .schema(Some(TeamName::schema()))
                .example(Some("sales".into()))
                .build(),
        ]
    }
}

// ---- inputs ---------------------------------------------------------------------------------

/// A team name in the path. Configuration's teams may have other names: they are matched as
/// written, and answered 409 (read-only) before the rule is applied.
pub struct TeamInPath(String);

fn team_in_path(parts: &Parts<'_>) -> String {
    parts.path("team").unwrap_or_default().to_owned()
}

impl Input for TeamInPath {
    fn parse(parts: &Parts<'_>, _: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(Some(TeamInPath(team_in_path(parts))))
    }
}

/// A `{phone_number_id}` in the path.
pub struct NumberInPath(PhoneNumberId);

impl Input for NumberInPath {
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(errors
            .check(
                "phone_number_id",
                PhoneNumberId::parse(parts.path("phone_number_id").unwrap_or_default()),
            )
            .map(NumberInPath))
    }
}

/// `rate_limit`: both numbers within their ranges (400 naming `rate_limit.per_second` or
/// `rate_limit.burst`).
fn read_rate_limit(r: &mut FieldReader<'_>) -> Option<Option<RateLimitSettings>> {
    if !r.contains("rate_limit") {
        return Some(None);
    }
    let object = r.required_object("rate_limit")?;
    r.nested("rate_limit", object, |r| {
        let per_second = bounded(r, "per_second", &PER_SECOND);
        let burst = bounded(r, "burst", &BURST);
        r.deny_unknown(&["per_second", "burst"]);
        Some(Some(RateLimitSettings {
            per_second: u32::try_from(per_second?).ok()?,
            burst: u32::try_from(burst?).ok()?,
        }))
    })
}

/// A required integer within `range`.
fn bounded(
    r: &mut FieldReader<'_>,
    name: &str,
    range: &std::ops::RangeInclusive<u64>,
) -> Option<u64> {
    if !r.contains(name) {
        r.errors.push(name, "is required");
        return None;
    }
    let value = r.optional_u64(name)?;
    r.errors.check(
        name,
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "must be an integer from {} to {}",
                range.start(),
                range.end()
            ))
        },
    )
}

/// `max_groups`, when given.
fn read_max_groups(r: &mut FieldReader<'_>) -> Option<Option<u32>> {
    if !r.contains("max_groups") {
        return Some(None);
    }
    let value = bounded(r, "max_groups", &MAX_GROUPS)?;
    u32::try_from(value).ok().map(Some)
}

pub struct PutTeam {
    name: String,
    change: TeamChange,
}

impl Input for PutTeam {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let name = team_in_path(parts);
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let phone_numbers = r.required_array("phone_numbers").map(|items| {
            super::parse_list(
                r.errors,
                "phone_numbers",
                items,
                TEAM_NUMBERS,
                PhoneNumberId::parse,
                |pn| pn.clone(),
            )
        });
        let admin = if r.contains("admin") {
            r.optional_bool("admin")
        } else {
            Some(false)
        };
        let rate_limit = read_rate_limit(&mut r);
        let max_groups = read_max_groups(&mut r);
        r.deny_unknown(&["phone_numbers", "admin", "rate_limit", "max_groups"]);
        Ok((|| {
            Some(PutTeam {
                name,
                change: TeamChange {
                    phone_numbers: phone_numbers?,
                    admin: admin?,
                    rate_limit: rate_limit?,
                    max_groups: max_groups?,
                },
            })
        })())
    }
}

pub struct PutPhoneNumber {
    pn: PhoneNumberId,
    change: NumberChange,
}

/// An access token travels in an `Authorization` header: visible ASCII only.
fn access_token(raw: &str) -> Result<String, String> {
    let ok = TOKEN_BYTES.contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "must be {}-{} visible ASCII characters (no spaces)",
            TOKEN_BYTES.start(),
            TOKEN_BYTES.end()
        ))
    }
}

impl Input for PutPhoneNumber {
    const BODY: BodyKind = BodyKind::Json;

    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let pn = errors.check(
            "phone_number_id",
            PhoneNumberId::parse(parts.path("phone_number_id").unwrap_or_default()),
        );
        let body = JsonObject::parse(parts.req, &parts.body, errors)?;
        let mut r = body.reader(errors);
        let token = r.required_parsed("access_token", access_token);
        let rate_limit = read_rate_limit(&mut r);
        let max_groups = read_max_groups(&mut r);
        r.deny_unknown(&["access_token", "rate_limit", "max_groups"]);
        Ok((|| {
            Some(PutPhoneNumber {
                pn: pn?,
                change: NumberChange {
                    access_token: token?.into(),
                    rate_limit: rate_limit?,
                    max_groups: max_groups?,
                },
            })
        })())
    }
}

fn created_or_replaced(put: Put) -> HttpResponse {
    match put {
        Put::Created => HttpResponse::Created().finish(),
        Put::Replaced => HttpResponse::Ok().finish(),
    }
}

fn outcome(put: Put) -> &'static str {
    match put {
        Put::Created => "created",
        Put::Replaced => "replaced",
    }
}

// ---- handlers -------------------------------------------------------------------------------

/// Every team in force: those of configuration (`source: config`, read-only here) and those
/// made through this API (`source: api`). Needs an admin token without `phone_numbers`.
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "The teams", body = TeamList),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/teams")]
pub async fn admin_list_teams(
    _call: Authorized<UnnarrowedAdmin, NoInput>,
    registry: web::Data<Registry>,
) -> web::Json<TeamList> {
    let platform = registry.directory().current();
    web::Json(TeamList {
        teams: platform
            .teams
            .iter()
            .map(|(name, entry)| TeamInfo::of(name, entry))
            .collect(),
    })
}

/// Create or replace a team (the whole entry: a field left out takes its default). In force
/// at once on this replica and within a second on every other. Each phone number must be
/// known to the gateway (400 naming `phone_numbers[i]`). A team of configuration is
/// read-only (409).
#[utoipa::path(
    tag = "admin",
    params(TeamPath),
    request_body = PutTeamBody,
    responses(
        (status = 201, description = "Created", body = TeamInfo),
        (status = 200, description = "Replaced", body = TeamInfo),
        (status = 409, description = "The team is defined in configuration", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals, BodyRefusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[put("/admin/teams/{team}")]
pub async fn admin_put_team(
    call: Authorized<UnnarrowedAdmin, PutTeam>,
    registry: web::Data<Registry>,
) -> Result<HttpResponse, ApiError> {
    let PutTeam { name, change } = call.input;
    context::note_detail("team", name.as_str());
    let numbers: Vec<String> = change.phone_numbers.iter().map(|p| p.to_string()).collect();
    let put = registry.put_team(&name, change.clone()).await?;
    context::note_detail(
        "change",
        json!({"outcome": outcome(put), "phone_numbers": numbers, "admin": change.admin,
               "rate_limit": change.rate_limit.as_ref().map(|r| json!({"per_second": r.per_second, "burst": r.burst})),
               "max_groups": change.max_groups}),
    );
    tracing::info!(
        team = name,
        outcome = outcome(put),
        by = call.principal.team,
        "team stored"
    );
    let platform = registry.directory().current();
    let mut answer = created_or_replaced(put);
    if let Some(entry) = platform.teams.get(&name) {
        answer = match put {
            Put::Created => HttpResponse::Created().json(TeamInfo::of(&name, entry)),
            Put::Replaced => HttpResponse::Ok().json(TeamInfo::of(&name, entry)),
        };
    }
    Ok(answer)
}

/// Delete a team made through the API: its tokens are refused (401) at once on this replica
/// and within a second on every other. Its groups stay in the registry, listed by admin and
/// adoptable. A team of configuration is read-only (409).
#[utoipa::path(
    tag = "admin",
    params(TeamPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The team is defined in configuration", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[delete("/admin/teams/{team}")]
pub async fn admin_delete_team(
    call: Authorized<UnnarrowedAdmin, TeamInPath>,
    registry: web::Data<Registry>,
) -> Result<HttpResponse, ApiError> {
    let name = &call.input.0;
    context::note_detail("team", name.as_str());
    registry.delete_team(name).await?;
    context::note_detail("change", json!({"outcome": "deleted"}));
    tracing::info!(team = name, by = call.principal.team, "team deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Every phone number in force, with the fingerprint of its access token (never the token)
/// and the teams granted it. Needs an admin token without `phone_numbers`.
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, description = "The phone numbers", body = PhoneNumberList),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/phone-numbers")]
pub async fn admin_list_phone_numbers(
    _call: Authorized<UnnarrowedAdmin, NoInput>,
    registry: web::Data<Registry>,
) -> web::Json<PhoneNumberList> {
    let platform = registry.directory().current();
    web::Json(PhoneNumberList {
        phone_numbers: platform
            .numbers
            .iter()
            .map(|(pn, entry)| PhoneNumberInfo::of(&platform, pn, entry))
            .collect(),
    })
}

/// Create or replace a phone number and its access token. The token is stored encrypted
/// (AES-256-GCM under `storage.encryption_key`; without a key, 409 naming it) and never
/// returned: `token_fingerprint` tells which one is in use. The next call to Meta on this
/// number, on any replica within a second, uses it. A number of configuration is read-only
/// (409).
#[utoipa::path(
    tag = "admin",
    params(crate::routes::params::PhoneNumberPath),
    request_body = PutPhoneNumberBody,
    responses(
        (status = 201, description = "Created", body = PhoneNumberInfo),
        (status = 200, description = "Replaced", body = PhoneNumberInfo),
        (status = 409, description = "The number is defined in configuration, or no storage.encryption_key is set", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals, BodyRefusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[put("/admin/phone-numbers/{phone_number_id}")]
pub async fn admin_put_phone_number(
    call: Authorized<UnnarrowedAdmin, PutPhoneNumber>,
    registry: web::Data<Registry>,
) -> Result<HttpResponse, ApiError> {
    let PutPhoneNumber { pn, change } = call.input;
    let rate_limit = change
        .rate_limit
        .as_ref()
        .map(|r| json!({"per_second": r.per_second, "burst": r.burst}));
    let max_groups = change.max_groups;
    let (put, fingerprint) = registry.put_number(&pn, change).await?;
    context::note_detail(
        "change",
        json!({"outcome": outcome(put), "token_fingerprint": fingerprint,
               "rate_limit": rate_limit, "max_groups": max_groups}),
    );
    tracing::info!(phone_number_id = %pn, token_fingerprint = fingerprint, outcome = outcome(put), by = call.principal.team, "phone number stored");
    let platform = registry.directory().current();
    Ok(match platform.numbers.get(&pn) {
        Some(entry) => {
            let info = PhoneNumberInfo::of(&platform, &pn, entry);
            match put {
                Put::Created => HttpResponse::Created().json(info),
                Put::Replaced => HttpResponse::Ok().json(info),
            }
        }
        None => created_or_replaced(put),
    })
}

/// Delete a phone number made through the API. A number still granted to a team is a 409
/// naming the teams; a number of configuration is read-only (409).
#[utoipa::path(
    tag = "admin",
    params(crate::routes::params::PhoneNumberPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "The number is defined in configuration, or still granted to teams (named)", body = crate::error::Problem, content_type = "application/problem+json"),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[delete("/admin/phone-numbers/{phone_number_id}")]
pub async fn admin_delete_phone_number(
    call: Authorized<UnnarrowedAdmin, NumberInPath>,
    registry: web::Data<Registry>,
) -> Result<HttpResponse, ApiError> {
    let pn = &call.input.0;
    registry.delete_number(pn).await?;
    context::note_detail("change", json!({"outcome": "deleted"}));
    tracing::info!(phone_number_id = %pn, by = call.principal.team, "phone number deleted");
    Ok(HttpResponse::NoContent().finish())
}
