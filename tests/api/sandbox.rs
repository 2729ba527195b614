//! Sandbox mode end to end: the gateway's `/v1` API over HTTP, its Graph client against the
//! in-process simulation of Meta, and the simulation's signed webhooks back through the
//! gateway's own ingress. Plus the standalone `sandbox` command, live mode (no sandbox
//! routes), Swagger UI in a real browser and the README walkthrough.

use std::future::Future;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wa_groups_gateway::cli::{Cli, Command as CliCommand, TokenAction, issue_token};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::verify_signature;
use wa_groups_gateway::domain::{GroupId, synthetic_jpeg_header};
use wa_groups_gateway::sandbox::Standalone;
use wa_groups_gateway::startup::Application;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::spawn_app;

/// The business-scoped user id the simulation gives WhatsApp user 16505551234 (always the
/// same for the same user, as Meta's within one business).
const BSUID_1234: &str = "US.08859445250523692544";

/// The demo phone number of config/sandbox-demo.toml.
const PN: &str = "12784358810";
const V: &str = "v23.0";
const ALL_GROUP_SCOPES: [&str; 5] = [
    "groups:read",
    "groups:write",
    "groups:delete",
    "groups:invite",
    "groups:message",
];

struct SandboxApp {
    address: String,
    http: reqwest::Client,
    settings: Settings,
    /// A `sales` token with every group scope, minted as `token issue` mints it.
    token: String,
    _dir: tempfile::TempDir,
}

/// The gateway as `cargo run` starts it (compiled-in defaults, sandbox demo), on port 0 with
/// storage in a temporary directory.
async fn spawn_sandbox() -> SandboxApp {
    spawn_sandbox_with_delay(20).await
}

async fn spawn_sandbox_with_delay(webhook_delay_ms: u64) -> SandboxApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        r#"
[server]
host = "127.0.0.1"
port = 0
workers = 2

[graph]
mode = "sandbox"

[storage]
url = "sqlite://{}/gateway.db"

[sandbox]
webhook_delay_ms = {webhook_delay_ms}
"#,
        dir.path().display()
    );
    let settings = Settings::from_toml_overrides(&toml).expect("sandbox configuration is valid");
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let scopes: Vec<String> = ALL_GROUP_SCOPES.iter().map(|s| s.to_string()).collect();
    let token = issue_token(&settings, "sales", &scopes, &[], Some("1h"), None)
        .expect("the demo team gets a token")
        .token;
    SandboxApp {
        address: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        settings,
        token,
        _dir: dir,
    }
}

impl SandboxApp {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request")
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, body).await
    }

    /// The users' side: no token, as WhatsApp users hold none.
    async fn user(&self, action: &str, group_id: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/sandbox/groups/{group_id}/{action}")))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    async fn join(&self, group_id: &str, wa_id: &str) -> reqwest::Response {
        self.user("join", group_id, &json!({ "wa_id": wa_id }))
            .await
    }

    /// The phone number's access token, as the gateway holds it.
    fn meta_token(&self) -> String {
        self.settings
            .phone_numbers
            .iter()
            .find(|(pn, _)| pn.as_ref() == PN)
            .map(|(_, t)| t.expose_secret().to_owned())
            .expect("the demo number has a token")
    }

    /// A call straight to the simulated Graph API, as another team's code would make it.
    fn graph(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(&format!("/sandbox/graph/{V}/{path}")))
            .bearer_auth(self.meta_token())
    }

    /// Creates a group and waits for Meta's creation webhook: `(group_id, invite_link)`.
    async fn create_group(&self, body: Value) -> (String, String) {
        let res = self
            .post(
                &format!("/v1/phone-numbers/{PN}/groups?wait_seconds=10"),
                &body,
            )
            .await;
        let status = res.status();
        let created: Value = res.json().await.expect("json");
        assert_eq!(status, 201, "create answered {created}");
        assert_eq!(created["status"], "created", "{created}");
        (
            created["group_id"].as_str().expect("group_id").to_owned(),
            created["invite_link"]
                .as_str()
                .expect("invite_link")
                .to_owned(),
        )
    }

    async fn group_field(&self, group_id: &str, field: &str) -> Value {
        let res = self
            .get(&format!("/v1/groups/{group_id}?fields={field}"))
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("json");
        body[field].clone()
    }

    async fn participants(&self, group_id: &str) -> Vec<String> {
        self.group_field(group_id, "participants")
            .await
            .as_array()
            .expect("participants")
            .iter()
            .map(|p| p["wa_id"].as_str().expect("wa_id").to_owned())
            .collect()
    }

    async fn sandbox_state(&self, group_id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/sandbox/groups/{group_id}")))
            .send()
            .await
            .expect("request")
    }

    /// Waits until the simulation reports the webhook of `event_type` for the group as
    /// accepted by the gateway's ingress (so its signature was right).
    async fn webhook_delivered(&self, group_id: &str, event_type: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let log: Value = self
                .http
                .get(self.url("/sandbox/webhooks"))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            let found = log["webhooks"].as_array().and_then(|hooks| {
                hooks
                    .iter()
                    .find(|h| h["group_id"] == group_id && h["type"] == event_type)
                    .cloned()
            });
            if let Some(hook) = found {
                if hook["delivery"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("delivered: HTTP 200"))
                {
                    return hook;
                }
                last = hook;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("webhook {event_type} for {group_id} was not delivered: {last}");
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.expect("json body")
}

// ---- creation --------------------------------------------------------------------------

#[tokio::test]
async fn create_with_wait_answers_201_with_the_group() {
    let app = spawn_sandbox().await;
    let (group_id, invite_link) = app.create_group(json!({ "subject": "Launch crew" })).await;
    assert!(GroupId::parse(&group_id).is_ok(), "{group_id}");
    assert!(
        invite_link.starts_with("https://chat.whatsapp.com/"),
        "{invite_link}"
    );
    let res = app.get(&format!("/v1/groups/{group_id}")).await;
    assert_eq!(res.status(), 200);
    let group = json_of(res).await;
    assert_eq!(group["subject"], "Launch crew");
    assert_eq!(group["join_approval_mode"], "auto_approve");
    assert_eq!(group["suspended"], false);
    assert_eq!(group["total_participant_count"], 0);
    assert!(group["creation_timestamp"].is_i64());
    // The webhook Meta sends for a creation, as the simulation sent it.
    let hook = app.webhook_delivered(&group_id, "group_create").await;
    let change = &hook["payload"]["entry"][0]["changes"][0];
    assert_eq!(change["field"], "group_lifecycle_update");
    assert_eq!(change["value"]["messaging_product"], "whatsapp");
    assert_eq!(change["value"]["metadata"]["phone_number_id"], PN);
    let item = &change["value"]["groups"][0];
    assert_eq!(item["invite_link"], invite_link.as_str());
    assert_eq!(item["subject"], "Launch crew");
    assert!(item["request_id"].is_string() && item["timestamp"].is_string());
}

#[tokio::test]
async fn create_without_wait_answers_202_and_the_request_completes() {
    // A long delay: the creation webhook cannot overtake the 202.
    let app = spawn_sandbox_with_delay(600).await;
    let res = app
        .post(
            &format!("/v1/phone-numbers/{PN}/groups"),
            &json!({ "subject": "Second crew", "description": "Planning" }),
        )
        .await;
    assert_eq!(res.status(), 202);
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned();
    let pending = json_of(res).await;
    assert_eq!(pending["status"], "pending");
    let request_id = pending["request_id"].as_str().expect("request_id");
    assert_eq!(location, format!("/v1/group-requests/{request_id}"));
    let mut done = Value::Null;
    for _ in 0..200 {
        done = json_of(app.get(&location).await).await;
        if done["status"] == "created" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(done["status"], "created", "{done}");
    let group_id = done["group_id"].as_str().expect("group_id");
    assert_eq!(
        app.group_field(group_id, "description").await,
        json!("Planning")
    );
}

// ---- the users' side ---------------------------------------------------------------------

#[tokio::test]
async fn a_user_joins_by_link_and_leaves() {
    let app = spawn_sandbox().await;
    let (group_id, invite_link) = app.create_group(json!({ "subject": "Joiners" })).await;
    let res = app
        .user(
            "join",
            &group_id,
            &json!({ "wa_id": "+16505551234", "invite_link": invite_link }),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(res).await["outcome"], "joined");
    assert_eq!(app.participants(&group_id).await, ["16505551234"]);
    assert_eq!(
        app.group_field(&group_id, "total_participant_count").await,
        1
    );
    let hook = app
        .webhook_delivered(&group_id, "group_participants_add")
        .await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(item["reason"], "invite_link");
    assert_eq!(
        item["added_participants"],
        json!([{ "wa_id": "16505551234", "user_id": BSUID_1234 }])
    );

    // Joining twice is refused; leaving is reported as Meta reports it.
    assert_eq!(app.join(&group_id, "16505551234").await.status(), 409);
    let res = app
        .user("leave", &group_id, &json!({ "wa_id": "16505551234" }))
        .await;
    assert_eq!(res.status(), 200);
    assert!(app.participants(&group_id).await.is_empty());
    let hook = app
        .webhook_delivered(&group_id, "group_participants_remove")
        .await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(item["initiated_by"], "participant");
    assert_eq!(
        item["removed_participants"],
        json!([{ "wa_id": "16505551234", "user_id": BSUID_1234 }])
    );
    // Leaving of one's own accord does not bar coming back.
    assert_eq!(app.join(&group_id, "16505551234").await.status(), 200);
}

#[tokio::test]
async fn a_ninth_participant_is_refused() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Eight max" })).await;
    for i in 0..8 {
        let res = app.join(&group_id, &format!("1650555{i:04}")).await;
        assert_eq!(res.status(), 200, "participant {i}");
    }
    let res = app.join(&group_id, "16505559999").await;
    assert_eq!(res.status(), 409);
    let problem = json_of(res).await;
    assert!(
        problem["detail"].as_str().unwrap_or_default().contains('8'),
        "{problem}"
    );
    assert_eq!(
        app.group_field(&group_id, "total_participant_count").await,
        8
    );
}

#[tokio::test]
async fn join_requests_are_approved_and_rejected() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app
        .create_group(
            json!({ "subject": "Members only", "join_approval_mode": "approval_required" }),
        )
        .await;
    let mut request_ids = Vec::new();
    for wa_id in ["16505550001", "16505550002", "16505550003"] {
        let res = app.join(&group_id, wa_id).await;
        assert_eq!(res.status(), 202);
        let body = json_of(res).await;
        assert_eq!(body["outcome"], "join_request_created");
        request_ids.push(body["join_request_id"].as_str().expect("id").to_owned());
    }
    let hook = app
        .webhook_delivered(&group_id, "group_join_request_created")
        .await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(item["join_request_id"], request_ids[0].as_str());
    assert_eq!(item["wa_id"], "16505550001");
    assert!(app.participants(&group_id).await.is_empty());

    let listed = json_of(
        app.get(&format!("/v1/groups/{group_id}/join-requests"))
            .await,
    )
    .await;
    let listed: Vec<&str> = listed["join_requests"]
        .as_array()
        .expect("join_requests")
        .iter()
        .map(|jr| jr["wa_id"].as_str().expect("wa_id"))
        .collect();
    assert_eq!(listed, ["16505550001", "16505550002", "16505550003"]);

    let approve = format!("/v1/groups/{group_id}/join-requests/approve");
    let reject = format!("/v1/groups/{group_id}/join-requests/reject");
    let res = app
        .post(&approve, &json!({ "join_request_ids": [request_ids[0]] }))
        .await;
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert_eq!(body["approved"], json!([request_ids[0]]));
    assert_eq!(body["failed"], json!([]));

    let res = app
        .post(&reject, &json!({ "join_request_ids": [request_ids[1]] }))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_of(res).await["rejected"], json!([request_ids[1]]));

    // Meta's partial success (206 + 131201) is a 200 with the failed item.
    let res = app
        .post(
            &approve,
            &json!({ "join_request_ids": [request_ids[2], "NoSuchRequest"] }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = json_of(res).await;
    assert_eq!(body["approved"], json!([request_ids[2]]));
    assert_eq!(body["failed"][0]["join_request_id"], "NoSuchRequest");
    assert_eq!(body["failed"][0]["error"]["code"], 131213);

    // Nothing left to decide: Meta refuses the whole call.
    let res = app
        .post(&approve, &json!({ "join_request_ids": [request_ids[1]] }))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json_of(res).await["upstream"]["code"], 131213);

    assert_eq!(
        app.participants(&group_id).await,
        ["16505550001", "16505550003"]
    );
    let approved_hook = app
        .webhook_delivered(&group_id, "group_participants_add")
        .await;
    let item = &approved_hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(item["reason"], "invite_link");
    assert_eq!(item["added_participants"][0]["wa_id"], "16505550001");
    // The rejected user sees "Request to join" again.
    assert_eq!(app.join(&group_id, "16505550002").await.status(), 202);
    // A pending request can be withdrawn.
    let res = app
        .user("leave", &group_id, &json!({ "wa_id": "16505550002" }))
        .await;
    assert_eq!(json_of(res).await["outcome"], "join_request_revoked");
    app.webhook_delivered(&group_id, "group_join_request_revoked")
        .await;
}

#[tokio::test]
async fn removed_participants_cannot_rejoin_by_link() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Removals" })).await;
    for wa_id in ["16505550001", "16505550002"] {
        assert_eq!(app.join(&group_id, wa_id).await.status(), 200);
    }
    let remove = format!("/v1/groups/{group_id}/participants/remove");
    let res = app
        .post(&remove, &json!({ "participants": ["+16505550001"] }))
        .await;
    assert_eq!(res.status(), 202);
    let accepted = json_of(res).await;
    let meta_request = accepted["upstream_request_id"]
        .as_str()
        .expect("Meta's request id")
        .to_owned();
    assert_eq!(app.participants(&group_id).await, ["16505550002"]);
    let hook = app
        .webhook_delivered(&group_id, "group_participants_remove")
        .await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(item["request_id"], meta_request.as_str());
    assert_eq!(item["initiated_by"], "business");
    assert_eq!(
        item["removed_participants"],
        json!([{ "input": "+16505550001" }])
    );

    let res = app.join(&group_id, "16505550001").await;
    assert_eq!(res.status(), 403);
    // Someone who is not in the group: Meta's 131212, passed on.
    let res = app
        .post(&remove, &json!({ "participants": ["16505550009"] }))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json_of(res).await["upstream"]["code"], 131212);
}

// ---- settings --------------------------------------------------------------------------

#[tokio::test]
async fn the_subject_changes_and_the_registry_follows_the_webhook() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Old name" })).await;
    let res = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/groups/{group_id}"),
            &json!({ "subject": "New name" }),
        )
        .await;
    assert_eq!(res.status(), 202);
    assert!(json_of(res).await["upstream_request_id"].is_string());
    assert_eq!(app.group_field(&group_id, "subject").await, "New name");
    let hook = app
        .webhook_delivered(&group_id, "group_settings_update")
        .await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(
        item["group_subject"],
        json!({ "text": "New name", "update_successful": true })
    );
    // The gateway's own listing is the registry, updated by that webhook.
    let app_ref = &app;
    let group_ref = group_id.as_str();
    eventually("the registry to show the new subject", || async move {
        let list = json_of(app_ref.get(&format!("/v1/phone-numbers/{PN}/groups")).await).await;
        list["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["id"] == group_ref && g["subject"] == "New name")
    })
    .await;
}

#[tokio::test]
async fn the_picture_is_checked_and_set() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Pictured" })).await;
    let res = app
        .http
        .put(app.url(&format!("/v1/groups/{group_id}/profile-picture")))
        .bearer_auth(&app.token)
        .header("content-type", "image/jpeg")
        .body(synthetic_jpeg_header(256, 256))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202);
    let state = json_of(app.sandbox_state(&group_id).await).await;
    assert_eq!(state["profile_picture"]["width"], 256);
    let hook = app
        .webhook_delivered(&group_id, "group_settings_update")
        .await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert_eq!(item["profile_picture"]["mime_type"], "image/jpeg");
    assert_eq!(item["profile_picture"]["update_successful"], true);

    // Meta's own picture rules, straight against the simulated Graph API (the gateway
    // refuses such pictures before they leave).
    for (w, h, code) in [(256, 200, 131209), (100, 100, 131210)] {
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .part(
                "file",
                reqwest::multipart::Part::bytes(synthetic_jpeg_header(w, h))
                    .file_name("p.jpg")
                    .mime_str("image/jpeg")
                    .expect("mime"),
            );
        let res = app
            .graph(reqwest::Method::POST, &group_id)
            .multipart(form)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 400);
        let body = json_of(res).await;
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["error_data"]["messaging_product"], "whatsapp");
    }
}

#[tokio::test]
async fn a_reset_invite_link_replaces_the_old_one() {
    let app = spawn_sandbox().await;
    let (group_id, created_link) = app.create_group(json!({ "subject": "Links" })).await;
    let link_path = format!("/v1/groups/{group_id}/invite-link");
    let current = json_of(app.get(&link_path).await).await;
    assert_eq!(current["invite_link"], created_link.as_str());
    let res = app.post(&link_path, &json!({})).await;
    assert_eq!(res.status(), 200);
    let new_link = json_of(res).await["invite_link"]
        .as_str()
        .expect("invite_link")
        .to_owned();
    assert_ne!(new_link, created_link);
    assert_eq!(
        json_of(app.get(&link_path).await).await["invite_link"],
        new_link.as_str()
    );
    let res = app
        .user(
            "join",
            &group_id,
            &json!({ "wa_id": "16505551234", "invite_link": created_link }),
        )
        .await;
    assert_eq!(res.status(), 403);
    let problem = json_of(res).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("reset"),
        "{problem}"
    );
    let res = app
        .user(
            "join",
            &group_id,
            &json!({ "wa_id": "16505551234", "invite_link": new_link }),
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_deleted_group_is_gone() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Short lived" })).await;
    let res = app
        .http
        .delete(app.url(&format!("/v1/groups/{group_id}")))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.get(&format!("/v1/groups/{group_id}")).await.status(),
        404
    );
    assert_eq!(app.sandbox_state(&group_id).await.status(), 404);
    let hook = app.webhook_delivered(&group_id, "group_delete").await;
    let item = &hook["payload"]["entry"][0]["changes"][0]["value"]["groups"][0];
    assert!(item["request_id"].is_string());
    // Meta no longer knows it either.
    let res = app
        .graph(reqwest::Method::GET, &format!("{group_id}?fields=subject"))
        .send()
        .await
        .expect("request");
    assert_eq!(json_of(res).await["error"]["code"], 131041);
}

#[tokio::test]
async fn suspension_is_meta_s_and_blocks_changes() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Suspicious" })).await;
    let res = app.user("suspend", &group_id, &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.group_field(&group_id, "suspended").await, true);
    app.webhook_delivered(&group_id, "group_suspend").await;
    let res = app
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/groups/{group_id}"),
            &json!({ "subject": "Innocent" }),
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(json_of(res).await["upstream"]["code"], 131207);
    assert_eq!(app.join(&group_id, "16505551234").await.status(), 409);
    let res = app.user("unsuspend", &group_id, &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.group_field(&group_id, "suspended").await, false);
    app.webhook_delivered(&group_id, "group_suspend_cleared")
        .await;
}

#[tokio::test]
async fn the_simulations_webhooks_become_the_teams_events() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Eventful" })).await;
    assert_eq!(app.join(&group_id, "16505551234").await.status(), 200);
    assert_eq!(
        app.user("suspend", &group_id, &json!({})).await.status(),
        200
    );
    let expected = [
        "group.created",
        "group.participants_added",
        "group.suspended",
    ];
    let mut seen = Vec::new();
    for _ in 0..200 {
        let events = json_of(app.get("/v1/events").await).await;
        seen = events["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["group_id"] == group_id.as_str())
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect::<Vec<_>>();
        if seen.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, expected);
}

// ---- group messaging ---------------------------------------------------------------------

impl SandboxApp {
    /// The team's events of `group_id`, once at least `n` of them satisfy `wanted`.
    async fn events_where(
        &self,
        group_id: &str,
        n: usize,
        wanted: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut found = Vec::new();
        for _ in 0..200 {
            let events = json_of(self.get("/v1/events?limit=1000").await).await;
            found = events["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["group_id"] == group_id && wanted(e))
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "only {} matching events of {group_id}: {found:?}",
            found.len()
        );
    }
}

#[tokio::test]
async fn the_sandbox_records_each_message_type_and_answers_with_statuses() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Talkative" })).await;
    let send = |body: Value| {
        let path = format!("/v1/groups/{group_id}/messages");
        let app = &app;
        async move { app.post(&path, &body).await }
    };
    let hello = json!({ "type": "text", "text": { "body": "Hello, crew!" } });

    // Nobody joined yet: Meta refuses to write to a group of one.
    let res = send(hello.clone()).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json_of(res).await["upstream"]["code"], 131020);

    for wa_id in ["16505551234", "16505550000"] {
        assert_eq!(app.join(&group_id, wa_id).await.status(), 200);
    }
    let bodies = [
        hello.clone(),
        json!({"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "Launch day"}}),
        json!({"type": "video", "video": {"id": "2037543291543636"}}),
        json!({"type": "audio", "audio": {"id": "1166846181421424"}}),
        json!({"type": "document", "document": {"link": "https://example.com/agenda.pdf", "filename": "agenda.pdf"}}),
        json!({"type": "template", "template": {"name": "launch_update", "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Friday"}]}]}}),
    ];
    let mut ids = Vec::new();
    for body in &bodies {
        let res = send(body.clone()).await;
        assert_eq!(res.status(), 202, "{body}");
        ids.push(
            json_of(res).await["message_id"]
                .as_str()
                .expect("message_id")
                .to_owned(),
        );
    }
    // What reached the simulated Meta, message by message: Meta's shapes (the template's
    // language as an object) on the group it was addressed to.
    let state = json_of(app.sandbox_state(&group_id).await).await;
    let recorded = state["messages"].as_array().expect("messages");
    assert_eq!(recorded.len(), bodies.len());
    let mut expected_template = bodies[5]["template"].clone();
    expected_template["language"] = json!({"code": "en_US"});
    for (i, (message, body)) in recorded.iter().zip(&bodies).enumerate() {
        let kind = body["type"].as_str().unwrap();
        assert_eq!(message["message_id"], ids[i].as_str());
        assert_eq!(message["from"], "business");
        assert_eq!(message["type"], kind);
        let expected = if kind == "template" {
            expected_template.clone()
        } else {
            body[kind].clone()
        };
        assert_eq!(message["content"], expected, "{kind}");
    }

    // Each message: sent once, then delivered and read by each of the two participants.
    let first = ids[0].clone();
    let statuses = app
        .events_where(&group_id, 5, |e| {
            e["type"] == "group.message_status" && e["data"]["message_id"] == first.as_str()
        })
        .await;
    let mut seen: Vec<(String, String)> = statuses
        .iter()
        .map(|e| {
            (
                e["data"]["status"].as_str().unwrap().to_owned(),
                e["data"]["recipient_participant_id"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, String)> = [
        ("delivered", "16505550000"),
        ("delivered", "16505551234"),
        ("read", "16505550000"),
        ("read", "16505551234"),
        ("sent", "-"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, expected);
    app.events_where(&group_id, 5 * bodies.len(), |e| {
        e["type"] == "group.message_status"
    })
    .await;

    // A suspended group is Meta's 403.
    assert_eq!(
        app.user("suspend", &group_id, &json!({})).await.status(),
        200
    );
    let res = send(hello).await;
    assert_eq!(res.status(), 403);
    assert_eq!(json_of(res).await["upstream"]["code"], 131207);
}

#[tokio::test]
async fn a_participant_writes_and_the_team_sees_it() {
    let app = spawn_sandbox().await;
    let (group_id, _) = app.create_group(json!({ "subject": "Chatty" })).await;
    let write = |wa_id: &'static str, text: &'static str| {
        let (app, group_id) = (&app, &group_id);
        async move {
            app.user(
                "messages",
                group_id,
                &json!({ "wa_id": wa_id, "text": text }),
            )
            .await
        }
    };
    // Only a participant may write.
    let res = write("16505551234", "Anyone here?").await;
    assert_eq!(res.status(), 403);
    assert_eq!(app.join(&group_id, "16505551234").await.status(), 200);
    let res = write("+16505551234", "What does everyone think?").await;
    assert_eq!(res.status(), 200);
    let sent = json_of(res).await;
    assert_eq!(sent["outcome"], "sent");
    assert_eq!(sent["wa_id"], "16505551234");
    let message_id = sent["message_id"].as_str().expect("message_id").to_owned();

    let hook = app.webhook_delivered(&group_id, "text").await;
    let value = &hook["payload"]["entry"][0]["changes"][0];
    assert_eq!(value["field"], "messages");
    assert_eq!(value["value"]["messages"][0]["group_id"], group_id.as_str());

    let received = app
        .events_where(&group_id, 1, |e| e["type"] == "group.message_received")
        .await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["phone_number_id"], PN);
    assert_eq!(
        received[0]["data"],
        json!({
            "message_id": message_id,
            "from": "16505551234",
            "from_user_id": BSUID_1234,
            "type": "text",
            "text": {"body": "What does everyone think?"},
            "contact": {"profile": {"name": "Sandbox user 1234"}, "wa_id": "16505551234", "user_id": BSUID_1234}
        })
    );

    // The control's own refusals: every broken field, an unknown group, a suspended group.
    let res = app
        .user(
            "messages",
            &group_id,
            &json!({ "wa_id": "12", "colour": "red" }),
        )
        .await;
    assert_eq!(res.status(), 400);
    let problem = json_of(res).await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["colour", "text", "wa_id"]);
    let res = app
        .user(
            "messages",
            "NoSuchGroup",
            &json!({ "wa_id": "16505551234", "text": "hi" }),
        )
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.user("suspend", &group_id, &json!({})).await.status(),
        200
    );
    assert_eq!(write("16505551234", "Still here?").await.status(), 409);
}

// ---- the simulated Graph API itself ------------------------------------------------------

#[tokio::test]
async fn the_simulated_graph_checks_the_access_token() {
    let app = spawn_sandbox().await;
    let create = format!("/sandbox/graph/{V}/{PN}/groups");
    let body = json!({ "messaging_product": "whatsapp", "subject": "x" });
    for auth in [None, Some("wrong-token")] {
        let mut req = app.http.post(app.url(&create)).json(&body);
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("request");
        assert_eq!(res.status(), 401);
        let envelope = json_of(res).await;
        assert_eq!(envelope["error"]["code"], 190, "{envelope}");
        assert_eq!(envelope["error"]["type"], "OAuthException");
        assert!(envelope["error"]["fbtrace_id"].is_string());
    }
    // A number the token does not serve, and a group Meta does not know.
    let res = app
        .graph(reqwest::Method::POST, "99999/groups")
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
    assert_eq!(json_of(res).await["error"]["error_subcode"], 33);
    let res = app
        .graph(reqwest::Method::GET, "NoSuchGroup?fields=subject")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
    assert_eq!(json_of(res).await["error"]["code"], 131041);
    // The right token: Meta's synchronous answer is the request id only.
    let res = app
        .graph(reqwest::Method::POST, &format!("{PN}/groups"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let answer = json_of(res).await;
    assert_eq!(answer["messaging_product"], "whatsapp");
    assert!(answer["request_id"].is_string());
    assert_eq!(answer.as_object().map(|o| o.len()), Some(2), "{answer}");
}

#[tokio::test]
async fn sandbox_routes_do_not_exist_in_live_mode() {
    let app = spawn_app().await;
    let get = app
        .http
        .get(app.url("/sandbox/groups"))
        .send()
        .await
        .expect("request");
    assert_eq!(get.status(), 404);
    let post = app
        .http
        .post(app.url("/sandbox/groups/G1/join"))
        .json(&json!({ "wa_id": "16505551234" }))
        .send()
        .await
        .expect("request");
    assert_eq!(post.status(), 404);
    let graph = app
        .http
        .post(app.url(&format!("/sandbox/graph/{V}/{}/groups", crate::helpers::PN)))
        .bearer_auth(crate::helpers::TOKEN_PN)
        .json(&json!({ "messaging_product": "whatsapp", "subject": "x" }))
        .send()
        .await
        .expect("request");
    assert_eq!(graph.status(), 404);
}

// ---- `wa-groups-gateway sandbox` ---------------------------------------------------------

#[tokio::test]
async fn the_standalone_sandbox_sends_signed_webhooks_to_the_given_url() {
    let receiver = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let settings =
        Settings::from_toml_overrides("[sandbox]\nwebhook_delay_ms = 10\n").expect("configuration");
    let sandbox = Standalone::build(
        &settings,
        "127.0.0.1",
        0,
        Some(format!("{}/hooks", receiver.uri())),
    )
    .expect("sandbox starts");
    let base = format!("http://127.0.0.1:{}", sandbox.port());
    tokio::spawn(sandbox.run_until_stopped());
    let http = reqwest::Client::new();
    // `sandbox-token-{PN}` unless WA_ACCESS_TOKEN is set: the sandbox takes what is configured.
    let token = settings
        .phone_numbers
        .iter()
        .find(|(pn, _)| pn.as_ref() == PN)
        .map(|(_, t)| t.expose_secret().to_owned())
        .expect("the demo number has a token");

    let res = http
        .post(format!("{base}/sandbox/graph/{V}/{PN}/groups"))
        .bearer_auth(&token)
        .json(&json!({ "messaging_product": "whatsapp", "subject": "Other team's group" }))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let request_id = json_of(res).await["request_id"]
        .as_str()
        .expect("request_id")
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(10);
    let delivered = loop {
        let received = receiver.received_requests().await.unwrap_or_default();
        if let Some(first) = received.into_iter().next() {
            break first;
        }
        assert!(Instant::now() < deadline, "no webhook arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(delivered.url.path(), "/hooks");
    let signature = delivered
        .headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .expect("signed");
    assert!(verify_signature(
        settings.webhooks.app_secret.expose_secret().as_bytes(),
        &delivered.body,
        Some(signature)
    ));
    let payload: Value = serde_json::from_slice(&delivered.body).expect("json");
    assert_eq!(payload["object"], "whatsapp_business_account");
    let change = &payload["entry"][0]["changes"][0];
    assert_eq!(change["field"], "group_lifecycle_update");
    assert_eq!(change["value"]["metadata"]["phone_number_id"], PN);
    let item = &change["value"]["groups"][0];
    assert_eq!(item["type"], "group_create");
    assert_eq!(item["request_id"], request_id.as_str());
    assert_eq!(item["subject"], "Other team's group");
    assert_eq!(item["join_approval_mode"], "auto_approve");
    assert!(item["group_id"].is_string() && item["invite_link"].is_string());

    // Only the simulation is served: no gateway.
    let res = http
        .get(format!("{base}/v1/phone-numbers/{PN}/groups"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    let res = http
        .get(format!("{base}/sandbox/groups"))
        .send()
        .await
        .expect("request");
    assert_eq!(json_of(res).await["groups"][0]["id"], item["group_id"]);
}

#[test]
fn the_sandbox_command_takes_port_and_webhook_url() {
    let cli = Cli::try_parse_from([
        "wa-groups-gateway",
        "sandbox",
        "--port",
        "9099",
        "--webhook-url",
        "http://127.0.0.1:9100/hooks",
    ])
    .expect("parses");
    match cli.command {
        Some(CliCommand::Sandbox {
            port, webhook_url, ..
        }) => {
            assert_eq!(port, 9099);
            assert_eq!(webhook_url.as_deref(), Some("http://127.0.0.1:9100/hooks"));
        }
        _ => panic!("not the sandbox command"),
    }
}

// ---- Swagger UI and the README -----------------------------------------------------------

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs Chromium headless on `url` and returns the DOM after its scripts ran.
fn rendered_dom(url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test renders Swagger UI in a real browser. \
         Run `scripts/test` (it installs it), or `apt-get install -y chromium`."
    );
    let profile = tempfile::tempdir().expect("tempdir");
    let out_path = profile.path().join("dom.html");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(url)
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait().expect("chromium runs") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("chromium did not finish within 120 s");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    std::fs::read_to_string(&out_path).expect("dumped DOM")
}

#[tokio::test]
async fn swagger_ui_renders_the_operations_in_a_real_browser() {
    let app = spawn_sandbox().await;
    let url = app.url("/swagger-ui/");
    let dom = tokio::task::spawn_blocking(move || rendered_dom(&url))
        .await
        .expect("chromium thread");
    // Operations are rendered by Swagger UI's scripts from /openapi.json: none of this is in
    // the static page.
    for expected in [
        "create_group",
        "get_group_request",
        "/v1/phone-numbers/{phone_number_id}/groups",
        "/v1/groups/{group_id}/join-requests/approve",
        "send_group_message",
        "/v1/groups/{group_id}/messages",
    ] {
        assert!(
            dom.contains(expected),
            "Swagger UI did not render {expected}; DOM starts with: {}",
            dom.chars().take(2000).collect::<String>()
        );
    }
}

#[tokio::test]
async fn the_readme_walkthrough_works() {
    let app = spawn_sandbox().await;
    // TOKEN=$(cargo run -q -- token issue --team sales --scope groups:read groups:write
    //         groups:delete groups:invite groups:message)
    let cli = Cli::try_parse_from([
        "wa-groups-gateway",
        "token",
        "issue",
        "--team",
        "sales",
        "--scope",
        "groups:read",
        "groups:write",
        "groups:delete",
        "groups:invite",
        "groups:message",
    ])
    .expect("the README's command parses");
    let Some(CliCommand::Token {
        action:
            TokenAction::Issue {
                team,
                scopes,
                phone_numbers,
                ttl,
                kid,
            },
    }) = cli.command
    else {
        panic!("not token issue");
    };
    let token = issue_token(
        &app.settings,
        &team,
        &scopes,
        &phone_numbers,
        ttl.as_deref(),
        kid.as_deref(),
    )
    .expect("token issued")
    .token;

    // curl -X POST localhost:8080/v1/phone-numbers/12784358810/groups?wait_seconds=10 \
    //   -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    //   -d '{"subject":"Launch crew"}'
    let res = app
        .http
        .post(app.url(&format!("/v1/phone-numbers/{PN}/groups?wait_seconds=10")))
        .header("Authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(r#"{"subject":"Launch crew"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let created = json_of(res).await;
    let group_id = created["group_id"].as_str().expect("group_id").to_owned();

    // curl localhost:8080/v1/groups/$GROUP_ID -H "Authorization: Bearer $TOKEN"
    let read = |token: String, url: String| {
        let http = app.http.clone();
        async move {
            let res = http
                .get(url)
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("request");
            assert_eq!(res.status(), 200);
            json_of(res).await
        }
    };
    let group_url = app.url(&format!("/v1/groups/{group_id}"));
    let group = read(token.clone(), group_url.clone()).await;
    assert_eq!(group["subject"], "Launch crew");
    assert_eq!(group["participants"], json!([]));

    // curl -X POST localhost:8080/sandbox/groups/$GROUP_ID/join \
    //   -H 'content-type: application/json' -d '{"wa_id":"16505551234"}'
    let res = app
        .http
        .post(app.url(&format!("/sandbox/groups/{group_id}/join")))
        .header("content-type", "application/json")
        .body(r#"{"wa_id":"16505551234"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);

    let group = read(token.clone(), group_url).await;
    assert_eq!(
        group["participants"],
        json!([{ "wa_id": "16505551234", "user_id": BSUID_1234 }])
    );
    assert_eq!(group["total_participant_count"], 1);

    // curl -X POST localhost:8080/v1/groups/$GROUP_ID/messages -H "Authorization: Bearer $TOKEN" \
    //   -H 'content-type: application/json' -d '{"type":"text","text":{"body":"Welcome aboard!"}}'
    let res = app
        .http
        .post(app.url(&format!("/v1/groups/{group_id}/messages")))
        .header("Authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(r#"{"type":"text","text":{"body":"Welcome aboard!"}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202);
    let welcome = json_of(res).await["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();

    // curl -X POST localhost:8080/sandbox/groups/$GROUP_ID/messages \
    //   -H 'content-type: application/json' -d '{"wa_id":"16505551234","text":"Thanks! When do we start?"}'
    let res = app
        .http
        .post(app.url(&format!("/sandbox/groups/{group_id}/messages")))
        .header("content-type", "application/json")
        .body(r#"{"wa_id":"16505551234","text":"Thanks! When do we start?"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);

    // curl localhost:8080/v1/events -H "Authorization: Bearer $TOKEN"
    let events_url = app.url("/v1/events");
    let mut types = Vec::new();
    let mut events = Value::Null;
    for _ in 0..200 {
        events = read(token.clone(), events_url.clone()).await;
        types = events["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| {
                let status = e["data"]["status"].as_str().map(|s| format!(" {s}"));
                format!(
                    "{}{}",
                    e["type"].as_str().unwrap(),
                    status.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>();
        if types.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        types,
        [
            "group.created",
            "group.participants_added",
            "group.message_status sent",
            "group.message_status delivered",
            "group.message_status read",
            "group.message_received",
        ],
        "the README's list of events"
    );
    let all = events["events"].as_array().expect("events");
    assert!(
        all[2..5]
            .iter()
            .all(|e| e["data"]["message_id"] == welcome.as_str())
    );
    let reply = &all[5];
    assert_eq!(reply["group_id"], group_id.as_str());
    assert_eq!(reply["data"]["from"], "16505551234");
    assert_eq!(reply["data"]["text"]["body"], "Thanks! When do we start?");
    assert_eq!(
        reply["data"]["contact"]["profile"]["name"],
        "Sandbox user 1234"
    );
}
