//! `GET /v1/events`: the team's group events, oldest first.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::scope::GroupsRead;
use super::extract::{Authorized, Input, Parts};
use super::params::FeedPaging;
use super::responses::Refusals;
use crate::domain::events::TeamEvent;
use crate::domain::{FeedPosition, FieldErrors, PageLimit, decode_position, encode_position};
use crate::error::ApiError;
use crate::services::events::Feed;

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
    Position(FeedPosition),
    Event(String),
}

fn parse_after(raw: &str) -> Result<After, String> {
    let is_event_id = raw.strip_prefix("evt_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if is_event_id {
        return Ok(After::Event(raw.to_owned()));
    }
    decode_position(raw)
        .map(After::Position)
        .map_err(|_| "is neither a cursor from paging.after nor an event id".to_owned())
}

/// A page request of a feed: `limit` and where to start.
pub struct FeedQuery {
    limit: u32,
    after: After,
}

impl Input for FeedQuery {
    const QUERY: &'static [&'static str] = &["limit", "after"];
    fn parse(parts: &Parts<'_>, errors: &mut FieldErrors) -> Result<Option<Self>, ApiError> {
        let limit = errors.check("limit", PageLimit::LOG.parse(parts.query("limit")));
        let after = match parts.query("after") {
            None => Some(After::Start),
            Some(raw) => errors.check("after", parse_after(raw)),
        };
        Ok(limit
            .zip(after)
            .map(|(limit, after)| FeedQuery { limit, after }))
    }
}

impl FeedQuery {
    /// The seq to read after; an event id is a place in the team's own feed.
    async fn position(&self, feed: &Feed, team: &str) -> Result<FeedPosition, ApiError> {
        match &self.after {
            After::Start => Ok(FeedPosition::default()),
            After::Position(position) => Ok(*position),
            After::Event(id) => feed
                .position_of(team, id)
                .await?
                .ok_or_else(|| ApiError::field("after", "is not an event of this team")),
        }
    }
}

pub(crate) fn event_list(page: crate::storage::EventPage) -> EventList {
    EventList {
        events: page.events,
        paging: EventPaging {
            after: page.more_after.map(encode_position),
        },
    }
}

/// The caller's group events, oldest first, on the phone numbers the token may use. Each is
/// also pushed to the team's webhook when one is configured. Events of groups no team owns
/// are shown to nobody.
#[utoipa::path(
    tag = "events",
    params(FeedPaging),
    responses(
        (status = 200, description = "One page of the team's events", body = EventList),
        Refusals,
    ),
    security(("bearer" = ["groups:read"]))
)]
#[get("/events")]
pub async fn list_events(
    call: Authorized<GroupsRead, FeedQuery>,
    feed: web::Data<Feed>,
) -> Result<web::Json<EventList>, ApiError> {
    let principal = &call.principal;
    let after = call.input.position(&feed, &principal.team).await?;
    let page = feed
        .team_events(
            &principal.team,
            principal.numbers(),
            after,
            call.input.limit,
        )
        .await?;
    Ok(web::Json(event_list(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_takes_cursors_and_event_ids_only() {
        assert!(matches!(
            parse_after(&crate::domain::encode_cursor(7)),
            Ok(After::Position(FeedPosition { tx: 0, seq: 7 }))
        ));
        assert!(matches!(
            parse_after("evt_0123456789abcdef0123456789abcdef"),
            Ok(After::Event(_))
        ));
        assert!(parse_after("evt_").is_err());
        assert!(parse_after("evt_../x").is_err());
        assert!(parse_after("7").is_err());
    }
}
