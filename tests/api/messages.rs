//! Group messaging (DESIGN §4 "Group messaging", §6): the business writes into its groups
//! through `POST /v1/groups/{group_id}/messages`, with wiremock standing in for Meta.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

fn graph(p: &str) -> String {
    format!("/{API_VERSION}/{p}")
}

/// Meta's answer to a send addressed to a group (`messages[0].group_id` names it).
fn sent(group_id: &str, wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": group_id, "wa_id": group_id}],
        "messages": [{"id": wamid, "group_id": group_id}]
    }))
}

/// Meta answers every send to `PN` with `wamid`.
async fn meta_sends(app: &TestApp, group_id: &str, wamid: &str) {
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/messages"))))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_PN}").as_str(),
        ))
        .respond_with(sent(group_id, wamid))
        .mount(&app.meta)
        .await;
}

async fn send_message(
    app: &TestApp,
    token: &str,
    group_id: &str,
    body: &Value,
) -> reqwest::Response {
    app.post_json(&format!("/v1/groups/{group_id}/messages"), token, body)
        .await
}

/// The bodies of the sends Meta received, oldest first.
async fn upstream_sends(app: &TestApp) -> Vec<Value> {
    app.upstream_requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == graph(&format!("{PN}/messages")))
        .map(|r| serde_json::from_slice(&r.body).expect("Meta got JSON"))
        .collect()
}

/// What Meta must receive for a message whose content object is `content`.
fn to_group(group_id: &str, kind: &str, content: Value) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "group",
        "to": group_id,
        "type": kind,
    });
    body[kind] = content;
    body
}

#[tokio::test]
async fn each_message_type_reaches_meta_as_its_group_send_body() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Launch crew").await;
    meta_sends(&app, &g, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3").await;
    // (what the caller sends, the `type` and content object Meta must get)
    let cases = vec![
        (
            json!({"type": "text", "text": {"body": "Hello, crew!"}}),
            "text",
            json!({"body": "Hello, crew!"}),
        ),
        (
            json!({"type": "text", "text": {"body": "Schedule: https://example.com/s", "preview_url": true}}),
            "text",
            json!({"body": "Schedule: https://example.com/s", "preview_url": true}),
        ),
        (
            json!({"type": "text", "text": {"body": "é".repeat(4096), "preview_url": false}}),
            "text",
            json!({"body": "é".repeat(4096), "preview_url": false}),
        ),
        (
            json!({"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "c".repeat(1024)}}),
            "image",
            json!({"link": "https://example.com/a.jpg", "caption": "c".repeat(1024)}),
        ),
        (
            json!({"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "Launch day"}}),
            "image",
            json!({"link": "https://example.com/a.jpg", "caption": "Launch day"}),
        ),
        (
            json!({"type": "image", "image": {"id": "1037543291543636"}}),
            "image",
            json!({"id": "1037543291543636"}),
        ),
        (
            json!({"type": "video", "video": {"link": "https://example.com/v.mp4"}}),
            "video",
            json!({"link": "https://example.com/v.mp4"}),
        ),
        (
            json!({"type": "video", "video": {"id": "2037543291543636", "caption": "Walkthrough"}}),
            "video",
            json!({"id": "2037543291543636", "caption": "Walkthrough"}),
        ),
        (
            json!({"type": "audio", "audio": {"link": "https://example.com/note.ogg"}}),
            "audio",
            json!({"link": "https://example.com/note.ogg"}),
        ),
        (
            json!({"type": "audio", "audio": {"id": "1166846181421424"}}),
            "audio",
            json!({"id": "1166846181421424"}),
        ),
        (
            json!({"type": "document", "document": {"link": "https://example.com/agenda.pdf",
                "filename": "agenda.pdf", "caption": "Tomorrow"}}),
            "document",
            json!({"link": "https://example.com/agenda.pdf", "filename": "agenda.pdf", "caption": "Tomorrow"}),
        ),
        (
            json!({"type": "document", "document": {"id": "3037543291543636"}}),
            "document",
            json!({"id": "3037543291543636"}),
        ),
        (
            json!({"type": "template", "template": {"name": "launch_update", "language": "en_US"}}),
            "template",
            json!({"name": "launch_update", "language": {"code": "en_US"}}),
        ),
        (
            json!({"type": "template", "template": {"name": "order_update", "language": "pt_BR",
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/h.jpg"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "#1042"}]}
            ]}}),
            "template",
            json!({"name": "order_update", "language": {"code": "pt_BR"},
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/h.jpg"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "#1042"}]}
            ]}),
        ),
    ];
    for (i, (request, kind, content)) in cases.iter().enumerate() {
        let res = send_message(&app, &token, &g, request).await;
        assert_eq!(res.status(), 202, "{request}");
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3"}),
            "{request}"
        );
        let sends = upstream_sends(&app).await;
        assert_eq!(sends.len(), i + 1, "one send per message: {request}");
        assert_eq!(sends[i], to_group(&g, kind, content.clone()), "{request}");
    }
}

#[tokio::test]
async fn sending_needs_the_messaging_scope_and_the_teams_own_group() {
    let app = spawn_app().await;
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Sales only").await;
    meta_sends(&app, &g, "wamid.ok").await;
    let hello = json!({"type": "text", "text": {"body": "Hello"}});

    let without = app.token(
        "sales",
        &[
            "groups:read",
            "groups:write",
            "groups:delete",
            "groups:invite",
        ],
    );
    let p = problem(send_message(&app, &without, &g, &hello).await).await;
    assert_eq!(p["status"], 403, "{p}");
    assert!(
        p["detail"].as_str().unwrap().contains("groups:message"),
        "{p}"
    );

    let support = app.token("support", &["groups:message"]);
    let p = problem(send_message(&app, &support, &g, &hello).await).await;
    assert_eq!(p["status"], 404, "{p}");
    assert!(
        upstream_sends(&app).await.is_empty(),
        "nothing reached Meta"
    );

    // The scope can be granted like any other: over HTTP by an administrator…
    let admin = app.token("platform", &["admin"]);
    let res = app
        .post_json(
            "/v1/admin/tokens",
            &admin,
            &json!({"team": "sales", "scopes": ["groups:message"]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let issued = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(send_message(&app, &issued, &g, &hello).await.status(), 202);
    // …and by `token issue`.
    let minted = wa_groups_gateway::cli::issue_token(
        &app.settings,
        "sales",
        &["groups:message".to_owned()],
        &[],
        Some("1h"),
        None,
    )
    .expect("token issue accepts groups:message")
    .token;
    assert_eq!(send_message(&app, &minted, &g, &hello).await.status(), 202);
    assert_eq!(upstream_sends(&app).await.len(), 2);
}

#[tokio::test]
async fn metas_refusals_reach_the_caller_with_their_code() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Refusals").await;
    let hello = json!({"type": "text", "text": {"body": "Hello"}});
    // (Meta's HTTP status and code, what the caller gets)
    let cases = [
        (400, 131020, 400, "nobody joined yet"),
        (400, 131041, 400, "the number left, or the group is gone"),
        (403, 131207, 403, "suspended"),
        (400, 131208, 429, "group rate limit"),
        (400, 130429, 429, "throughput"),
        (400, 132001, 400, "no such template"),
    ];
    for (meta_status, code, status, why) in cases {
        let guard = Mock::given(method("POST"))
            .and(path(graph(&format!("{PN}/messages"))))
            .respond_with(ResponseTemplate::new(meta_status).set_body_json(meta_error(code, why)))
            .expect(1)
            .mount_as_scoped(&app.meta)
            .await;
        let res = send_message(&app, &token, &g, &hello).await;
        let retry_after = res.headers().get("retry-after").cloned();
        let p = problem(res).await;
        assert_eq!(p["status"], status, "{why}: {p}");
        assert_eq!(p["upstream"]["code"], code, "{why}: {p}");
        assert_eq!(retry_after.is_some(), status == 429, "{why}: Retry-After");
        drop(guard);
    }
}

#[tokio::test]
async fn a_send_is_never_repeated_by_the_gateway() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Once").await;
    let hello = json!({"type": "text", "text": {"body": "Hello"}});
    let guard = Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/messages"))))
        .respond_with(ResponseTemplate::new(500).set_body_json(meta_error(1, "unknown")))
        .expect(1)
        .mount_as_scoped(&app.meta)
        .await;
    assert_eq!(send_message(&app, &token, &g, &hello).await.status(), 502);
    drop(guard);
    let _slow = Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/messages"))))
        .respond_with(sent(&g, "wamid.late").set_delay(Duration::from_secs(5)))
        .expect(1)
        .mount_as_scoped(&app.meta)
        .await;
    assert_eq!(send_message(&app, &token, &g, &hello).await.status(), 504);
}

#[tokio::test]
async fn the_same_idempotency_key_sends_the_message_once() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Retries").await;
    meta_sends(&app, &g, "wamid.first").await;
    let post = |body: Value, key: &'static str| {
        app.http
            .post(app.url(&format!("/v1/groups/{g}/messages")))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let hello = json!({"type": "text", "text": {"body": "Hello"}});
    let first = post(hello.clone(), "msg-1").await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = post(hello.clone(), "msg-1").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(upstream_sends(&app).await.len(), 1, "sent once");

    let other = json!({"type": "text", "text": {"body": "Something else"}});
    let reused = post(other, "msg-1").await.unwrap();
    assert_eq!(problem(reused).await["status"], 422);
    let bad_key = post(hello, "with space").await.unwrap();
    let p = problem(bad_key).await;
    assert_eq!(error_fields(&p), ["Idempotency-Key"]);
    assert_eq!(upstream_sends(&app).await.len(), 1);
}

#[tokio::test]
async fn the_audit_record_names_the_message_but_not_its_content() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Audited").await;
    meta_sends(&app, &g, "wamid.audited").await;
    let secret_plan = "The surprise party is on Friday";
    let res = send_message(
        &app,
        &token,
        &g,
        &json!({"type": "text", "text": {"body": secret_plan}}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let admin = app.token("platform", &["admin"]);
    let audit: Value = app
        .get(&format!("/v1/admin/audit?group_id={g}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    let record = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/v1/groups/{group_id}/messages")
        .unwrap_or_else(|| panic!("no audit record for the send: {audit}"))
        .clone();
    assert_eq!(record["status"], 202);
    assert_eq!(record["team"], "sales");
    assert_eq!(record["upstream_status"], 200);
    assert_eq!(record["details"]["message_id"], "wamid.audited");
    assert_eq!(record["details"]["message_type"], "text");
    assert!(
        !audit.to_string().contains("surprise party"),
        "the audit log holds the message's content: {audit}"
    );
}

// ---- what participants write, and the statuses of what the business wrote -----------------

/// Deliveries are looked for often, so a test waits milliseconds, not a poll interval.
const QUICK_DELIVERY: &str = "[delivery]\npoll_interval_ms = 50\n";

/// A POST of Meta's `messages` field on `pn` with `value`'s `contacts`, `messages` and
/// `statuses`.
fn messages_webhook(pn: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": "15550001111", "phone_number_id": pn});
    json!({"object": "whatsapp_business_account",
        "entry": [{"id": "WABA_ID", "changes": [{"field": "messages", "value": value}]}]})
}

/// The team's whole feed.
async fn feed(app: &TestApp, token: &str) -> Vec<Value> {
    let res = app.get("/v1/events?limit=1000", token).await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the team's feed holds an event of `event_type` (processing is asynchronous).
async fn wait_for_type(app: &TestApp, token: &str, event_type: &str) -> Vec<Value> {
    for _ in 0..250 {
        let events = feed(app, token).await;
        if events.iter().any(|e| e["type"] == event_type) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {event_type} event arrived");
}

#[tokio::test]
async fn a_group_message_and_a_status_become_one_event_each_for_the_owning_team_only() {
    let receiver = crate::receiver::Receiver::start().await;
    let app = spawn_app_with(&format!(
        "{QUICK_DELIVERY}{}{}",
        receiver.team_toml("sales", "ok"),
        receiver.team_toml("support", "ok")
    ))
    .await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read"]);
    let admin = app.token("platform", &["admin"]);
    let g = app.create_group(&sales, PN, "Launch crew").await;

    // Meta's sample of a participant writing in a group, beside a 1:1 message to the same
    // number from the same person.
    let inbound = messages_webhook(
        PN,
        json!({
            "contacts": [{"profile": {"name": "Tiago Mingo"}, "wa_id": "16505551234"}],
            "messages": [
                {"from": "16505551234", "group_id": g, "id": "wamid.GROUP1",
                 "timestamp": "1744344496", "text": {"body": "What does everyone think about this?"},
                 "type": "text"},
                {"from": "16505551234", "id": "wamid.DIRECT1", "timestamp": "1744344497",
                 "text": {"body": "Only for the business"}, "type": "text"},
                {"from": "16505551234", "group_id": "GUNOWNED", "id": "wamid.ELSEWHERE",
                 "timestamp": "1744344498", "text": {"body": "In a group nobody adopted"}, "type": "text"}
            ]
        }),
    );
    // A participant's delivered status of the business's message (in the spelling of Meta's
    // single-status samples), beside a 1:1 status.
    let statuses = messages_webhook(
        PN,
        json!({"statuses": [
            {"id": "wamid.SENT1", "status": "delivered", "timestamp": "1744344500",
             "recipient_id": g, "recipient_type": "group", "participant_recipient_id": "16505551234",
             "pricing": {"billable": true, "pricing_model": "PMP", "category": "group_utility", "type": "regular"}},
            {"id": "wamid.DIRECT2", "status": "read", "timestamp": "1744344501",
             "recipient_id": "16505551234", "recipient_type": "individual"}
        ]}),
    );
    for post in [&inbound, &statuses, &inbound] {
        assert_eq!(app.send_webhook(post).await.status(), 200);
    }
    // The same group message again in another batch (Meta redelivers in new batches).
    let mut rebatched = inbound.clone();
    rebatched["entry"][0]["changes"][0]["value"]["messages"][1]["id"] = json!("wamid.DIRECT3");
    assert_eq!(app.send_webhook(&rebatched).await.status(), 200);
    // A marker after everything above: once it is in the feed, all of the above was processed.
    let marker = webhook(
        "group_participants_update",
        PN,
        vec![
            json!({"timestamp": "1744344600", "group_id": g, "type": "group_participants_add",
            "reason": "invite_link", "added_participants": [{"wa_id": "16505559999"}]}),
        ],
    );
    assert_eq!(app.send_webhook(&marker).await.status(), 200);
    let events = wait_for_type(&app, &sales, "group.participants_added").await;

    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "group.created",
            "group.message_received",
            "group.message_status",
            "group.participants_added"
        ]
    );
    let received = &events[1];
    assert_eq!(received["group_id"], g.as_str());
    assert_eq!(received["phone_number_id"], PN);
    assert_eq!(received["occurred_at"], "2025-04-11T04:08:16Z");
    assert_eq!(
        received["data"],
        json!({
            "message_id": "wamid.GROUP1",
            "from": "16505551234",
            "type": "text",
            "text": {"body": "What does everyone think about this?"},
            "contact": {"profile": {"name": "Tiago Mingo"}, "wa_id": "16505551234"}
        })
    );
    let status = &events[2];
    assert_eq!(status["group_id"], g.as_str());
    assert_eq!(
        status["data"],
        json!({
            "message_id": "wamid.SENT1",
            "status": "delivered",
            "recipient_participant_id": "16505551234",
            "pricing": {"billable": true, "pricing_model": "PMP", "category": "group_utility", "type": "regular"}
        })
    );

    // Each is delivered once to the team's webhook, signed, with the feed's body.
    let hits = receiver
        .wait_until("the four events delivered", Duration::from_secs(10), |h| {
            h.iter().filter(|x| x.team == "sales").count() >= 4
        })
        .await;
    let sales_hits: Vec<_> = hits.iter().filter(|h| h.team == "sales").collect();
    assert_eq!(sales_hits.len(), 4);
    for event in &events {
        // Deliveries run concurrently, so they are matched by id rather than by order.
        let hit = sales_hits
            .iter()
            .find(|h| h.webhook_id == event["id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{} was not delivered", event["type"]));
        assert_eq!(hit.verified, Ok(()), "{}", event["type"]);
        assert_eq!(&hit.body, event);
    }

    // Nobody else sees any of it. A group nobody owns is kept for administrators, like its
    // other events; the 1:1 traffic is nobody's event at all.
    assert!(feed(&app, &support).await.is_empty());
    assert!(receiver.hits_for("support").is_empty());
    let unowned: Value = app
        .get("/v1/admin/events/unowned", &admin)
        .await
        .json()
        .await
        .unwrap();
    let unowned = unowned["events"].as_array().unwrap();
    assert_eq!(unowned.len(), 1, "{unowned:?}");
    assert_eq!(unowned[0]["group_id"], "GUNOWNED");
    assert_eq!(unowned[0]["data"]["message_id"], "wamid.ELSEWHERE");
    let everything = format!(
        "{}{}",
        serde_json::to_string(&events).unwrap(),
        json!(unowned)
    );
    for direct in [
        "wamid.DIRECT1",
        "wamid.DIRECT2",
        "wamid.DIRECT3",
        "Only for the business",
    ] {
        assert!(!everything.contains(direct), "{direct} became an event");
    }
}

#[tokio::test]
async fn every_status_and_message_shape_of_a_group_is_an_event() {
    let app = spawn_app().await;
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Shapes").await;
    let post = messages_webhook(
        PN,
        json!({
            "contacts": [
                {"profile": {"name": "Jane", "username": "jane"}, "user_id": "US.13491208655302741918"}
            ],
            "messages": [
                {"from_user_id": "US.13491208655302741918", "group_id": g, "id": "wamid.IMG",
                 "timestamp": 1744344496, "type": "image",
                 "image": {"id": "MEDIA1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "Look"}},
                {"from": "16505551234", "group_id": g, "id": "wamid.UNSUPPORTED", "timestamp": "1744344497",
                 "type": "unsupported", "errors": [{"code": "130501", "title": "Unsupported message type",
                 "message": "Message type is not currently supported", "error_data": {"details": "poll"}}]}
            ],
            "statuses": [
                {"id": "wamid.OUT", "recipient_id": g, "recipient_type": "group", "status": "sent",
                 "timestamp": "1744344500"},
                {"id": "wamid.OUT", "recipient_id": g, "recipient_type": "group", "status": "read",
                 "timestamp": "1744344502", "recipient_participant_id": "16505551234"},
                {"id": "wamid.OUT2", "recipient_id": g, "recipient_type": "group", "status": "failed",
                 "timestamp": "1744344503", "errors": [{"code": 131020, "title": "Bad Group",
                 "message": "Cannot send messages to single member groups",
                 "href": "/documentation/business-messaging/whatsapp/support/error-codes"}]}
            ]
        }),
    );
    assert_eq!(app.send_webhook(&post).await.status(), 200);
    let mut events = Vec::new();
    for _ in 0..250 {
        events = feed(&app, &sales).await;
        if events.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data: Vec<&Value> = events[1..].iter().map(|e| &e["data"]).collect();
    assert_eq!(data.len(), 5, "{events:?}");
    // A username user writes: `from` is the business-scoped user id, the contact names them.
    assert_eq!(data[0]["from"], "US.13491208655302741918");
    assert_eq!(data[0]["type"], "image");
    assert_eq!(data[0]["image"]["caption"], "Look");
    assert_eq!(data[0]["contact"]["profile"]["username"], "jane");
    // Content WhatsApp cannot pass on still says who wrote and why nothing came.
    assert_eq!(data[1]["type"], "unsupported");
    assert_eq!(data[1]["errors"][0]["code"], 130501);
    let statuses: Vec<(&str, &str)> = data[2..]
        .iter()
        .map(|d| {
            (
                d["message_id"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("wamid.OUT", "sent"),
            ("wamid.OUT", "read"),
            ("wamid.OUT2", "failed")
        ]
    );
    assert_eq!(data[3]["recipient_participant_id"], "16505551234");
    assert_eq!(data[4]["errors"][0]["code"], 131020);
    assert!(events[1..].iter().all(|e| e["group_id"] == g.as_str()));
}
