//! Sends the webhooks Meta would send: one POST per event, in Meta's envelope, signed with
//! the app secret, `webhook_delay` after the call that caused it.
//!
//! Delivery runs on a thread of its own with its own actix runtime: awc clients cannot move
//! between threads, and one queue keeps events in the order they happened (a join never
//! overtakes the creation of its group), whichever worker served the call.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use super::state::Event;
use crate::domain::meta_webhook::{SIGNATURE_HEADER, sign};

/// Meta's envelope names the WhatsApp Business Account; the sandbox has one, made up.
const SANDBOX_WABA_ID: &str = "102290129340398";
/// Webhooks kept for `GET /sandbox/webhooks`.
const LOG_CAPACITY: usize = 200;
const ATTEMPTS: u32 = 3;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Webhooks waiting to be sent at most. A receiver that hangs (5 s a try, 3 tries) while
/// calls keep coming must not make the queue, and the process, grow without bound: past it, a
/// webhook is logged as not sent (`GET /sandbox/webhooks` shows it).
const QUEUE_CAPACITY: usize = 10_000;

struct Job {
    seq: u64,
    due: Instant,
    body: Vec<u8>,
    signature: String,
}

#[derive(Clone)]
struct LogEntry {
    seq: u64,
    field: &'static str,
    event_type: String,
    group_id: Option<String>,
    phone_number_id: String,
    queued_at: String,
    delivery: String,
    payload: Value,
}

#[derive(Default)]
struct WebhookLog {
    entries: VecDeque<LogEntry>,
    next_seq: u64,
}

type SharedLog = Arc<Mutex<WebhookLog>>;

fn lock(log: &SharedLog) -> MutexGuard<'_, WebhookLog> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Emitter {
    app_secret: SecretString,
    delay: Duration,
    url: Option<String>,
    queue: Option<Sender<Job>>,
    log: SharedLog,
}

impl Emitter {
    pub fn new(app_secret: SecretString, delay: Duration, url: Option<String>) -> Self {
        let log = SharedLog::default();
        let queue = url
            .as_ref()
            .and_then(|url| spawn_delivery(url.clone(), log.clone()));
        Emitter {
            app_secret,
            delay,
            url,
            queue,
            log,
        }
    }

    /// Queues the webhook of one event; returns at once.
    pub fn emit(&self, event: Event) {
        let payload = envelope(&event);
        let body = meta_json(&payload).into_bytes();
        let signature = sign(self.app_secret.expose_secret().as_bytes(), &body);
        let mut log = lock(&self.log);
        let seq = log.next_seq;
        log.next_seq += 1;
        let delivery = if self.queue.is_some() {
            "pending"
        } else {
            "not sent: no webhook URL"
        };
        log.entries.push_back(LogEntry {
            seq,
            field: event.field.as_str(),
            event_type: event.kind().to_owned(),
            group_id: event.group_id().map(str::to_owned),
            phone_number_id: event.pn.clone(),
            queued_at: crate::clock::now(),
            delivery: delivery.to_owned(),
            payload,
        });
        while log.entries.len() > LOG_CAPACITY {
            log.entries.pop_front();
        }
        drop(log);
        if let Some(queue) = &self.queue {
            let job = Job {
                seq,
                due: Instant::now() + self.delay,
                body,
                signature,
            };
            match queue.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(
                        seq,
                        "sandbox webhook queue full ({QUEUE_CAPACITY}): webhook not sent"
                    );
                    set_delivery(
                        &self.log,
                        seq,
                        format!("not sent: {QUEUE_CAPACITY} webhooks already wait to be sent"),
                    );
                }
                Err(TrySendError::Closed(_)) => set_delivery(
                    &self.log,
                    seq,
                    "not sent: the webhook sender has stopped".into(),
                ),
            }
        }
    }

    /// The recent webhooks, oldest first, with how their delivery went.
    pub fn recent(&self) -> Value {
        let log = lock(&self.log);
        json!({
            "webhook_url": self.url,
            "delay_ms": u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
            "webhooks": log.entries.iter().map(|e| json!({
                "seq": e.seq,
                "field": e.field,
                "type": e.event_type,
                "group_id": e.group_id,
                "phone_number_id": e.phone_number_id,
                "queued_at": e.queued_at,
                "delivery": e.delivery,
                "payload": e.payload,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Meta's webhook envelope around one item (meta-groups-notes §2.1; for the `messages`
/// field, the group messages webhook reference).
fn envelope(event: &Event) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        // The sandbox has no display number; the id stands in for it.
        "metadata": { "display_phone_number": event.pn, "phone_number_id": event.pn },
    });
    if !event.contacts.is_empty() {
        value["contacts"] = json!(event.contacts);
    }
    value[event.list()] = json!([event.item]);
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": SANDBOX_WABA_ID,
            "changes": [{ "field": event.field.as_str(), "value": value }],
        }],
    })
}

/// JSON as Meta writes its webhook bodies: every character beyond ASCII escaped as `\uXXXX`
/// (lowercase hex, surrogate pairs beyond the BMP). Meta signs these bytes, so receivers that
/// check the signature over the body they received (never a re-serialisation) agree.
pub fn meta_json(value: &Value) -> String {
    let raw = value.to_string();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            // Outside strings JSON has only ASCII, so every such character is in a string.
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn set_delivery(log: &SharedLog, seq: u64, outcome: String) {
    if let Some(entry) = lock(log).entries.iter_mut().find(|e| e.seq == seq) {
        entry.delivery = outcome;
    }
}

fn spawn_delivery(url: String, log: SharedLog) -> Option<Sender<Job>> {
    let (tx, rx) = channel::<Job>(QUEUE_CAPACITY);
    let spawned = std::thread::Builder::new()
        .name("sandbox-webhooks".into())
        .spawn(move || actix_web::rt::System::new().block_on(deliver_all(url, rx, log)));
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(error = %e, "the sandbox cannot start its webhook sender; webhooks are only logged");
            None
        }
    }
}

/// Runs until every sender is gone (the server stopped).
async fn deliver_all(url: String, mut rx: Receiver<Job>, log: SharedLog) {
    let client = awc::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .disable_redirects()
        .finish();
    while let Some(job) = rx.recv().await {
        tokio::time::sleep_until(tokio::time::Instant::from_std(job.due)).await;
        let outcome = deliver(&client, &url, &job).await;
        match &outcome {
            Ok(_) => tracing::debug!(seq = job.seq, "sandbox webhook delivered"),
            Err(e) => {
                tracing::warn!(seq = job.seq, error = %e, url = %url, "sandbox webhook not delivered")
            }
        }
        set_delivery(&log, job.seq, outcome.unwrap_or_else(|e| e));
    }
}

/// Like Meta, tries again when the receiver fails; unlike Meta, gives up after a few tries.
async fn deliver(client: &awc::Client, url: &str, job: &Job) -> Result<String, String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .insert_header((SIGNATURE_HEADER, job.signature.as_str()))
            .send_body(job.body.clone())
            .await;
        match sent {
            Ok(res) if res.status().is_success() => {
                return Ok(format!("delivered: HTTP {}", res.status().as_u16()));
            }
            Ok(res) => last = format!("failed: HTTP {}", res.status().as_u16()),
            Err(e) => last = format!("failed: {e}"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::state::Field;

    #[test]
    fn non_ascii_is_escaped_as_meta_does() {
        let v = json!({"subject": "Café 🎉", "plain": "ascii \"quoted\""});
        let text = meta_json(&v);
        assert!(text.is_ascii(), "{text}");
        assert!(text.contains("Caf\\u00e9 \\ud83c\\udf89"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
    }

    /// With the receiver not taking webhooks (each waits an hour here), calls that keep
    /// coming fill the queue to its bound and no further: the rest are logged as not sent.
    #[test]
    fn the_webhook_queue_is_bounded() {
        let emitter = Emitter::new(
            SecretString::from("sandbox-test-secret"),
            Duration::from_secs(3600),
            Some("http://127.0.0.1:9/webhooks/whatsapp".into()),
        );
        let extra = 50;
        for i in 0..QUEUE_CAPACITY + extra {
            emitter.emit(Event {
                pn: "12784358810".into(),
                field: Field::Lifecycle,
                item: json!({"type": "group_suspend", "group_id": format!("G{i}")}),
                contacts: Vec::new(),
            });
        }
        let recent = emitter.recent();
        let refused = recent["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["delivery"].as_str().unwrap().contains("already wait"))
            .count();
        // One job is out of the queue, waiting for its time; the queue holds the bound.
        assert!(
            (extra - 1..=extra).contains(&refused),
            "{refused} webhooks refused"
        );
    }
}
