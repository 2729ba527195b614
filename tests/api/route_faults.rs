//! Every route that calls Meta, against each kind of upstream failure: Meta's 4xx with its
//! code, Meta's 5xx, no answer in time, and an answer that is not JSON.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

/// One call of each route that reaches Meta, on group `g`.
fn calls(g: &str) -> Vec<(&'static str, Method, String, Option<Value>)> {
    vec![
        (
            "create_group",
            Method::POST,
            format!("/v1/phone-numbers/{PN}/groups"),
            Some(json!({"subject": "S"})),
        ),
        ("get_group", Method::GET, format!("/v1/groups/{g}"), None),
        (
            "update_group",
            Method::PATCH,
            format!("/v1/groups/{g}"),
            Some(json!({"subject": "New"})),
        ),
        (
            "delete_group",
            Method::DELETE,
            format!("/v1/groups/{g}"),
            None,
        ),
        (
            "get_invite_link",
            Method::GET,
            format!("/v1/groups/{g}/invite-link"),
            None,
        ),
        (
            "reset_invite_link",
            Method::POST,
            format!("/v1/groups/{g}/invite-link"),
            Some(json!({})),
        ),
        (
            "send_invitation",
            Method::POST,
            format!("/v1/groups/{g}/invitations"),
            Some(
                json!({"to": "16505551234", "template": {"name": "group_invite", "language": "en"}}),
            ),
        ),
        (
            "send_group_message",
            Method::POST,
            format!("/v1/groups/{g}/messages"),
            Some(json!({"type": "text", "text": {"body": "Hello"}})),
        ),
        (
            "list_join_requests",
            Method::GET,
            format!("/v1/groups/{g}/join-requests"),
            None,
        ),
        (
            "approve_join_requests",
            Method::POST,
            format!("/v1/groups/{g}/join-requests/approve"),
            Some(json!({"join_request_ids": ["JR1"]})),
        ),
        (
            "reject_join_requests",
            Method::POST,
            format!("/v1/groups/{g}/join-requests/reject"),
            Some(json!({"join_request_ids": ["JR1"]})),
        ),
        (
            "remove_participants",
            Method::POST,
            format!("/v1/groups/{g}/participants/remove"),
            Some(json!({"participants": ["16505551234"]})),
        ),
    ]
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

/// Runs every route with Meta answering `answer`; returns (operation, status, problem).
async fn run_all(answer: ResponseTemplate) -> Vec<(&'static str, u16, Value)> {
    let app = spawn_app_tuned(None, "", "attempt_timeout_ms = 300", "").await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Faults").await;
    Mock::given(any())
        .respond_with(answer)
        .mount(&app.meta)
        .await;
    let mut out = Vec::new();
    for (op, method, path, body) in calls(&g) {
        let res = call(&app, &token, method, &path, body.as_ref()).await;
        let status = res.status().as_u16();
        let body = match status {
            // A creation whose outcome is unknown answers its pending creation.
            202 if op == "create_group" => res.json().await.unwrap(),
            _ => problem(res).await,
        };
        out.push((op, status, body));
    }
    let picture = app
        .http
        .put(app.url(&format!("/v1/groups/{g}/profile-picture")))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(wa_groups_gateway::domain::synthetic_jpeg_header(256, 256))
        .send()
        .await
        .unwrap();
    let status = picture.status().as_u16();
    out.push(("set_group_profile_picture", status, problem(picture).await));
    assert_eq!(out.len(), 13, "every route that calls Meta");
    out
}

#[tokio::test]
async fn metas_4xx_reaches_the_caller_with_its_code_on_every_route() {
    for (op, status, p) in
        run_all(ResponseTemplate::new(400).set_body_json(meta_error(131041, "Group unknown"))).await
    {
        assert_eq!(status, 400, "{op}");
        assert_eq!(p["upstream"]["code"], 131041, "{op}");
        assert_eq!(p["upstream"]["fbtrace_id"], "AbCdEfTrace", "{op}");
    }
}

#[tokio::test]
async fn metas_5xx_is_502_on_every_route() {
    for (op, status, p) in run_all(
        ResponseTemplate::new(500).set_body_json(meta_error(1, "An unknown error occurred")),
    )
    .await
    {
        assert_eq!(status, 502, "{op}");
        assert_eq!(p["upstream"]["code"], 1, "{op}");
    }
}

#[tokio::test]
async fn no_answer_in_time_is_504_on_every_route() {
    let slow = ResponseTemplate::new(200)
        .set_body_json(json!({}))
        .set_delay(Duration::from_secs(5));
    for (op, status, p) in run_all(slow).await {
        if op == "create_group" {
            // Meta may have created the group: never failed, never sent again (DESIGN §5).
            assert_eq!(status, 202, "{op}");
            assert_eq!(p["status"], "pending", "{op}");
            continue;
        }
        assert_eq!(status, 504, "{op}");
        assert!(p.get("upstream").is_none(), "{op}");
    }
}

#[tokio::test]
async fn an_answer_that_is_not_json_is_502_on_every_route() {
    let html = ResponseTemplate::new(200)
        .set_body_string("<html><body>Sorry, something went wrong.</body></html>");
    for (op, status, p) in run_all(html).await {
        if op == "create_group" {
            // Meta said 200, unreadably: the group may exist, so the creation waits for it.
            assert_eq!(status, 202, "{op}");
            assert_eq!(p["status"], "pending", "{op}");
            continue;
        }
        assert_eq!(status, 502, "{op}");
    }
}
