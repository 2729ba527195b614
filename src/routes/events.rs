//! `GET /v1/events`: the team's group events, oldest first.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{QueryMap, finish};
use crate::auth::{Principal, Scope};
use crate::domain::{FieldErrors, parse_limit};
use crate::error::{ApiError, Problem};
use crate::events::{EventStore, TeamEvent};
use crate::registry::{Registry, decode_cursor, encode_cursor};

#[derive(Serialize, ToSchema)]
pub struct EventPaging {
    /// Present when more events follow: pass it as `after` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"events": [{
    "id": "evt_3f1c2a7e0d1b4a559a439b2f4f9f3c10",
    "type": "group.created",
    "occurred_at": "2026-11-26T10:15:00Z",
    "phone_number_id": "12784358810",
    "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
    "request_id": "req_3f1c2a7e0d1b4a559a439b2f4f9f3c10",
    "data": {"subject": "New Purchase Inquiry", "invite_link": "https://chat.whatsapp.com/LINK_ID", "join_approval_mode": "auto_approve"}
}], "paging": {"after": "c2VxOjQy"}}))]
pub struct EventList {
    pub events: Vec<TeamEvent>,
    pub paging: EventPaging,
}

/// Where a page starts: after a cursor this gateway issued, or after one of the team's
/// events named by its id (how a consumer resumes from the last event it handled).
enum After {
    Start,
    Seq(i64),
    Event(String),
}

fn parse_after(raw: &str) -> Result<After, String> {
    let is_event_id = raw.strip_prefix("evt_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if is_event_id {
        return Ok(After::Event(raw.to_owned()));
    }
    decode_cursor(raw)
        .map(After::Seq)
        .map_err(|_| "is neither a cursor from paging.after nor an event id".to_owned())
}

/// The caller's group events, oldest first, on the phone numbers the token may use. Each is
/// also pushed to the team's webhook when one is configured. Events of groups no team owns
/// are shown to nobody.
#[utoipa::path(
    tag = "events",
    operation_id = "list_events",
    params(
        ("limit" = Option<u32>, Query, description = "1–1000, default 100", minimum = 1, maximum = 1000),
        ("after" = Option<String>, Query, description = "`paging.after` of the previous page, or the `id` of the last event already handled"),
    ),
    responses(
        (status = 200, description = "One page of the team's events", body = EventList),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope not granted", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/events")]
pub async fn list_events(
    principal: Principal,
    q: web::Query<QueryMap>,
    registry: web::Data<Registry>,
) -> Result<web::Json<EventList>, ApiError> {
    let mut errors = FieldErrors::new();
    let limit = errors.check(
        "limit",
        parse_limit(q.get("limit").map(String::as_str), 1, 1000, 100),
    );
    let after = match q.get("after") {
        None => Some(After::Start),
        Some(raw) => errors.check("after", parse_after(raw)),
    };
    finish(errors)?;
    let (Some(limit), Some(after)) = (limit, after) else {
        return Err(ApiError::Internal("validated input missing".into()));
    };
    principal.require(Scope::GroupsRead)?;
    let store = EventStore::new(registry.pool().clone());
    let after = match after {
        After::Start => 0,
        After::Seq(seq) => seq,
        After::Event(id) => store.seq_of(&principal.team, &id).await?.ok_or_else(|| {
            ApiError::fields(vec![crate::domain::FieldError {
                field: "after".into(),
                message: "is not an event of this team".into(),
            }])
        })?,
    };
    let numbers: Vec<String> = principal
        .numbers()
        .iter()
        .map(|n| n.as_ref().to_owned())
        .collect();
    let page = store.list(&principal.team, &numbers, after, limit).await?;
    Ok(web::Json(EventList {
        events: page.events,
        paging: EventPaging {
            after: page.more_after.map(encode_cursor),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_takes_cursors_and_event_ids_only() {
        assert!(matches!(parse_after(&encode_cursor(7)), Ok(After::Seq(7))));
        assert!(matches!(
            parse_after("evt_0123456789abcdef0123456789abcdef"),
            Ok(After::Event(_))
        ));
        assert!(parse_after("evt_").is_err());
        assert!(parse_after("evt_../x").is_err());
        assert!(parse_after("7").is_err());
    }
}
