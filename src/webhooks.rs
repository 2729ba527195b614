//! Meta's webhooks: the signed ingress, the durable inbox and the processor that turns
//! stored POSTs into registry changes (DESIGN §6).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::SqliteConnection;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::events::delivery::DeliveryHandle;
use crate::events::{self, has_errors};
use crate::graph::lenient;
use crate::registry::{self, Completion, InboxOutcome, NewWebhookEvent, Registry};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Meta batches up to 1,000 changes in one POST; this leaves room for that.
pub const WEBHOOK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The secrets of the ingress, shared by every worker.
pub struct WebhookSecrets {
    pub verify_token: SecretString,
    pub app_secret: SecretString,
}

/// `sha256=<hex>` of the body with the app secret, as Meta signs (also used by the sandbox).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks the signature over the raw bytes in constant time.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret)
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

#[derive(Deserialize, IntoParams)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode", example = "subscribe")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge", example = "1158201444")]
    challenge: Option<String>,
}

/// Meta's verification handshake: echo the challenge when the verify token matches.
#[utoipa::path(
    tag = "webhooks",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", content_type = "text/plain", body = String),
        (status = 403, description = "Wrong verify token or mode", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/webhooks/whatsapp")]
pub async fn verify_subscription(
    query: web::Query<Handshake>,
    secrets: web::Data<WebhookSecrets>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let token_ok = q.verify_token.as_deref().is_some_and(|t| {
        bool::from(
            t.as_bytes()
                .ct_eq(secrets.verify_token.expose_secret().as_bytes()),
        )
    });
    match (q.mode.as_deref(), token_ok, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(challenge)),
        _ => Err(ApiError::Forbidden("verification refused".into())),
    }
}

/// Receives Meta's group webhooks. The body is stored before the 200; processing follows.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "Meta's webhook payload, signed with the app secret", content_type = "application/json"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body with the app secret>")),
    responses(
        (status = 200, description = "Stored (or recognised as a redelivery)"),
        (status = 401, description = "Missing or wrong signature", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/whatsapp")]
pub async fn receive(
    req: HttpRequest,
    body: crate::routes::body::Body<WEBHOOK_BODY_LIMIT>,
    secrets: web::Data<WebhookSecrets>,
    registry: web::Data<Registry>,
    processor: web::Data<ProcessorHandle>,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !verify_signature(
        secrets.app_secret.expose_secret().as_bytes(),
        &body,
        signature,
    ) {
        tracing::warn!("webhook refused: missing or wrong X-Hub-Signature-256");
        metrics::counter!(crate::metrics::WEBHOOK_POSTS, "outcome" => "bad_signature").increment(1);
        return Err(ApiError::Unauthorized(
            "missing or wrong X-Hub-Signature-256".into(),
        ));
    }
    let digest = hex::encode(Sha256::digest(&body[..]));
    let outcome = registry.store_inbox(&digest, &body[..]).await?;
    let duplicate = outcome == InboxOutcome::Duplicate;
    metrics::counter!(
        crate::metrics::WEBHOOK_POSTS,
        "outcome" => if duplicate { "duplicate" } else { "stored" }
    )
    .increment(1);
    if !duplicate {
        processor.kick();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "received": true, "duplicate": duplicate })))
}

/// Wakes the processor when a POST was stored.
#[derive(Clone, Default)]
pub struct ProcessorHandle {
    notify: Arc<Notify>,
}

impl ProcessorHandle {
    pub fn kick(&self) {
        self.notify.notify_one();
    }
}

/// Spawns the processor on the current runtime; it first drains what a previous run left.
/// New team events wake the delivery worker through `deliveries`.
pub fn spawn_processor(registry: Registry, deliveries: DeliveryHandle) -> ProcessorHandle {
    let handle = ProcessorHandle::default();
    let notify = handle.notify.clone();
    tokio::spawn(async move {
        loop {
            match drain(&registry, &deliveries).await {
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "webhook processing failed; will retry"),
            }
            // Wake on a kick, or poll now and then in case a kick was missed.
            let _ = tokio::time::timeout(Duration::from_secs(2), notify.notified()).await;
        }
    });
    handle
}

/// Attempts at processing one stored POST before it is set aside.
const MAX_PROCESSING_ATTEMPTS: i64 = 5;

async fn drain(registry: &Registry, deliveries: &DeliveryHandle) -> Result<(), sqlx::Error> {
    loop {
        let batch = registry.unprocessed_inbox(50).await?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut failure = None;
        let mut posts = batch
            .into_iter()
            .map(|(id, body)| (id, extract_events(&body)))
            .peekable();
        while posts.peek().is_some() {
            let mut group = Vec::new();
            let mut changes = 0;
            while let Some((_, events)) = posts.peek() {
                if !group.is_empty() && changes + events.len() > CHANGES_PER_TRANSACTION {
                    break;
                }
                changes += events.len();
                group.extend(posts.next());
            }
            match process_posts(registry, &group).await {
                Ok(completed) => wake(registry, completed),
                // One bad POST must not hold back the others: apply them one by one.
                Err(_) if group.len() > 1 => {
                    for post in &group {
                        match process_posts(registry, std::slice::from_ref(post)).await {
                            Ok(completed) => wake(registry, completed),
                            Err(e) => failure = Some(count_failure(registry, post.0, e).await?),
                        }
                    }
                }
                Err(e) => failure = Some(count_failure(registry, group[0].0, e).await?),
            }
            deliveries.kick();
        }
        // A failed POST is tried again on a later pass, not in a tight loop.
        if let Some(e) = failure {
            return Err(e);
        }
    }
}

/// Only once the transaction is committed may waiters look at the outcome.
fn wake(registry: &Registry, completed: Vec<String>) {
    for request_id in completed {
        registry.waiters().wake(&request_id);
    }
}

/// Counts the failure of one stored POST; answers the error for the caller to report.
async fn count_failure(
    registry: &Registry,
    inbox_id: i64,
    error: sqlx::Error,
) -> Result<sqlx::Error, sqlx::Error> {
    let set_aside = registry
        .record_inbox_failure(inbox_id, &error.to_string(), MAX_PROCESSING_ATTEMPTS)
        .await?;
    if set_aside {
        metrics::counter!(crate::metrics::WEBHOOK_POSTS, "outcome" => "set_aside").increment(1);
        tracing::error!(
            inbox_id,
            attempts = MAX_PROCESSING_ATTEMPTS,
            error = %error,
            "a stored webhook POST keeps failing and is set aside (kept in webhook_inbox); later POSTs go on"
        );
    }
    Ok(error)
}

/// Most changes applied in one transaction. Small POSTs share one, so SQLite's write lock
/// is taken once for many of them even while Meta's POSTs keep arriving; a large POST goes
/// alone, so the lock is never held for long.
const CHANGES_PER_TRANSACTION: usize = 1_000;

/// Reads every group event out of one POST. Unknown fields and shapes are skipped, never
/// fatal: Meta adds fields over time and its own samples are not always valid.
pub fn extract_events(body: &[u8]) -> Vec<NewWebhookEvent> {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for entry in root["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or_default().to_owned();
            let value = &change["value"];
            let pn = value["metadata"]
                .get("phone_number_id")
                .and_then(lenient::as_id);
            for item in value["groups"].as_array().into_iter().flatten() {
                let key_material = format!("{field}|{}|{item}", pn.as_deref().unwrap_or(""));
                events.push(NewWebhookEvent {
                    event_key: hex::encode(Sha256::digest(key_material.as_bytes())),
                    field: field.clone(),
                    event_type: item["type"].as_str().unwrap_or("unknown").to_owned(),
                    phone_number_id: pn.clone(),
                    group_id: item.get("group_id").and_then(lenient::as_id),
                    meta_request_id: item.get("request_id").and_then(lenient::as_id),
                    occurred_at: item
                        .get("timestamp")
                        .and_then(lenient::as_int)
                        .map(crate::graph::unix_to_rfc3339),
                    payload: item.clone(),
                });
            }
        }
    }
    events
}

/// Processes stored POSTs in one transaction: for each, its new events, their registry
/// effects, the team events and delivery rows, and its inbox row marked processed. A crash
/// at any point leaves all of it or none (the rows are then processed again), so a POST is
/// never half applied. Answers the creations completed, whose waiters are woken after the
/// commit.
async fn process_posts(
    registry: &Registry,
    posts: &[(i64, Vec<NewWebhookEvent>)],
) -> Result<Vec<String>, sqlx::Error> {
    // IMMEDIATE: take SQLite's write lock up front rather than fail to upgrade a read later.
    let mut tx = registry.pool().begin_with("BEGIN IMMEDIATE").await?;
    let mut completed = Vec::new();
    for (inbox_id, events) in posts {
        for event in events {
            let Some(stored) = registry::insert_event_in(&mut tx, *inbox_id, event).await? else {
                tracing::debug!(event_type = %event.event_type, "duplicate webhook event ignored");
                continue;
            };
            let completion = apply(&mut tx, event).await?;
            events::record(&mut tx, stored, event, completion.as_ref()).await?;
            if let Some(done) = completion {
                completed.push(done.request_id);
            }
        }
        registry::mark_inbox_processed_in(&mut tx, *inbox_id).await?;
    }
    tx.commit().await?;
    for (_, events) in posts {
        for event in events {
            metrics::counter!(
                crate::metrics::WEBHOOK_EVENTS,
                "field" => known_label(&event.field, KNOWN_FIELDS),
                "type" => known_label(&event.event_type, KNOWN_TYPES)
            )
            .increment(1);
        }
    }
    Ok(completed)
}

const KNOWN_FIELDS: &[&str] = &[
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
];
const KNOWN_TYPES: &[&str] = &[
    "group_create",
    "group_delete",
    "group_participants_add",
    "group_participants_remove",
    "group_join_request_created",
    "group_join_request_revoked",
    "group_settings_update",
    "group_suspend",
    "group_suspend_cleared",
];

/// Metric labels only take values the gateway knows, so a sender cannot blow up the
/// number of series with made-up names.
fn known_label(value: &str, known: &'static [&'static str]) -> &'static str {
    known
        .iter()
        .copied()
        .find(|k| *k == value)
        .unwrap_or("other")
}

/// The registry follows the event: status, subject, suspension, participant count.
async fn apply(
    conn: &mut SqliteConnection,
    event: &NewWebhookEvent,
) -> Result<Option<Completion>, sqlx::Error> {
    let item = &event.payload;
    let group = event.group_id.as_deref();
    match (event.field.as_str(), event.event_type.as_str()) {
        (_, "group_create") => {
            let completion = match &event.meta_request_id {
                Some(req) => {
                    registry::complete_creation_in(
                        conn,
                        req,
                        event.phone_number_id.as_deref(),
                        item,
                    )
                    .await?
                }
                None => None,
            };
            // A group made outside the gateway (or whose request was lost) is kept ownerless
            // so an administrator can adopt it.
            if completion.is_none()
                && !has_errors(item)
                && let (Some(g), Some(pn)) = (group, event.phone_number_id.as_deref())
            {
                registry::note_group_in(
                    conn,
                    g,
                    pn,
                    item["subject"].as_str(),
                    item["invite_link"].as_str(),
                )
                .await?;
            }
            return Ok(completion);
        }
        (_, "group_delete") => {
            if let Some(g) = group {
                // A failed deletion leaves the group as it was: active.
                registry::set_group_active_in(conn, g, has_errors(item)).await?;
            }
        }
        (_, "group_participants_add") => {
            if let Some(g) = group {
                let n = item["added_participants"].as_array().map_or(0, Vec::len) as i64;
                registry::adjust_participants_in(conn, g, n).await?;
            }
        }
        (_, "group_participants_remove") => {
            if let Some(g) = group {
                // Only those actually removed; `failed_participants` are still in.
                let n = item["removed_participants"].as_array().map_or(0, Vec::len) as i64;
                registry::adjust_participants_in(conn, g, -n).await?;
            }
        }
        ("group_settings_update", _) | (_, "group_settings_update") => {
            if let Some(g) = group {
                let subject = &item["group_subject"];
                if subject.get("update_successful").and_then(lenient::as_bool) == Some(true)
                    && let Some(text) = subject["text"].as_str()
                {
                    registry::set_group_subject_in(conn, g, text).await?;
                }
            }
        }
        (_, "group_suspend") => {
            if let Some(g) = group {
                registry::set_group_suspended_in(conn, g, true).await?;
            }
        }
        (_, "group_suspend_cleared") => {
            if let Some(g) = group {
                registry::set_group_suspended_in(conn, g, false).await?;
            }
        }
        (field, kind) => {
            tracing::debug!(field, kind, "webhook event stored without registry change")
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_raw_bytes() {
        let body = br#"{"a": 1}"#;
        let sig = sign(b"secret", body);
        assert!(verify_signature(b"secret", body, Some(&sig)));
        assert!(!verify_signature(b"other", body, Some(&sig)));
        assert!(!verify_signature(b"secret", br#"{"a":1}"#, Some(&sig)));
        assert!(!verify_signature(b"secret", body, None));
        assert!(!verify_signature(b"secret", body, Some("sha256=zz")));
    }

    #[test]
    fn events_are_read_leniently() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [
                {"field": "group_lifecycle_update", "value": {
                    "metadata": {"phone_number_id": 12784358810u64},
                    "groups": [
                        {"timestamp": "1755548877", "group_id": "G1", "type": "group_create", "request_id": "R1", "new_thing": {"x": 1}},
                        {"timestamp": 1755548878, "group_id": "G2", "type": "group_delete", "request_id": 7}
                    ]}},
                {"field": "something_new", "value": 3}
            ]}]
        });
        let events = extract_events(body.to_string().as_bytes());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].phone_number_id.as_deref(), Some("12784358810"));
        assert_eq!(
            events[0].occurred_at.as_deref(),
            Some("2025-08-18T20:27:57Z")
        );
        assert_eq!(events[1].meta_request_id.as_deref(), Some("7"));
        assert_ne!(events[0].event_key, events[1].event_key);
        assert!(extract_events(b"not json").is_empty());
    }
}
