//! How a call reaches Meta: the HTTP client, the access token of the number, the number's
//! budget, the deadline of the whole call and of each attempt, retries of the calls that may
//! be sent again, and the log line, metrics and audit facts of every attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode, header};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::backoff::Backoffs;
use super::error::{self, UpstreamError, parse_error, retry_after_from_usage};
use crate::context::{self, UpstreamCall};
use crate::domain::PhoneNumberId;

/// Largest upstream answer read; Graph answers for these calls are a few KiB.
const MAX_UPSTREAM_BODY: usize = 2 * 1024 * 1024;
/// Attempts of an idempotent call, in all, within `graph.timeout_ms` (README, "API overview").
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
    backoffs: Backoffs,
}

/// One answer from Meta, before it is interpreted.
pub(super) struct GraphAnswer {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    /// Meta's `x-fb-trace-id`, for the audit log.
    pub(super) fbtrace_id: Option<String>,
}

/// Whether a failed call may be sent again. Only reads and group deletion are: creating a
/// group, resetting a link or sending a template twice would do it twice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    Safe,
    Never,
}

/// One upstream operation: what to send, and whether it may be sent again.
pub(super) struct Operation {
    /// The operation's name in logs and metrics.
    name: &'static str,
    method: Method,
    /// Below `{base_url}/{api_version}/`.
    path: String,
    query: Vec<(&'static str, String)>,
    payload: Payload,
    replay: Replay,
    /// A Groups API operation, held back while Meta's 131208 for the number lasts; messages
    /// are not.
    group: bool,
}

impl Operation {
    /// A read: replayed on transient failures.
    pub(super) fn read(name: &'static str, path: String) -> Self {
        Operation {
            name,
            method: Method::GET,
            path,
            query: Vec::new(),
            payload: Payload::None,
            replay: Replay::Safe,
            group: true,
        }
    }

    /// A JSON POST: never replayed.
    pub(super) fn post(name: &'static str, path: String, body: Value) -> Self {
        Operation::send(name, Method::POST, path, Payload::Json(body))
    }

    /// A change: never replayed unless `replayable`.
    pub(super) fn send(name: &'static str, method: Method, path: String, payload: Payload) -> Self {
        Operation {
            name,
            method,
            path,
            query: Vec::new(),
            payload,
            replay: Replay::Never,
            group: true,
        }
    }

    /// A message (Meta's messaging API), not a group operation.
    pub(super) fn messaging(mut self) -> Self {
        self.group = false;
        self
    }

    /// Doing it twice does it once.
    pub(super) fn replayable(mut self) -> Self {
        self.replay = Replay::Safe;
        self
    }

    pub(super) fn with_query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }
}

pub(super) enum Payload {
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
        backoffs: Backoffs,
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
            backoffs,
        }
    }

    fn token(&self, pn: &PhoneNumberId) -> Result<SecretString, UpstreamError> {
        // Callers only reach here for granted numbers; a miss is a number deleted meanwhile
        // or a gateway bug, not Meta's.
        self.tokens.access_token(pn).ok_or_else(|| {
            UpstreamError::Unreachable(format!("no access token configured for {pn}"))
        })
    }

    /// One operation within `graph.timeout_ms`: charged to the number's budget, sent, and
    /// sent again after a transient failure when `Replay::Safe`.
    pub(super) async fn call(
        &self,
        pn: &PhoneNumberId,
        op: Operation,
    ) -> Result<GraphAnswer, UpstreamError> {
        let Operation {
            name: op,
            method,
            path,
            query,
            payload,
            replay,
            group,
        } = op;
        let token = self.token(pn)?;
        context::note_phone_number(pn.as_ref());
        if group && let Some(retry_after_seconds) = self.backoffs.remaining_seconds(pn).await {
            metrics::counter!(crate::metrics::GROUP_BACKOFF_REFUSALS).increment(1);
            return Err(UpstreamError::GroupBackoff {
                retry_after_seconds,
            });
        }
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
            if let Err(UpstreamError::Meta(e)) = &result
                && e.code == error::GROUP_RATE_LIMIT
            {
                let seconds = e
                    .retry_after_seconds
                    .unwrap_or(error::DEFAULT_RETRY_AFTER_SECONDS);
                self.backoffs.hold(pn, seconds).await;
            }
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

    /// One request to Meta, its answer read within `MAX_UPSTREAM_BODY`.
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
        read_answer(sent.map_err(map_send_error)?).await
    }
}

/// Meta's answer: a `GraphAnswer` for a 2xx, otherwise the error its envelope describes.
async fn read_answer(mut res: awc::ClientResponse) -> Result<GraphAnswer, UpstreamError> {
    let status = res.status();
    let headers = res.headers();
    let usage = headers
        .get("x-business-use-case-usage")
        .or_else(|| headers.get("x-app-usage"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fbtrace_id = headers
        .get("x-fb-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = res
        .body()
        .limit(MAX_UPSTREAM_BODY)
        .await
        .map_err(|e| match e {
            awc::error::PayloadError::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
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
        Err(UpstreamError::GroupBackoff { .. }) => ("backoff".to_owned(), String::new(), None),
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
