//! Team events: Meta's group webhooks turned into each team's feed (`GET /v1/events`) and
//! signed Standard Webhooks deliveries with retries.

use secrecy::ExposeSecret;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_groups_gateway::domain::GroupId;
use wa_groups_gateway::storage::sql::SqlStorage;
use wa_groups_gateway::storage::{EventStore, FeedPage, GroupStore};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::receiver::{Receiver, team_secret, verify};

/// Retries within milliseconds, so retry tests take well under a second.
const FAST_DELIVERY: &str = r#"
[delivery]
first_retry_ms = 50
backoff_factor = 2.0
max_retry_delay_ms = 2000
jitter = 0.0
request_timeout_ms = 2000
poll_interval_ms = 50
"#;

/// The whole feed of `token`'s team, page by page.
async fn all_events(app: &TestApp, token: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/events?limit=1000&after={a}"),
            None => "/v1/events?limit=1000".to_owned(),
        };
        let res = app.get(&path, token).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["paging"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return events,
        }
    }
}

/// Waits for processing (asynchronous) until the feed holds at least `n` events.
async fn wait_for_events(app: &TestApp, token: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = all_events(app, token).await;
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// The registry and event store of the app's database, opened beside the app.
async fn storage(app: &TestApp) -> (SqlStorage, SqlStorage) {
    let storage = SqlStorage::connect(app.settings.storage.url.expose_secret(), 2)
        .await
        .unwrap();
    (storage.clone(), storage)
}

/// The attempts log of `team`'s endpoint `id`, newest first.
pub async fn attempts(app: &TestApp, team: &str, id: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/v1/webhook-endpoints/{id}/attempts"),
            &app.token(team, &["webhooks"]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["attempts"].as_array().unwrap().clone()
}

/// `team`'s endpoint `id` as the team reads it.
pub async fn endpoint_of(app: &TestApp, team: &str, id: &str) -> Value {
    let res = app
        .get(
            &format!("/v1/webhook-endpoints/{id}"),
            &app.token(team, &["webhooks"]),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// The attempts log once `done` holds for it (the receiver may record a request a moment
/// before the gateway stores its outcome).
pub async fn attempts_until(
    app: &TestApp,
    team: &str,
    id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = attempts(app, team, id).await;
        if done(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "attempts log never settled: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The endpoint once `done` holds for it.
pub async fn endpoint_until(
    app: &TestApp,
    team: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let endpoint = endpoint_of(app, team, id).await;
        if done(&endpoint) {
            return endpoint;
        }
        assert!(
            Instant::now() < deadline,
            "endpoint never got there: {endpoint:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks for a creation (Meta answers `meta_request`) and answers the gateway's request id.
async fn request_creation(app: &TestApp, token: &str, subject: &str, meta_request: &str) -> String {
    let guard =
        Mock::given(method("POST"))
            .and(path(format!("/{API_VERSION}/{PN}/groups")))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"messaging_product": "whatsapp", "request_id": meta_request}),
            ))
            .expect(1)
            .mount_as_scoped(&app.meta)
            .await;
    let res = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            token,
            &json!({ "subject": subject }),
        )
        .await;
    assert_eq!(res.status(), 202);
    drop(guard);
    let created: Value = res.json().await.unwrap();
    created["request_id"].as_str().unwrap().to_owned()
}

/// One POST carrying each `(field, item)` as its own change, in order.
fn batch(pn: &str, changes: &[(&str, Value)]) -> Value {
    let changes: Vec<Value> = changes
        .iter()
        .map(|(field, item)| {
            json!({"field": field, "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": pn},
                "groups": [item]
            }})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": changes}]})
}

const LIFECYCLE: &str = "group_lifecycle_update";
const PARTICIPANTS: &str = "group_participants_update";
const SETTINGS: &str = "group_settings_update";
const STATUS: &str = "group_status_update";

fn meta_error(code: Value, title: &str) -> Value {
    json!({"code": code, "message": format!("({code}) {title}"), "title": title, "error_data": {"details": title}})
}

#[tokio::test]
async fn every_meta_webhook_shape_becomes_the_right_team_event() {
    let app = spawn_app().await;
    let token = app.sales();
    let (registry, _) = storage(&app).await;

    // group_lifecycle_update / group_create: success (quoted timestamp), and two failures
    // (string error code without group id; integer code with the group id Meta's sample has).
    let created_req = request_creation(&app, &token, "Table", "META-C1").await;
    let failed_req = request_creation(&app, &token, "Refused", "META-C2").await;
    let failed_req2 = request_creation(&app, &token, "Refused too", "META-C3").await;
    let g = format!("G{}", uuid());
    let creations = batch(
        PN,
        &[
            (
                LIFECYCLE,
                json!({"timestamp": "1755548877", "group_id": g, "type": "group_create", "request_id": "META-C1",
                "subject": "Table", "invite_link": "https://chat.whatsapp.com/T", "join_approval_mode": "auto_approve"}),
            ),
            (
                LIFECYCLE,
                json!({"timestamp": "1755548878", "type": "group_create", "request_id": "META-C2",
                "subject": "Refused", "description": "d", "errors": [meta_error(json!("131211"), "Group create limit reached")]}),
            ),
            (
                LIFECYCLE,
                json!({"timestamp": 1755548879, "type": "group_create", "request_id": "META-C3", "group_id": "GFAILED",
                "subject": "Refused too", "errors": [meta_error(json!(131214), "Group creation disabled")]}),
            ),
        ],
    );
    assert_eq!(app.send_webhook(&creations).await.status(), 200);
    app.wait_for_request(&token, &created_req, "created").await;
    app.wait_for_request(&token, &failed_req, "failed").await;

    // Every other shape of the notes (§2.3–2.5), in one POST, in this order.
    let samples: Vec<(&str, &str, Value, Option<&str>)> = vec![
        (
            "joined by invite link",
            PARTICIPANTS,
            json!({"timestamp": "1755548900", "group_id": g, "type": "group_participants_add", "reason": "invite_link",
                "added_participants": [{"wa_id": "16505550001"}]}),
            Some("group.participants_added"),
        ),
        (
            "join request created",
            PARTICIPANTS,
            json!({"timestamp": "1755548901", "group_id": g, "type": "group_join_request_created", "reason": "REASON",
                "join_request_id": "JR1", "wa_id": "16505550002"}),
            Some("group.join_request_created"),
        ),
        (
            "join request revoked",
            PARTICIPANTS,
            json!({"timestamp": "1755548902", "group_id": g, "type": "group_join_request_revoked", "reason": "REASON",
                "join_request_id": "JR1", "wa_id": "16505550002"}),
            Some("group.join_request_revoked"),
        ),
        (
            "join requests approved (bare timestamp)",
            PARTICIPANTS,
            json!({"timestamp": 1755548903, "group_id": g, "type": "group_participants_add", "reason": "invite_link",
                "added_participants": [{"input": "+16505550002", "wa_id": "16505550002"}, {"input": "+16505550003", "wa_id": "16505550003"}]}),
            Some("group.participants_added"),
        ),
        (
            "a username user joined (BSUID, no wa_id)",
            PARTICIPANTS,
            json!({"timestamp": "1755548904", "group_id": g, "type": "group_participants_add", "reason": "invite_link",
                "added_participants": [{"user_id": "US.13491208655302741918", "username": "jane"}]}),
            Some("group.participants_added"),
        ),
        (
            "business removed a participant",
            PARTICIPANTS,
            json!({"timestamp": "1755548905", "group_id": g, "type": "group_participants_remove", "request_id": "META-RM-1",
                "initiated_by": "business", "removed_participants": [{"input": "+16505550001"}]}),
            Some("group.participants_removed"),
        ),
        (
            "removal partly failed (integer codes)",
            PARTICIPANTS,
            json!({"timestamp": "1755548906", "group_id": g, "type": "group_participants_remove", "request_id": "META-RM-2",
                "initiated_by": "business", "removed_participants": [{"input": "+16505550002"}],
                "failed_participants": [{"input": "+16505559999", "errors": [meta_error(json!(131212), "Participant not in group")]}],
                "errors": [meta_error(json!(131201), "Not All Participants Remove Succeeded")]}),
            Some("group.participants_removed"),
        ),
        (
            "removal failed entirely (string codes)",
            PARTICIPANTS,
            json!({"timestamp": "1755548907", "group_id": g, "type": "group_participants_remove", "request_id": "META-RM-3",
                "initiated_by": "business",
                "failed_participants": [{"input": "+16505559998", "errors": [meta_error(json!("131212"), "Participant not in group")]}],
                "errors": [meta_error(json!("131201"), "Not All Participants Remove Succeeded")]}),
            Some("group.participants_removed"),
        ),
        (
            "a participant left",
            PARTICIPANTS,
            json!({"timestamp": "1755548908", "group_id": g, "type": "group_participants_remove", "initiated_by": "participant",
                "removed_participants": [{"wa_id": "16505550003"}]}),
            Some("group.participants_removed"),
        ),
        (
            "settings all changed",
            SETTINGS,
            json!({"timestamp": "1755548909", "group_id": g, "type": "group_settings_update", "request_id": "META-SET-1",
                "profile_picture": {"mime_type": "image/jpeg", "sha256": "abc", "update_successful": true},
                "group_subject": {"text": "Renamed", "update_successful": true},
                "group_description": {"text": "New description", "update_successful": true}}),
            Some("group.settings_updated"),
        ),
        (
            "settings partly failed (quoted flags and codes)",
            SETTINGS,
            json!({"timestamp": "1755548910", "group_id": g, "type": "group_settings_update", "request_id": "META-SET-2",
                "group_subject": {"text": "Refused subject", "update_successful": "false", "errors": [meta_error(json!("131200"), "Subject refused")]},
                "group_description": {"text": "Second description", "update_successful": "true"},
                "errors": [meta_error(json!("131201"), "Not all settings updated")]}),
            Some("group.settings_updated"),
        ),
        (
            "settings all failed",
            SETTINGS,
            json!({"timestamp": "1755548911", "group_id": g, "type": "group_settings_update", "request_id": "META-SET-3",
                "profile_picture": {"mime_type": "image/jpeg", "sha256": "abc", "update_successful": false, "errors": [meta_error(json!(131209), "Picture not square")]},
                "group_subject": {"text": "Nope", "update_successful": false, "errors": [meta_error(json!(131200), "Subject refused")]},
                "group_description": {"text": "Nope", "update_successful": false, "errors": [meta_error(json!(131200), "Description refused")]},
                "errors": [meta_error(json!(131200), "Settings not updated")]}),
            Some("group.settings_updated"),
        ),
        (
            "suspended",
            STATUS,
            json!({"timestamp": "1755548912", "type": "group_suspend", "group_id": g}),
            Some("group.suspended"),
        ),
        (
            "an event type Meta adds later",
            PARTICIPANTS,
            json!({"timestamp": "1755548913", "group_id": g, "type": "group_brand_new_event", "x": 1}),
            None,
        ),
    ];
    let changes: Vec<(&str, Value)> = samples
        .iter()
        .map(|(_, f, item, _)| (*f, item.clone()))
        .collect();
    assert_eq!(app.send_webhook(&batch(PN, &changes)).await.status(), 200);
    let expected_so_far = 3 + samples.iter().filter(|s| s.3.is_some()).count();
    let events = wait_for_events(&app, &token, expected_so_far).await;

    // The registry follows: subject, suspension, participant count (0 +1 +2 +1 -1 -1 -1).
    let group_id = GroupId::parse(&g).unwrap();
    let record = registry.group(&group_id).await.unwrap().unwrap();
    assert_eq!(record.subject.as_deref(), Some("Renamed"));
    assert!(record.suspended);
    assert!(record.active);
    let count: Option<i64> =
        sqlx::query_scalar("SELECT participant_count FROM groups WHERE group_id = $1")
            .bind(&g)
            .fetch_one(registry.pool())
            .await
            .unwrap();
    assert_eq!(count, Some(1));

    // Then the rest of the lifecycle in a second POST.
    let tail = batch(
        PN,
        &[
            (
                STATUS,
                json!({"timestamp": "1755548920", "type": "group_suspend_cleared", "group_id": g}),
            ),
            (
                LIFECYCLE,
                json!({"timestamp": "1755548921", "group_id": g, "type": "group_delete", "request_id": "META-DEL-1",
                "errors": [meta_error(json!(131207), "Group suspended")]}),
            ),
            (
                LIFECYCLE,
                json!({"timestamp": "1755548922", "group_id": g, "type": "group_delete", "request_id": "META-DEL-2"}),
            ),
        ],
    );
    assert_eq!(app.send_webhook(&tail).await.status(), 200);
    let events = {
        let all = wait_for_events(&app, &token, events.len() + 3).await;
        assert_eq!(
            &all[..events.len()],
            &events[..],
            "earlier events keep their place"
        );
        all
    };
    let record = registry.group(&group_id).await.unwrap().unwrap();
    assert!(!record.suspended);
    assert!(!record.active, "the group is deleted");

    let mut expected = vec![
        "group.created",
        "group.create_failed",
        "group.create_failed",
    ];
    expected.extend(samples.iter().filter_map(|s| s.3));
    expected.extend([
        "group.suspension_cleared",
        "group.delete_failed",
        "group.deleted",
    ]);
    assert_eq!(types(&events), expected, "in the order Meta sent them");

    for e in &events {
        for key in ["id", "type", "occurred_at", "phone_number_id", "data"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
        assert_eq!(e["phone_number_id"], PN);
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    }

    // Creations carry the gateway's request id, not Meta's.
    assert_eq!(events[0]["request_id"], created_req.as_str());
    assert_eq!(events[0]["group_id"], g.as_str());
    assert_eq!(events[0]["occurred_at"], "2025-08-18T20:27:57Z");
    assert_eq!(
        events[0]["data"]["invite_link"],
        "https://chat.whatsapp.com/T"
    );
    assert_eq!(events[0]["data"]["subject"], "Table");
    assert_eq!(events[1]["request_id"], failed_req.as_str());
    assert_eq!(events[1]["group_id"], Value::Null);
    assert_eq!(
        events[1]["data"]["errors"][0]["code"], 131211,
        "string codes become integers"
    );
    assert_eq!(events[2]["request_id"], failed_req2.as_str());
    assert_eq!(events[2]["group_id"], "GFAILED");
    assert_eq!(
        events[2]["occurred_at"], "2025-08-18T20:27:59Z",
        "bare timestamps too"
    );
    assert_eq!(events[2]["data"]["errors"][0]["code"], 131214);

    let by_name = |name: &str| -> &Value {
        let i = samples
            .iter()
            .filter(|s| s.3.is_some())
            .position(|s| s.0 == name)
            .unwrap();
        &events[3 + i]
    };
    let joined = by_name("joined by invite link");
    assert_eq!(joined["group_id"], g.as_str());
    assert_eq!(joined["occurred_at"], "2025-08-18T20:28:20Z");
    assert_eq!(joined["data"]["reason"], "invite_link");
    assert_eq!(
        joined["data"]["added_participants"],
        json!([{"wa_id": "16505550001"}])
    );
    assert!(joined.get("request_id").is_none(), "Meta gave none");
    assert_eq!(
        by_name("join request created")["data"]["join_request_id"],
        "JR1"
    );
    assert_eq!(
        by_name("join request revoked")["data"]["wa_id"],
        "16505550002"
    );
    let approved = by_name("join requests approved (bare timestamp)");
    assert_eq!(approved["occurred_at"], "2025-08-18T20:28:23Z");
    assert_eq!(
        approved["data"]["added_participants"][1]["input"],
        "+16505550003"
    );
    assert_eq!(
        by_name("a username user joined (BSUID, no wa_id)")["data"]["added_participants"][0]["username"],
        "jane"
    );
    let removed = by_name("business removed a participant");
    assert_eq!(
        removed["request_id"], "META-RM-1",
        "other events carry Meta's request id"
    );
    assert_eq!(removed["data"]["initiated_by"], "business");
    let partial = by_name("removal partly failed (integer codes)");
    assert_eq!(
        partial["data"]["failed_participants"][0]["errors"][0]["code"],
        131212
    );
    assert_eq!(
        partial["data"]["errors"][0]["title"],
        "Not All Participants Remove Succeeded"
    );
    let total = by_name("removal failed entirely (string codes)");
    assert_eq!(total["data"]["errors"][0]["code"], 131201);
    assert_eq!(
        total["data"]["failed_participants"][0]["errors"][0]["code"],
        131212
    );
    assert!(total["data"].get("removed_participants").is_none());
    assert_eq!(
        by_name("a participant left")["data"]["initiated_by"],
        "participant"
    );
    let settings = by_name("settings all changed");
    assert_eq!(settings["request_id"], "META-SET-1");
    assert_eq!(
        settings["data"]["group_subject"],
        json!({"text": "Renamed", "update_successful": true})
    );
    assert_eq!(
        settings["data"]["profile_picture"]["update_successful"],
        true
    );
    let partly = by_name("settings partly failed (quoted flags and codes)");
    assert_eq!(partly["data"]["group_subject"]["update_successful"], false);
    assert_eq!(partly["data"]["group_subject"]["errors"][0]["code"], 131200);
    assert_eq!(
        partly["data"]["group_description"]["update_successful"],
        true
    );
    let none = by_name("settings all failed");
    assert_eq!(none["data"]["profile_picture"]["errors"][0]["code"], 131209);
    assert_eq!(by_name("suspended")["group_id"], g.as_str());
    let n = events.len();
    assert_eq!(events[n - 2]["request_id"], "META-DEL-1");
    assert_eq!(events[n - 2]["data"]["errors"][0]["code"], 131207);
    assert_eq!(events[n - 1]["request_id"], "META-DEL-2");
}

#[tokio::test]
async fn a_team_sees_only_its_own_events_and_nobody_sees_unowned_groups() {
    let app = spawn_app().await;
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Mine").await;
    // A group nobody asked the gateway for, and an event of a group the gateway never saw.
    let hook = batch(
        PN,
        &[
            (
                LIFECYCLE,
                json!({"timestamp": "5", "group_id": "GOUTSIDE", "type": "group_create", "request_id": "NOT-OURS",
                "subject": "Made elsewhere", "invite_link": "https://chat.whatsapp.com/X"}),
            ),
            (
                PARTICIPANTS,
                json!({"timestamp": "6", "group_id": "GUNKNOWN", "type": "group_participants_add",
                "added_participants": [{"wa_id": "16505550009"}]}),
            ),
            (
                STATUS,
                json!({"timestamp": "7", "type": "group_suspend", "group_id": g}),
            ),
        ],
    );
    assert_eq!(app.send_webhook(&hook).await.status(), 200);
    let events = wait_for_events(&app, &sales, 2).await;
    assert_eq!(types(&events), ["group.created", "group.suspended"]);

    let support = app.token("support", &["groups:read"]);
    assert!(all_events(&app, &support).await.is_empty());
    let admin = app.token("platform", &["groups:read", "admin"]);
    assert!(all_events(&app, &admin).await.is_empty());
    // A token narrowed to another number sees none of the team's events on this one.
    let narrowed = app.token_for_numbers("sales", &["groups:read"], Some(vec![PN2.to_owned()]));
    assert!(all_events(&app, &narrowed).await.is_empty());

    // Kept for administrators, who read them through the admin API.
    let res = app.get("/v1/admin/events/unowned", &admin).await;
    assert_eq!(res.status(), 200);
    let unowned: Value = res.json().await.unwrap();
    let groups: Vec<&str> = unowned["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["group_id"].as_str())
        .collect();
    assert_eq!(groups, ["GOUTSIDE", "GUNKNOWN"]);
    assert_eq!(
        app.get("/v1/admin/events/unowned", &sales).await.status(),
        403
    );
}

#[tokio::test]
async fn the_feed_pages_with_stable_cursors_and_validates_its_query() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Paged").await;
    let joins: Vec<(&str, Value)> = (0..4)
        .map(|i| {
            (PARTICIPANTS, json!({"timestamp": format!("{}", 100 + i), "group_id": g, "type": "group_participants_add",
                "added_participants": [{"wa_id": format!("1650555010{i}")}]}))
        })
        .collect();
    app.send_webhook(&batch(PN, &joins)).await;
    let all = wait_for_events(&app, &token, 5).await;
    assert_eq!(all.len(), 5);

    let page = |q: String| {
        let app = &app;
        let token = &token;
        async move {
            let res = app.get(&format!("/v1/events{q}"), token).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let first = page("?limit=2".into()).await;
    assert_eq!(first["events"].as_array().unwrap()[..], all[..2]);
    let after = first["paging"]["after"].as_str().unwrap().to_owned();
    // New events do not move a page boundary already handed out.
    app.send_webhook(&batch(
        PN,
        &[(
            STATUS,
            json!({"timestamp": "200", "type": "group_suspend", "group_id": g}),
        )],
    ))
    .await;
    wait_for_events(&app, &token, 6).await;
    let second = page(format!("?limit=2&after={after}")).await;
    assert_eq!(second["events"].as_array().unwrap()[..], all[2..4]);
    let third = page(format!(
        "?limit=2&after={}",
        second["paging"]["after"].as_str().unwrap()
    ))
    .await;
    assert_eq!(third["events"][0], all[4]);
    assert_eq!(third["events"][1]["type"], "group.suspended");
    assert!(third["paging"].get("after").is_none(), "nothing follows");
    // A consumer may resume after the id of the last event it handled.
    let resumed = page(format!("?after={}", all[3]["id"].as_str().unwrap())).await;
    assert_eq!(resumed["events"][0], all[4]);
    assert_eq!(
        page(String::new()).await["events"]
            .as_array()
            .unwrap()
            .len(),
        6,
        "default limit"
    );

    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?after=nope",
        "?after=evt_unknown123",
        "?limit=-1&after=%20",
    ] {
        let res = app.get(&format!("/v1/events{bad}"), &token).await;
        assert_eq!(res.status(), 400, "{bad}");
        let p = problem(res).await;
        assert!(!error_fields(&p).is_empty(), "{bad}: {p}");
    }
    // Shape before scope; scope before anything else.
    let no_scope = app.token("sales", &["groups:write"]);
    assert_eq!(app.get("/v1/events?limit=0", &no_scope).await.status(), 400);
    assert_eq!(app.get("/v1/events", &no_scope).await.status(), 403);
    let anonymous = app.http.get(app.url("/v1/events")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn deliveries_are_signed_per_standard_webhooks_and_match_the_feed() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(&format!(
        "{FAST_DELIVERY}{}",
        receiver.team_toml("sales", "ok")
    ))
    .await;
    let token = app.sales();
    let before = chrono::Utc::now().timestamp();
    app.create_group(&token, PN, "Signed").await;
    let hits = receiver
        .wait_until("the creation delivered", Duration::from_secs(10), |h| {
            !h.is_empty()
        })
        .await;
    let hit = &hits[0];
    assert_eq!(hit.verified, Ok(()), "an independent verifier accepts it");
    assert_eq!(hit.answered, 200);
    let events = all_events(&app, &token).await;
    assert_eq!(
        hit.webhook_id,
        events[0]["id"].as_str().unwrap(),
        "webhook-id is the event id"
    );
    assert_eq!(hit.body, events[0], "the body is the event");
    let ts: i64 = hit.timestamp.parse().unwrap();
    assert!(ts >= before && ts <= chrono::Utc::now().timestamp());
    assert!(hit.signature.starts_with("v1,"));

    // What a receiver must refuse: stale or future timestamps, other bodies, other keys.
    let secret = team_secret("sales");
    let check = |secret: &str, body: &[u8], now: i64| {
        verify(
            secret,
            &hit.webhook_id,
            &hit.timestamp,
            &hit.signature,
            body,
            now,
        )
    };
    assert_eq!(check(&secret, &hit.raw, ts + 299), Ok(()));
    assert!(
        check(&secret, &hit.raw, ts + 301)
            .unwrap_err()
            .contains("outside 5 minutes")
    );
    assert!(check(&secret, &hit.raw, ts - 301).is_err());
    let mut tampered = hit.raw.clone();
    tampered.push(b' ');
    assert!(check(&secret, &tampered, ts).is_err());
    assert!(check(&team_secret("support"), &hit.raw, ts).is_err());

    let log = attempts_until(&app, "sales", "config", |l| !l.is_empty()).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["event_id"], hit.webhook_id.as_str());
    assert_eq!(log[0]["attempt"], 1);
    assert_eq!(log[0]["outcome"], "succeeded");
    assert_eq!(log[0]["http_status"], 200);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_same_event_again_until_it_succeeds() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(&format!(
        "{FAST_DELIVERY}{}",
        receiver.team_toml("sales", "flaky")
    ))
    .await;
    app.create_group(&app.sales(), PN, "Flaky").await;
    let hits = receiver
        .wait_until("500, 500, then 200", Duration::from_secs(10), |h| {
            h.iter().any(|h| h.answered == 200)
        })
        .await;
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(
        hits.iter().all(|h| h.webhook_id == hits[0].webhook_id),
        "same webhook-id"
    );
    assert!(hits.iter().all(|h| h.raw == hits[0].raw), "same body");
    assert!(
        hits.iter().all(|h| h.verified.is_ok()),
        "each attempt freshly signed"
    );
    // Backoff: the second retry waits longer than the first.
    let first_wait = hits[1].at - hits[0].at;
    let second_wait = hits[2].at - hits[1].at;
    assert!(first_wait >= Duration::from_millis(40), "{first_wait:?}");
    assert!(second_wait >= Duration::from_millis(90), "{second_wait:?}");
    // The attempts log tells the same story, newest first.
    let log = attempts_until(&app, "sales", "config", |l| l.len() == 3).await;
    let story: Vec<(i64, &str, i64)> = log
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["outcome"].as_str().unwrap(),
                a["http_status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        story,
        [
            (3, "succeeded", 200),
            (2, "failed", 500),
            (1, "failed", 500)
        ]
    );
    assert!(
        log.iter()
            .all(|a| a["event_id"] == hits[0].webhook_id.as_str())
    );
    // Delivered means done: the worker goes on to deliver a later event of the team, and
    // never sends the first one again.
    let first = hits[0].webhook_id.clone();
    app.create_group(&app.sales(), PN, "Flaky later").await;
    let hits = receiver
        .wait_until("the later event delivered", Duration::from_secs(10), |h| {
            h.iter().any(|h| h.webhook_id != first && h.answered == 200)
        })
        .await;
    assert_eq!(hits.iter().filter(|h| h.webhook_id == first).count(), 3);
}

#[tokio::test]
async fn retry_after_is_honoured_and_redirects_are_not_followed() {
    let receiver = Receiver::start().await;
    let extra = format!(
        "{FAST_DELIVERY}{}{}",
        receiver.team_toml("sales", "retry-after"),
        receiver.team_toml("support", "redirect")
    );
    let app = spawn_app_with(&extra).await;
    app.create_group(&app.sales(), PN, "Later").await;
    app.create_group(
        &app.token("support", &["groups:read", "groups:write"]),
        PN,
        "Moved",
    )
    .await;
    let hits = receiver
        .wait_until(
            "the retry after Retry-After",
            Duration::from_secs(10),
            |h| h.iter().any(|h| h.team == "sales" && h.answered == 200),
        )
        .await;
    let sales: Vec<_> = hits.iter().filter(|h| h.team == "sales").collect();
    assert_eq!(sales[0].answered, 503);
    let waited = sales[1].at - sales[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    let redirected = receiver.hits_for("support");
    assert!(
        redirected.len() >= 2,
        "a 307 is a failure, retried: {}",
        redirected.len()
    );
    assert!(
        receiver.hits_for("elsewhere").is_empty(),
        "the redirect is not followed"
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_later_events_accrue() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(&format!(
        "{FAST_DELIVERY}{}",
        receiver.team_toml("sales", "gone")
    ))
    .await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Gone").await;
    receiver
        .wait_until("one 410", Duration::from_secs(10), |h| h.len() == 1)
        .await;
    let endpoint = endpoint_until(&app, "sales", "config", |e| e["disabled"] == true).await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{endpoint}"
    );
    assert!(endpoint["disabled_at"].is_string());
    // Administrators see it through the API.
    let admin = app.token("platform", &["admin"]);
    let listed: Value = app
        .get("/v1/admin/webhook-endpoints", &admin)
        .await
        .json()
        .await
        .unwrap();
    let sales_endpoint = listed["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["team"] == "sales" && e["id"] == "config")
        .expect("the sales endpoint is listed");
    assert_eq!(sales_endpoint["disabled"], true);
    // Later events stay in the feed and accrue for the endpoint, unsent.
    app.send_webhook(&batch(
        PN,
        &[(
            STATUS,
            json!({"timestamp": "9", "type": "group_suspend", "group_id": g}),
        )],
    ))
    .await;
    wait_for_events(&app, &token, 2).await;
    endpoint_until(&app, "sales", "config", |e| e["backlog"] == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.hits().len(), 1, "nothing more after 410");
    let log = attempts(&app, "sales", "config").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["outcome"], "failed");
    assert_eq!(log[0]["http_status"], 410);
}

#[tokio::test]
async fn an_endpoint_failing_past_the_window_is_disabled() {
    let receiver = Receiver::start().await;
    let extra = format!("{FAST_DELIVERY}{}", receiver.team_toml("sales", "down"));
    let app = spawn_app_adjusted(None, "", "", &extra, |s| {
        s.webhooks.disable_after = Duration::from_secs(1)
    })
    .await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Down").await;
    let endpoint = endpoint_until(&app, "sales", "config", |e| e["disabled"] == true).await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed since"),
        "{endpoint}"
    );
    assert!(endpoint["failing_since"].is_string());
    let attempts_made = receiver.hits().len();
    assert!(attempts_made >= 3, "{attempts_made}");
    // A later event of the team accrues; by then nothing more has been sent.
    app.send_webhook(&batch(
        PN,
        &[(
            STATUS,
            json!({"timestamp": "9", "type": "group_suspend", "group_id": g}),
        )],
    ))
    .await;
    wait_for_events(&app, &token, 2).await;
    endpoint_until(&app, "sales", "config", |e| e["backlog"] == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.hits().len(),
        attempts_made,
        "no attempt once disabled"
    );
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_other_teams() {
    let receiver = Receiver::start().await;
    let extra = format!(
        "{}\nmax_in_flight_per_endpoint = 2\n{}{}",
        FAST_DELIVERY.replace("request_timeout_ms = 2000", "request_timeout_ms = 10000"),
        receiver.team_toml("sales", "slow"),
        receiver.team_toml("support", "ok")
    );
    let app = spawn_app_with(&extra).await;
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Slow").await;
    // Many events for the slow team…
    let joins: Vec<(&str, Value)> = (0..8)
        .map(|i| {
            (PARTICIPANTS, json!({"timestamp": format!("{}", 300 + i), "group_id": g, "type": "group_participants_add",
                "added_participants": [{"wa_id": format!("1650555020{i}")}]}))
        })
        .collect();
    app.send_webhook(&batch(PN, &joins)).await;
    wait_for_events(&app, &sales, 9).await;
    // …then one for a team whose receiver is quick.
    let started = Instant::now();
    app.create_group(
        &app.token("support", &["groups:read", "groups:write"]),
        PN,
        "Quick",
    )
    .await;
    receiver
        .wait_until("support's event delivered", Duration::from_secs(3), |h| {
            h.iter().any(|h| h.team == "support" && h.answered == 200)
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The slow team never has more than its own two attempts in flight.
    assert!(
        receiver.most_in_flight("sales") <= 2,
        "{}",
        receiver.most_in_flight("sales")
    );
}

#[tokio::test]
async fn a_creation_webhook_that_overtakes_metas_answer_still_reaches_the_team() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(&format!(
        "{FAST_DELIVERY}{}",
        receiver.team_toml("sales", "ok")
    ))
    .await;
    let token = app.sales();
    let g = format!("G{}", uuid());
    // Meta's webhook arrives (and is processed) before Meta answers the create call.
    let hook = batch(
        PN,
        &[(
            LIFECYCLE,
            json!({"timestamp": "11", "group_id": g, "type": "group_create", "request_id": "META-EARLY",
            "subject": "Early", "invite_link": "https://chat.whatsapp.com/E"}),
        )],
    );
    let meta = Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(700))
                .set_body_json(
                    json!({"messaging_product": "whatsapp", "request_id": "META-EARLY"}),
                ),
        )
        .mount_as_scoped(&app.meta)
        .await;
    let create_path = format!("/v1/phone-numbers/{PN}/groups?wait_seconds=5");
    let create_body = json!({"subject": "Early"});
    let create = app.post_json(&create_path, &token, &create_body);
    let early = async {
        // Sent once Meta has the create call, while its answer is still on the way.
        eventually(
            Duration::from_secs(5),
            "the create call reaches Meta",
            async || (!meta.received_requests().await.is_empty()).then_some(()),
        )
        .await;
        assert_eq!(app.send_webhook(&hook).await.status(), 200);
    };
    let (res, ()) = tokio::join!(create, early);
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["group_id"], g.as_str());
    let events = wait_for_events(&app, &token, 1).await;
    assert_eq!(types(&events), ["group.created"]);
    assert_eq!(events[0]["request_id"], created["request_id"]);
    receiver
        .wait_until("delivered", Duration::from_secs(10), |h| h.len() == 1)
        .await;
    let (_, store) = storage(&app).await;
    assert!(
        store
            .list_unowned(
                None,
                FeedPage {
                    after: Default::default(),
                    limit: 10
                }
            )
            .await
            .unwrap()
            .events
            .is_empty()
    );
}

#[tokio::test]
async fn a_post_of_a_thousand_changes_becomes_a_thousand_events_once() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Crowded").await;
    let joins: Vec<(&str, Value)> = (0..1000)
        .map(|i| {
            (
                PARTICIPANTS,
                json!({"timestamp": (1_755_700_000 + i).to_string(), "group_id": g,
                    "type": "group_participants_add", "added_participants": [{"wa_id": format!("1444{i:07}")}]}),
            )
        })
        .collect();
    let post = batch(PN, &joins);
    let started = Instant::now();
    let first: Value = app.send_webhook(&post).await.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    let events = wait_for_events(&app, &token, 1001).await;
    let took = started.elapsed();
    assert_eq!(events.len(), 1001, "processed in {took:?}");
    // Meta retries the same POST, and re-batches some of its changes into another one.
    let again: Value = app.send_webhook(&post).await.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    let rebatched = batch(PN, &joins[500..510]);
    let res: Value = app.send_webhook(&rebatched).await.json().await.unwrap();
    assert_eq!(res["duplicate"], false, "another body");
    app.webhooks_processed().await;
    let events = all_events(&app, &token).await;
    assert_eq!(events.len(), 1001, "each change once");
    let expected: Vec<String> = (0..1000).map(|i| format!("1444{i:07}")).collect();
    let seen: Vec<String> = events[1..]
        .iter()
        .map(|e| {
            e["data"]["added_participants"][0]["wa_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seen, expected, "in the order Meta sent them");
}
