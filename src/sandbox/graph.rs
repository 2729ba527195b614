//! `/sandbox/graph/{version}/…`: exactly the Graph calls the gateway's Graph client makes
//! (`graph/operations.rs`), answered as Meta answers them.

use std::collections::HashMap;

use actix_web::http::{Method, header};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::SandboxState;
use super::ids;
use super::meta::MetaFailure;
use super::state::{ApprovalMode, MAX_PICTURE_BYTES, Page, PageQuery, SettingsChange};

/// Text parts of a multipart settings update (subject, description) are small.
const TEXT_PART_LIMIT: usize = 16 * 1024;

type Answer = Result<HttpResponse, MetaFailure>;

/// What every handler is handed, named short so that most signatures fit on one line: the
/// simulation, and the path's `{version}` and `{node}` (a phone number or a group id).
type State = web::Data<SandboxState>;
type GraphPath = web::Path<(String, String)>;

pub fn scope() -> actix_web::Scope {
    web::scope("/graph/{version}")
        .service(resource(
            "/{node}/groups",
            [web::get().to(list_groups), web::post().to(create_group)],
        ))
        .service(resource("/{node}/messages", [web::post().to(send_message)]))
        .service(resource(
            "/{node}/invite_link",
            [
                web::get().to(get_invite_link),
                web::post().to(reset_invite_link),
            ],
        ))
        .service(resource(
            "/{node}/join_requests",
            [
                web::get().to(list_join_requests),
                web::post().to(decide_join_requests),
                web::delete().to(decide_join_requests),
            ],
        ))
        .service(resource(
            "/{node}/participants",
            [web::delete().to(remove_participants)],
        ))
        .service(resource(
            "/{node}",
            [
                web::get().to(get_group),
                web::post().to(update_group),
                web::delete().to(delete_group),
            ],
        ))
        .default_service(web::to(unsupported))
}

/// A Graph path and the methods it serves. Any other method on it is answered like an unknown
/// path (`unsupported`), as Graph does, rather than with actix's bare 405.
fn resource<const N: usize>(path: &str, routes: [actix_web::Route; N]) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), actix_web::Resource::route)
        .default_service(web::to(unsupported))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

// ---- what every call checks ----------------------------------------------------------

/// The access token: `Authorization: Bearer …`, or `access_token` in the query as Meta's own
/// curl samples send it.
fn access_token(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    query(req).ok()?.remove("access_token")
}

/// The phone numbers the caller's token serves; none is Graph's 190.
fn caller(state: &SandboxState, req: &HttpRequest) -> Result<Vec<String>, MetaFailure> {
    let token = access_token(req)
        .filter(|t| !t.is_empty())
        .ok_or_else(MetaFailure::invalid_token)?;
    let numbers = state.numbers_of_token(&token);
    if numbers.is_empty() {
        Err(MetaFailure::invalid_token())
    } else {
        Ok(numbers)
    }
}

/// The version must look like one (`v23.0`); the simulation serves them all alike.
fn check_version(version: &str) -> Result<(), MetaFailure> {
    let ok = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
    if ok {
        Ok(())
    } else {
        Err(MetaFailure::invalid_parameter(format!(
            "unknown API version {version:?}"
        )))
    }
}

/// A call on a phone number (`/{pn}/…`): checks the version and the token, which must serve
/// the number; returns the number.
fn number_call(
    state: &SandboxState,
    req: &HttpRequest,
    path: GraphPath,
) -> Result<String, MetaFailure> {
    let (version, pn) = path.into_inner();
    check_version(&version)?;
    if !caller(state, req)?.contains(&pn) {
        return Err(MetaFailure::unsupported(req.method().as_str(), &pn));
    }
    Ok(pn)
}

/// A call on a group (`/{group_id}…`): checks the version and the token; returns the phone
/// numbers the token serves (the group must belong to one of them) and the group id.
fn group_call(
    state: &SandboxState,
    req: &HttpRequest,
    path: GraphPath,
) -> Result<(Vec<String>, String), MetaFailure> {
    let (version, group_id) = path.into_inner();
    check_version(&version)?;
    let numbers = caller(state, req)?;
    // Every call on a group is a group operation of its number (Meta's 131208 pace).
    let number = state.world().number_of_group(&numbers, &group_id);
    if let Some(pn) = number {
        state.pace(&pn)?;
    }
    Ok((numbers, group_id))
}

fn query(req: &HttpRequest) -> Result<HashMap<String, String>, MetaFailure> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| MetaFailure::invalid_parameter(format!("malformed query string: {e}")))
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, MetaFailure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(MetaFailure::invalid_parameter(
            "the body must be a JSON object",
        )),
    }
}

/// Meta requires `messaging_product: "whatsapp"` on these calls; the gateway always sends it.
fn require_whatsapp(body: &Map<String, Value>) -> Result<(), MetaFailure> {
    match body.get("messaging_product") {
        Some(Value::String(s)) if s == "whatsapp" => Ok(()),
        Some(other) => Err(MetaFailure::invalid_parameter(format!(
            "messaging_product must be \"whatsapp\", not {other}"
        ))),
        None => Err(MetaFailure::invalid_parameter(
            "The parameter messaging_product is required",
        )),
    }
}

/// The JSON body of a call that must say `messaging_product: "whatsapp"`.
fn whatsapp_body(body: &[u8]) -> Result<Map<String, Value>, MetaFailure> {
    let body = json_body(body)?;
    require_whatsapp(&body)?;
    Ok(body)
}

fn optional_str<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, MetaFailure> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(MetaFailure::invalid_parameter(format!(
            "{name} must be a string"
        ))),
    }
}

fn required_str<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, MetaFailure> {
    optional_str(body, name)?
        .ok_or_else(|| MetaFailure::invalid_parameter(format!("The parameter {name} is required")))
}

fn page_query(req: &HttpRequest) -> Result<PageQuery, MetaFailure> {
    let q = query(req)?;
    let get = |k: &str| q.get(k).map(String::as_str);
    PageQuery::parse(get("limit"), get("after"), get("before"))
}

/// Graph's `paging`: both cursors, and `next`/`previous` only where there is such a page.
fn paging(req: &HttpRequest, page: &Page, limit: usize) -> Value {
    let before = ids::cursor(page.range.start);
    let after = ids::cursor(page.range.end);
    let info = req.connection_info();
    let base = format!("{}://{}{}", info.scheme(), info.host(), req.path());
    let mut paging = json!({ "cursors": { "before": before, "after": after } });
    if page.range.end < page.total {
        paging["next"] = json!(format!("{base}?limit={limit}&after={after}"));
    }
    if page.range.start > 0 {
        paging["previous"] = json!(format!("{base}?limit={limit}&before={before}"));
    }
    paging
}

fn accepted(request_id: String) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "request_id": request_id }))
}

/// Unknown paths and methods, as Graph answers them.
async fn unsupported(req: HttpRequest) -> Answer {
    let object = req
        .match_info()
        .get("node")
        .unwrap_or(req.path())
        .to_owned();
    Err(MetaFailure::unsupported(req.method().as_str(), &object))
}

// ---- /{pn}/groups --------------------------------------------------------------------

async fn create_group(state: State, req: HttpRequest, path: GraphPath, body: Bytes) -> Answer {
    let pn = number_call(&state, &req, path)?;
    state.pace(&pn)?;
    let body = whatsapp_body(&body)?;
    let subject = required_str(&body, "subject")?;
    let description = optional_str(&body, "description")?;
    let mode = optional_str(&body, "join_approval_mode")?
        .map(ApprovalMode::parse)
        .transpose()?
        .unwrap_or(ApprovalMode::AutoApprove);
    let mut world = state.world();
    let (request_id, event) = world.create_group(&pn, subject, description, mode, now())?;
    state.emitter().emit(event);
    Ok(accepted(request_id))
}

async fn list_groups(state: State, req: HttpRequest, path: GraphPath) -> Answer {
    let pn = number_call(&state, &req, path)?;
    state.pace(&pn)?;
    let q = page_query(&req)?;
    let page = state.world().list_groups(&pn, &q)?;
    Ok(HttpResponse::Ok().json(json!({
        "data": { "groups": page.items },
        "paging": paging(&req, &page, q.limit()),
    })))
}

// ---- /{group_id} ---------------------------------------------------------------------

async fn get_group(state: State, req: HttpRequest, path: GraphPath) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let q = query(&req)?;
    let info =
        state
            .world()
            .group_info(&numbers, &group_id, q.get("fields").map(String::as_str))?;
    Ok(HttpResponse::Ok().json(info))
}

/// Subject and description as JSON, or the picture as multipart part `file` (text parts
/// `subject`/`description` are read there too).
async fn update_group(
    state: State,
    req: HttpRequest,
    path: GraphPath,
    payload: web::Payload,
) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let (fields, picture) = if is_multipart {
        read_multipart(&req, payload).await?
    } else {
        let bytes = read_limited(payload, TEXT_PART_LIMIT * 4).await?;
        let body = json_body(&bytes)?;
        if body.contains_key("profile_picture_file") || body.contains_key("file") {
            return Err(MetaFailure::invalid_parameter(
                "upload the picture as multipart/form-data with a part named file (or profile_picture_file)",
            ));
        }
        (body, None)
    };
    require_whatsapp(&fields)?;
    let change = SettingsChange {
        subject: optional_str(&fields, "subject")?.map(str::to_owned),
        description: optional_str(&fields, "description")?.map(str::to_owned),
        picture,
    };
    let mut world = state.world();
    let (request_id, event) = world.update_settings(&numbers, &group_id, change, now())?;
    state.emitter().emit(event);
    Ok(accepted(request_id))
}

async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, MetaFailure> {
    let mut bytes = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            MetaFailure::invalid_parameter(format!("the body could not be read: {e}"))
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(MetaFailure::invalid_parameter(format!(
                "the body must be at most {limit} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The name Meta's body table gives the picture part (its curl sample says `file`).
const PICTURE_PART_ALIAS: &str = "profile_picture_file";

async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Map<String, Value>, Option<Vec<u8>>), MetaFailure> {
    let malformed = |e: &dyn std::fmt::Display| {
        MetaFailure::invalid_parameter(format!("malformed multipart body: {e}"))
    };
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    let mut fields = Map::new();
    let mut file = None;
    while let Some(part) = multipart.next().await {
        let mut part = part.map_err(|e| malformed(&e))?;
        let mut name = part.name().unwrap_or_default().to_owned();
        // Meta's body table names the part profile_picture_file; its curl sample says file.
        if name == PICTURE_PART_ALIAS {
            name = "file".to_owned();
        }
        let limit = if name == "file" {
            MAX_PICTURE_BYTES
        } else {
            TEXT_PART_LIMIT
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| malformed(&e))?;
            if bytes.len() + chunk.len() > limit {
                return Err(MetaFailure::invalid_parameter(if name == "file" {
                    "the picture must be at most 5 MB".to_owned()
                } else {
                    format!("part {name} must be at most {limit} bytes")
                }));
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == "file" {
            file = Some(bytes);
        } else {
            let text = String::from_utf8(bytes).map_err(|_| {
                MetaFailure::invalid_parameter(format!("part {name} must be UTF-8 text"))
            })?;
            fields.insert(name, Value::String(text));
        }
    }
    Ok((fields, file))
}

async fn delete_group(state: State, req: HttpRequest, path: GraphPath) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let mut world = state.world();
    let event = world.delete_group(&numbers, &group_id, now())?;
    state.emitter().emit(event);
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

// ---- /{group_id}/invite_link ---------------------------------------------------------

fn invite_link_answer(link: String) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "invite_link": link }))
}

async fn get_invite_link(state: State, req: HttpRequest, path: GraphPath) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let link = state.world().invite_link(&numbers, &group_id)?;
    Ok(invite_link_answer(link))
}

async fn reset_invite_link(state: State, req: HttpRequest, path: GraphPath, body: Bytes) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    whatsapp_body(&body)?;
    let link = state.world().reset_invite_link(&numbers, &group_id)?;
    Ok(invite_link_answer(link))
}

// ---- /{group_id}/join_requests -------------------------------------------------------

async fn list_join_requests(state: State, req: HttpRequest, path: GraphPath) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let q = page_query(&req)?;
    let page = state.world().list_join_requests(&numbers, &group_id, &q)?;
    Ok(HttpResponse::Ok().json(json!({
        "data": page.items,
        "paging": paging(&req, &page, q.limit()),
    })))
}

/// POST approves, DELETE rejects (the route table sends no other method here). All decided:
/// 200. None decided: the call fails with the first item's error. Some: 206 with code 131201
/// and the failed items (Meta's partial success).
async fn decide_join_requests(
    state: State,
    req: HttpRequest,
    path: GraphPath,
    body: Bytes,
) -> Answer {
    let approve = req.method() == Method::POST;
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let body = whatsapp_body(&body)?;
    let ids: Vec<String> = match body.get("join_requests") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| MetaFailure::invalid_parameter("join_requests must be a list of ids"))?,
        _ => {
            return Err(MetaFailure::invalid_parameter(
                "join_requests must be a non-empty list of ids",
            ));
        }
    };
    let mut world = state.world();
    let decision = world.decide_join_requests(&numbers, &group_id, &ids, approve, now())?;
    for event in decision.events {
        state.emitter().emit(event);
    }
    drop(world);
    let key = if approve {
        "approved_join_requests"
    } else {
        "rejected_join_requests"
    };
    let mut answer = json!({ "messaging_product": "whatsapp" });
    answer[key] = json!(decision.succeeded);
    if decision.failed.is_empty() {
        return Ok(HttpResponse::Ok().json(answer));
    }
    if decision.succeeded.is_empty() {
        return Err(decision.failed[0].1.clone());
    }
    let verb = if approve { "approved" } else { "rejected" };
    let partial = MetaFailure::partial_success(
        "Request partially succeeded",
        format!(
            "{} of {} join requests could not be {verb}",
            decision.failed.len(),
            ids.len()
        ),
    );
    let failed: Vec<Value> = decision
        .failed
        .iter()
        .map(|(id, failure)| json!({ "join_request_id": id, "errors": [failure.item()] }))
        .collect();
    answer["failed_join_requests"] = json!(failed);
    answer["errors"] = json!([partial.item()]);
    Ok(HttpResponse::PartialContent().json(answer))
}

// ---- /{group_id}/participants --------------------------------------------------------

/// `{"user": phone or wa_id}` or `{"user_id": BSUID}` (Meta's BSUID variant), not both.
fn participant_input(p: &Value) -> Option<String> {
    let text = |key: &str| p.get(key).and_then(Value::as_str).map(str::to_owned);
    match (text("user"), text("user_id")) {
        (Some(user), None) => Some(user),
        (None, Some(user_id)) => Some(user_id),
        _ => None,
    }
}

async fn remove_participants(
    state: State,
    req: HttpRequest,
    path: GraphPath,
    body: Bytes,
) -> Answer {
    let (numbers, group_id) = group_call(&state, &req, path)?;
    let body = whatsapp_body(&body)?;
    let inputs: Vec<String> = body
        .get("participants")
        .and_then(Value::as_array)
        .ok_or_else(|| MetaFailure::invalid_parameter("The parameter participants is required"))?
        .iter()
        .map(participant_input)
        .collect::<Option<_>>()
        .ok_or_else(|| {
            MetaFailure::invalid_parameter(
                "each participant must be {\"user\": \"<phone or wa_id>\"} or {\"user_id\": \"<business-scoped user id>\"}, not both",
            )
        })?;
    let mut world = state.world();
    let (request_id, event) = world.remove_participants(&numbers, &group_id, &inputs, now())?;
    state.emitter().emit(event);
    Ok(accepted(request_id))
}

// ---- /{pn}/messages ------------------------------------------------------------------

/// Only what the gateway sends: messages to a group (`recipient_type: "group"`), and the
/// group-invite template to a person. A group named must exist on the number and not be
/// suspended; a message to a group is answered with status webhooks.
async fn send_message(state: State, req: HttpRequest, path: GraphPath, body: Bytes) -> Answer {
    let pn = number_call(&state, &req, path)?;
    let body = whatsapp_body(&body)?;
    let to = required_str(&body, "to")?;
    match optional_str(&body, "recipient_type")?.unwrap_or("individual") {
        "group" => send_to_group(&state, &pn, to, &body),
        "individual" => send_invitation(&state, &pn, to, &body),
        other => Err(MetaFailure::invalid_parameter(format!(
            "recipient_type must be individual or group, not {other:?}"
        ))),
    }
}

fn send_to_group(state: &SandboxState, pn: &str, to: &str, body: &Map<String, Value>) -> Answer {
    let (kind, content) = group_message_content(body)?;
    let message_id = ids::message_id();
    // Queued while the world is locked, so webhooks leave in the order things happened.
    let mut world = state.world();
    let events = world.send_to_group(pn, to, kind, content, &message_id, now())?;
    for event in events {
        state.emitter().emit(event);
    }
    drop(world);
    // Meta names the group as the contact, and on the message.
    Ok(HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to }],
        "messages": [{ "id": message_id, "group_id": to }],
    })))
}

/// The message's `type` and its content object, checked as Meta checks them: the types
/// groups accept, a text body of at most 4096 characters, media by exactly one of `id` and
/// `link`, a template with a name and `language.code`.
fn group_message_content(body: &Map<String, Value>) -> Result<(&str, Value), MetaFailure> {
    let kind = required_str(body, "type")?;
    let content = match body.get(kind) {
        Some(Value::Object(content)) => content,
        _ => {
            return Err(MetaFailure::invalid_parameter(format!(
                "The parameter {kind} is required and must be an object"
            )));
        }
    };
    let text = |name: &str| content.get(name).and_then(Value::as_str);
    match kind {
        "text" => {
            let ok = text("body").is_some_and(|b| (1..=4096).contains(&b.chars().count()));
            if !ok {
                return Err(MetaFailure::invalid_parameter(
                    "text.body must be 1-4096 characters",
                ));
            }
        }
        "image" | "video" | "audio" | "document" => {
            if text("id").is_some() == text("link").is_some() {
                return Err(MetaFailure::invalid_parameter(format!(
                    "{kind} needs exactly one of id or link"
                )));
            }
        }
        "template" => {
            let language = content.get("language").and_then(|l| l.get("code"));
            if text("name").is_none() || !language.is_some_and(Value::is_string) {
                return Err(MetaFailure::invalid_parameter(
                    "template needs a name and language.code",
                ));
            }
        }
        other => return Err(MetaFailure::unsupported_in_groups(other)),
    }
    Ok((kind, Value::Object(content.clone())))
}

/// The invite template carries the group as a body parameter of type `group_id`.
fn send_invitation(state: &SandboxState, pn: &str, to: &str, body: &Map<String, Value>) -> Answer {
    let template = body.get("template");
    let template_name = template.and_then(|t| t.get("name")).and_then(Value::as_str);
    let invited_to = template
        .and_then(|t| t.get("components"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("parameters").and_then(Value::as_array))
        .flatten()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("group_id"))
        .and_then(|p| p.get("group_id").and_then(Value::as_str));
    let message_id = ids::message_id();
    if let Some(group_id) = invited_to {
        let mut world = state.world();
        world.check_group_for_message(pn, group_id)?;
        world.record_invitation(
            pn,
            group_id,
            to,
            template_name.unwrap_or_default(),
            &message_id,
            now(),
        )?;
    }
    let wa_id = to.trim_start_matches('+');
    Ok(HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": wa_id }],
        "messages": [{ "id": message_id }],
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_look_like_graphs() {
        for ok in ["v23.0", "v1.0", "v100.12"] {
            assert!(check_version(ok).is_ok(), "{ok}");
        }
        for bad in ["23.0", "v23", "v.0", "vx.1", "v23.0.1", ""] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }
}
