//! Prometheus metrics at `/metrics`. Labels never carry secrets or caller-chosen strings
//! beyond route templates, team names from configuration and Meta's numeric codes.

use std::sync::OnceLock;

use actix_web::{HttpResponse, get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "wagw_http_requests_total";
pub const HTTP_DURATION: &str = "wagw_http_request_duration_seconds";
pub const UPSTREAM_REQUESTS: &str = "wagw_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "wagw_upstream_request_duration_seconds";
pub const UPSTREAM_RETRIES: &str = "wagw_upstream_retries_total";
pub const UPSTREAM_CREDENTIAL_FAILURES: &str = "wagw_upstream_credential_failures_total";
pub const WEBHOOK_POSTS: &str = "wagw_webhook_posts_total";
pub const WEBHOOK_EVENTS: &str = "wagw_webhook_events_total";
pub const RATE_LIMITED: &str = "wagw_rate_limited_total";
/// Creations refused before Meta because a `max_groups` quota is used up.
pub const GROUP_QUOTA_REFUSALS: &str = "wagw_group_quota_refusals_total";
/// Group operations held back, unsent, while Meta's 131208 backoff of their number lasts.
pub const GROUP_BACKOFF_REFUSALS: &str = "wagw_group_backoff_refusals_total";
/// Calls refused before authentication (no or bad token, bad webhook signature, the
/// anonymous rate limit, a busy webhook ingress), by route template and status.
pub const UNAUTHENTICATED: &str = "wagw_unauthenticated_requests_total";
/// Connections that ended before their request was routed, by `reason`: `malformed` (bad
/// request line or header byte, head too large), `slow_head` (head not sent in time),
/// `connection_error` (reset or closed mid-request).
pub const REQUESTS_REFUSED: &str = "wagw_requests_refused_total";
/// Delivery attempts to teams' endpoints, by team and outcome (`delivered`, `retry`,
/// `failed`).
pub const WEBHOOK_DELIVERIES: &str = "wagw_webhook_deliveries_total";
/// How long each delivery attempt took.
pub const WEBHOOK_DELIVERY_SECONDS: &str = "wagw_webhook_delivery_seconds";
/// Deliveries waiting, per team (enabled and disabled endpoints).
pub const WEBHOOK_BACKLOG: &str = "wagw_webhook_backlog";
pub const ENDPOINTS_DISABLED: &str = "wagw_webhook_endpoints_disabled_total";
pub const IDEMPOTENT_REPLAYS: &str = "wagw_idempotent_replays_total";
pub const BUILD_INFO: &str = "wagw_build_info";
/// 1 while the shared rate-limit store (Redis) answers, 0 while replicas count on their own.
pub const RATE_LIMIT_REDIS_UP: &str = "wagw_rate_limit_redis_up";
/// Checks answered by a replica's own bucket because Redis did not answer.
pub const RATE_LIMIT_LOCAL_FALLBACKS: &str = "wagw_rate_limit_local_fallbacks_total";
/// Times a replica's PostgreSQL notification connection dropped and came back (its caches
/// were forgotten then), by channel.
pub const NOTIFICATION_RECONNECTS: &str = "wagw_notification_reconnects_total";
/// Restarts of a supervised background task after a panic, by task.
pub const TASK_RESTARTS: &str = "wagw_task_restarts_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the process-wide recorder once (several apps in one test process share it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(WEBHOOK_DELIVERY_SECONDS.into()),
                    &[
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histogram samples are kept one by one until folded into their buckets, which
            // otherwise happens only when /metrics is read: memory would grow with every
            // request between scrapes, or for good where nobody scrapes.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .as_ref()
}

/// Prometheus text exposition.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics_endpoint() -> HttpResponse {
    let body = install().map(PrometheusHandle::render).unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
