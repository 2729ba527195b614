//! `/sandbox/groups/…`: the WhatsApp users' side and WhatsApp's own actions, which no Graph
//! call can cause (joining by link, leaving, writing in a group, suspension), plus views of
//! the simulated state.
//! Errors here are the gateway's problem+json: these routes are the sandbox's, not Meta's.

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::SandboxState;
use super::state::{JoinOutcome, LeaveOutcome};
use crate::domain::{FieldErrors, MessageText, ParticipantId};
use crate::error::ApiError;
use crate::routes::{JsonObject, finish};

/// Short names, so that each handler's signature fits on one line.
type State = web::Data<SandboxState>;
type Answer = Result<HttpResponse, ApiError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(help))
        .route("/", web::get().to(help))
        .route("/groups", web::get().to(list_groups))
        .route("/groups/{group_id}", web::get().to(inspect_group))
        .route("/groups/{group_id}/join", web::post().to(join))
        .route("/groups/{group_id}/leave", web::post().to(leave))
        .route("/groups/{group_id}/messages", web::post().to(write_message))
        .route("/groups/{group_id}/suspend", web::post().to(suspend))
        .route("/groups/{group_id}/unsuspend", web::post().to(unsuspend))
        .route(
            "/phone-numbers/{phone_number_id}/throttle",
            web::post().to(throttle),
        )
        .route("/webhooks", web::get().to(webhooks));
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `{wa_id}` (and, for joins, an optional `invite_link`), every broken field reported.
fn user_body(
    req: &HttpRequest,
    body: &[u8],
    with_link: bool,
) -> Result<(ParticipantId, Option<String>), ApiError> {
    let mut errors = FieldErrors::new();
    let parsed = JsonObject::parse(req, body, &mut errors)?;
    let mut r = parsed.reader(&mut errors);
    let wa_id = r.required_parsed("wa_id", ParticipantId::parse);
    let link = if with_link {
        r.optional_str("invite_link").map(str::to_owned)
    } else {
        None
    };
    let known: &[&str] = if with_link {
        &["wa_id", "invite_link"]
    } else {
        &["wa_id"]
    };
    r.deny_unknown(known);
    finish(errors)?;
    let wa_id = wa_id.ok_or_else(|| ApiError::Internal("validated wa_id missing".into()))?;
    Ok((wa_id, link))
}

/// What the sandbox offers, for whoever opens `/sandbox` in a browser.
async fn help(state: State) -> HttpResponse {
    let v = state.api_version();
    HttpResponse::Ok().json(json!({
        "sandbox": "a simulation of Meta's WhatsApp Groups API (DESIGN §10)",
        "phone_numbers": state.phone_numbers().collect::<Vec<_>>(),
        "graph": format!("/sandbox/graph/{v}/… (Authorization: Bearer <the phone number's access token>)"),
        "users_side": {
            "POST /sandbox/groups/{group_id}/join": "{\"wa_id\": \"16505551234\", \"invite_link\"?: \"https://chat.whatsapp.com/…\"} joins, or files a join request when approval is required",
            "POST /sandbox/groups/{group_id}/leave": "{\"wa_id\": \"16505551234\"} leaves, or withdraws a pending join request",
            "POST /sandbox/groups/{group_id}/messages": "{\"wa_id\": \"16505551234\", \"text\": \"Hello!\"} a participant writes in the group; Meta's messages webhook follows",
            "POST /sandbox/groups/{group_id}/suspend": "WhatsApp suspends the group",
            "POST /sandbox/groups/{group_id}/unsuspend": "WhatsApp lifts the suspension",
            "POST /sandbox/phone-numbers/{phone_number_id}/throttle": "{\"minutes\"?: 1} Meta answers 131208 (too many group operations) to the number's group operations for that long, as it does to a number driven too fast",
        },
        "inspect": {
            "GET /sandbox/groups": "every simulated group (?phone_number_id= to filter)",
            "GET /sandbox/groups/{group_id}": "one group: participants, join requests, invite link, removed users…",
            "GET /sandbox/webhooks": "the webhooks sent recently, with their delivery",
        },
    }))
}

async fn list_groups(state: State, req: HttpRequest) -> HttpResponse {
    let pn =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("phone_number_id").cloned());
    let groups = state.world().summaries(pn.as_deref());
    HttpResponse::Ok().json(json!({ "groups": groups }))
}

async fn inspect_group(state: State, path: web::Path<String>) -> Answer {
    state
        .world()
        .inspect(&path)
        .map(|group| HttpResponse::Ok().json(group))
        .ok_or_else(|| ApiError::NotFound(format!("the sandbox has no group {path}")))
}

/// A user taps the invite link. With `invite_link`, an old (reset) link is refused.
async fn join(state: State, req: HttpRequest, path: web::Path<String>, body: Bytes) -> Answer {
    let (wa_id, link) = user_body(&req, &body, true)?;
    let mut world = state.world();
    let (outcome, event) = world.join(&path, wa_id.as_ref(), link.as_deref(), now())?;
    state.emitter().emit(event);
    let group = world.inspect(&path).unwrap_or_default();
    drop(world);
    let wa_id = wa_id.as_ref().trim_start_matches('+');
    Ok(match outcome {
        JoinOutcome::Joined => HttpResponse::Ok().json(json!({
            "outcome": "joined",
            "group_id": path.as_str(),
            "wa_id": wa_id,
            "participants": group["participants"],
        })),
        JoinOutcome::Requested(join_request_id) => HttpResponse::Accepted().json(json!({
            "outcome": "join_request_created",
            "group_id": path.as_str(),
            "wa_id": wa_id,
            "join_request_id": join_request_id,
        })),
    })
}

/// `{wa_id, text}`: a participant writes in the group. Meta's `messages` webhook follows,
/// and the gateway turns it into a `group.message_received` event of the owning team.
async fn write_message(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
) -> Answer {
    let mut errors = FieldErrors::new();
    let parsed = JsonObject::parse(&req, &body, &mut errors)?;
    let mut r = parsed.reader(&mut errors);
    let wa_id = r.required_parsed("wa_id", ParticipantId::parse);
    let text = r.required_parsed("text", MessageText::parse);
    r.deny_unknown(&["wa_id", "text"]);
    finish(errors)?;
    let (Some(wa_id), Some(text)) = (wa_id, text) else {
        return Err(ApiError::Internal("validated message missing".into()));
    };
    let mut world = state.world();
    let (message_id, event) = world.write(&path, wa_id.as_ref(), text.as_ref(), now())?;
    state.emitter().emit(event);
    drop(world);
    Ok(HttpResponse::Ok().json(json!({
        "outcome": "sent",
        "group_id": path.as_str(),
        "wa_id": wa_id.digits(),
        "message_id": message_id,
    })))
}

/// A participant leaves; someone still waiting for approval withdraws the request.
async fn leave(state: State, req: HttpRequest, path: web::Path<String>, body: Bytes) -> Answer {
    let (wa_id, _) = user_body(&req, &body, false)?;
    let mut world = state.world();
    let (outcome, event) = world.leave(&path, wa_id.as_ref(), now())?;
    state.emitter().emit(event);
    drop(world);
    let wa_id = wa_id.as_ref().trim_start_matches('+');
    Ok(HttpResponse::Ok().json(match outcome {
        LeaveOutcome::Left => {
            json!({ "outcome": "left", "group_id": path.as_str(), "wa_id": wa_id })
        }
        LeaveOutcome::RequestRevoked(id) => json!({
            "outcome": "join_request_revoked",
            "group_id": path.as_str(),
            "wa_id": wa_id,
            "join_request_id": id,
        }),
    }))
}

async fn suspend(state: State, path: web::Path<String>) -> Answer {
    set_suspended(&state, &path, true)
}

async fn unsuspend(state: State, path: web::Path<String>) -> Answer {
    set_suspended(&state, &path, false)
}

/// Idempotent; a webhook is sent only when the state changes.
fn set_suspended(state: &SandboxState, group_id: &str, suspended: bool) -> Answer {
    let mut world = state.world();
    let changed = match world.set_suspended(group_id, suspended, now())? {
        Some(event) => {
            state.emitter().emit(event);
            true
        }
        None => false,
    };
    Ok(HttpResponse::Ok().json(json!({
        "group_id": group_id,
        "suspended": suspended,
        "changed": changed,
    })))
}

async fn webhooks(state: State) -> HttpResponse {
    HttpResponse::Ok().json(state.emitter().recent())
}

/// Meta throttles a number's group operations (131208) for `minutes` (default 1, at most 60).
async fn throttle(state: State, req: HttpRequest, path: web::Path<String>, body: Bytes) -> Answer {
    let pn = path.into_inner();
    if !state.phone_numbers().any(|n| n == pn) {
        return Err(ApiError::NotFound(format!(
            "the sandbox has no phone number {pn}"
        )));
    }
    let mut errors = FieldErrors::new();
    let minutes = if body.is_empty() {
        1
    } else {
        let parsed = JsonObject::parse(&req, &body, &mut errors)?;
        let mut r = parsed.reader(&mut errors);
        let minutes = r.optional_u64("minutes");
        if minutes.is_some_and(|m| !(1..=60).contains(&m)) {
            r.errors.push("minutes", "must be an integer from 1 to 60");
        }
        r.deny_unknown(&["minutes"]);
        finish(errors)?;
        minutes.unwrap_or(1)
    };
    state.throttle(&pn, minutes);
    Ok(HttpResponse::Ok().json(json!({ "phone_number_id": pn, "throttled_minutes": minutes })))
}
