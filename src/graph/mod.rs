//! The Graph API client: the only code that builds Graph URLs, holds access tokens and
//! reads Meta's answers. Handlers call one typed method per upstream operation.

mod error;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode, header};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

pub use error::{
    MetaError, THROTTLE_CODES, UpstreamError, UpstreamProblem, parse_error, retry_after_from_usage,
};

use crate::clock::unix_to_rfc3339;
use crate::context::{self, UpstreamCall};
use crate::domain::{
    GroupDescription, GroupFields, GroupId, GroupMessage, GroupSubject, ItemError,
    JoinApprovalMode, JoinRequestId, LanguageCode, MediaSource, ParticipantId, PhoneNumberId,
    ProfilePicture, TemplateName,
};
use crate::domain::{Paging, lenient};

/// Largest upstream answer read; Graph answers for these calls are a few KiB.
const MAX_UPSTREAM_BODY: usize = 2 * 1024 * 1024;
/// Attempts of an idempotent call, in all (DESIGN §5).
const MAX_ATTEMPTS: u32 = 3;

/// Access tokens per business phone number: the numbers in force (configuration and the
/// admin API). Shared by every worker; never printed.
pub type TokenStore = crate::platform::Directory;

/// Per-number buckets protecting Meta's quota; shared by every worker.
pub type NumberLimits = Arc<crate::platform::LiveLimiter<PhoneNumberId>>;

#[derive(Clone)]
pub struct GraphClient {
    http: awc::Client,
    /// `{base_url}/{api_version}`, without trailing slash.
    base: String,
    /// Bound of the whole call, retries included.
    timeout: Duration,
    /// Bound of one attempt.
    attempt_timeout: Duration,
    tokens: TokenStore,
    limits: NumberLimits,
}

/// One answer from Meta, before it is interpreted.
struct GraphAnswer {
    status: StatusCode,
    body: Value,
    /// Meta's `x-fb-trace-id`, for the audit log.
    fbtrace_id: Option<String>,
}

/// Whether a failed call may be sent again. Only reads and group deletion are: creating a
/// group, resetting a link or sending a template twice would do it twice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    Safe,
    Never,
}

/// One upstream operation: what to send, and whether it may be sent again.
struct Operation {
    /// The operation's name in logs and metrics.
    name: &'static str,
    method: Method,
    /// Below `{base_url}/{api_version}/`.
    path: String,
    query: Vec<(&'static str, String)>,
    payload: Payload,
    replay: Replay,
}

impl Operation {
    /// A read: replayed on transient failures.
    fn read(name: &'static str, path: String) -> Self {
        Operation {
            name,
            method: Method::GET,
            path,
            query: Vec::new(),
            payload: Payload::None,
            replay: Replay::Safe,
        }
    }

    /// A JSON POST: never replayed.
    fn post(name: &'static str, path: String, body: Value) -> Self {
        Operation::send(name, Method::POST, path, Payload::Json(body))
    }

    /// A change: never replayed unless `replayable`.
    fn send(name: &'static str, method: Method, path: String, payload: Payload) -> Self {
        Operation {
            name,
            method,
            path,
            query: Vec::new(),
            payload,
            replay: Replay::Never,
        }
    }

    /// Doing it twice does it once.
    fn replayable(mut self) -> Self {
        self.replay = Replay::Safe;
        self
    }

    fn with_query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }
}

/// A page of one of Meta's listings: Meta's own cursors, passed through.
#[derive(Debug, Clone, Default)]
pub struct MetaPage {
    pub limit: Option<u32>,
    pub after: Option<String>,
    pub before: Option<String>,
}

impl MetaPage {
    /// `limit`, `after` and `before`, those given.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        query.extend(self.limit.map(|l| ("limit", l.to_string())));
        query.extend(self.after.clone().map(|a| ("after", a)));
        query.extend(self.before.clone().map(|b| ("before", b)));
        query
    }
}

enum Payload {
    None,
    Json(Value),
    Multipart { boundary: String, body: Vec<u8> },
}

impl GraphClient {
    /// Builds a client; awc clients are not `Send`, so each worker builds its own. Its
    /// keep-alive pool reuses connections to the Graph host.
    pub fn new(
        base_url: &str,
        api_version: &str,
        timeout: Duration,
        attempt_timeout: Duration,
        tokens: TokenStore,
        limits: NumberLimits,
    ) -> Self {
        let attempt_timeout = attempt_timeout.min(timeout);
        let http = awc::Client::builder()
            .timeout(attempt_timeout)
            .connector(
                awc::Connector::new()
                    .timeout(attempt_timeout.min(Duration::from_secs(5)))
                    .conn_keep_alive(Duration::from_secs(30)),
            )
            .disable_redirects()
            .finish();
        Self {
            http,
            base: format!("{}/{}", base_url.trim_end_matches('/'), api_version),
            timeout,
            attempt_timeout,
            tokens,
            limits,
        }
    }

    fn token(&self, pn: &PhoneNumberId) -> Result<SecretString, UpstreamError> {
        // Callers only reach here for granted numbers; a miss is a number deleted meanwhile
        // or a gateway bug, not Meta's.
        self.tokens.access_token(pn).ok_or_else(|| {
            UpstreamError::Unreachable(format!("no access token configured for {pn}"))
        })
    }

    async fn call(&self, pn: &PhoneNumberId, op: Operation) -> Result<GraphAnswer, UpstreamError> {
        let Operation {
            name: op,
            method,
            path,
            query,
            payload,
            replay,
        } = op;
        let token = self.token(pn)?;
        context::note_phone_number(pn.as_ref());
        if let Err(refusal) = self.limits.check(pn).await {
            metrics::counter!(crate::metrics::RATE_LIMITED, "scope" => "phone_number").increment(1);
            return Err(UpstreamError::LocalQuota {
                retry_after_seconds: refusal.retry_after.as_secs().max(1),
            });
        }
        let url = format!("{}/{}", self.base, path);
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(UpstreamError::Timeout);
            }
            let per_attempt = remaining.min(self.attempt_timeout);
            let started = Instant::now();
            let result = tokio::time::timeout(
                per_attempt,
                self.attempt(&url, &method, &token, &query, &payload, per_attempt),
            )
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
            record_attempt(op, &result, started.elapsed(), attempt);
            match result {
                Err(e)
                    if replay == Replay::Safe
                        && attempt < MAX_ATTEMPTS
                        && (e.is_retryable() || matches!(e, UpstreamError::Timeout)) =>
                {
                    let backoff = backoff(attempt);
                    if Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    metrics::counter!(crate::metrics::UPSTREAM_RETRIES, "operation" => op)
                        .increment(1);
                    tracing::info!(attempt, operation = op, error = %e, "retrying idempotent Graph call");
                    tokio::time::sleep(backoff).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        url: &str,
        method: &Method,
        token: &SecretString,
        query: &[(&str, String)],
        payload: &Payload,
        timeout: Duration,
    ) -> Result<GraphAnswer, UpstreamError> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .timeout(timeout)
            .insert_header((
                header::AUTHORIZATION,
                format!("Bearer {}", token.expose_secret()),
            ))
            .insert_header((header::ACCEPT, "application/json"));
        if !query.is_empty() {
            req = req
                .query(&query)
                .map_err(|e| UpstreamError::Unreachable(format!("cannot encode query: {e}")))?;
        }
        let sent = match payload {
            Payload::None => req.send().await,
            Payload::Json(v) => req.send_json(v).await,
            Payload::Multipart { boundary, body } => {
                req.insert_header((
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                ))
                .send_body(body.clone())
                .await
            }
        };
        let mut res = sent.map_err(map_send_error)?;
        let status = res.status();
        let usage = res
            .headers()
            .get("x-business-use-case-usage")
            .or_else(|| res.headers().get("x-app-usage"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let fbtrace_id = res
            .headers()
            .get("x-fb-trace-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res
            .body()
            .limit(MAX_UPSTREAM_BODY)
            .await
            .map_err(|e| match e {
                awc::error::PayloadError::Io(ref io)
                    if io.kind() == std::io::ErrorKind::TimedOut =>
                {
                    UpstreamError::Timeout
                }
                other => UpstreamError::BadResponse {
                    http_status: status.as_u16(),
                    detail: format!("reading the body failed: {other}"),
                },
            })?;
        if status.is_success() {
            let body = if bytes.is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_slice(&bytes).map_err(|_| UpstreamError::BadResponse {
                    http_status: status.as_u16(),
                    detail: "the body is not JSON".into(),
                })?
            };
            Ok(GraphAnswer {
                status,
                body,
                fbtrace_id,
            })
        } else {
            let mut error = parse_error(
                status.as_u16(),
                &bytes,
                retry_after_from_usage(usage.as_deref()),
            );
            // Meta's envelope usually names the trace; the header is the fallback.
            if let UpstreamError::Meta(e) = &mut error
                && e.fbtrace_id.is_none()
            {
                e.fbtrace_id = fbtrace_id;
            }
            Err(error)
        }
    }

    /// A change Meta accepts and reports on by webhook: its request id, when it gave one.
    async fn accepted(
        &self,
        pn: &PhoneNumberId,
        op: Operation,
    ) -> Result<Option<String>, UpstreamError> {
        let answer = self.call(pn, op).await?;
        ensure_not_refused(&answer)?;
        Ok(answer.body.get("request_id").and_then(lenient::as_id))
    }

    /// `POST /{pn}/groups`. Meta answers with its request id only; the group id and invite
    /// link arrive later by webhook.
    pub async fn create_group(
        &self,
        pn: &PhoneNumberId,
        subject: &GroupSubject,
        description: Option<&GroupDescription>,
        join_approval_mode: Option<JoinApprovalMode>,
    ) -> Result<Option<String>, UpstreamError> {
        let mut body = json!({ "messaging_product": "whatsapp", "subject": subject.as_ref() });
        if let Some(d) = description {
            body["description"] = json!(d.as_ref());
        }
        if let Some(mode) = join_approval_mode {
            body["join_approval_mode"] = json!(mode.as_str());
        }
        let path = format!("{pn}/groups");
        let answer = self
            .call(pn, Operation::post("create_group", path, body))
            .await?;
        Ok(answer.body.get("request_id").and_then(lenient::as_id))
    }

    /// `GET /{pn}/groups`: every active group of the number, as Meta lists them.
    pub async fn list_groups(
        &self,
        pn: &PhoneNumberId,
        page: &MetaPage,
    ) -> Result<UpstreamGroupPage, UpstreamError> {
        let op = Operation::read("list_groups", format!("{pn}/groups")).with_query(page.query());
        let answer = self.call(pn, op).await?;
        // Meta documents `data.groups`; a bare `data` list is accepted too.
        let data = &answer.body["data"];
        let list = data.get("groups").unwrap_or(data);
        let groups = items(list, |g| {
            Some(UpstreamGroup {
                id: lenient::as_id(g.get("id")?)?,
                subject: g.get("subject").and_then(Value::as_str).map(str::to_owned),
                created_at: timestamp(g, "created_at"),
            })
        });
        Ok(UpstreamGroupPage {
            groups,
            paging: cursors(&answer.body),
        })
    }

    /// `GET /{group_id}?fields=…`: answers `{id, …requested fields}` under Meta's names.
    pub async fn get_group(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        fields: &GroupFields,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let query = vec![("fields", fields.as_query())];
        let answer = self
            .call(
                pn,
                Operation::read("get_group", group.to_string()).with_query(query),
            )
            .await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(group.as_ref()));
        for field in fields.iter() {
            let name = field.as_str();
            if let Some(v) = answer.body.get(name) {
                out.insert(name.into(), normalise_group_field(name, v));
            }
        }
        Ok(out)
    }

    /// `POST /{group_id}` with a new subject and/or description.
    pub async fn update_group(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        subject: Option<&GroupSubject>,
        description: Option<&GroupDescription>,
    ) -> Result<Option<String>, UpstreamError> {
        let mut body = json!({ "messaging_product": "whatsapp" });
        if let Some(s) = subject {
            body["subject"] = json!(s.as_ref());
        }
        if let Some(d) = description {
            body["description"] = json!(d.as_ref());
        }
        self.accepted(pn, Operation::post("update_group", group.to_string(), body))
            .await
    }

    /// `POST /{group_id}` as multipart with the picture in part `file`, as Meta's media upload.
    pub async fn set_profile_picture(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        picture: &ProfilePicture,
    ) -> Result<Option<String>, UpstreamError> {
        let boundary = format!("wagw-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::with_capacity(picture.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"profile.jpg\"\r\n\
                 Content-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(picture.bytes());
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let multipart = Payload::Multipart { boundary, body };
        let op = Operation::send(
            "set_profile_picture",
            Method::POST,
            group.to_string(),
            multipart,
        );
        self.accepted(pn, op).await
    }

    /// `DELETE /{group_id}`; deleting twice deletes once, so it may be retried.
    pub async fn delete_group(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
    ) -> Result<(), UpstreamError> {
        let answer = self
            .call(
                pn,
                Operation::send(
                    "delete_group",
                    Method::DELETE,
                    group.to_string(),
                    Payload::None,
                )
                .replayable(),
            )
            .await?;
        ensure_not_refused(&answer)
    }

    /// `GET /{group_id}/invite_link`.
    pub async fn get_invite_link(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
    ) -> Result<String, UpstreamError> {
        let read = Operation::read("get_invite_link", invite_link_path(group));
        invite_link_of(&self.call(pn, read).await?)
    }

    /// `POST /{group_id}/invite_link`: a new link; the old one stops working.
    pub async fn reset_invite_link(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
    ) -> Result<String, UpstreamError> {
        let body = json!({ "messaging_product": "whatsapp" });
        let reset = Operation::post("reset_invite_link", invite_link_path(group), body);
        invite_link_of(&self.call(pn, reset).await?)
    }

    /// `POST /{pn}/messages`: the invite template, with the group id as the first body
    /// parameter (Meta turns it into the invite link on delivery).
    pub async fn send_invitation(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        to: &ParticipantId,
        template: &TemplateName,
        language: &LanguageCode,
        parameters: &[String],
    ) -> Result<Option<String>, UpstreamError> {
        let mut params = vec![json!({ "type": "group_id", "group_id": group.as_ref() })];
        params.extend(
            parameters
                .iter()
                .map(|p| json!({ "type": "text", "text": p })),
        );
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to.as_ref(),
            "type": "template",
            "template": {
                "name": template.as_ref(),
                "language": { "code": language.as_ref() },
                "components": [ { "type": "body", "parameters": params } ]
            }
        });
        let path = format!("{pn}/messages");
        let answer = self
            .call(
                pn,
                Operation::send("send_invitation", Method::POST, path, Payload::Json(body)),
            )
            .await?;
        Ok(answer.body["messages"][0]
            .get("id")
            .and_then(lenient::as_id))
    }

    /// `POST /{pn}/messages` into a group: Meta's ordinary send, addressed with
    /// `recipient_type: "group"` and the group id as `to`. Never replayed: a second attempt
    /// would post the message twice. The audit record gets the message id, never the content.
    pub async fn send_group_message(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        message: &GroupMessage,
    ) -> Result<Option<String>, UpstreamError> {
        let kind = message.message_type().as_str();
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "group",
            "to": group.as_ref(),
            "type": kind,
        });
        body[kind] = message_content(message);
        context::note_detail("message_type", kind);
        let path = format!("{pn}/messages");
        let answer = self
            .call(pn, Operation::post("send_group_message", path, body))
            .await?;
        let message_id = answer.body["messages"][0]
            .get("id")
            .and_then(lenient::as_id);
        if let Some(id) = &message_id {
            context::note_detail("message_id", id.as_str());
        }
        Ok(message_id)
    }

    /// `GET /{group_id}/join_requests`.
    pub async fn list_join_requests(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        page: &MetaPage,
    ) -> Result<JoinRequestPage, UpstreamError> {
        let path = format!("{group}/join_requests");
        let op = Operation::read("list_join_requests", path).with_query(page.query());
        let answer = self.call(pn, op).await?;
        let join_requests = items(&answer.body["data"], |item| {
            Some(JoinRequest {
                join_request_id: lenient::as_id(item.get("join_request_id")?)?,
                wa_id: item.get("wa_id").and_then(lenient::as_id),
                created_at: timestamp(item, "creation_timestamp"),
            })
        });
        Ok(JoinRequestPage {
            join_requests,
            paging: cursors(&answer.body),
        })
    }

    /// `POST /{group_id}/join_requests` approves, `DELETE` rejects. Meta's 206 is a partial
    /// success.
    pub async fn decide_join_requests(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        ids: &[JoinRequestId],
        decision: JoinRequestDecision,
    ) -> Result<JoinRequestOutcome, UpstreamError> {
        let (op, method, succeeded_key) = decision.call();
        let body = json!({
            "messaging_product": "whatsapp",
            "join_requests": ids.iter().map(AsRef::as_ref).collect::<Vec<&str>>(),
        });
        let path = format!("{group}/join_requests");
        let answer = self
            .call(pn, Operation::send(op, method, path, Payload::Json(body)))
            .await?;
        let succeeded = answer.body[succeeded_key]
            .as_array()
            .map(|ids| ids.iter().filter_map(lenient::as_id).collect())
            .unwrap_or_default();
        let failed = answer.body["failed_join_requests"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        Some(FailedJoinRequest {
                            join_request_id: lenient::as_id(item.get("join_request_id")?)?,
                            error: item["errors"]
                                .get(0)
                                .map(ItemError::from_meta)
                                .unwrap_or_else(ItemError::unknown),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(JoinRequestOutcome {
            partial: answer.status == StatusCode::PARTIAL_CONTENT,
            succeeded,
            failed,
        })
    }

    /// `DELETE /{group_id}/participants`.
    pub async fn remove_participants(
        &self,
        pn: &PhoneNumberId,
        group: &GroupId,
        participants: &[ParticipantId],
    ) -> Result<Option<String>, UpstreamError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "participants": participants.iter().map(|p| json!({ "user": p.as_ref() })).collect::<Vec<_>>(),
        });
        let path = format!("{group}/participants");
        // Not replayed: its outcome arrives by webhook and a replay would report twice.
        let op = Operation::send(
            "remove_participants",
            Method::DELETE,
            path,
            Payload::Json(body),
        );
        self.accepted(pn, op).await
    }
}

/// The object named by the message's `type` in Meta's send body.
fn message_content(message: &GroupMessage) -> Value {
    match message {
        GroupMessage::Text { body, preview_url } => {
            let mut text = json!({ "body": body.as_ref() });
            if let Some(preview) = preview_url {
                text["preview_url"] = json!(preview);
            }
            text
        }
        GroupMessage::Media {
            source,
            caption,
            filename,
            ..
        } => {
            let mut media = match source {
                MediaSource::Link(link) => json!({ "link": link.as_ref() }),
                MediaSource::Id(id) => json!({ "id": id.as_ref() }),
            };
            if let Some(caption) = caption {
                media["caption"] = json!(caption.as_ref());
            }
            if let Some(filename) = filename {
                media["filename"] = json!(filename.as_ref());
            }
            media
        }
        GroupMessage::Template {
            name,
            language,
            components,
        } => {
            let mut template = json!({
                "name": name.as_ref(),
                "language": { "code": language.as_ref() },
            });
            if let Some(components) = components {
                template["components"] = Value::Array(components.clone());
            }
            template
        }
    }
}

/// What Meta answered to one attempt, as the audit log records it.
fn upstream_call(result: &Result<GraphAnswer, UpstreamError>) -> UpstreamCall {
    match result {
        Ok(answer) => UpstreamCall {
            status: Some(answer.status.as_u16()),
            code: None,
            fbtrace_id: answer.fbtrace_id.clone(),
        },
        Err(UpstreamError::Meta(e)) => UpstreamCall {
            status: Some(e.http_status),
            code: Some(e.code),
            fbtrace_id: e.fbtrace_id.clone(),
        },
        Err(UpstreamError::BadResponse { http_status, .. }) => UpstreamCall {
            status: (*http_status != 0).then_some(*http_status),
            ..UpstreamCall::default()
        },
        Err(_) => UpstreamCall::default(),
    }
}

/// One line and one sample per attempt: operators see every call Meta answered.
fn record_attempt(
    op: &'static str,
    result: &Result<GraphAnswer, UpstreamError>,
    elapsed: Duration,
    attempt: u32,
) {
    let (status, code, fbtrace) = match result {
        Ok(answer) => (answer.status.as_u16().to_string(), String::new(), None),
        Err(UpstreamError::Meta(e)) => (
            e.http_status.to_string(),
            e.code.to_string(),
            e.fbtrace_id.clone(),
        ),
        Err(UpstreamError::BadResponse { http_status, .. }) => {
            (http_status.to_string(), String::new(), None)
        }
        Err(UpstreamError::Timeout) => ("timeout".to_owned(), String::new(), None),
        Err(UpstreamError::Unreachable(_)) => ("unreachable".to_owned(), String::new(), None),
        Err(UpstreamError::LocalQuota { .. }) => ("local_quota".to_owned(), String::new(), None),
    };
    context::note_upstream(upstream_call(result));
    if let Err(UpstreamError::Meta(e)) = result
        && error::is_gateway_credential_code(e.code)
    {
        metrics::counter!(crate::metrics::UPSTREAM_CREDENTIAL_FAILURES).increment(1);
    }
    metrics::counter!(crate::metrics::UPSTREAM_REQUESTS, "operation" => op, "status" => status.clone(), "code" => code.clone())
        .increment(1);
    metrics::histogram!(crate::metrics::UPSTREAM_DURATION, "operation" => op)
        .record(elapsed.as_secs_f64());
    // The request's access line carries Meta's answer; failures are logged where they are
    // answered (`UpstreamError::log`).
    tracing::debug!(
        operation = op,
        attempt,
        upstream_status = %status,
        meta_code = %code,
        fbtrace_id = fbtrace.as_deref().unwrap_or(""),
        elapsed_ms = elapsed.as_millis() as u64,
        "Graph call"
    );
}

fn backoff(attempt: u32) -> Duration {
    let base = 100u64 * 2u64.pow(attempt.saturating_sub(1));
    let jitter = rand::rng().random_range(0..=base / 2);
    Duration::from_millis(base + jitter)
}

fn map_send_error(e: awc::error::SendRequestError) -> UpstreamError {
    use awc::error::{ConnectError, SendRequestError as S};
    match e {
        S::Timeout | S::Connect(ConnectError::Timeout) => UpstreamError::Timeout,
        // A pooled connection that drops may have carried the request: not "unreachable",
        // whose promise is that Meta never saw the call.
        S::Connect(ConnectError::Disconnected) => UpstreamError::BadResponse {
            http_status: 0,
            detail: "the connection was closed before Meta answered".into(),
        },
        S::Connect(c) => UpstreamError::Unreachable(c.to_string()),
        other => UpstreamError::BadResponse {
            http_status: 0,
            detail: format!("the connection failed: {other}"),
        },
    }
}

/// Some Graph answers say `{"success": false}` with a 200.
fn ensure_not_refused(answer: &GraphAnswer) -> Result<(), UpstreamError> {
    match answer.body.get("success").and_then(lenient::as_bool) {
        Some(false) => Err(UpstreamError::BadResponse {
            http_status: answer.status.as_u16(),
            detail: "Meta answered success=false".into(),
        }),
        _ => Ok(()),
    }
}

/// What the business decides for pending join requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinRequestDecision {
    Approve,
    Reject,
}

impl JoinRequestDecision {
    /// The operation's name, Meta's method for it, and the key of Meta's answer that lists the
    /// requests decided.
    fn call(self) -> (&'static str, Method, &'static str) {
        match self {
            JoinRequestDecision::Approve => (
                "approve_join_requests",
                Method::POST,
                "approved_join_requests",
            ),
            JoinRequestDecision::Reject => (
                "reject_join_requests",
                Method::DELETE,
                "rejected_join_requests",
            ),
        }
    }
}

/// Where a group's invite link is read and reset.
fn invite_link_path(group: &GroupId) -> String {
    format!("{group}/invite_link")
}

fn invite_link_of(answer: &GraphAnswer) -> Result<String, UpstreamError> {
    answer
        .body
        .get("invite_link")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| UpstreamError::BadResponse {
            http_status: answer.status.as_u16(),
            detail: "the answer has no invite_link".into(),
        })
}

/// The items of a list in Meta's answer that `read` understands; others are skipped.
fn items<T>(list: &Value, read: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    list.as_array()
        .map(|items| items.iter().filter_map(read).collect())
        .unwrap_or_default()
}

/// A Unix-seconds field of Meta's, as RFC 3339.
fn timestamp(item: &Value, key: &str) -> Option<String> {
    item.get(key).and_then(lenient::as_int).map(unix_to_rfc3339)
}

fn cursors(body: &Value) -> Paging {
    let c = &body["paging"]["cursors"];
    let get = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // Graph only links `next` when there is a next page; a lone cursor may point nowhere.
    let after = if body["paging"].get("next").is_some() {
        get("after")
    } else {
        None
    };
    let before = if body["paging"].get("previous").is_some() {
        get("before")
    } else {
        None
    };
    Paging { after, before }
}

/// Meta quotes numbers and booleans in some answers; the gateway answers typed values.
fn normalise_group_field(name: &str, v: &Value) -> Value {
    match name {
        "suspended" => lenient::as_bool(v)
            .map(Value::Bool)
            .unwrap_or_else(|| v.clone()),
        "creation_timestamp" | "total_participant_count" => lenient::as_int(v)
            .map(|i| json!(i))
            .unwrap_or_else(|| v.clone()),
        _ => v.clone(),
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamGroup {
    #[schema(example = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD")]
    pub id: String,
    pub subject: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UpstreamGroupPage {
    pub groups: Vec<UpstreamGroup>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinRequest {
    #[schema(example = "MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw")]
    pub join_request_id: String,
    #[schema(example = "16505551234")]
    pub wa_id: Option<String>,
    /// When the user asked to join (RFC 3339).
    #[schema(example = "2025-08-18T20:27:57Z")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinRequestPage {
    pub join_requests: Vec<JoinRequest>,
    pub paging: Paging,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedJoinRequest {
    pub join_request_id: String,
    pub error: ItemError,
}

#[derive(Debug, Clone)]
pub struct JoinRequestOutcome {
    /// Meta answered 206 (code 131201): some items failed.
    pub partial: bool,
    pub succeeded: Vec<String>,
    pub failed: Vec<FailedJoinRequest>,
}
