//! Pushes team events to each of the team's endpoints following the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`), the
//! way svix-server's worker does: state in storage (a restart resumes it), retries with
//! exponential backoff and jitter for `webhooks.retry_for`, `Retry-After` honoured,
//! redirects not followed, `410` and `webhooks.disable_after` of failure disabling the
//! endpoint.
//!
//! The worker runs on its own thread and runtime (awc is not `Send`). A replica delivers to
//! an endpoint in turns, holding the endpoint's lease in storage: each attempt is made by
//! one replica, an endpoint's deliveries go out in event order, a failing endpoint is tried
//! once per backoff (not once per event), and a slow one only ever delays itself: every
//! endpoint with work gets its own turn, least recently served first.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HttpDate};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::sync::{Notify, watch};

use crate::clock::now_ms;
use crate::config::{DeliverySettings, SigningKey, TeamSettings, forbidden_address, signing_key};
use crate::crypto::Keyring;
use crate::domain::endpoint::{CONFIG_ENDPOINT, EndpointId};
use crate::domain::events::TeamEvent;
use crate::domain::url::without_credentials as redacted;
use crate::storage::{
    AuditEntry, AuditStore, DueDelivery, EndpointHealth, EndpointStore, EndpointTarget,
    SettledAttempt, Storage, Verdict,
};
use crate::supervisor::Supervisor;

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Wakes the worker when new deliveries were stored.
#[derive(Clone, Default)]
pub struct DeliveryHandle {
    wake: Arc<Notify>,
}

impl DeliveryHandle {
    pub fn kick(&self) {
        self.wake.notify_one();
    }
}

/// The owner a stored endpoint secret is sealed for: a sealed secret moved to another
/// endpoint does not open.
pub fn secret_owner(team: &str, endpoint_id: &str) -> String {
    format!("webhook-endpoint:{team}:{endpoint_id}")
}

/// Records configuration's endpoints (`teams.<t>.webhook`, id `config`) before any event is
/// processed, so that every event of such a team gets its delivery row.
pub async fn sync_config_endpoints(
    storage: &Storage,
    teams: &BTreeMap<String, TeamSettings>,
) -> crate::storage::Result<()> {
    let configured: Vec<(String, String)> = teams
        .iter()
        .filter_map(|(team, t)| Some((team.clone(), t.webhook.as_ref()?.url.clone())))
        .collect();
    storage.endpoints.sync_config_endpoints(&configured).await
}

/// What the worker needs besides storage.
#[derive(Clone)]
pub struct DeliveryConfig {
    pub settings: DeliverySettings,
    /// `webhooks.retry_for`.
    pub retry_for: Duration,
    /// `webhooks.disable_after`.
    pub disable_after: Duration,
    /// Opens the stored secrets.
    pub keys: Keyring,
    /// The keys of configuration's endpoints, by team.
    pub config_keys: HashMap<String, SigningKey>,
}

impl DeliveryConfig {
    pub fn new(
        settings: &DeliverySettings,
        webhooks: &crate::config::WebhookSettings,
        teams: &BTreeMap<String, TeamSettings>,
        keys: Keyring,
    ) -> Self {
        DeliveryConfig {
            settings: settings.clone(),
            retry_for: webhooks.retry_for,
            disable_after: webhooks.disable_after,
            keys,
            config_keys: teams
                .iter()
                .filter_map(|(team, t)| {
                    Some((team.clone(), t.webhook.as_ref()?.signing_key.clone()))
                })
                .collect(),
        }
    }
}

/// Starts the worker on its own thread. It stops when the runtime that called this one
/// goes away (the application's), and resumes from storage on the next start.
pub fn spawn(config: DeliveryConfig, storage: &Storage, supervisor: &Supervisor) -> DeliveryHandle {
    let handle = DeliveryHandle::default();
    let (alive_tx, alive_rx) = watch::channel(());
    tokio::spawn(async move {
        let _alive = alive_tx;
        std::future::pending::<()>().await
    });
    let wake = handle.wake.clone();
    let store = storage.endpoints.clone();
    let audit = storage.audit.clone();
    let supervisor = supervisor.clone();
    // Leases name the replica that holds them: another process never releases ours.
    let owner = format!("{}-{}", std::process::id(), EndpointId::generate());
    let spawned = std::thread::Builder::new()
        .name("event-delivery".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                // Rebuilt at each (re)start: a worker that panicked leaves nothing behind
                // but its leases, which expire.
                supervisor
                    .run_local("event-delivery", || {
                        let worker = Rc::new(Worker {
                            store: store.clone(),
                            audit: audit.clone(),
                            client: delivery_client(&config.settings),
                            config: config.clone(),
                            wake: wake.clone(),
                            owner: owner.clone(),
                            running: RefCell::new(HashSet::new()),
                        });
                        let alive = alive_rx.clone();
                        async move { worker.run(alive).await }
                    })
                    .await;
            })
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the event delivery worker could not start; deliveries wait for the next start");
    }
    handle
}

/// The HTTP client deliveries go out with: no redirects, bounded time, and a connector that
/// refuses forbidden addresses.
fn delivery_client(settings: &DeliverySettings) -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .connector(
            awc::Connector::new()
                .connector(GuardedConnector::default())
                .timeout(Duration::from_millis(settings.connect_timeout_ms))
                .conn_keep_alive(Duration::from_secs(30)),
        )
        .disable_redirects()
        .add_default_header((
            header::USER_AGENT,
            concat!("wa-groups-gateway/", env!("CARGO_PKG_VERSION")),
        ))
        .finish()
}

enum Outcome {
    Answered {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// No answer: the class of failure (what administrators see) and the error itself (for
    /// the log line only).
    Unreachable(&'static str, String),
}

/// The TCP connector under the delivery client, refusing connections that reached a
/// forbidden address (`config::forbidden_address`): checked on the address actually
/// connected to, since DNS may name another address than at `config check`, or a different
/// one each time. Nothing is sent on such a connection.
#[derive(Clone, Default)]
struct GuardedConnector {
    inner: actix_tls::connect::ConnectorService,
}

impl actix_service::Service<actix_tls::connect::ConnectInfo<awc::http::Uri>> for GuardedConnector {
    type Response = actix_tls::connect::Connection<awc::http::Uri, tokio::net::TcpStream>;
    type Error = actix_tls::connect::ConnectError;
    type Future =
        futures_util::future::LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    // The inner connector is always ready.
    actix_service::always_ready!();

    fn call(&self, req: actix_tls::connect::ConnectInfo<awc::http::Uri>) -> Self::Future {
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let connection = connecting.await?;
            let peer = connection
                .io_ref()
                .peer_addr()
                .map_err(actix_tls::connect::ConnectError::Io)?;
            if let Some(why) = forbidden_address(peer.ip()) {
                return Err(actix_tls::connect::ConnectError::Io(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} is a {why}: team webhooks may not reach it", peer.ip()),
                )));
            }
            Ok(connection)
        })
    }
}

/// What administrators are shown of a failed attempt: its class, never the receiver's words
/// or the network's details (a webhook URL must not become a probe of the internal network).
fn failure_class(e: &awc::error::SendRequestError) -> &'static str {
    use awc::error::{ConnectError as C, SendRequestError as S};
    match e {
        S::Timeout | S::Connect(C::Timeout) => "timeout",
        S::Connect(C::Resolver(_) | C::NoRecords | C::Unresolved) => "dns failure",
        S::Connect(C::Io(io)) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            "forbidden address"
        }
        S::Connect(C::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused"
        }
        S::Connect(C::SslIsNotSupported) => "tls failure",
        S::Connect(_) => "connection failed",
        S::Response(_) => "invalid response",
        _ => "connection dropped",
    }
}

struct Worker {
    store: Arc<dyn EndpointStore>,
    audit: Arc<dyn AuditStore>,
    config: DeliveryConfig,
    client: awc::Client,
    wake: Arc<Notify>,
    /// This replica's name in the endpoints' leases.
    owner: String,
    /// Endpoints this replica is delivering to now.
    running: RefCell<HashSet<(String, String)>>,
}

/// How often the backlog gauge is read again.
const BACKLOG_EVERY: Duration = Duration::from_secs(10);
/// A turn ends after this long even if its endpoint has more: the others get theirs.
const TURN: Duration = Duration::from_secs(2);

/// The lease a turn holds on its endpoint: until when, and whether renewing it failed.
struct Lease {
    until: std::cell::Cell<i64>,
    lost: std::cell::Cell<bool>,
}

/// The keys a turn signs with: the endpoint's secret, and the one before it during the
/// overlap after a rotation.
struct Keys(Vec<SigningKey>);

impl Keys {
    fn signature(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|key| sign(key.as_bytes(), webhook_id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Worker {
    async fn run(self: Rc<Self>, mut alive: watch::Receiver<()>) {
        let mut backlog_read = std::time::Instant::now() - BACKLOG_EVERY;
        loop {
            if let Err(e) = self.start_turns().await {
                tracing::error!(error = %e, "event delivery pass failed; will retry");
            }
            if backlog_read.elapsed() >= BACKLOG_EVERY {
                backlog_read = std::time::Instant::now();
                if let Ok(backlog) = self.store.backlog_by_team().await {
                    for (team, count) in backlog {
                        metrics::gauge!(crate::metrics::WEBHOOK_BACKLOG, "team" => team)
                            .set(count as f64);
                    }
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(self.config.settings.poll_interval_ms)) => {}
                _ = alive.changed() => return,
            }
        }
    }

    /// Takes every endpoint with a delivery due that no replica serves, up to the bound,
    /// least recently served first, and gives each a turn of its own.
    async fn start_turns(self: &Rc<Self>) -> crate::storage::Result<()> {
        let settings = &self.config.settings;
        let free = settings
            .max_endpoints_in_flight
            .saturating_sub(self.running.borrow().len());
        if free == 0 {
            return Ok(());
        }
        let now = now_ms();
        for (team, id) in self.store.due_endpoints(now, free).await? {
            let key = (team.clone(), id.clone());
            if self.running.borrow().contains(&key) {
                continue;
            }
            let until = now + settings.lease().as_millis() as i64;
            let Some(target) = self
                .store
                .take_endpoint(&team, &id, &self.owner, now, until)
                .await?
            else {
                continue;
            };
            self.running.borrow_mut().insert(key.clone());
            let worker = self.clone();
            actix_web::rt::spawn(async move {
                if let Err(e) = worker.turn(target, until).await {
                    tracing::error!(error = %e, team = %key.0, endpoint_id = %key.1, "delivery turn failed; will retry");
                }
                let _ = worker
                    .store
                    .release_endpoint(&key.0, &key.1, &worker.owner)
                    .await;
                worker.running.borrow_mut().remove(&key);
                worker.wake.notify_one();
            });
        }
        Ok(())
    }

    fn keys(&self, target: &EndpointTarget) -> Option<Keys> {
        if target.id == CONFIG_ENDPOINT {
            return self
                .config
                .config_keys
                .get(&target.team)
                .map(|k| Keys(vec![k.clone()]));
        }
        let owner = secret_owner(&target.team, &target.id);
        let open = |sealed: &str| {
            let (secret, _) = self.config.keys.open(&owner, sealed)?;
            signing_key(secret.expose_secret()).ok()
        };
        let mut keys = vec![open(target.sealed_secret.as_deref()?)?];
        let overlapping = target
            .previous_secret_until
            .is_some_and(|until| until > now_ms());
        if overlapping
            && let Some(previous) = target.previous_sealed_secret.as_deref().and_then(open)
        {
            keys.push(previous);
        }
        Some(Keys(keys))
    }

    /// Delivers the endpoint's due deliveries in order, batch by batch, until none is due,
    /// an attempt fails (the endpoint then waits its backoff), the turn is over, or the lease
    /// is lost.
    async fn turn(
        self: &Rc<Self>,
        target: EndpointTarget,
        lease_until: i64,
    ) -> crate::storage::Result<()> {
        let settings = &self.config.settings;
        let started = std::time::Instant::now();
        let Some(keys) = self.keys(&target) else {
            let error = "the endpoint's secret cannot be opened (storage.encryption_key changed?)";
            tracing::error!(team = %target.team, endpoint_id = %target.id, "{error}");
            let health = self.failing(&target, error.to_owned(), None, now_ms());
            self.store.settle(&target, &[], &health, i64::MIN).await?;
            return Ok(());
        };
        let keys = Rc::new(keys);
        let lease = Rc::new(Lease {
            until: std::cell::Cell::new(lease_until),
            lost: std::cell::Cell::new(false),
        });
        loop {
            if !self.hold(&target, &lease).await? {
                // Another replica has it now: it carries on from storage.
                return Ok(());
            }
            let due = self
                .store
                .due_deliveries(&target.team, &target.id, now_ms(), settings.batch_size)
                .await?;
            if due.is_empty() {
                return Ok(());
            }
            let stop = Rc::new(std::cell::Cell::new(false));
            // Attempts start one after another (at most max_in_flight_per_endpoint at once);
            // before each, the lease is renewed when it would not outlast the attempt, so a
            // batch never needs to be cut to what a lease covers.
            let attempts = futures_util::stream::iter(due)
                .take_while({
                    let (stop, lease, target) = (stop.clone(), lease.clone(), &target);
                    move |_| {
                        let (stop, lease) = (stop.clone(), lease.clone());
                        async move {
                            if stop.get() {
                                return false;
                            }
                            self.hold(target, &lease).await.unwrap_or_else(|e| {
                                tracing::error!(error = %e, team = %target.team, endpoint_id = %target.id, "the delivery lease could not be renewed; the turn ends");
                                false
                            })
                        }
                    }
                })
                .map(|delivery| {
                    let keys = keys.clone();
                    let stop = stop.clone();
                    let target = &target;
                    async move {
                        let at_ms = now_ms();
                        let clock = std::time::Instant::now();
                        let outcome = self.send(target, &keys, &delivery.event).await;
                        let failed = !matches!(outcome, Outcome::Answered { status, .. } if status.is_success());
                        if failed {
                            // Nothing more is started in this turn: the endpoint waits.
                            stop.set(true);
                        }
                        (delivery, outcome, at_ms, clock.elapsed())
                    }
                })
                .buffered(settings.max_in_flight_per_endpoint)
                .collect::<Vec<_>>()
                .await;
            let (settled, health) = self.judge(&target, attempts);
            let expire_before = now_ms() - self.config.retry_for.as_millis() as i64;
            let failing = matches!(health, EndpointHealth::Failing { .. });
            let disabled = self
                .store
                .settle(&target, &settled, &health, expire_before)
                .await?;
            if disabled
                && let EndpointHealth::Failing {
                    disable: Some(reason),
                    ..
                } = &health
            {
                self.disabled(&target, reason).await;
            }
            if failing || started.elapsed() >= TURN {
                return Ok(());
            }
        }
    }

    /// Whether this replica still holds the endpoint for one more attempt: the lease is
    /// renewed in storage when less than an attempt (and a second for settling) is left.
    async fn hold(&self, target: &EndpointTarget, lease: &Lease) -> crate::storage::Result<bool> {
        if lease.lost.get() {
            return Ok(false);
        }
        let settings = &self.config.settings;
        let margin = settings.request_timeout_ms as i64 + 1_000;
        let now = now_ms();
        if lease.until.get() - now >= margin {
            return Ok(true);
        }
        let until = now + settings.lease().as_millis() as i64;
        let renewed = self
            .store
            .renew_endpoint(&target.team, &target.id, &self.owner, until)
            .await
            .inspect_err(|_| lease.lost.set(true))?;
        if renewed {
            lease.until.set(until);
        } else {
            lease.lost.set(true);
        }
        Ok(renewed)
    }

    /// Each attempt's verdict, and the endpoint's health after them.
    fn judge(
        &self,
        target: &EndpointTarget,
        attempts: Vec<(DueDelivery, Outcome, i64, Duration)>,
    ) -> (Vec<SettledAttempt>, EndpointHealth) {
        let settings = &self.config.settings;
        let mut settled = Vec::with_capacity(attempts.len());
        let mut failure: Option<(String, Option<String>, Option<Duration>)> = None;
        let retry_for = self.config.retry_for.as_millis() as i64;
        for (delivery, outcome, at_ms, took) in attempts {
            // What the network said, for the log only (attempts show the class).
            let mut failure_detail: Option<String> = None;
            metrics::histogram!(crate::metrics::WEBHOOK_DELIVERY_SECONDS)
                .record(took.as_secs_f64());
            let (http_status, error, verdict) = match outcome {
                Outcome::Answered { status, .. } if status.is_success() => {
                    (Some(status.as_u16()), None, Verdict::Delivered)
                }
                Outcome::Answered { status, .. } if status == StatusCode::GONE => {
                    let why = "the endpoint answered 410 Gone".to_owned();
                    failure = Some((why.clone(), Some(why.clone()), None));
                    (Some(410), Some(why), Verdict::Failed)
                }
                Outcome::Answered {
                    status,
                    retry_after,
                } => {
                    let error = if status.is_redirection() {
                        format!("answered {status} (redirects are not followed)")
                    } else {
                        format!("answered {status}")
                    };
                    let verdict = self.retry_or_fail(&delivery, at_ms, retry_for, retry_after);
                    failure = Some((error.clone(), None, retry_after));
                    (Some(status.as_u16()), Some(error), verdict)
                }
                Outcome::Unreachable(class, detail) => {
                    failure_detail = Some(detail);
                    let verdict = self.retry_or_fail(&delivery, at_ms, retry_for, None);
                    failure = Some((class.to_owned(), None, None));
                    (None, Some(class.to_owned()), verdict)
                }
            };
            let outcome = match verdict {
                Verdict::Delivered => "delivered",
                Verdict::RetryAt(_) => "retry",
                Verdict::Failed => "failed",
            };
            if let Some(error) = &error {
                let verdict = match verdict {
                    Verdict::RetryAt(_) => "will retry",
                    _ => "failed for good (replayable)",
                };
                tracing::warn!(
                    team = %target.team,
                    endpoint_id = %target.id,
                    endpoint = %redacted(&target.url),
                    event_id = %delivery.event.id,
                    attempt = delivery.attempt,
                    error = %failure_detail.as_deref().unwrap_or(error),
                    "webhook delivery failed; {verdict}"
                );
            }
            metrics::counter!(crate::metrics::WEBHOOK_DELIVERIES, "team" => target.team.clone(), "outcome" => outcome).increment(1);
            settled.push(SettledAttempt {
                delivery_id: delivery.id,
                event_id: delivery.event.id,
                attempt: delivery.attempt,
                http_status,
                error,
                duration_ms: took.as_millis() as i64,
                at_ms,
                verdict,
            });
        }
        let health = match failure {
            None => EndpointHealth::Healthy,
            Some((error, gone, retry_after)) => {
                let now = now_ms();
                let mut health = self.failing(target, error, gone, now);
                if let (EndpointHealth::Failing { paused_until, .. }, Some(wait)) =
                    (&mut health, retry_after)
                {
                    let cap = settings.max_retry_delay_ms as i64;
                    *paused_until = (*paused_until).max(now + (wait.as_millis() as i64).min(cap));
                }
                health
            }
        };
        (settled, health)
    }

    /// The endpoint's state after a failed attempt: paused for its backoff, and disabled
    /// when it answered 410 (`gone`) or has failed without a success for
    /// `webhooks.disable_after`.
    fn failing(
        &self,
        target: &EndpointTarget,
        error: String,
        gone: Option<String>,
        now: i64,
    ) -> EndpointHealth {
        let settings = &self.config.settings;
        let failures = u32::try_from(target.consecutive_failures + 1).unwrap_or(u32::MAX);
        let paused_until = now + settings.jittered(settings.backoff(failures)).as_millis() as i64;
        let since = target.failing_since.unwrap_or(now);
        let disable = gone.or_else(|| {
            (now - since >= self.config.disable_after.as_millis() as i64).then(|| {
                format!(
                    "every attempt failed since {} (last: {error})",
                    crate::clock::ms_to_rfc3339(since)
                )
            })
        });
        EndpointHealth::Failing {
            paused_until,
            error,
            disable,
        }
    }

    /// A failed attempt is retried after its backoff (at least what `Retry-After` asked, up
    /// to the longest wait), until `webhooks.retry_for` has passed since it became due.
    fn retry_or_fail(
        &self,
        delivery: &DueDelivery,
        now: i64,
        retry_for: i64,
        retry_after: Option<Duration>,
    ) -> Verdict {
        if now - delivery.first_due_at >= retry_for {
            return Verdict::Failed;
        }
        let settings = &self.config.settings;
        let attempt = u32::try_from(delivery.attempt).unwrap_or(u32::MAX);
        let cap = Duration::from_millis(settings.max_retry_delay_ms);
        let wait = settings
            .jittered(settings.backoff(attempt))
            .max(retry_after.unwrap_or_default().min(cap));
        Verdict::RetryAt(now + wait.as_millis() as i64)
    }

    /// Tells operators an endpoint was disabled: log line, metric and audit record (the
    /// team's event was stored with the change).
    async fn disabled(&self, target: &EndpointTarget, reason: &str) {
        metrics::counter!(crate::metrics::ENDPOINTS_DISABLED, "team" => target.team.clone())
            .increment(1);
        tracing::error!(
            team = %target.team,
            endpoint_id = %target.id,
            endpoint = %redacted(&target.url),
            reason,
            "webhook endpoint disabled: its events accrue and go out once it is enabled again (PATCH /v1/webhook-endpoints/{{id}} {{\"disabled\": false}})"
        );
        let entry = AuditEntry {
            occurred_at: crate::clock::now(),
            team: Some(target.team.clone()),
            jti: None,
            method: "-".into(),
            route: "webhook endpoint disabled by the gateway".into(),
            phone_number_id: None,
            group_id: None,
            create_request_id: None,
            request_id: format!("delivery-{}", EndpointId::generate()),
            upstream_status: None,
            upstream_code: None,
            fbtrace_id: None,
            status: 0,
            details: Some(serde_json::json!({
                "endpoint_id": target.id,
                "url": redacted(&target.url),
                "reason": reason,
            })),
        };
        if let Err(e) = self.audit.insert(&entry).await {
            tracing::error!(error = %e, "the audit record of a disabled endpoint was not stored");
        }
    }

    async fn send(&self, target: &EndpointTarget, keys: &Keys, event: &TeamEvent) -> Outcome {
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Unreachable(
                    "unencodable event",
                    format!("the event cannot be encoded: {e}"),
                );
            }
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = keys.signature(&event.id, timestamp, &body);
        let sent = self
            .client
            .post(target.url.as_str())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header(("webhook-id", event.id.as_str()))
            .insert_header(("webhook-timestamp", timestamp.to_string()))
            .insert_header(("webhook-signature", signature))
            .send_body(body)
            .await;
        match sent {
            Ok(mut response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                // Read (and drop) what the receiver says, so the connection can be reused.
                let _ = tokio::time::timeout(
                    Duration::from_millis(self.config.settings.request_timeout_ms),
                    response.body().limit(64 * 1024),
                )
                .await;
                Outcome::Answered {
                    status,
                    retry_after,
                }
            }
            Err(e) => Outcome::Unreachable(failure_class(&e), e.to_string()),
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date: HttpDate = value.parse().ok()?;
    SystemTime::from(date)
        .duration_since(SystemTime::now())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let key = crate::config::signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(
                key.as_bytes(),
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                body
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = HttpDate::from(SystemTime::now() + Duration::from_secs(120));
        headers.insert(header::RETRY_AFTER, later.to_string().parse().unwrap());
        let d = retry_after(&headers).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }
}
