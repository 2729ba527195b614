//! The sandbox as real SDKs see it (DESIGN §15, issue "sandbox fidelity"): business-scoped
//! user ids where Meta sends them, webhook bodies escaped and signed as Meta's, the picture
//! part under either of Meta's names, pricing in group statuses, Meta's 131208 when a number is
//! driven too fast, and the gateway's guardrails in front of the simulation.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::verify_signature;
use wa_groups_gateway::domain::synthetic_jpeg_header;
use wa_groups_gateway::sandbox::Standalone;
use wa_groups_gateway::startup::Application;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The sandbox demo's phone number.
const PN: &str = "12784358810";
const V: &str = "v23.0";
/// What the simulation names user 16505551234 by (always the same).
const USER: &str = "16505551234";
const USER_BSUID: &str = "US.08859445250523692544";

/// The simulation alone, its webhooks captured raw by a receiver.
struct Simulation {
    base: String,
    token: String,
    secret: String,
    receiver: MockServer,
    http: reqwest::Client,
}

impl Simulation {
    async fn start(extra: &str) -> Simulation {
        let receiver = MockServer::builder().start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&receiver)
            .await;
        let settings =
            Settings::from_toml_overrides(&format!("[sandbox]\nwebhook_delay_ms = 5\n{extra}"))
                .expect("configuration");
        let sandbox = Standalone::build(
            &settings,
            "127.0.0.1",
            0,
            Some(format!("{}/hooks", receiver.uri())),
        )
        .expect("sandbox starts");
        let base = format!("http://127.0.0.1:{}", sandbox.port());
        tokio::spawn(sandbox.run_until_stopped());
        let token = settings
            .phone_numbers
            .iter()
            .find(|(pn, _)| pn.as_ref() == PN)
            .map(|(_, t)| t.expose_secret().to_owned())
            .expect("the demo number");
        Simulation {
            base,
            token,
            secret: settings.webhooks.app_secret.expose_secret().to_owned(),
            receiver,
            http: reqwest::Client::new(),
        }
    }

    fn graph(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/sandbox/graph/{V}/{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn user(&self, action: &str, group: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/sandbox/groups/{group}/{action}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Every webhook received so far, raw, each checked against its signature.
    async fn webhooks(&self) -> Vec<(Vec<u8>, Value)> {
        let received = self.receiver.received_requests().await.unwrap_or_default();
        received
            .into_iter()
            .map(|r| {
                let signature = r
                    .headers
                    .get("x-hub-signature-256")
                    .and_then(|v| v.to_str().ok());
                assert!(
                    verify_signature(self.secret.as_bytes(), &r.body, signature),
                    "the signature covers the bytes sent"
                );
                let value = serde_json::from_slice(&r.body).expect("json");
                (r.body, value)
            })
            .collect()
    }

    /// The `value` of the first webhook whose change satisfies `wanted`, waited for.
    async fn webhook(&self, wanted: impl Fn(&Value) -> bool) -> (Vec<u8>, Value) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((raw, body)) = self
                .webhooks()
                .await
                .into_iter()
                .find(|(_, b)| wanted(&b["entry"][0]["changes"][0]["value"]))
            {
                let value = body["entry"][0]["changes"][0]["value"].clone();
                return (raw, value);
            }
            assert!(Instant::now() < deadline, "no such webhook");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates a group straight on the simulated Graph: its id, from the creation webhook.
    async fn create_group(&self, subject: &str, mode: &str) -> String {
        let res = self
            .graph(reqwest::Method::POST, &format!("{PN}/groups"))
            .json(&json!({"messaging_product": "whatsapp", "subject": subject, "join_approval_mode": mode}))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        let (_, value) = self
            .webhook(|v| {
                v["groups"][0]["type"] == "group_create" && v["groups"][0]["subject"] == subject
            })
            .await;
        value["groups"][0]["group_id"]
            .as_str()
            .expect("group_id")
            .to_owned()
    }
}

#[tokio::test]
async fn webhook_bodies_escape_non_ascii_and_are_signed_over_those_bytes() {
    let sim = Simulation::start("").await;
    let subject = "Café crew 🎉";
    let res = sim
        .graph(reqwest::Method::POST, &format!("{PN}/groups"))
        .json(&json!({"messaging_product": "whatsapp", "subject": subject}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let (raw, value) = sim
        .webhook(|v| v["groups"][0]["type"] == "group_create")
        .await;
    assert!(raw.is_ascii(), "Meta escapes every non-ASCII character");
    let text = String::from_utf8(raw).unwrap();
    assert!(text.contains(r"Caf\u00e9 crew \ud83c\udf89"), "{text}");
    assert_eq!(value["groups"][0]["subject"], subject);
}

#[tokio::test]
async fn participants_join_requests_messages_and_statuses_carry_business_scoped_ids() {
    let sim = Simulation::start("").await;
    let open = sim.create_group("Open door", "auto_approve").await;
    assert_eq!(
        sim.user("join", &open, json!({"wa_id": USER}))
            .await
            .status(),
        200
    );
    let (_, joined) = sim
        .webhook(|v| v["groups"][0]["type"] == "group_participants_add")
        .await;
    assert_eq!(
        joined["groups"][0]["added_participants"],
        json!([{"wa_id": USER, "user_id": USER_BSUID}])
    );
    let info: Value = sim
        .graph(reqwest::Method::GET, &format!("{open}?fields=participants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["participants"],
        json!([{"wa_id": USER, "user_id": USER_BSUID}])
    );

    // A participant writes: the sender by phone and by user id, in the item and in contacts.
    assert_eq!(
        sim.user("messages", &open, json!({"wa_id": USER, "text": "Olá"}))
            .await
            .status(),
        200
    );
    let (_, inbound) = sim
        .webhook(|v| v["messages"][0]["group_id"] == open.as_str())
        .await;
    assert_eq!(inbound["messages"][0]["from_user_id"], USER_BSUID);
    assert_eq!(inbound["contacts"][0]["user_id"], USER_BSUID);
    assert_eq!(inbound["contacts"][0]["wa_id"], USER);

    // The business writes: statuses name the participant both ways, with contacts and pricing.
    for (body, category, billable) in [
        (
            json!({"type": "text", "text": {"body": "Hi"}}),
            "group_service",
            false,
        ),
        (
            json!({"type": "template", "template": {"name": "offer", "language": {"code": "en"}}}),
            "group_marketing",
            true,
        ),
    ] {
        let mut send =
            json!({"messaging_product": "whatsapp", "recipient_type": "group", "to": open});
        for (k, v) in body.as_object().unwrap() {
            send[k] = v.clone();
        }
        let res = sim
            .graph(reqwest::Method::POST, &format!("{PN}/messages"))
            .json(&send)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let message_id = res.json::<Value>().await.unwrap()["messages"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for status in ["sent", "delivered", "read"] {
            let (_, value) = sim
                .webhook(|v| {
                    v["statuses"][0]["id"] == message_id.as_str()
                        && v["statuses"][0]["status"] == status
                })
                .await;
            let item = &value["statuses"][0];
            assert_eq!(item["pricing"]["category"], category, "{status}: {item}");
            assert_eq!(item["pricing"]["billable"], billable);
            assert_eq!(item["pricing"]["pricing_model"], "PMP");
            if status != "sent" {
                assert_eq!(item["recipient_participant_id"], USER);
                assert_eq!(item["recipient_participant_user_id"], USER_BSUID);
                assert_eq!(
                    value["contacts"],
                    json!([{"wa_id": USER, "user_id": USER_BSUID}])
                );
            }
        }
    }

    // Removed by business-scoped user id; Meta echoes the input.
    let res = sim
        .graph(reqwest::Method::DELETE, &format!("{open}/participants"))
        .json(&json!({"messaging_product": "whatsapp", "participants": [{"user_id": USER_BSUID}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, removed) = sim
        .webhook(|v| {
            v["groups"][0]["type"] == "group_participants_remove"
                && v["groups"][0]["initiated_by"] == "business"
        })
        .await;
    assert_eq!(
        removed["groups"][0]["removed_participants"],
        json!([{"input": USER_BSUID}])
    );
    // Both forms at once are refused, as Meta does.
    let res = sim
        .graph(reqwest::Method::DELETE, &format!("{open}/participants"))
        .json(&json!({"messaging_product": "whatsapp", "participants": [{"user": USER, "user_id": USER_BSUID}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Join requests carry the user id too, in the webhook and in the listing.
    let gated = sim.create_group("Gated", "approval_required").await;
    assert_eq!(
        sim.user("join", &gated, json!({"wa_id": USER}))
            .await
            .status(),
        202
    );
    let (_, asked) = sim
        .webhook(|v| v["groups"][0]["type"] == "group_join_request_created")
        .await;
    assert_eq!(asked["groups"][0]["user_id"], USER_BSUID);
    let list: Value = sim
        .graph(reqwest::Method::GET, &format!("{gated}/join_requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["user_id"], USER_BSUID);
    assert_eq!(list["data"][0]["wa_id"], USER);
}

/// Meta's body table names the picture part `profile_picture_file`; its curl sample says
/// `file`: both are taken.
#[tokio::test]
async fn the_picture_part_may_have_either_of_metas_names() {
    let sim = Simulation::start("").await;
    let group = sim.create_group("Pictured", "auto_approve").await;
    for part in ["file", "profile_picture_file"] {
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .part(
                part,
                reqwest::multipart::Part::bytes(synthetic_jpeg_header(256, 256))
                    .file_name("p.jpg")
                    .mime_str("image/jpeg")
                    .unwrap(),
            );
        let res = sim
            .graph(reqwest::Method::POST, &group)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "{part}: {}",
            res.text().await.unwrap_or_default()
        );
    }
}

/// A number driven faster than `sandbox.group_operations_per_second` gets Meta's 131208, with
/// the usage header saying when access returns; messages are not group operations.
#[tokio::test]
async fn a_number_driven_too_fast_gets_131208() {
    let sim = Simulation::start("group_operations_per_second = 3\n").await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let res = sim
            .graph(reqwest::Method::GET, &format!("{PN}/groups"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        last = Some(res);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
    let res = last.unwrap();
    let usage = res.headers()["x-business-use-case-usage"]
        .to_str()
        .unwrap()
        .to_owned();
    let usage: Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage["0"][0]["estimated_time_to_regain_access"], 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 131208);
}

/// By hand (as from Swagger UI): `POST /sandbox/phone-numbers/{pn}/throttle`.
#[tokio::test]
async fn meta_throttling_can_be_triggered_by_hand() {
    let sim = Simulation::start("").await;
    let res = sim
        .http
        .post(format!("{}/sandbox/phone-numbers/{PN}/throttle", sim.base))
        .json(&json!({"minutes": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = sim
        .graph(reqwest::Method::GET, &format!("{PN}/groups"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let usage: Value =
        serde_json::from_str(res.headers()["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage["0"][0]["estimated_time_to_regain_access"], 2);
    for bad in [
        json!({"minutes": 0}),
        json!({"minutes": 61}),
        json!({"seconds": 5}),
    ] {
        let res = sim
            .http
            .post(format!("{}/sandbox/phone-numbers/{PN}/throttle", sim.base))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = sim
        .http
        .post(format!(
            "{}/sandbox/phone-numbers/999999/throttle",
            sim.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// The gateway in sandbox mode: its quota and Meta's 131208 backoff work against the
/// simulation as against Meta.
#[tokio::test]
async fn the_gateways_guardrails_work_against_the_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\nworkers = 1\n[graph]\nmode = \"sandbox\"\n\
         [storage]\nurl = \"sqlite://{}/gateway.db\"\n[sandbox]\nwebhook_delay_ms = 5\n",
        dir.path().display()
    );
    let mut settings = Settings::from_toml_overrides(&toml).unwrap();
    let pn = wa_groups_gateway::domain::PhoneNumberId::parse(PN).unwrap();
    settings.phone_number_max_groups.insert(pn, 1);
    let app = Application::build(settings.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let scopes = vec!["groups:read".to_owned(), "groups:write".to_owned()];
    let token =
        wa_groups_gateway::cli::issue_token(&settings, "sales", &scopes, &[], Some("1h"), None)
            .unwrap()
            .token;
    let http = reqwest::Client::new();
    let create = |subject: &'static str| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            http.post(format!(
                "{base}/v1/phone-numbers/{PN}/groups?wait_seconds=10"
            ))
            .bearer_auth(token)
            .json(&json!({"subject": subject}))
            .send()
            .await
            .unwrap()
        }
    };
    let created: Value = create("Only one").await.json().await.unwrap();
    let group = created["group_id"].as_str().expect("created").to_owned();
    let refused = create("One too many").await;
    assert_eq!(refused.status(), 409);
    let p: Value = refused.json().await.unwrap();
    assert_eq!(
        p["type"],
        "https://wa-groups-gateway.dev/problems/group-quota-exceeded"
    );

    // Meta throttles the number: the first call meets Meta's 131208, the next waits unsent.
    http.post(format!("{base}/sandbox/phone-numbers/{PN}/throttle"))
        .send()
        .await
        .unwrap();
    for upstream in [true, false] {
        let res = http
            .get(format!("{base}/v1/groups/{group}?fields=subject"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 429);
        assert!(res.headers().get("retry-after").is_some());
        let p: Value = res.json().await.unwrap();
        assert_eq!(
            p["type"],
            "https://wa-groups-gateway.dev/problems/group-rate-limited"
        );
        assert_eq!(p.get("upstream").is_some(), upstream, "{p}");
    }
}
