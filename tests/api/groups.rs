//! Every /v1 group route against wiremock-as-Meta: the exact upstream request on the happy
//! path, and Meta's failures mapped as DESIGN §5 says.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

fn graph(p: &str) -> String {
    format!("/{API_VERSION}/{p}")
}

#[tokio::test]
async fn create_forwards_meta_shape_with_the_numbers_token_and_answers_202() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_PN}").as_str(),
        ))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "subject": "New Purchase Inquiry",
            "description": "Car options",
            "join_approval_mode": "approval_required"
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": "R1"})),
        )
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &app.sales(),
            &json!({"subject": "  New Purchase Inquiry ", "description": "Car options", "join_approval_mode": "approval_required"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["phone_number_id"], PN);
    assert_eq!(body["subject"], "New Purchase Inquiry");
    assert_eq!(
        location,
        format!(
            "/v1/group-requests/{}",
            body["request_id"].as_str().unwrap()
        )
    );
    // The caller's JWT never travels upstream.
    let sent = &app.upstream_requests().await[0];
    assert!(
        !sent.headers["authorization"]
            .to_str()
            .unwrap()
            .contains(&app.sales())
    );
}

#[tokio::test]
async fn create_with_wait_is_woken_by_the_webhook_and_answers_201() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": "R-wait"})),
        )
        .mount(&app.meta)
        .await;
    let token = app.sales();
    let waiting = {
        let app_url = app.url(&format!("/v1/phone-numbers/{PN}/groups?wait_seconds=20"));
        let http = app.http.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let res = http
                .post(app_url)
                .bearer_auth(token)
                .json(&json!({"subject": "Launch"}))
                .send()
                .await
                .unwrap();
            (
                res.status(),
                res.json::<Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hook = lifecycle_webhook(
        PN,
        vec![
            json!({"timestamp": "1755548877", "group_id": "GWAIT", "type": "group_create", "request_id": "R-wait",
                    "subject": "Launch", "invite_link": "https://chat.whatsapp.com/AbC", "join_approval_mode": "auto_approve"}),
        ],
    );
    assert_eq!(app.send_webhook(&hook).await.status(), 200);
    let (status, body, elapsed) = waiting.await.unwrap();
    assert_eq!(status, 201);
    assert_eq!(body["status"], "created");
    assert_eq!(body["group_id"], "GWAIT");
    assert_eq!(body["invite_link"], "https://chat.whatsapp.com/AbC");
    assert!(
        elapsed < Duration::from_secs(10),
        "woken at once, not at the deadline: {elapsed:?}"
    );
    // The group is now the team's.
    let list: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["groups"][0]["id"], "GWAIT");
    assert_eq!(list["groups"][0]["subject"], "Launch");
}

#[tokio::test]
async fn create_that_stays_pending_answers_202_after_the_wait() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "R-slow"})))
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups?wait_seconds=1"),
            &app.sales(),
            &json!({"subject": "S"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "pending");
}

#[tokio::test]
async fn a_failure_webhook_fails_the_request_with_metas_error() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "R-fail"})))
        .mount(&app.meta)
        .await;
    let token = app.sales();
    let created: Value = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &token,
            &json!({"subject": "S"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let hook = lifecycle_webhook(
        PN,
        vec![
            json!({"timestamp": 1755548877, "type": "group_create", "request_id": "R-fail", "subject": "S",
                    "errors": [{"code": 131215, "message": "Not eligible", "title": "Phone number not eligible", "error_data": {"details": "OBA required"}}]}),
        ],
    );
    app.send_webhook(&hook).await;
    let req = app
        .wait_for_request(&token, created["request_id"].as_str().unwrap(), "failed")
        .await;
    assert_eq!(req["error"]["code"], 131215);
    assert_eq!(req["error"]["details"], "OBA required");
    assert!(req.get("group_id").is_none());
}

#[tokio::test]
async fn a_webhook_that_overtakes_metas_answer_still_completes_the_creation() {
    let app = spawn_app().await;
    let hook = lifecycle_webhook(
        PN,
        vec![
            json!({"timestamp": "1", "group_id": "GEARLY", "type": "group_create", "request_id": "R-early", "subject": "S", "invite_link": "https://chat.whatsapp.com/E"}),
        ],
    );
    app.send_webhook(&hook).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "R-early"})))
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups?wait_seconds=5"),
            &app.sales(),
            &json!({"subject": "S"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["group_id"], "GEARLY");
}

#[tokio::test]
async fn group_requests_of_other_teams_are_not_found() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "R-x"})))
        .mount(&app.meta)
        .await;
    let created: Value = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &app.sales(),
            &json!({"subject": "S"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["request_id"].as_str().unwrap();
    let other = app.token("support", &["groups:read"]);
    assert_eq!(
        app.get(&format!("/v1/group-requests/{id}"), &other)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&format!("/v1/group-requests/{id}"), &app.sales())
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get("/v1/group-requests/req_unknown", &app.sales())
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn listing_pages_are_stable_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let token = app.sales();
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(app.create_group(&token, PN, &format!("Group {i}")).await);
    }
    // Another team's group and a group on the other number never show up.
    app.create_group(
        &app.token("support", &["groups:read", "groups:write"]),
        PN,
        "Theirs",
    )
    .await;
    app.create_group(&token, PN2, "Other number").await;

    let mut seen = Vec::new();
    let mut next = format!("/v1/phone-numbers/{PN}/groups?limit=3");
    let mut pages = 0;
    loop {
        let page: Value = app.get(&next, &token).await.json().await.unwrap();
        pages += 1;
        for g in page["groups"].as_array().unwrap() {
            seen.push(g["id"].as_str().unwrap().to_owned());
            assert!(g["created_at"].as_str().unwrap().ends_with('Z'));
        }
        match page["paging"]["after"].as_str() {
            Some(after) => next = format!("/v1/phone-numbers/{PN}/groups?limit=3&after={after}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, made);
    // Walking back from the last page returns the one before it.
    let last: Value = app
        .get(
            &format!(
                "/v1/phone-numbers/{PN}/groups?limit=3&after={}",
                encode_seq_after(&app, &token).await
            ),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let before = last["paging"]["before"].as_str().unwrap();
    let back: Value = app
        .get(
            &format!("/v1/phone-numbers/{PN}/groups?limit=3&before={before}"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let back_ids: Vec<&str> = back["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        back_ids,
        made[3..6].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

/// The `after` cursor of the second page (so the next page is the third).
async fn encode_seq_after(app: &TestApp, token: &str) -> String {
    let first: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups?limit=3"), token)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .get(
            &format!(
                "/v1/phone-numbers/{PN}/groups?limit=3&after={}",
                first["paging"]["after"].as_str().unwrap()
            ),
            token,
        )
        .await
        .json()
        .await
        .unwrap();
    second["paging"]["after"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn get_group_asks_meta_for_exactly_the_requested_fields() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Info").await;
    Mock::given(method("GET"))
        .and(path(graph(&g)))
        .and(query_param("fields", "subject,participants,suspended"))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_PN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp", "id": g, "subject": "Info",
            "participants": [{"wa_id": "16505551234"}], "suspended": "false"
        })))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .get(
            &format!("/v1/groups/{g}?fields=subject,participants,suspended"),
            &token,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": g, "subject": "Info", "participants": [{"wa_id": "16505551234"}], "suspended": false})
    );
}

#[tokio::test]
async fn get_group_without_fields_asks_for_all_of_them() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "All").await;
    Mock::given(method("GET"))
        .and(path(graph(&g)))
        .and(query_param(
            "fields",
            "subject,description,participants,join_approval_mode,suspended,creation_timestamp,total_participant_count",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": g, "subject": "All", "creation_timestamp": "683731200", "total_participant_count": "2"})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let body: Value = app
        .get(&format!("/v1/groups/{g}"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["creation_timestamp"], 683731200);
    assert_eq!(body["total_participant_count"], 2);
}

#[tokio::test]
async fn update_posts_subject_and_description_and_answers_202() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Old").await;
    Mock::given(method("POST"))
        .and(path(graph(&g)))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_PN}").as_str(),
        ))
        .and(body_json(
            json!({"messaging_product": "whatsapp", "subject": "New", "description": ""}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": "U1"})),
        )
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/groups/{g}"),
            &token,
            &json!({"subject": "New", "description": ""}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["upstream_request_id"], "U1");
}

#[tokio::test]
async fn profile_picture_goes_up_as_multipart_with_the_jpeg() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Pic").await;
    Mock::given(method("POST"))
        .and(path(graph(&g)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(2)
        .mount(&app.meta)
        .await;
    let jpeg = wa_groups_gateway::domain::synthetic_jpeg_header(640, 640);
    let raw = app
        .http
        .put(app.url(&format!("/v1/groups/{g}/profile-picture")))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(jpeg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 202);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(jpeg.clone())
            .file_name("p.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let multipart = app
        .http
        .put(app.url(&format!("/v1/groups/{g}/profile-picture")))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(multipart.status(), 202);
    for sent in app
        .upstream_requests()
        .await
        .iter()
        .filter(|r| r.url.path() == graph(&g))
    {
        let ct = sent.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
        let body = &sent.body;
        let text = String::from_utf8_lossy(body);
        assert!(text.contains("name=\"messaging_product\"\r\n\r\nwhatsapp"));
        assert!(
            text.contains("name=\"file\"; filename=\"profile.jpg\"\r\nContent-Type: image/jpeg")
        );
        assert!(
            body.windows(jpeg.len()).any(|w| w == jpeg.as_slice()),
            "the JPEG bytes are forwarded intact"
        );
        assert_eq!(
            sent.headers["authorization"],
            format!("Bearer {TOKEN_PN}").as_str()
        );
    }
}

#[tokio::test]
async fn delete_sends_delete_and_the_group_is_gone() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Doomed").await;
    Mock::given(method("DELETE"))
        .and(path(graph(&g)))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_PN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&app.meta)
        .await;
    assert_eq!(
        app.delete(&format!("/v1/groups/{g}"), &token)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("/v1/groups/{g}"), &token)
            .await
            .status(),
        404
    );
    let list: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["groups"], json!([]));
}

#[tokio::test]
async fn a_group_delete_webhook_marks_the_group_gone() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Deleted elsewhere").await;
    let hook = lifecycle_webhook(
        PN,
        vec![json!({"timestamp": "2", "group_id": g, "type": "group_delete", "request_id": "D1"})],
    );
    app.send_webhook(&hook).await;
    for _ in 0..100 {
        let list: Value = app
            .get(&format!("/v1/phone-numbers/{PN}/groups"), &token)
            .await
            .json()
            .await
            .unwrap();
        if list["groups"] == json!([]) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the deleted group is still listed");
}

#[tokio::test]
async fn invite_link_get_and_reset() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Links").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp", "invite_link": "https://chat.whatsapp.com/OLD"})))
        .expect(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .and(body_json(json!({"messaging_product": "whatsapp"})))
        .and(header("authorization", format!("Bearer {TOKEN_PN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp", "invite_link": "https://chat.whatsapp.com/NEW"})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let got: Value = app
        .get(&format!("/v1/groups/{g}/invite-link"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, json!({"invite_link": "https://chat.whatsapp.com/OLD"}));
    let reset = app
        .post_json(&format!("/v1/groups/{g}/invite-link"), &token, &json!({}))
        .await;
    assert_eq!(reset.status(), 200);
    assert_eq!(
        reset.json::<Value>().await.unwrap(),
        json!({"invite_link": "https://chat.whatsapp.com/NEW"})
    );
}

#[tokio::test]
async fn invitation_sends_the_template_with_the_group_id_first() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Invites").await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/messages"))))
        .and(header(
            "authorization",
            format!("Bearer {TOKEN_PN}").as_str(),
        ))
        .and(body_json(json!({
            "messaging_product": "whatsapp",
            "to": "+16505551234",
            "type": "template",
            "template": {
                "name": "group_invite",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [
                    {"type": "group_id", "group_id": g},
                    {"type": "text", "text": "Jim"}
                ]}]
            }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}),
        ))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/invitations"),
            &token,
            &json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US", "parameters": ["Jim"]}}),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["message_id"], "wamid.1");
}

#[tokio::test]
async fn join_requests_listed_and_partial_approval_is_200_with_failed() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Approval").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/join_requests"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"join_request_id": "JR1", "wa_id": "16505551234", "creation_timestamp": "1755548877"}],
            "paging": {"cursors": {"before": "B", "after": "A"}}
        })))
        .expect(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{g}/join_requests"))))
        .and(body_json(json!({"messaging_product": "whatsapp", "join_requests": ["JR1", "JR2"]})))
        .respond_with(ResponseTemplate::new(206).set_body_json(json!({
            "messaging_product": "whatsapp",
            "approved_join_requests": ["JR1"],
            "failed_join_requests": [{"join_request_id": "JR2", "errors": [{"code": 131203, "message": "(#131203) Recipient has not accepted our new Terms of Service and Privacy Policy.", "title": "Unable to add participant to group", "error_data": {"details": "ToS"}}]}],
            "errors": [{"code": 131201, "message": "partial"}]
        })))
        .expect(1)
        .mount(&app.meta)
        .await;
    let list: Value = app
        .get(&format!("/v1/groups/{g}/join-requests"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["join_requests"],
        json!([{"join_request_id": "JR1", "wa_id": "16505551234", "created_at": "2025-08-18T20:27:57Z"}])
    );
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/join-requests/approve"),
            &token,
            &json!({"join_request_ids": ["JR1", "JR2"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["approved"], json!(["JR1"]));
    assert_eq!(body["failed"][0]["join_request_id"], "JR2");
    assert_eq!(body["failed"][0]["error"]["code"], 131203);
}

#[tokio::test]
async fn reject_sends_delete_with_the_ids() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Reject").await;
    Mock::given(method("DELETE"))
        .and(path(graph(&format!("{g}/join_requests"))))
        .and(body_json(
            json!({"messaging_product": "whatsapp", "join_requests": ["JR9"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "rejected_join_requests": ["JR9"]}),
        ))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/join-requests/reject"),
            &token,
            &json!({"join_request_ids": ["JR9"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"rejected": ["JR9"], "failed": []})
    );
}

#[tokio::test]
async fn remove_participants_sends_users() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Remove").await;
    Mock::given(method("DELETE"))
        .and(path(graph(&format!("{g}/participants"))))
        .and(body_json(json!({"messaging_product": "whatsapp", "participants": [{"user": "+17865347866"}, {"user": "7669992245"}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp", "request_id": "RM1"})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/participants/remove"),
            &token,
            &json!({"participants": ["+17865347866", "7669992245"]}),
        )
        .await;
    assert_eq!(res.status(), 202);
}

// ---- Meta's failures ---------------------------------------------------------------------

async fn get_info_with(app: &TestApp, response: ResponseTemplate) -> reqwest::Response {
    let token = app.sales();
    let g = app.create_group(&token, PN, "Faults").await;
    Mock::given(method("GET"))
        .and(path(graph(&g)))
        .respond_with(response)
        .mount(&app.meta)
        .await;
    app.get(&format!("/v1/groups/{g}?fields=subject"), &token)
        .await
}

#[tokio::test]
async fn metas_4xx_is_passed_on_with_code_and_trace() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(400).set_body_json(meta_error(131041, "Group unknown")),
    )
    .await;
    assert_eq!(res.status(), 400);
    let p = problem(res).await;
    assert_eq!(p["upstream"]["code"], 131041);
    assert_eq!(p["upstream"]["fbtrace_id"], "AbCdEfTrace");
}

#[tokio::test]
async fn suspended_keeps_metas_403() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(403).set_body_json(meta_error(131207, "Suspended")),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem(res).await["upstream"]["code"], 131207);
}

#[tokio::test]
async fn metas_throttling_is_429_with_retry_after() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(400).set_body_json(meta_error(131208, "Group rate limit")),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(problem(res).await["upstream"]["code"], 131208);
}

#[tokio::test]
async fn meta_refusing_the_gateway_token_is_502() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(401).set_body_json(meta_error(190, "Invalid OAuth access token")),
    )
    .await;
    assert_eq!(res.status(), 502);
    let p = problem(res).await;
    assert_eq!(p["upstream"]["code"], 190);
    assert!(!p.to_string().contains(TOKEN_PN));
}

#[tokio::test]
async fn metas_5xx_is_502() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(500).set_body_json(meta_error(1, "Unknown error")),
    )
    .await;
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn garbage_from_meta_is_502() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(200).set_body_string("<html>not json</html>"),
    )
    .await;
    assert_eq!(res.status(), 502);
    let res = get_info_with(
        &app,
        ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"),
    )
    .await;
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn a_slow_meta_is_504() {
    let app = spawn_app().await;
    let res = get_info_with(
        &app,
        ResponseTemplate::new(200)
            .set_body_json(json!({}))
            .set_delay(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(res.status(), 504);
}

#[tokio::test]
async fn an_unreachable_meta_is_503() {
    // Port 9 (discard) has no listener on a test machine: connections are refused.
    let dead = spawn_app_against("http://127.0.0.1:9", "").await;
    let res = dead
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &dead.sales(),
            &json!({"subject": "S"}),
        )
        .await;
    assert_eq!(res.status(), 503);
}

#[tokio::test]
async fn create_is_never_sent_twice_when_meta_fails() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(meta_error(131000, "Something went wrong")),
        )
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &app.sales(),
            &json!({"subject": "Once"}),
        )
        .await;
    assert_eq!(res.status(), 502);
}

#[tokio::test]
async fn reset_link_and_invitation_are_never_replayed() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Once").await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .expect(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/messages"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(5)),
        )
        .expect(1)
        .mount(&app.meta)
        .await;
    assert_eq!(
        app.post_json(&format!("/v1/groups/{g}/invite-link"), &token, &json!({}))
            .await
            .status(),
        502
    );
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/invitations"),
            &token,
            &json!({"to": "16505551234", "template": {"name": "group_invite", "language": "en"}}),
        )
        .await;
    assert_eq!(res.status(), 504);
}

#[tokio::test]
async fn reads_are_retried_on_5xx_within_three_attempts() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Retry").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(ResponseTemplate::new(500).set_body_json(meta_error(1, "transient")))
        .up_to_n_times(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"invite_link": "https://chat.whatsapp.com/R"})),
        )
        .mount(&app.meta)
        .await;
    let res = app
        .get(&format!("/v1/groups/{g}/invite-link"), &token)
        .await;
    assert_eq!(res.status(), 200);
    let attempts = app
        .upstream_requests()
        .await
        .iter()
        .filter(|r| r.url.path() == graph(&format!("{g}/invite_link")))
        .count();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn persistent_5xx_stops_after_three_attempts() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Retry").await;
    Mock::given(method("DELETE"))
        .and(path(graph(&g)))
        .respond_with(ResponseTemplate::new(500).set_body_json(meta_error(2, "down")))
        .expect(3)
        .mount(&app.meta)
        .await;
    assert_eq!(
        app.delete(&format!("/v1/groups/{g}"), &token)
            .await
            .status(),
        502
    );
}
