//! What outlives its moment (issue 20 item 4, DESIGN §7): a creation that never gets Meta's
//! webhook becomes `failed` with a `group.create_failed` event its team sees; a request that
//! died holding an `Idempotency-Key` is taken over once no call to Meta can still be running
//! (`graph.timeout_ms` and a margin), not after a fixed two minutes.

use std::time::Duration;

use serde_json::{Value, json};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::startup::Application;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::pg::TestDatabase;

#[tokio::test]
async fn a_creation_without_its_webhook_fails_with_an_event_for_its_team() {
    let app = spawn_app_adjusted(None, "", "", "", |s| {
        s.webhooks.creation_timeout_seconds = 1;
    })
    .await;
    let sales = app.sales();
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": uuid()})))
        .mount(&app.meta)
        .await;
    let created = app.request_creation(&sales, PN, "Never confirmed").await;
    let request_id = created["request_id"].as_str().unwrap().to_owned();
    // The watchdog looks every 5 s.
    let failed = eventually(
        Duration::from_secs(15),
        "the creation expires",
        async || {
            let body: Value = app
                .get(&format!("/v1/group-requests/{request_id}"), &sales)
                .await
                .json()
                .await
                .ok()?;
            (body["status"] == "failed").then_some(body)
        },
    )
    .await;
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("did not arrive"),
        "{failed}"
    );
    let events: Value = app.get("/v1/events", &sales).await.json().await.unwrap();
    let told: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request_id"] == request_id.as_str())
        .collect();
    assert_eq!(told.len(), 1, "{events}");
    assert_eq!(told[0]["type"], "group.create_failed");
    assert_eq!(told[0]["phone_number_id"], PN);
    assert!(
        told[0]["data"]["errors"][0]["message"].is_string(),
        "{}",
        told[0]
    );
    // Nobody else is told.
    let support = app.token("support", &["groups:read"]);
    let theirs: Value = app.get("/v1/events", &support).await.json().await.unwrap();
    assert!(
        !theirs["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["request_id"] == request_id.as_str()),
        "{theirs}"
    );
}

/// Two gateways on one database: `slow` (a long `graph.timeout_ms`) holds a key while its
/// call to Meta hangs, as a replica that died mid-call would; `quick` (2 s) takes the key
/// over once its own bound has passed.
#[tokio::test]
async fn a_key_held_by_a_request_that_can_no_longer_be_running_is_taken_over() {
    let db = TestDatabase::create().await;
    let meta = MockServer::builder().start().await;
    let start = |timeout_ms: u64| {
        let (meta, db) = (&meta, &db);
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut settings =
                Settings::from_toml_overrides(&test_config(&meta.uri(), dir.path(), "")).unwrap();
            settings.storage.url = db.url.clone().into();
            settings.graph.timeout_ms = timeout_ms;
            settings.graph.attempt_timeout_ms = timeout_ms;
            let app = Application::build(settings).await.expect("app builds");
            let base = format!("http://127.0.0.1:{}", app.port());
            tokio::spawn(app.run_until_stopped());
            (base, dir)
        }
    };
    let ((slow, _a), (quick, _b)) = (start(60_000).await, start(2_000).await);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let settings =
        Settings::from_toml_overrides(&test_config(&meta.uri(), std::path::Path::new("/"), ""))
            .unwrap();
    let sales = wa_groups_gateway::auth::TokenIssuer::new(&settings.auth, None)
        .unwrap()
        .issue(
            "sales",
            &[
                wa_groups_gateway::auth::Scope::GroupsWrite,
                wa_groups_gateway::auth::Scope::GroupsMessage,
                wa_groups_gateway::auth::Scope::GroupsRead,
            ],
            None,
            3600,
        )
        .unwrap()
        .token;

    // A group of sales, made through `slow`.
    let meta_request = format!("M-{}", uuid());
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": meta_request})))
        .mount(&meta)
        .await;
    let created: Value = http
        .post(format!("{slow}/v1/phone-numbers/{PN}/groups"))
        .bearer_auth(&sales)
        .json(&json!({"subject": "Takeover"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group = format!("G{}", uuid());
    let hook = lifecycle_webhook(
        PN,
        vec![
            json!({"timestamp": "1755548877", "group_id": group, "type": "group_create",
                    "request_id": meta_request, "subject": "Takeover",
                    "invite_link": "https://chat.whatsapp.com/T"}),
        ],
    );
    let raw = serde_json::to_vec(&hook).unwrap();
    let posted = http
        .post(format!("{slow}/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            wa_groups_gateway::domain::meta_webhook::sign(APP_SECRET.as_bytes(), &raw),
        )
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let request_id = created["request_id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(10),
        "the group is created",
        async || {
            let body: Value = http
                .get(format!("{slow}/v1/group-requests/{request_id}"))
                .bearer_auth(&sales)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (body["status"] == "created").then_some(())
        },
    )
    .await;

    // Meta hangs on the first message, answers the next at once.
    let messages = format!("/{API_VERSION}/{PN}/messages");
    let answer = json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.TAKEN"}]});
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("POST"))
        .and(path(messages.clone()))
        .respond_with(move |_: &wiremock::Request| {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let reply = ResponseTemplate::new(200).set_body_json(answer.clone());
            if first {
                reply.set_delay(Duration::from_secs(50))
            } else {
                reply
            }
        })
        .mount(&meta)
        .await;
    let send = |base: String| {
        let (http, sales, group) = (http.clone(), sales.clone(), group.clone());
        async move {
            http.post(format!("{base}/v1/groups/{group}/messages"))
                .bearer_auth(sales)
                .header("Idempotency-Key", "takeover-key")
                .json(&json!({"type": "text", "text": {"body": "Hello"}}))
                .send()
                .await
        }
    };
    let _hanging = tokio::spawn(send(slow.clone()));
    let sent_to_meta = async || {
        meta.received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == messages)
            .count()
    };
    eventually(
        Duration::from_secs(10),
        "the first send reaches Meta",
        async || (sent_to_meta().await == 1).then_some(()),
    )
    .await;
    // `quick` allows no call longer than 2 s (+5 s margin): within 10 s the key is its own.
    let taken = eventually(
        Duration::from_secs(12),
        "quick takes the key over",
        async || {
            let res = send(quick.clone()).await.ok()?;
            (res.status() == 202).then_some(res)
        },
    )
    .await;
    let body: Value = taken.json().await.unwrap();
    assert_eq!(body["message_id"], "wamid.TAKEN");
    assert_eq!(sent_to_meta().await, 2);
}
