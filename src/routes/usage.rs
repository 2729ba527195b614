//! `GET /v1/usage` and `GET /v1/admin/usage` (DESIGN §15, "Usage"): the billable messages of
//! Meta's message statuses, per team, UTC day, phone number and category, each message
//! counted once.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::IntoParams;
use utoipa::ToSchema;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

use super::extract::scope::{GroupsRead, UnnarrowedAdmin};
use super::extract::{Authorized, Input, Parts};
use super::responses::Refusals;
use crate::domain::{FieldErrors, TeamName};
use crate::error::ApiError;
use crate::storage::{Storage, UsageFilter, UsageRow};

/// Days one request may span.
const MAX_DAYS: i64 = 366;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"from": "2026-12-01", "to": "2026-12-31", "usage": [{"day": "2026-12-01", "phone_number_id": "12784358810", "category": "group_marketing", "billable_messages": 42}]}))]
pub struct Usage {
    pub from: String,
    pub to: String,
    /// Per day, phone number and category; days with nothing billable are absent.
    pub usage: Vec<TeamUsageRow>,
}

/// Billable messages of the team on one day, phone number and category.
#[derive(Serialize, ToSchema)]
pub struct TeamUsageRow {
    pub day: String,
    pub phone_number_id: String,
    /// Meta's pricing category (`group_marketing`, `group_utility`, `group_service`, …).
    pub category: String,
    pub billable_messages: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUsage {
    pub from: String,
    pub to: String,
    /// Per team, day, phone number and category.
    pub usage: Vec<UsageRow>,
}

/// `from` and `to` (`YYYY-MM-DD`, UTC, both included), and an administrator's `team`.
pub struct UsageQuery {
    from: String,
    to: String,
    team: Option<String>,
}

fn day(errors: &mut FieldErrors, name: &str, raw: Option<&str>) -> Option<chrono::NaiveDate> {
    match raw {
        None => {
            errors.push(name, "is required (YYYY-MM-DD)");
            None
        }
        Some(raw) => errors.check(
            name,
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .filter(|_| raw.len() == 10)
                .ok_or_else(|| "must be a date YYYY-MM-DD".to_owned()),
        ),
    }
}

fn parse_range(parts: &Parts<'_>, errors: &mut FieldErrors) -> Option<(String, String)> {
    let from = day(errors, "from", parts.query("from"));
    let to = day(errors, "to", parts.query("to"));
    let (from, to) = from.zip(to)?;
    if to < from {
        errors.push("to", "must not be before from");
        return None;
    }
    if (to - from).num_days() >= MAX_DAYS {
        errors.push("to", format!("must be at most {MAX_DAYS} days after from"));
        return None;
    }
    Some((from.to_string(), to.to_string()))
}

impl Input for UsageQuery {
    const QUERY: &'static [&'static str] = &["from", "to"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        Ok(parse_range(parts, errors).map(|(from, to)| UsageQuery {
            from,
            to,
            team: None,
        }))
    }
}

pub struct AdminUsageQuery(UsageQuery);

impl Input for AdminUsageQuery {
    const QUERY: &'static [&'static str] = &["from", "to", "team"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let team = parts
            .query("team")
            .and_then(|t| errors.check("team", TeamName::parse(t)))
            .map(|t| t.to_string());
        Ok(parse_range(parts, errors)
            .map(|(from, to)| AdminUsageQuery(UsageQuery { from, to, team })))
    }
}

fn date_param(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        ))
        .build()
}

/// Documents `from` and `to`.
pub struct UsageRange;

impl IntoParams for UsageRange {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            date_param("from", "First UTC day (YYYY-MM-DD), included"),
            date_param(
                "to",
                "Last UTC day (YYYY-MM-DD), included; at most 366 days after from",
            ),
        ]
    }
}

/// Documents an administrator's `team` filter.
pub struct TeamFilter;

impl IntoParams for TeamFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("team")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some("Only this team's usage"))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}

async fn read(
    storage: &Storage,
    q: &UsageQuery,
    team: Option<&str>,
) -> Result<Vec<UsageRow>, ApiError> {
    let filter = UsageFilter {
        from: &q.from,
        to: &q.to,
        team,
    };
    Ok(storage.usage.usage(&filter).await?)
}

/// The team's billable messages (Meta's pricing in its message statuses) per UTC day, phone
/// number and category, each message counted once whatever statuses Meta sends for it. A
/// token narrowed by `phone_numbers` sees those numbers only.
#[utoipa::path(
    tag = "usage",
    params(UsageRange),
    responses(
        (status = 200, description = "The team's billable messages", body = Usage),
        Refusals,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/usage")]
pub async fn get_usage(
    call: Authorized<GroupsRead, UsageQuery>,
    storage: web::Data<Storage>,
) -> Result<web::Json<Usage>, ApiError> {
    let (principal, q) = (&call.principal, &call.input);
    let numbers = principal.numbers();
    let usage = read(&storage, q, Some(&principal.team))
        .await?
        .into_iter()
        .filter(|row| numbers.iter().any(|n| n.as_ref() == row.phone_number_id))
        .map(|row| TeamUsageRow {
            day: row.day,
            phone_number_id: row.phone_number_id,
            category: row.category,
            billable_messages: row.billable_messages,
        })
        .collect();
    Ok(web::Json(Usage {
        from: q.from.clone(),
        to: q.to.clone(),
        usage,
    }))
}

/// Every team's billable messages per UTC day, phone number and category (`team` null for
/// groups no team owns), so a platform team can charge each team for what it sent. Needs an
/// admin token without `phone_numbers` (403).
#[utoipa::path(
    tag = "admin",
    params(UsageRange, TeamFilter),
    responses(
        (status = 200, description = "Billable messages per team", body = AdminUsage),
        Refusals,
    ),
    security(("bearer" = ["admin"]))
)]
#[get("/admin/usage")]
pub async fn admin_get_usage(
    call: Authorized<UnnarrowedAdmin, AdminUsageQuery>,
    storage: web::Data<Storage>,
) -> Result<web::Json<AdminUsage>, ApiError> {
    let q = &call.input.0;
    Ok(web::Json(AdminUsage {
        from: q.from.clone(),
        to: q.to.clone(),
        usage: read(&storage, q, q.team.as_deref()).await?,
    }))
}
