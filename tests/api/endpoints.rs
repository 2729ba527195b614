//! Team-managed webhook endpoints (`/v1/webhook-endpoints`): made and changed by the team,
//! filtered by event type, signed with their own secrets (two during a rotation), retried,
//! disabled after sustained failure with their events accruing, replayed, and isolated
//! from other teams and from each other.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_groups_gateway::crypto::EncryptionKey;

use crate::events::{attempts, attempts_until, endpoint_of, endpoint_until};
use crate::helpers::*;
use crate::receiver::{Receiver, verify};

/// Retries within milliseconds.
const FAST_DELIVERY: &str = r#"
[delivery]
first_retry_ms = 50
backoff_factor = 2.0
max_retry_delay_ms = 400
jitter = 0.0
request_timeout_ms = 2000
poll_interval_ms = 50
"#;

const PARTICIPANTS: &str = "group_participants_update";

/// A gateway that can store endpoint secrets (`storage.encryption_key`), tuned by `adjust`.
async fn app_with(
    extra: &str,
    adjust: impl FnOnce(&mut wa_groups_gateway::config::Settings) + 'static,
) -> TestApp {
    let key = EncryptionKey::parse(&EncryptionKey::generate()).unwrap();
    spawn_app_adjusted(None, "", "", &format!("{FAST_DELIVERY}{extra}"), move |s| {
        s.encryption.keys.current = Some(key);
        adjust(s);
    })
    .await
}

fn hooks(app: &TestApp, team: &str) -> String {
    app.token(team, &["webhooks"])
}

/// Makes an endpoint for `team`; answers its id and secret.
async fn create(app: &TestApp, team: &str, body: Value) -> (String, String) {
    let res = app
        .post_json("/v1/webhook-endpoints", &hooks(app, team), &body)
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let created: Value = res.json().await.unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn patch(app: &TestApp, team: &str, id: &str, body: Value) -> reqwest::Response {
    app.send_json(
        reqwest::Method::PATCH,
        &format!("/v1/webhook-endpoints/{id}"),
        &hooks(app, team),
        &body,
    )
    .await
}

/// `n` participant-added events of group `g` on PN, sent by Meta in one POST.
async fn participant_events(app: &TestApp, g: &str, n: usize, first: usize) {
    let items: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({"timestamp": format!("{}", 1000 + i), "group_id": g, "type": "group_participants_add",
                   "added_participants": [{"wa_id": format!("1650555{i:04}")}]})
        })
        .collect();
    assert_eq!(
        app.send_webhook(&webhook(PARTICIPANTS, PN, items))
            .await
            .status(),
        200
    );
}

/// The ids of the team's events of `kind`, in feed order.
async fn event_ids(app: &TestApp, kind: &str) -> Vec<String> {
    let feed: Value = app
        .get("/v1/events?limit=1000", &app.sales())
        .await
        .json()
        .await
        .unwrap();
    feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_team_manages_its_endpoints_and_sees_a_secret_only_once() {
    let app = app_with("", |_| {}).await;
    let token = hooks(&app, "sales");
    let res = app
        .post_json(
            "/v1/webhook-endpoints",
            &token,
            &json!({"url": "https://orders.internal:8443/hooks/wa?v=1", "description": "orders",
                    "event_types": ["group.created", "group.*"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(location, format!("/v1/webhook-endpoints/{id}"));
    assert!(id.starts_with("ep_"), "{id}");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["event_types"], json!(["group.created", "group.*"]));
    assert_eq!(created["disabled"], false);
    assert_eq!(created["backlog"], 0);

    // Listed, read and changed: never the secret again.
    let listed = app
        .get("/v1/webhook-endpoints", &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(listed.contains(id), "{listed}");
    assert!(
        !listed.contains(secret) && !listed.contains("whsec_"),
        "{listed}"
    );
    let one = app
        .get(&format!("/v1/webhook-endpoints/{id}"), &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(!one.contains("whsec_"), "{one}");
    let changed: Value = patch(
        &app,
        "sales",
        id,
        json!({"description": "orders, prod", "event_types": null}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(changed["description"], "orders, prod");
    assert_eq!(changed["event_types"], Value::Null, "null: every type");
    let admin: Value = app
        .get(
            "/v1/admin/webhook-endpoints",
            &app.token("platform", &["admin"]),
        )
        .await
        .json()
        .await
        .unwrap();
    let text = admin.to_string();
    assert!(text.contains(id) && !text.contains("whsec_"), "{text}");
    assert_eq!(
        app.get(
            "/v1/admin/webhook-endpoints",
            &app.token_for_numbers("platform", &["admin"], Some(vec![PN.to_owned()]))
        )
        .await
        .status(),
        403,
        "a narrowed admin token sees no team's endpoints"
    );

    // Another team: as unknown as a missing endpoint, whatever it tries.
    let other = hooks(&app, "support");
    let path = format!("/v1/webhook-endpoints/{id}");
    assert_eq!(app.get(&path, &other).await.status(), 404);
    assert_eq!(
        patch(&app, "support", id, json!({"disabled": true}))
            .await
            .status(),
        404
    );
    assert_eq!(app.delete(&path, &other).await.status(), 404);
    assert_eq!(
        app.post_json(&format!("{path}/rotate-secret"), &other, &json!({}))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&format!("{path}/attempts"), &other).await.status(),
        404
    );
    assert_eq!(
        app.post_json(
            &format!("{path}/replay"),
            &other,
            &json!({"since": "2026-01-01T00:00:00Z"})
        )
        .await
        .status(),
        404
    );
    let theirs: Value = app
        .get("/v1/webhook-endpoints", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["endpoints"], json!([]));
    // Without the scope: 403.
    assert_eq!(
        app.get("/v1/webhook-endpoints", &app.sales())
            .await
            .status(),
        403
    );

    // Deleted: gone for good.
    assert_eq!(app.delete(&path, &token).await.status(), 204);
    assert_eq!(app.get(&path, &token).await.status(), 404);
}

#[tokio::test]
async fn bad_endpoints_are_refused_naming_the_field() {
    let app = app_with("", |_| {}).await;
    let token = hooks(&app, "sales");
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": "ftp://files.internal/x"}), "url"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "url",
        ),
        (json!({"url": "http://2852039166/"}), "url"),
        (json!({"url": "http://0xa9fea9fe/"}), "url"),
        (json!({"url": "http://[::ffff:169.254.169.254]/"}), "url"),
        (json!({"url": "http://[fe80::1%25eth0]/"}), "url"),
        (json!({"url": "http://metadata.google.internal/"}), "url"),
        (json!({"url": "https://ok.internal/#frag"}), "url"),
        (
            json!({"url": format!("https://ok.internal/{}", "a".repeat(2100))}),
            "url",
        ),
        (
            json!({"url": "https://ok.internal/", "event_types": ["group.nope"]}),
            "event_types[0]",
        ),
        (
            json!({"url": "https://ok.internal/", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "https://ok.internal/", "description": "two\nlines"}),
            "description",
        ),
        (
            json!({"url": "https://ok.internal/", "disabled": "yes"}),
            "disabled",
        ),
        (
            json!({"url": "https://ok.internal/", "secret": "whsec_mine"}),
            "secret",
        ),
    ] {
        let res = app.post_json("/v1/webhook-endpoints", &token, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let problem = problem(res).await;
        assert!(
            error_fields(&problem).contains(&field.to_owned()),
            "{body}: {problem}"
        );
    }
    let listed: Value = app
        .get("/v1/webhook-endpoints", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["endpoints"], json!([]), "nothing half-made");
    // A malformed id in the path names it; a well-formed unknown one is 404.
    let res = app.get("/v1/webhook-endpoints/..%2Fconfig", &token).await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_fields(&problem(res).await), ["id"]);
    let res = app
        .get(
            "/v1/webhook-endpoints/ep_00000000000000000000000000",
            &token,
        )
        .await;
    assert_eq!(res.status(), 404);
    // PATCH follows the same rules.
    let (id, _) = create(&app, "sales", json!({"url": "https://ok.internal/"})).await;
    let res = patch(
        &app,
        "sales",
        &id,
        json!({"url": "http://169.254.169.254/"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_fields(&problem(res).await), ["url"]);
    // Replay takes exactly one of its two forms.
    for body in [
        json!({}),
        json!({"since": "2026-01-01T00:00:00Z", "event_ids": ["evt_1"]}),
        json!({"since": "yesterday"}),
        json!({"event_ids": []}),
    ] {
        let res = app
            .post_json(&format!("/v1/webhook-endpoints/{id}/replay"), &token, &body)
            .await;
        assert_eq!(res.status(), 400, "{body}");
    }
}

#[tokio::test]
async fn without_an_encryption_key_endpoints_cannot_be_made_and_the_key_is_named() {
    let app = spawn_app_with(FAST_DELIVERY).await;
    let res = app
        .post_json(
            "/v1/webhook-endpoints",
            &hooks(&app, "sales"),
            &json!({"url": "https://ok.internal/"}),
        )
        .await;
    assert_eq!(res.status(), 409);
    assert!(
        problem(res).await["detail"]
            .as_str()
            .unwrap()
            .contains("storage.encryption_key")
    );
}

#[tokio::test]
async fn the_config_endpoint_is_listed_and_read_only() {
    let receiver = Receiver::start().await;
    let app = app_with(&receiver.team_toml("sales", "ok"), |_| {}).await;
    let token = hooks(&app, "sales");
    let listed: Value = app
        .get("/v1/webhook-endpoints", &token)
        .await
        .json()
        .await
        .unwrap();
    let config = &listed["endpoints"][0];
    assert_eq!(config["id"], "config");
    assert!(config["url"].as_str().unwrap().contains("/hooks/sales/ok"));
    let path = "/v1/webhook-endpoints/config";
    assert_eq!(
        patch(&app, "sales", "config", json!({"disabled": true}))
            .await
            .status(),
        409
    );
    assert_eq!(app.delete(path, &token).await.status(), 409);
    assert_eq!(
        app.post_json(&format!("{path}/rotate-secret"), &token, &json!({}))
            .await
            .status(),
        409
    );
    // Support has no webhook in configuration: no config endpoint.
    assert_eq!(app.get(path, &hooks(&app, "support")).await.status(), 404);
}

#[tokio::test]
async fn each_event_goes_to_every_endpoint_of_its_team_whose_filter_takes_it() {
    let receiver = Receiver::start().await;
    let app = app_with("", |_| {}).await;
    let (created_only, secret_a) = create(
        &app,
        "sales",
        json!({"url": receiver.url("a", "ok"), "event_types": ["group.created"]}),
    )
    .await;
    let (everything, secret_b) =
        create(&app, "sales", json!({"url": receiver.url("b", "ok")})).await;
    receiver.set_secret("a", &secret_a);
    receiver.set_secret("b", &secret_b);
    // Another team's endpoint must receive nothing of sales'.
    let (_, secret_c) = create(&app, "support", json!({"url": receiver.url("c", "ok")})).await;
    receiver.set_secret("c", &secret_c);

    let g = app.create_group(&app.sales(), PN, "Fan out").await;
    participant_events(&app, &g, 1, 0).await;
    let hits = receiver
        .wait_until("a: 1, b: 2", Duration::from_secs(10), |h| {
            h.iter().filter(|h| h.team == "a").count() == 1
                && h.iter().filter(|h| h.team == "b").count() == 2
        })
        .await;
    assert!(
        hits.iter().all(|h| h.verified.is_ok()),
        "each signed with its own secret"
    );
    let a: Vec<_> = hits.iter().filter(|h| h.team == "a").collect();
    assert_eq!(a[0].body["type"], "group.created");
    let b_types: Vec<&str> = hits
        .iter()
        .filter(|h| h.team == "b")
        .map(|h| h.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(b_types, ["group.created", "group.participants_added"]);
    // The same event reaches both endpoints with the same webhook-id.
    let b_first = hits.iter().find(|h| h.team == "b").unwrap();
    assert_eq!(a[0].webhook_id, b_first.webhook_id);
    // A's secret does not verify B's deliveries.
    assert!(
        verify(
            &secret_a,
            &b_first.webhook_id,
            &b_first.timestamp,
            &b_first.signature,
            &b_first.raw,
            chrono::Utc::now().timestamp()
        )
        .is_err()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.hits_for("c").is_empty(),
        "support got nothing of sales'"
    );
    attempts_until(&app, "sales", &created_only, |l| l.len() == 1).await;
    attempts_until(&app, "sales", &everything, |l| l.len() == 2).await;
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_both_signatures_until_the_overlap_ends() {
    let receiver = Receiver::start().await;
    let app = app_with("", |s| {
        s.webhooks.secret_overlap = Duration::from_secs(2);
    })
    .await;
    let (id, old) = create(&app, "sales", json!({"url": receiver.url("r", "ok")})).await;
    let res = app
        .post_json(
            &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
            &hooks(&app, "sales"),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let new = res.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old, new);
    receiver.set_secret("r", &new);
    app.create_group(&app.sales(), PN, "Rotated").await;
    let hits = receiver
        .wait_until("one delivery", Duration::from_secs(10), |h| h.len() == 1)
        .await;
    let hit = &hits[0];
    let now = chrono::Utc::now().timestamp();
    let signatures: Vec<&str> = hit.signature.split(' ').collect();
    assert_eq!(signatures.len(), 2, "{}", hit.signature);
    // Each secret verifies exactly one of the two signatures.
    for secret in [&old, &new] {
        let matching = signatures
            .iter()
            .filter(|s| verify(secret, &hit.webhook_id, &hit.timestamp, s, &hit.raw, now).is_ok())
            .count();
        assert_eq!(matching, 1, "{}", hit.signature);
    }
    // Once the overlap is over, only the new secret signs.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let g = app
        .create_group(&app.sales(), PN, "After the overlap")
        .await;
    let hits = receiver
        .wait_until("two deliveries", Duration::from_secs(10), |h| h.len() == 2)
        .await;
    let later = &hits[1];
    assert!(!later.signature.contains(' '), "{}", later.signature);
    assert_eq!(later.verified, Ok(()));
    assert!(
        verify(
            &old,
            &later.webhook_id,
            &later.timestamp,
            &later.signature,
            &later.raw,
            now
        )
        .is_err()
    );
    assert!(!g.is_empty());
}

#[tokio::test]
async fn a_hanging_or_failing_endpoint_delays_no_other_and_costs_one_attempt_per_backoff() {
    let receiver = Receiver::start().await;
    let app = app_with("", |_| {}).await;
    let (hanging, secret_h) =
        create(&app, "sales", json!({"url": receiver.url("h", "slow")})).await;
    let (failing, secret_f) =
        create(&app, "sales", json!({"url": receiver.url("f", "down")})).await;
    let (healthy, secret_ok) =
        create(&app, "sales", json!({"url": receiver.url("ok", "ok")})).await;
    let (other_team, secret_s) =
        create(&app, "support", json!({"url": receiver.url("s", "ok")})).await;
    for (name, secret) in [
        ("h", &secret_h),
        ("f", &secret_f),
        ("ok", &secret_ok),
        ("s", &secret_s),
    ] {
        receiver.set_secret(name, secret);
    }
    let g = app.create_group(&app.sales(), PN, "Busy").await;
    participant_events(&app, &g, 30, 0).await;
    app.create_group(
        &app.token("support", &["groups:read", "groups:write"]),
        PN,
        "Other",
    )
    .await;
    // The healthy endpoints have everything while the hanging one holds its first request.
    let started = Instant::now();
    receiver
        .wait_until("healthy endpoints served", Duration::from_secs(4), |h| {
            h.iter().filter(|h| h.team == "ok").count() == 31
                && h.iter().filter(|h| h.team == "s").count() == 1
        })
        .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(
        receiver.hits_for("h").is_empty(),
        "the hanging one has not answered yet"
    );
    // The failing one is tried once per backoff, not once per event: 31 events waiting, a
    // handful of attempts.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let failed = receiver.hits_for("f").len();
    assert!(
        (2..=8).contains(&failed),
        "{failed} attempts at the failing endpoint"
    );
    let endpoint = endpoint_of(&app, "sales", &failing).await;
    assert!(endpoint["failing_since"].is_string(), "{endpoint}");
    assert!(
        endpoint["last_error"].as_str().unwrap().contains("500"),
        "{endpoint}"
    );
    assert!(endpoint["backlog"].as_i64().unwrap() >= 30, "{endpoint}");
    let log = attempts(&app, "sales", &failing).await;
    assert!(
        log.iter()
            .all(|a| a["outcome"] == "failed" && a["http_status"] == 500)
    );
    let ok = endpoint_of(&app, "sales", &healthy).await;
    assert_eq!(ok["backlog"], 0);
    assert!(ok["last_success_at"].is_string());
    // The hanging endpoint's attempt ends as a timeout in its log.
    let log = attempts_until(&app, "sales", &hanging, |l| !l.is_empty()).await;
    assert_eq!(log[0]["outcome"], "failed");
    assert_eq!(log[0]["error"], "timeout", "{log:#?}");
    // Filters of the attempts log.
    let token = hooks(&app, "sales");
    let only_ok: Value = app
        .get(
            &format!("/v1/webhook-endpoints/{healthy}/attempts?outcome=failed"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only_ok["attempts"], json!([]));
    let page: Value = app
        .get(
            &format!("/v1/webhook-endpoints/{healthy}/attempts?limit=10"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["attempts"].as_array().unwrap().len(), 10);
    let after = page["paging"]["after"].as_str().unwrap();
    let next: Value = app
        .get(
            &format!("/v1/webhook-endpoints/{healthy}/attempts?limit=30&after={after}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["attempts"].as_array().unwrap().len(), 21);
    assert!(next["paging"]["after"].is_null());
    let _ = other_team;
}

#[tokio::test]
async fn retries_end_after_retry_for_and_a_replay_sends_the_same_webhook_id_again() {
    let receiver = Receiver::start().await;
    let app = app_with("", |s| {
        s.webhooks.retry_for = Duration::from_millis(600);
    })
    .await;
    let (id, secret) = create(&app, "sales", json!({"url": receiver.url("r", "down")})).await;
    receiver.set_secret("r", &secret);
    app.create_group(&app.sales(), PN, "Replayed").await;
    // Failed for good once retry_for has passed: nothing waits any more.
    endpoint_until(&app, "sales", &id, |e| {
        e["backlog"] == 0 && e["last_error"].is_string()
    })
    .await;
    let tried = receiver.hits().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.hits().len(), tried, "no attempt after retry_for");
    let first_id = receiver.hits()[0].webhook_id.clone();

    // The receiver is fixed; the team replays by event id…
    let token = hooks(&app, "sales");
    assert_eq!(
        patch(&app, "sales", &id, json!({"url": receiver.url("r", "ok")}))
            .await
            .status(),
        200
    );
    let res = app
        .post_json(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &token,
            &json!({"event_ids": [first_id]}),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["queued"], 1);
    let hits = receiver
        .wait_until("the replay delivered", Duration::from_secs(10), |h| {
            h.iter().any(|h| h.answered == 200)
        })
        .await;
    let delivered = hits.iter().find(|h| h.answered == 200).unwrap();
    assert_eq!(delivered.webhook_id, first_id, "the same webhook-id");
    assert_eq!(delivered.verified, Ok(()));
    // …or by time: everything since the start, which the filter takes.
    let res = app
        .post_json(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &token,
            &json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["queued"], 1);
    receiver
        .wait_until("delivered twice", Duration::from_secs(10), |h| {
            h.iter().filter(|h| h.answered == 200).count() == 2
        })
        .await;
    // An event that is not the team's is refused, and nothing is queued.
    let res = app
        .post_json(
            &format!("/v1/webhook-endpoints/{id}/replay"),
            &token,
            &json!({"event_ids": [first_id, "evt_not_ours"]}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        problem(res).await["detail"]
            .as_str()
            .unwrap()
            .contains("evt_not_ours")
    );
    let log = attempts(&app, "sales", &id).await;
    assert_eq!(log[0]["outcome"], "succeeded");
    assert!(log.iter().filter(|a| a["outcome"] == "failed").count() >= 2);
}

#[tokio::test]
async fn a_disabled_endpoint_accrues_its_events_and_gets_them_in_order_once_enabled() {
    let receiver = Receiver::start().await;
    let app = app_with("", |s| {
        s.webhooks.disable_after = Duration::from_millis(500);
    })
    .await;
    let (id, secret) = create(&app, "sales", json!({"url": receiver.url("r", "down")})).await;
    receiver.set_secret("r", &secret);
    let g = app.create_group(&app.sales(), PN, "Disabled").await;
    let endpoint = endpoint_until(&app, "sales", &id, |e| e["disabled"] == true).await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{endpoint}"
    );
    // Told to the team in its feed (every token of the team sees it: it concerns no
    // number), to administrators in the audit log, and to operators in the metrics.
    let disabled = eventually(
        Duration::from_secs(5),
        "the disabled event in the feed",
        async || {
            let feed: Value = app
                .get(
                    "/v1/events",
                    &app.token_for_numbers("sales", &["groups:read"], Some(vec![PN2.to_owned()])),
                )
                .await
                .json()
                .await
                .unwrap();
            feed["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == "webhook.endpoint_disabled")
                .cloned()
        },
    )
    .await;
    assert_eq!(disabled["data"]["endpoint_id"], id.as_str());
    assert!(disabled["data"]["reason"].as_str().unwrap().contains("500"));
    let audit: Value = app
        .get(
            "/v1/admin/audit?team=sales",
            &app.token("platform", &["admin"]),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["details"]["endpoint_id"] == id.as_str()
                && r["route"].as_str().unwrap().contains("disabled")),
        "{audit:#}"
    );
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wagw_webhook_endpoints_disabled_total")
                && l.contains("team=\"sales\"")),
        "{metrics}"
    );
    let tried = receiver.hits().len();

    // Events keep coming while it is disabled: they accrue, unsent.
    participant_events(&app, &g, 5, 0).await;
    endpoint_until(&app, "sales", &id, |e| e["backlog"] == 6).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.hits().len(), tried, "nothing sent while disabled");
    // The disabled event itself is feed only: never pushed.
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.body["type"] != "webhook.endpoint_disabled")
    );

    // Enabled again (and fixed): the backlog goes out in event order.
    let res = patch(
        &app,
        "sales",
        &id,
        json!({"url": receiver.url("r", "ok"), "disabled": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let enabled: Value = res.json().await.unwrap();
    assert_eq!(enabled["disabled"], false);
    assert!(enabled.get("disabled_reason").is_none(), "{enabled}");
    let hits = receiver
        .wait_until("the backlog delivered", Duration::from_secs(10), |h| {
            h.iter().filter(|h| h.answered == 200).count() == 6
        })
        .await;
    let delivered: Vec<String> = hits
        .iter()
        .filter(|h| h.answered == 200)
        .map(|h| h.webhook_id.clone())
        .collect();
    let mut in_feed = event_ids(&app, "group.created").await;
    in_feed.extend(event_ids(&app, "group.participants_added").await);
    assert_eq!(delivered, in_feed, "in event order");
    endpoint_until(&app, "sales", &id, |e| e["backlog"] == 0).await;
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wagw_webhook_deliveries_total")
                && l.contains("outcome=\"delivered\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_endpoint_made_disabled_accrues_from_the_start() {
    let receiver = Receiver::start().await;
    let app = app_with("", |_| {}).await;
    let (id, secret) = create(
        &app,
        "sales",
        json!({"url": receiver.url("r", "ok"), "disabled": true}),
    )
    .await;
    receiver.set_secret("r", &secret);
    app.create_group(&app.sales(), PN, "Later").await;
    let endpoint = endpoint_until(&app, "sales", &id, |e| e["backlog"] == 1).await;
    assert_eq!(endpoint["disabled"], true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.hits().is_empty());
    assert_eq!(
        patch(&app, "sales", &id, json!({"disabled": false}))
            .await
            .status(),
        200
    );
    receiver
        .wait_until("delivered once enabled", Duration::from_secs(10), |h| {
            h.len() == 1
        })
        .await;
}
