//! Spawns the real gateway on port 0 with wiremock standing in for Meta.

#![allow(dead_code)]

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::sign;
use wa_groups_gateway::startup::Application;
use wa_groups_gateway::storage::sql::SqlStorage;
use wa_groups_gateway::supervisor::Supervisor;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const PN: &str = "111111";
/// A number configured in the gateway but granted to `sales` only.
pub const PN2: &str = "222222";
pub const TOKEN_PN: &str = "meta-token-111";
pub const TOKEN_PN2: &str = "meta-token-222";
pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const SIGNING_SECRET: &str = "test-signing-secret-of-some-length";
pub const KID: &str = "test-key";
pub const API_VERSION: &str = "v23.0";

pub struct TestApp {
    /// The PostgreSQL database of this test, when the suite runs on PostgreSQL.
    _database: Option<crate::pg::TestDatabase>,
    pub address: String,
    pub port: u16,
    pub meta: MockServer,
    pub http: reqwest::Client,
    pub settings: Settings,
    /// The supervisor of the app's background tasks.
    pub tasks: Supervisor,
    _dir: tempfile::TempDir,
}

/// The configuration tests run with; `extra` is TOML layered on top.
pub fn test_config(meta_uri: &str, db_dir: &std::path::Path, extra: &str) -> String {
    tuned_config(meta_uri, db_dir, "", "", extra)
}

/// `server_lines` and `graph_lines` go inside those tables (e.g. `body_timeout_ms = 500`).
pub fn tuned_config(
    meta_uri: &str,
    db_dir: &std::path::Path,
    server_lines: &str,
    graph_lines: &str,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
host = "127.0.0.1"
port = 0
workers = 1
{anonymous}
{server_lines}

[graph]
mode = "live"
base_url = "{meta_uri}"
api_version = "{API_VERSION}"
timeout_ms = 2000
{graph_lines}

[storage]
url = "sqlite://{db}/gateway.db"

[webhooks]
verify_token = "{VERIFY_TOKEN}"
app_secret = "{APP_SECRET}"

[[auth.keys]]
kid = "{KID}"
algorithm = "HS256"
secret = "{SIGNING_SECRET}"
signing = true

[phone_numbers.{PN}]
access_token = "{TOKEN_PN}"

[phone_numbers.{PN2}]
access_token = "{TOKEN_PN2}"

[teams.sales]
phone_numbers = ["{PN}", "{PN2}"]

[teams.support]
phone_numbers = ["{PN}"]

[teams.platform]
phone_numbers = ["{PN}"]
admin = true
{extra}
"#,
        db = db_dir.display(),
        // Tests send many refused calls on purpose; those about this limit set their own.
        anonymous = if server_lines.contains("anonymous_rate_limit") {
            ""
        } else {
            "anonymous_rate_limit = { per_second = 10000, burst = 10000 }"
        },
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

pub async fn spawn_app_with(extra: &str) -> TestApp {
    spawn_app_tuned(None, "", "", extra).await
}

/// A gateway whose Graph base URL is `base` instead of the mock (e.g. nobody listening).
pub async fn spawn_app_against(base: &str, extra: &str) -> TestApp {
    spawn_app_tuned(Some(base), "", "", extra).await
}

/// Full control: another Graph base URL, lines for `[server]` and `[graph]`, extra TOML.
pub async fn spawn_app_tuned(
    base: Option<&str>,
    server_lines: &str,
    graph_lines: &str,
    extra: &str,
) -> TestApp {
    spawn_app_adjusted(base, server_lines, graph_lines, extra, |_| {}).await
}

/// `spawn_app_tuned`, then `adjust` changes the settings before the app is built (for keys
/// of tables the test configuration writes already).
pub async fn spawn_app_adjusted(
    base: Option<&str>,
    server_lines: &str,
    graph_lines: &str,
    extra: &str,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    // Never a pooled server (`MockServer::start`): a pooled one is handed to the next test
    // when this one ends, and the gateway of this test, still winding down, would then be
    // counted among that test's upstream requests.
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let base = base.map(str::to_owned).unwrap_or_else(|| meta.uri());
    let mut settings = Settings::from_toml_overrides(&tuned_config(
        &base,
        dir.path(),
        server_lines,
        graph_lines,
        extra,
    ))
    .expect("test configuration is valid");
    adjust(&mut settings);
    // WAGW_TEST_BACKEND=postgres runs the whole suite on PostgreSQL, a database per test.
    let database = match std::env::var("WAGW_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(crate::pg::TestDatabase::create().await),
        _ => None,
    };
    if let Some(db) = &database {
        settings.storage.url = db.url.clone().into();
    }
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let port = app.port();
    let tasks = app.tasks();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        tasks,
        address: format!("http://127.0.0.1:{port}"),
        port,
        meta,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        settings,
        _dir: dir,
        _database: database,
    }
}

impl TestApp {
    /// A token for `team` with `scopes`, from the configured signing key.
    pub fn token(&self, team: &str, scopes: &[&str]) -> String {
        self.token_for_numbers(team, scopes, None)
    }

    pub fn token_for_numbers(
        &self,
        team: &str,
        scopes: &[&str],
        numbers: Option<Vec<String>>,
    ) -> String {
        let scopes: Vec<Scope> = scopes
            .iter()
            .map(|s| Scope::parse(s).expect("known scope"))
            .collect();
        TokenIssuer::new(&self.settings.auth, None)
            .expect("signing key")
            .issue(team, &scopes, numbers, 3600)
            .expect("token")
            .token
    }

    /// A token with every group scope for `sales`.
    pub fn sales(&self) -> String {
        self.token(
            "sales",
            &[
                "groups:read",
                "groups:write",
                "groups:delete",
                "groups:invite",
                "groups:message",
            ],
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send_json(reqwest::Method::POST, path, token, body)
            .await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// POSTs a webhook body signed with the app secret, as Meta does.
    pub async fn send_webhook(&self, body: &Value) -> reqwest::Response {
        let raw = serde_json::to_vec(body).expect("json");
        self.send_webhook_raw(&raw, Some(&sign(APP_SECRET.as_bytes(), &raw)))
            .await
    }

    pub async fn send_webhook_raw(&self, raw: &[u8], signature: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(raw.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.expect("request")
    }

    /// Requests Meta received (wiremock's journal).
    pub async fn upstream_requests(&self) -> Vec<wiremock::Request> {
        self.meta.received_requests().await.unwrap_or_default()
    }

    /// Makes a group owned by `token`'s team: the create call (Meta answers a request id)
    /// and then Meta's creation webhook. Returns the group id.
    pub async fn create_group(&self, token: &str, pn: &str, subject: &str) -> String {
        let meta_request = format!("meta-req-{}", uuid());
        let group_id = format!("G{}", uuid());
        let guard = Mock::given(method("POST"))
            .and(path(format!("/{API_VERSION}/{pn}/groups")))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"messaging_product": "whatsapp", "request_id": meta_request}),
            ))
            .expect(1)
            .mount_as_scoped(&self.meta)
            .await;
        let created = self.request_creation(token, pn, subject).await;
        drop(guard);
        self.complete_creation(token, pn, &created, &meta_request, &group_id, subject)
            .await;
        group_id
    }

    /// `create_group` as the caller sends it, answered 202 (whatever stands in for Meta must
    /// answer the upstream call).
    pub async fn request_creation(&self, token: &str, pn: &str, subject: &str) -> Value {
        let res = self
            .post_json(
                &format!("/v1/phone-numbers/{pn}/groups"),
                token,
                &json!({ "subject": subject }),
            )
            .await;
        assert_eq!(
            res.status(),
            202,
            "create answered {}",
            res.text().await.unwrap_or_default()
        );
        res.json().await.expect("json")
    }

    /// A creation on `PN` whose Meta call is answered: its request id.
    pub async fn request_creation_answered(&self, token: &str) -> String {
        let _guard = Mock::given(method("POST"))
            .and(path(format!("/{API_VERSION}/{PN}/groups")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": uuid()})))
            .mount_as_scoped(&self.meta)
            .await;
        let created = self.request_creation(token, PN, "Answered").await;
        created["request_id"]
            .as_str()
            .expect("request_id")
            .to_owned()
    }

    /// `create_group` on `PN` as sent; answers the status.
    pub async fn request_creation_raw(&self, token: &str) -> u16 {
        self.post_json(
            &format!("/v1/phone-numbers/{PN}/groups"),
            token,
            &json!({ "subject": "Raw" }),
        )
        .await
        .status()
        .as_u16()
    }

    /// Meta's creation webhook for `created` (Meta's id `meta_request`), and the wait until
    /// the gateway has applied it.
    pub async fn complete_creation(
        &self,
        token: &str,
        pn: &str,
        created: &Value,
        meta_request: &str,
        group_id: &str,
        subject: &str,
    ) {
        let hook = lifecycle_webhook(
            pn,
            vec![json!({
                "timestamp": "1755548877",
                "group_id": group_id,
                "type": "group_create",
                "request_id": meta_request,
                "subject": subject,
                "invite_link": format!("https://chat.whatsapp.com/{group_id}"),
                "join_approval_mode": "auto_approve"
            })],
        );
        assert_eq!(self.send_webhook(&hook).await.status(), 200);
        let request_id = created["request_id"]
            .as_str()
            .expect("request_id")
            .to_owned();
        self.wait_for_request(token, &request_id, "created").await;
    }

    /// Polls a creation until it reaches `status` (webhooks are processed asynchronously).
    pub async fn wait_for_request(&self, token: &str, request_id: &str, status: &str) -> Value {
        for _ in 0..100 {
            let res = self
                .get(&format!("/v1/group-requests/{request_id}"), token)
                .await;
            let body: Value = res.json().await.expect("json");
            if body["status"] == status {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("request {request_id} never became {status}");
    }
}

/// A webhook POST as Meta sends it, one change of `field` carrying `groups`.
pub fn webhook(field: &str, pn: &str, groups: Vec<Value>) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "WABA_ID",
            "changes": [{
                "field": field,
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550001111", "phone_number_id": pn },
                    "groups": groups
                }
            }]
        }]
    })
}

pub fn lifecycle_webhook(pn: &str, groups: Vec<Value>) -> Value {
    webhook("group_lifecycle_update", pn, groups)
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Meta's error envelope.
pub fn meta_error(code: i64, message: &str) -> Value {
    json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEfTrace"}})
}

pub async fn problem(res: reqwest::Response) -> Value {
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ct.starts_with("application/problem+json"),
        "content-type was {ct}"
    );
    res.json().await.expect("problem json")
}

/// The `field` names listed in a problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `probe` until it answers `Some` and answers that; fails the test, naming `what`,
/// once `within` has passed. What happens in the background (webhook processing, deliveries)
/// is waited for this way, for as long as it takes and no longer, never for a fixed time.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// Waits until every webhook POST the gateway stored has been processed (or set aside),
    /// so the registry and the team events show all of them: what a test asserts must not
    /// have happened, it asserts after this, instead of after a pause.
    pub async fn webhooks_processed(&self) {
        let storage = SqlStorage::connect(self.settings.storage.url.expose_secret(), 1)
            .await
            .expect("the app's database");
        eventually(
            Duration::from_secs(10),
            "every stored webhook POST processed",
            async || {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM webhook_inbox WHERE processed_at IS NULL AND failed_at IS NULL",
                )
                .fetch_one(storage.pool())
                .await
                .expect("webhook_inbox");
                (waiting == 0).then_some(())
            },
        )
        .await;
    }
}

/// The `jti` claim of a token, read without verifying it (the test issued it).
pub fn jti_of(token: &str) -> String {
    use base64::Engine;
    let claims = token.split('.').nth(1).expect("claims part");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64");
    serde_json::from_slice::<Value>(&raw).expect("json")["jti"]
        .as_str()
        .expect("jti")
        .to_owned()
}

/// How many group creations on `pn` reached Meta among `requests`.
pub fn creations_sent(requests: &[wiremock::Request], pn: &str) -> usize {
    let groups = format!("/{API_VERSION}/{pn}/groups");
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == groups)
        .count()
}
