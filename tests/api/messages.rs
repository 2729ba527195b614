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
