//! Crash safety (DESIGN §6, "nothing acknowledged to Meta is ever lost"): the real binary is
//! killed with SIGKILL in the middle of a burst of signed webhook POSTs, restarted on the
//! same database, and every POST that got its 200 must end up as a team event in
//! `GET /v1/events` and be delivered to the team's receiver (at least once, with the same
//! `webhook-id` on repeats).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::sign;
use wa_groups_gateway::storage::sql::SqlStorage;
use wiremock::MockServer;

use crate::fleet::{burst, feed, join_post, joiner, log_tail, meta_answers_creation, start};
use crate::helpers::{APP_SECRET, PN, test_config, uuid};
use crate::receiver::Receiver;

const POSTS: usize = 1_000;
/// The gateway is killed once this many POSTs were acknowledged.
const KILL_AFTER: usize = 300;
const GROUPS: usize = 4;

#[tokio::test]
async fn a_gateway_killed_mid_burst_loses_no_acknowledged_webhook() {
    let started = Instant::now();
    let receiver = Receiver::start().await;
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        r#"
[telemetry]
log_level = "warn"

[delivery]
first_retry_ms = 100
backoff_factor = 2.0
max_retry_delay_ms = 1000
request_timeout_ms = 1000
max_in_flight_per_endpoint = 16
poll_interval_ms = 100

{}"#,
        receiver.team_toml("sales", "ok")
    );
    let toml = test_config(&meta.uri(), dir.path(), &extra);
    let config = dir.path().join("crash-test.toml");
    std::fs::write(&config, &toml).expect("config file");
    let db_url = format!("sqlite://{}/crash.db", dir.path().display());
    let settings = Settings::from_toml_overrides(&toml).expect("valid configuration");
    let token = TokenIssuer::new(&settings.auth, None)
        .expect("signing key")
        .issue(
            "sales",
            &[Scope::GroupsRead, Scope::GroupsWrite],
            None,
            3600,
        )
        .expect("token")
        .token;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        // Below the server's keep-alive, so a pooled connection is not reused as it closes.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client");

    let mut gateway = start(dir.path(), &config, &db_url, 1).await;

    // The team's groups, created through the gateway.
    let mut groups = Vec::new();
    let mut creations = Vec::new();
    for n in 0..GROUPS {
        let meta_request = format!("CRASH-{n}-{}", uuid());
        let _guard = meta_answers_creation(&meta, &meta_request).await;
        let created: Value = http
            .post(format!("{}/v1/phone-numbers/{PN}/groups", gateway.base))
            .bearer_auth(&token)
            .json(&json!({"subject": format!("Crash {n}")}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let group_id = format!("GCRASH{n}{}", uuid());
        creations.push(json!({"field": "group_lifecycle_update", "value": {
            "metadata": {"phone_number_id": PN},
            "groups": [{"timestamp": "1755548877", "group_id": group_id, "type": "group_create",
                "request_id": meta_request, "subject": format!("Crash {n}"), "invite_link": "https://chat.whatsapp.com/C"}]}}));
        groups.push((
            group_id,
            created["request_id"]
                .as_str()
                .expect("request_id")
                .to_owned(),
        ));
    }
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": creations}]}))
        .expect("json");
    let res = http
        .post(format!("{}/webhooks/whatsapp", gateway.base))
        .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(res.status(), 200);
    for (_, request_id) in &groups {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r: Value = http
                .get(format!("{}/v1/group-requests/{request_id}", gateway.base))
                .bearer_auth(&token)
                .send()
                .await
                .expect("poll")
                .json()
                .await
                .expect("json");
            if r["status"] == "created" {
                break;
            }
            assert!(Instant::now() < deadline, "creation never completed: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let group_ids: Vec<String> = groups.into_iter().map(|(g, _)| g).collect();
    let bodies: Vec<Vec<u8>> = (0..POSTS).map(|i| join_post(i, &group_ids)).collect();

    // The burst, and SIGKILL in the middle of it.
    let mut acknowledged = BTreeSet::new();
    let mut killed = false;
    let base = gateway.base.clone();
    let everything: Vec<usize> = (0..POSTS).collect();
    burst(&http, &base, &bodies, &everything, |i, ok| {
        if ok {
            acknowledged.insert(i);
        }
        if !killed && acknowledged.len() >= KILL_AFTER {
            gateway.child.kill().expect("SIGKILL");
            killed = true;
        }
    })
    .await;
    assert!(killed, "the gateway was killed mid-burst");
    let _ = gateway.child.wait();
    let acked = acknowledged.len();
    assert!(
        (KILL_AFTER..POSTS).contains(&acked),
        "{acked} acknowledged: the kill did not land mid-burst"
    );
    let killed_at = started.elapsed();
    // What the kill left half done, as the restarted gateway will find it.
    let (unprocessed, undelivered) = {
        let registry = SqlStorage::connect(&db_url, 2)
            .await
            .expect("the database opens");
        let unprocessed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_inbox WHERE processed_at IS NULL")
                .fetch_one(registry.pool())
                .await
                .expect("count");
        let undelivered: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                .fetch_one(registry.pool())
                .await
                .expect("count");
        registry.pool().close().await;
        (unprocessed, undelivered)
    };

    // Restart on the same database; the acknowledged POSTs must come through on their own.
    let gateway = start(dir.path(), &config, &db_url, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (events, delivered) = loop {
        let events = feed(&http, &gateway.base, &token).await;
        let delivered: BTreeSet<String> = receiver
            .hits_for("sales")
            .into_iter()
            .filter(|h| h.answered == 200)
            .map(|h| h.webhook_id)
            .collect();
        let missing_event = acknowledged
            .iter()
            .find(|i| !events.contains_key(&joiner(**i)));
        let missing_delivery = acknowledged.iter().find(|i| {
            events
                .get(&joiner(**i))
                .is_none_or(|ids| !ids.iter().any(|id| delivered.contains(id)))
        });
        match (missing_event, missing_delivery) {
            (None, None) => break (events, delivered),
            (e, d) => assert!(
                Instant::now() < deadline,
                "after restart, POST {e:?} has no event / POST {d:?} was not delivered\n{}",
                log_tail(&gateway.log)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        events.values().all(|ids| ids.len() == 1),
        "each POST's event is in the feed once"
    );
    let recovered_at = started.elapsed();
    let events_after_restart = events.len();
    let delivered_after_restart = delivered.len();

    // Meta redelivers what it did not see acknowledged (and may redeliver the rest): every
    // acknowledged POST is recognised as a duplicate, and each event exists exactly once.
    let mut answers = Vec::new();
    let mut unanswered = everything.clone();
    for _ in 0..3 {
        let round = burst(&http, &gateway.base, &bodies, &unanswered, |_, _| {}).await;
        unanswered = round.iter().filter(|a| !a.1).map(|a| a.0).collect();
        answers.extend(round.into_iter().filter(|a| a.1));
        if unanswered.is_empty() {
            break;
        }
    }
    assert!(
        unanswered.is_empty(),
        "redeliveries never answered: {unanswered:?}"
    );
    for (i, _, duplicate) in &answers {
        if acknowledged.contains(i) {
            assert!(
                duplicate,
                "POST {i} was acknowledged, so it was stored: its redelivery is a duplicate"
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (events, hits) = loop {
        let events = feed(&http, &gateway.base, &token).await;
        let hits = receiver.hits_for("sales");
        let delivered: BTreeSet<&str> = hits
            .iter()
            .filter(|h| h.answered == 200)
            .map(|h| h.webhook_id.as_str())
            .collect();
        let complete = events.len() == POSTS
            && events
                .values()
                .flatten()
                .all(|id| delivered.contains(id.as_str()));
        if complete {
            break (events, hits);
        }
        assert!(
            Instant::now() < deadline,
            "after Meta's redeliveries: {} of {POSTS} events, {} delivered\n{}",
            events.len(),
            delivered.len(),
            log_tail(&gateway.log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        events.values().all(|ids| ids.len() == 1),
        "exactly once in the feed"
    );
    assert!(
        hits.iter().all(|h| h.verified.is_ok()),
        "every delivery verified"
    );
    // A repeated delivery carries the same webhook-id and the same event.
    let mut by_id: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for h in &hits {
        by_id
            .entry(h.webhook_id.as_str())
            .or_default()
            .push(&h.body);
        assert_eq!(h.body["id"], h.webhook_id.as_str());
    }
    let repeated = by_id.values().filter(|bodies| bodies.len() > 1).count();
    assert!(
        by_id
            .values()
            .all(|bodies| bodies.iter().all(|b| b == &bodies[0]))
    );

    println!(
        "crash test: {acked}/{POSTS} POSTs acknowledged before SIGKILL at {killed_at:?}, leaving \
         {unprocessed} stored POSTs unprocessed and {undelivered} deliveries pending; after restart \
         {events_after_restart} POST events in the feed and {delivered_after_restart} delivered (all {acked} \
         acknowledged ones included) by {recovered_at:?}; after Meta's redeliveries {} events (each once), \
         {} delivery requests for {} distinct webhook-ids ({repeated} repeated), total {:?}",
        events.len(),
        hits.len(),
        by_id.len(),
        started.elapsed()
    );
}
