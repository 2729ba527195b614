//! Logging setup, request ids and the access log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetrySettings};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The team of an authenticated request, recorded for the access log.
#[derive(Clone, Debug)]
pub struct AuthenticatedTeam(pub String);

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .finish()
            .with(WithoutConnectionErrorLines)
            .try_init(),
        LogFormat::Text => builder
            .finish()
            .with(WithoutConnectionErrorLines)
            .try_init(),
    };
}

/// actix's dispatcher logs an ERROR line for every connection that ends in error, a
/// malformed request among them: one line per request anyone may send. The same errors are
/// counted and summarised at a bounded rate by `connection::RefusedBeforeRouting`, so
/// these lines are dropped.
struct WithoutConnectionErrorLines;

const DISPATCHER: &str = "actix_http::h1::dispatcher";

impl<S: tracing::Subscriber> Layer<S> for WithoutConnectionErrorLines {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if meta.target() != DISPATCHER || *meta.level() != tracing::Level::ERROR {
            return true;
        }
        let mut message = MessageStart::default();
        event.record(&mut message);
        !message.0.starts_with("stream error")
    }
}

/// The first words of an event's message.
#[derive(Default)]
struct MessageStart(String);

impl Visit for MessageStart {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let mut words = BoundedWriter(&mut self.0);
            let _ = write!(words, "{value:?}");
        }
    }
}

/// Keeps the first 32 bytes written to it.
struct BoundedWriter<'a>(&'a mut String);

impl std::fmt::Write for BoundedWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = 32usize.saturating_sub(self.0.len());
        let cut = (0..=room.min(s.len()))
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        self.0.push_str(&s[..cut]);
        Ok(())
    }
}

/// Metric labels are static strings: no allocation per request.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (0..600).map(|s| s.to_string()).collect());
    labels
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

/// A caller's id is kept only when it is short and plain, so it cannot inject into logs.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// Gives every request an id (the caller's if sane), echoes it in `X-Request-Id`, and writes
/// one access-log line per request.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let started = Instant::now();
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id);
    // Handlers render their errors inside this context, so problem bodies carry the id. (The
    // request must not be cloned here: routing needs sole ownership of it.)
    let (res, notes) = crate::context::scope(id.clone(), next.call(req))
        .instrument(span.clone())
        .await;
    let mut res = res?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let team = res
        .request()
        .extensions()
        .get::<AuthenticatedTeam>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let method = method_label(&method);
    metrics::counter!(
        crate::metrics::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => status_label(status),
        "team" => team.clone()
    )
    .increment(1);
    metrics::histogram!(crate::metrics::HTTP_DURATION, "route" => route.clone(), "method" => method)
        .record(elapsed.as_secs_f64());
    if team.is_empty() && is_refusal(status) {
        // Anyone can send these, as fast as they like: counted, and summarised in the log
        // at a bounded rate instead of one line each.
        note_anonymous_refusal(&route, status);
        return Ok(res);
    }
    // The one line of the request, with what Meta answered to it, if it was asked.
    let upstream = notes.upstream.unwrap_or_default();
    span.in_scope(|| {
        tracing::info!(
            target: "access",
            method,
            route,
            status,
            team,
            upstream_status = upstream.status,
            meta_code = upstream.code,
            fbtrace_id = upstream.fbtrace_id,
            elapsed_ms = elapsed.as_millis() as u64,
            "request served"
        );
    });
    Ok(res)
}

/// Statuses that refuse a caller who did not authenticate: no or bad token (401), a bad
/// webhook handshake (403), an oversized webhook POST (413), the anonymous rate limit (429),
/// a busy webhook ingress (503).
fn is_refusal(status: u16) -> bool {
    matches!(status, 401 | 403 | 413 | 429 | 503)
}

/// At most one log line per this long about calls refused before authentication.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

struct RefusalLog {
    last_line: Option<Instant>,
    /// Refusals since the last line.
    unlogged: u64,
}

static REFUSALS: Mutex<RefusalLog> = Mutex::new(RefusalLog {
    last_line: None,
    unlogged: 0,
});

fn note_anonymous_refusal(route: &str, status: u16) {
    metrics::counter!(
        crate::metrics::UNAUTHENTICATED,
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
    let now = Instant::now();
    let mut log = REFUSALS.lock().unwrap_or_else(|p| p.into_inner());
    log.unlogged += 1;
    if log
        .last_line
        .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY)
    {
        return;
    }
    tracing::warn!(
        target: "access",
        refused = log.unlogged,
        route,
        status,
        "calls refused before authentication (counted in wagw_unauthenticated_requests_total; logged at most every 10 s)"
    );
    log.last_line = Some(now);
    log.unlogged = 0;
}
