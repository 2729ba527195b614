//! A team's webhook receiver for tests: an actix server on port 0 that checks every delivery
//! against the Standard Webhooks specification with its own HMAC code (not the gateway's),
//! records it, and answers as its path says.
//!
//! Paths are `/hooks/{team}/{mode}`; the team names the secret (`team_secret`), the mode
//! the behaviour: `ok` (200), `flaky` (500 for the first two attempts of each event, then
//! 200), `gone` (410), `down` (always 500), `slow` (200 after 5 s), `retry-after` (503 with
//! `Retry-After: 1` on the first attempt of each event, then 200), `redirect` (307).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Standard Webhooks' replay window.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// A deterministic `whsec_` secret per team.
pub fn team_secret(team: &str) -> String {
    format!(
        "whsec_{}",
        STANDARD.encode(format!("signing-key-of-{team}-0123456789abcdef"))
    )
}

/// Verifies one delivery the way a receiver following the specification does: the
/// timestamp within the tolerance of `now`, and one of the `v1,` signatures equal to the
/// HMAC-SHA256 of `{id}.{timestamp}.{body}` under the base64-decoded secret.
pub fn verify(
    secret: &str,
    webhook_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| format!("webhook-timestamp {timestamp:?} is not a number"))?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(format!(
            "webhook-timestamp {ts} is outside 5 minutes of {now}"
        ));
    }
    let key = STANDARD
        .decode(
            secret
                .strip_prefix("whsec_")
                .ok_or("secret without whsec_")?,
        )
        .map_err(|e| e.to_string())?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{webhook_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    let matched = signatures.split(' ').any(|candidate| {
        candidate
            .split_once(',')
            .is_some_and(|(version, sig)| version == "v1" && sig == expected)
    });
    if matched {
        Ok(())
    } else {
        Err("no v1 signature matches".into())
    }
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub team: String,
    pub mode: String,
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub raw: Vec<u8>,
    pub body: Value,
    pub verified: Result<(), String>,
    pub answered: u16,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    hits: Mutex<Vec<Hit>>,
    attempts: Mutex<HashMap<String, u32>>,
    /// Secrets the gateway made (endpoints of the API), by the path's name; other names
    /// use `team_secret`.
    secrets: Mutex<HashMap<String, String>>,
    /// Requests being answered now, and the most ever at once, by the path's name.
    in_flight: Mutex<HashMap<String, (u32, u32)>>,
}

pub struct Receiver {
    pub base: String,
    state: Arc<State>,
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn hook(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (team, mode) = path.into_inner();
    let webhook_id = header(&req, "webhook-id");
    let timestamp = header(&req, "webhook-timestamp");
    let signature = header(&req, "webhook-signature");
    let secret = state
        .secrets
        .lock()
        .unwrap()
        .get(&team)
        .cloned()
        .unwrap_or_else(|| team_secret(&team));
    let verified = verify(
        &secret,
        &webhook_id,
        &timestamp,
        &signature,
        &body,
        chrono::Utc::now().timestamp(),
    );
    let attempt = {
        let mut attempts = state.attempts.lock().unwrap();
        let n = attempts.entry(webhook_id.clone()).or_default();
        *n += 1;
        *n
    };
    {
        let mut in_flight = state.in_flight.lock().unwrap();
        let (now, most) = in_flight.entry(team.clone()).or_default();
        *now += 1;
        *most = (*most).max(*now);
    }
    match mode.as_str() {
        "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        // Accepts, but takes its time: a batch of these outlasts a delivery lease.
        "lagging" => tokio::time::sleep(Duration::from_millis(150)).await,
        _ => {}
    }
    if let Some((now, _)) = state.in_flight.lock().unwrap().get_mut(&team) {
        *now -= 1;
    }
    let mut builder = match (verified.is_ok(), mode.as_str()) {
        (false, _) => HttpResponse::Unauthorized(),
        (true, "flaky") if attempt <= 2 => HttpResponse::InternalServerError(),
        (true, "gone") => HttpResponse::Gone(),
        (true, "down") => HttpResponse::InternalServerError(),
        (true, "retry-after") if attempt == 1 => {
            let mut r = HttpResponse::ServiceUnavailable();
            r.insert_header(("retry-after", "1"));
            r
        }
        (true, "redirect") => {
            let mut r = HttpResponse::TemporaryRedirect();
            r.insert_header(("location", "/hooks/elsewhere/ok"));
            r
        }
        _ => HttpResponse::Ok(),
    };
    let response = builder.finish();
    let answered = response.status().as_u16();
    state.hits.lock().unwrap().push(Hit {
        team,
        mode,
        webhook_id,
        timestamp,
        signature,
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
        answered,
        at: Instant::now(),
    });
    response
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/hooks/{team}/{mode}", web::post().to(hook))
        })
        .workers(2)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// Deliveries to `/hooks/{name}/…` are verified with `secret` from now on.
    pub fn set_secret(&self, name: &str, secret: &str) {
        self.state
            .secrets
            .lock()
            .unwrap()
            .insert(name.to_owned(), secret.to_owned());
    }

    /// The URL for `team` answering in `mode`.
    pub fn url(&self, team: &str, mode: &str) -> String {
        format!("{}/hooks/{team}/{mode}", self.base)
    }

    /// TOML giving `team` this receiver as its webhook.
    pub fn team_toml(&self, team: &str, mode: &str) -> String {
        format!(
            "[teams.{team}.webhook]\nurl = \"{}\"\nsecret = \"{}\"\n",
            self.url(team, mode),
            team_secret(team)
        )
    }

    /// The most requests to `/hooks/{name}/…` the receiver ever answered at once.
    pub fn most_in_flight(&self, name: &str) -> u32 {
        self.state
            .in_flight
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |(_, most)| *most)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    pub fn hits_for(&self, team: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.team == team).collect()
    }

    /// Waits until `done` holds for the hits so far; panics with `what` after `timeout`.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Hit]) -> bool,
    ) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not reached within {timeout:?}; hits: {:#?}",
                    summary(&hits)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn summary(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .map(|h| {
            format!(
                "{} {} {} {} {:?}",
                h.team, h.mode, h.webhook_id, h.answered, h.verified
            )
        })
        .collect()
}
