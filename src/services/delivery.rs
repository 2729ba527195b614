//! Pushes team events to each team's `webhook.url` following the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`), the
//! way svix-server's worker does: state in storage (a restart resumes it), retries with
//! exponential backoff and jitter, `Retry-After` honoured, redirects not followed, `410`
//! and sustained failure disabling the endpoint.
//!
//! The worker runs on its own thread and runtime (awc is not `Send`). Each endpoint has its
//! own number of attempts in flight, and every attempt is bounded by a timeout, so a slow
//! receiver only ever delays its own team.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HttpDate};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::clock::now_ms;
use crate::config::{DeliverySettings, SigningKey, TeamSettings, forbidden_address};
use crate::domain::url::without_credentials as redacted;
use crate::storage::{DueDelivery, EventStore, FailedAttempt, Lease, Storage};
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

/// What the worker needs of one team; built on the worker's thread.
struct Endpoint {
    team: String,
    url: String,
    key: SigningKey,
    slots: Arc<Semaphore>,
}

struct Worker {
    store: Arc<dyn EventStore>,
    settings: DeliverySettings,
    endpoints: Vec<Rc<Endpoint>>,
    client: awc::Client,
    wake: Arc<Notify>,
    synced: std::cell::Cell<bool>,
}

/// Starts the worker on its own thread. It stops when the runtime that called this one
/// goes away (the application's), and resumes from storage on the next start.
pub fn spawn(
    settings: &DeliverySettings,
    teams: &BTreeMap<String, TeamSettings>,
    storage: &Storage,
    supervisor: &Supervisor,
) -> DeliveryHandle {
    let handle = DeliveryHandle::default();
    let mut configured = Vec::new();
    for (team, team_settings) in teams {
        let Some(hook) = &team_settings.webhook else {
            continue;
        };
        configured.push((team.clone(), hook.url.clone(), hook.signing_key.clone()));
    }
    let (alive_tx, alive_rx) = watch::channel(());
    tokio::spawn(async move {
        let _alive = alive_tx;
        std::future::pending::<()>().await
    });
    let settings = settings.clone();
    let wake = handle.wake.clone();
    let store = storage.events.clone();
    let supervisor = supervisor.clone();
    let spawned = std::thread::Builder::new()
        .name("event-delivery".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                // Rebuilt from configuration at each (re)start: a worker that panicked
                // leaves nothing behind but its claims, which expire.
                supervisor
                    .run_local("event-delivery", || {
                        let worker = Rc::new(Worker {
                            store: store.clone(),
                            settings: settings.clone(),
                            endpoints: configured
                                .iter()
                                .map(|(team, url, key)| {
                                    Rc::new(Endpoint {
                                        team: team.clone(),
                                        url: url.clone(),
                                        key: key.clone(),
                                        slots: Arc::new(Semaphore::new(
                                            settings.max_in_flight_per_endpoint,
                                        )),
                                    })
                                })
                                .collect(),
                            client: delivery_client(&settings),
                            wake: wake.clone(),
                            synced: std::cell::Cell::new(false),
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

impl Worker {
    async fn run(self: Rc<Self>, mut alive: watch::Receiver<()>) {
        loop {
            let wait = match self.tick().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "event delivery pass failed; will retry");
                    Duration::from_millis(self.settings.poll_interval_ms)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = alive.changed() => return,
            }
        }
    }

    /// Starts every attempt that is due and has a free slot; answers how long to sleep.
    async fn tick(self: &Rc<Self>) -> crate::storage::Result<Duration> {
        if !self.synced.get() {
            for endpoint in &self.endpoints {
                self.store
                    .sync_endpoint(&endpoint.team, &endpoint.url)
                    .await?;
            }
            self.synced.set(true);
        }
        let configured: Vec<String> = self.endpoints.iter().map(|e| e.team.clone()).collect();
        self.store.skip_unconfigured(&configured).await?;
        let disabled = self.store.disabled_teams().await?;
        let now = now_ms();
        let lease_until = now + self.settings.lease().as_millis() as i64;
        for endpoint in &self.endpoints {
            if disabled.contains(&endpoint.team) {
                self.store
                    .skip_pending(&endpoint.team, "the endpoint is disabled")
                    .await?;
                continue;
            }
            let free = endpoint.slots.available_permits();
            if free == 0 {
                continue;
            }
            let due = self
                .store
                .claim_due(
                    &endpoint.team,
                    Lease {
                        now_ms: now,
                        until_ms: lease_until,
                        limit: free,
                    },
                )
                .await?;
            for delivery in due {
                let Ok(permit) = endpoint.slots.clone().try_acquire_owned() else {
                    break;
                };
                actix_web::rt::spawn(self.clone().attempt(endpoint.clone(), delivery, permit));
            }
        }
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        Ok(match self.store.next_due_after(now).await? {
            Some(at) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(poll),
            None => poll,
        })
    }

    async fn attempt(
        self: Rc<Self>,
        endpoint: Rc<Endpoint>,
        due: DueDelivery,
        permit: OwnedSemaphorePermit,
    ) {
        let outcome = self.send(&endpoint, &due).await;
        if let Err(e) = self.settle(&endpoint, &due, outcome).await {
            // The lease runs out and the attempt is made again, with the same webhook-id.
            tracing::error!(error = %e, team = %endpoint.team, event_id = %due.event.id, "delivery outcome not stored");
        }
        drop(permit);
        self.wake.notify_one();
    }

    async fn send(&self, endpoint: &Endpoint, due: &DueDelivery) -> Outcome {
        let body = match serde_json::to_vec(&due.event) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Unreachable(
                    "unencodable event",
                    format!("the event cannot be encoded: {e}"),
                );
            }
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(endpoint.key.as_bytes(), &due.event.id, timestamp, &body);
        let sent = self
            .client
            .post(endpoint.url.as_str())
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header(("webhook-id", due.event.id.as_str()))
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
                    Duration::from_millis(self.settings.request_timeout_ms),
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

    async fn settle(
        &self,
        endpoint: &Endpoint,
        due: &DueDelivery,
        outcome: Outcome,
    ) -> crate::storage::Result<()> {
        let store = &self.store;
        let (status, error, detail, retry_after) = match outcome {
            Outcome::Answered { status, .. } if status.is_success() => {
                tracing::debug!(team = %endpoint.team, event_id = %due.event.id, attempt = due.attempt, "event delivered");
                metrics::counter!(crate::metrics::EVENT_DELIVERIES, "team" => endpoint.team.clone(), "outcome" => "delivered").increment(1);
                return store
                    .delivered(due.id, &endpoint.team, status.as_u16())
                    .await;
            }
            Outcome::Answered { status, .. } if status == StatusCode::GONE => {
                metrics::counter!(crate::metrics::EVENT_DELIVERIES, "team" => endpoint.team.clone(), "outcome" => "gone").increment(1);
                let gone = FailedAttempt::give_up(Some(410), "the endpoint answered 410 Gone");
                store.attempt_failed(due.id, &gone).await?;
                return self
                    .disable(endpoint, "the endpoint answered 410 Gone")
                    .await;
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
                (Some(status.as_u16()), error, None, retry_after)
            }
            Outcome::Unreachable(class, detail) => (None, class.to_owned(), Some(detail), None),
        };
        // Stored and shown: the class. Logged: the details, for the operator.
        let detail = detail.unwrap_or_else(|| error.clone());
        let now = now_ms();
        let failing_since = store.endpoint_failed(&endpoint.team, now, &error).await?;
        let window = i64::try_from(self.settings.disable_after_seconds)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        if now - failing_since >= window {
            let last = FailedAttempt::give_up(status, &error);
            store.attempt_failed(due.id, &last).await?;
            let since = chrono::DateTime::from_timestamp_millis(failing_since)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            return self
                .disable(
                    endpoint,
                    &format!("failing without a success since {since} (last: {error})"),
                )
                .await;
        }
        let retry_in = (due.attempt < self.settings.max_attempts).then(|| {
            let backoff = self.settings.jittered(self.settings.backoff(due.attempt));
            let cap = Duration::from_millis(self.settings.max_retry_delay_ms);
            backoff.max(retry_after.unwrap_or_default().min(cap))
        });
        let (outcome, verdict) = match retry_in {
            Some(_) => ("retry", "will retry"),
            None => ("given_up", "given up after its last attempt"),
        };
        tracing::warn!(
            team = %endpoint.team,
            endpoint = %redacted(&endpoint.url),
            event_id = %due.event.id,
            attempt = due.attempt,
            error = %detail,
            retry_in_ms = retry_in.map(|wait| wait.as_millis() as u64),
            "webhook delivery failed; {verdict}"
        );
        metrics::counter!(crate::metrics::EVENT_DELIVERIES, "team" => endpoint.team.clone(), "outcome" => outcome).increment(1);
        let failed = FailedAttempt {
            retry_at_ms: retry_in.map(|wait| now + wait.as_millis() as i64),
            http_status: status,
            error: &error,
        };
        store.attempt_failed(due.id, &failed).await
    }

    async fn disable(&self, endpoint: &Endpoint, reason: &str) -> crate::storage::Result<()> {
        if self.store.disable_endpoint(&endpoint.team, reason).await? {
            metrics::counter!(crate::metrics::ENDPOINTS_DISABLED, "team" => endpoint.team.clone())
                .increment(1);
            tracing::error!(
                team = %endpoint.team,
                endpoint = %redacted(&endpoint.url),
                reason,
                "webhook endpoint disabled: the team's events stay in GET /v1/events but are no longer pushed until teams.{}.webhook.url changes",
                endpoint.team
            );
        }
        self.store
            .skip_pending(&endpoint.team, "the endpoint is disabled")
            .await?;
        Ok(())
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
