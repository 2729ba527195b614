//! Teams and phone numbers managed at runtime (DESIGN §11): the admin routes, the registry
//! every check reads, access tokens encrypted at rest, and replicas that agree within a
//! second.

use std::time::Duration;

use serde_json::{Value, json};
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::crypto::EncryptionKey;
use wa_groups_gateway::startup::Application;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    API_VERSION, PN, TestApp, error_fields, eventually, problem, spawn_app, spawn_app_adjusted,
    test_config, uuid,
};
use crate::pg::TestDatabase;

/// A number only the API knows.
const PN3: &str = "333333";

fn key(written: &str) -> EncryptionKey {
    EncryptionKey::parse(written).expect("key")
}

/// A gateway on SQLite (or PostgreSQL, with WAGW_TEST_BACKEND) with `storage.encryption_key`.
async fn app_with_key(written: &str) -> TestApp {
    let key = key(written);
    spawn_app_adjusted(None, "", "", "", move |s| {
        s.encryption.keys.current = Some(key)
    })
    .await
}

fn admin(app: &TestApp) -> String {
    app.token("platform", &["admin"])
}

async fn put(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.send_json(reqwest::Method::PUT, path, token, &body)
        .await
}

/// Meta answers a creation on `pn` only when called with `access_token`.
async fn meta_creates_with(meta: &MockServer, pn: &str, access_token: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{pn}/groups")))
        .and(header("authorization", format!("Bearer {access_token}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": uuid()})),
        )
        .mount(meta)
        .await;
}

/// The `Authorization` of the last creation Meta received on `pn`.
async fn last_token_meta_saw(app: &TestApp, pn: &str) -> Option<String> {
    app.upstream_requests()
        .await
        .iter()
        .rev()
        .find(|r| r.url.path() == format!("/{API_VERSION}/{pn}/groups"))
        .and_then(|r| r.headers.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn create_status(app: &TestApp, token: &str, pn: &str) -> u16 {
    app.post_json(
        &format!("/v1/phone-numbers/{pn}/groups"),
        token,
        &json!({"subject": format!("S {}", uuid())}),
    )
    .await
    .status()
    .as_u16()
}

#[tokio::test]
async fn a_team_and_number_made_through_the_api_work_at_once_and_a_deleted_team_is_refused() {
    let app = app_with_key(&EncryptionKey::generate()).await;
    let admin = admin(&app);
    let res = put(
        &app,
        &format!("/v1/admin/phone-numbers/{PN3}"),
        &admin,
        json!({"access_token": "meta-token-333-first"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["token_fingerprint"].as_str().map(str::len), Some(8));
    assert!(!body.to_string().contains("meta-token-333"), "{body}");
    let res = put(
        &app,
        "/v1/admin/teams/ops",
        &admin,
        json!({"phone_numbers": [PN3], "rate_limit": {"per_second": 50, "burst": 100}}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let ops = app.token("ops", &["groups:write", "groups:read"]);
    meta_creates_with(&app.meta, PN3, "meta-token-333-first").await;
    assert_eq!(create_status(&app, &ops, PN3).await, 202);
    // The team has no grant on configuration's numbers.
    assert_eq!(create_status(&app, &ops, PN).await, 403);

    // A replaced token is the one Meta sees on the next call.
    let res = put(
        &app,
        &format!("/v1/admin/phone-numbers/{PN3}"),
        &admin,
        json!({"access_token": "meta-token-333-second"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    meta_creates_with(&app.meta, PN3, "meta-token-333-second").await;
    assert_eq!(create_status(&app, &ops, PN3).await, 202);
    assert_eq!(
        last_token_meta_saw(&app, PN3).await.as_deref(),
        Some("Bearer meta-token-333-second")
    );

    // Replacing the team answers 200; the listing shows both kinds.
    let res = put(
        &app,
        "/v1/admin/teams/ops",
        &admin,
        json!({"phone_numbers": [PN3, PN]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let teams: Value = app
        .get("/v1/admin/teams", &admin)
        .await
        .json()
        .await
        .expect("json");
    let ops_entry = teams["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == "ops")
        .expect("ops listed")
        .clone();
    assert_eq!(ops_entry["source"], "api");
    assert_eq!(ops_entry["phone_numbers"], json!([PN3, PN]));
    assert!(
        ops_entry.get("rate_limit").is_none(),
        "PUT replaces the whole entry"
    );
    assert!(
        teams["teams"]
            .as_array()
            .expect("teams")
            .iter()
            .any(|t| t["name"] == "sales" && t["source"] == "config")
    );
    let numbers: Value = app
        .get("/v1/admin/phone-numbers", &admin)
        .await
        .json()
        .await
        .expect("json");
    let listed = numbers.to_string();
    assert!(!listed.contains("meta-token"), "{listed}");
    let pn3 = numbers["phone_numbers"]
        .as_array()
        .expect("numbers")
        .iter()
        .find(|n| n["phone_number_id"] == PN3)
        .expect("listed")
        .clone();
    assert_eq!(pn3["teams"], json!(["ops"]));
    assert_eq!(
        pn3["token_fingerprint"],
        wa_groups_gateway::crypto::fingerprint(b"meta-token-333-second")
    );

    // Still granted: the number cannot go.
    let res = app
        .delete(&format!("/v1/admin/phone-numbers/{PN3}"), &admin)
        .await;
    assert_eq!(res.status(), 409);
    assert!(
        problem(res).await["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ops")
    );

    // A deleted team's token is refused at once, remembered or not.
    assert_eq!(app.get("/v1/admin/teams", &admin).await.status(), 200);
    assert_eq!(
        app.delete("/v1/admin/teams/ops", &admin).await.status(),
        204
    );
    assert_eq!(create_status(&app, &ops, PN3).await, 401);
    assert_eq!(
        app.delete(&format!("/v1/admin/phone-numbers/{PN3}"), &admin)
            .await
            .status(),
        204
    );
    // Every change is audited, the token never.
    let audit: Value = app
        .get("/v1/admin/audit", &admin)
        .await
        .json()
        .await
        .expect("json");
    let text = audit.to_string();
    assert!(!text.contains("meta-token-333"), "{text}");
    assert!(text.contains("/v1/admin/teams/{team}"), "{text}");
    assert!(text.contains("token_fingerprint"), "{text}");
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_configuration_entries_are_read_only() {
    let app = app_with_key(&EncryptionKey::generate()).await;
    let admin = admin(&app);
    let cases = [
        (
            "/v1/admin/teams/Bad%20Name",
            json!({"phone_numbers": [PN]}),
            "team",
        ),
        (
            "/v1/admin/teams/ok",
            json!({"phone_numbers": ["999"]}),
            "phone_numbers[0]",
        ),
        (
            "/v1/admin/teams/ok",
            json!({"phone_numbers": ["12a"]}),
            "phone_numbers[0]",
        ),
        ("/v1/admin/teams/ok", json!({}), "phone_numbers"),
        (
            "/v1/admin/teams/ok",
            json!({"phone_numbers": [PN], "rate_limit": {"per_second": 0, "burst": 5}}),
            "rate_limit.per_second",
        ),
        (
            "/v1/admin/teams/ok",
            json!({"phone_numbers": [PN], "rate_limit": {"per_second": 5, "burst": 1000000}}),
            "rate_limit.burst",
        ),
        (
            "/v1/admin/teams/ok",
            json!({"phone_numbers": [PN], "max_groups": 0}),
            "max_groups",
        ),
        (
            "/v1/admin/teams/ok",
            json!({"phone_numbers": [PN], "colour": 1}),
            "colour",
        ),
        ("/v1/admin/phone-numbers/444", json!({}), "access_token"),
        (
            "/v1/admin/phone-numbers/444",
            json!({"access_token": "a b"}),
            "access_token",
        ),
        (
            "/v1/admin/phone-numbers/4x4",
            json!({"access_token": "t"}),
            "phone_number_id",
        ),
    ];
    for (route, body, field) in cases {
        let res = put(&app, route, &admin, body.clone()).await;
        assert_eq!(res.status(), 400, "{route} {body}");
        let fields = error_fields(&problem(res).await);
        assert!(
            fields.contains(&field.to_owned()),
            "{route} {body}: {fields:?}"
        );
    }
    let teams: Value = app
        .get("/v1/admin/teams", &admin)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        !teams.to_string().contains("\"ok\""),
        "nothing half-written"
    );
    for (route, body) in [
        ("/v1/admin/teams/sales", json!({"phone_numbers": [PN]})),
        (
            &*format!("/v1/admin/phone-numbers/{PN}"),
            json!({"access_token": "t"}),
        ),
    ] {
        assert_eq!(
            put(&app, route, &admin, body).await.status(),
            409,
            "{route}"
        );
    }
    assert_eq!(
        app.delete("/v1/admin/teams/sales", &admin).await.status(),
        409
    );
    assert_eq!(
        app.delete("/v1/admin/teams/nobody", &admin).await.status(),
        404
    );
    assert!(upstream_untouched(&app).await);
}

async fn upstream_untouched(app: &TestApp) -> bool {
    app.upstream_requests().await.is_empty()
}

#[tokio::test]
async fn only_an_unnarrowed_admin_token_manages_teams_and_numbers() {
    let app = app_with_key(&EncryptionKey::generate()).await;
    let narrowed = app.token_for_numbers("platform", &["admin"], Some(vec![PN.to_owned()]));
    let not_admin = app.token("sales", &["admin", "groups:read"]);
    for token in [&narrowed, &not_admin] {
        assert_eq!(app.get("/v1/admin/teams", token).await.status(), 403);
        assert_eq!(
            app.get("/v1/admin/phone-numbers", token).await.status(),
            403
        );
        let res = put(
            &app,
            "/v1/admin/teams/ops",
            token,
            json!({"phone_numbers": [PN]}),
        )
        .await;
        assert_eq!(res.status(), 403);
        let res = put(
            &app,
            &format!("/v1/admin/phone-numbers/{PN3}"),
            token,
            json!({"access_token": "t"}),
        )
        .await;
        assert_eq!(res.status(), 403);
        assert_eq!(app.delete("/v1/admin/teams/ops", token).await.status(), 403);
    }
}

#[tokio::test]
async fn without_a_key_no_access_token_is_stored_and_the_key_is_named() {
    // Live mode without storage.encryption_key.
    let app = spawn_app().await;
    let res = put(
        &app,
        &format!("/v1/admin/phone-numbers/{PN3}"),
        &admin(&app),
        json!({"access_token": "meta-token-333"}),
    )
    .await;
    assert_eq!(res.status(), 409);
    let detail = problem(res).await["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("storage.encryption_key"), "{detail}");
}

/// SQLite: the database holds no token in clear; a restart keeps everything; a key that
/// cannot decrypt refuses to start, naming the key; `storage rekey` moves to a new key.
#[tokio::test]
async fn tokens_are_stored_encrypted_survive_restarts_and_move_to_a_new_key() {
    if std::env::var("WAGW_TEST_BACKEND").as_deref() == Ok("postgres") {
        return;
    }
    let old = EncryptionKey::generate();
    let app = app_with_key(&old).await;
    let admin = admin(&app);
    let secret = format!("EAAG-clear-text-{}", uuid());
    let res = put(
        &app,
        &format!("/v1/admin/phone-numbers/{PN3}"),
        &admin,
        json!({"access_token": secret}),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        put(
            &app,
            "/v1/admin/teams/ops",
            &admin,
            json!({"phone_numbers": [PN3]})
        )
        .await
        .status(),
        201
    );
    let db = app
        .settings
        .storage
        .url
        .to_string()
        .trim_start_matches("sqlite://")
        .to_owned();
    let dir = std::path::Path::new(&db).parent().expect("dir").to_owned();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("file");
        seen += bytes.len();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the access token is in the database files in clear"
        );
    }
    assert!(seen > 0);

    // A second gateway on the same file (a restart) serves what the first stored.
    let restarted = Application::build(app.settings.clone())
        .await
        .expect("restarts");
    let base = format!("http://127.0.0.1:{}", restarted.port());
    tokio::spawn(restarted.run_until_stopped());
    let teams: Value = app
        .http
        .get(format!("{base}/v1/admin/teams"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert!(teams.to_string().contains("\"ops\""), "{teams}");

    // A key that cannot decrypt what is stored: refused, naming the key.
    let new = EncryptionKey::generate();
    let mut wrong = app.settings.clone();
    wrong.encryption.keys.current = Some(key(&new));
    let err = Application::build(wrong.clone())
        .await
        .err()
        .expect("refused to start")
        .to_string();
    assert!(err.contains("storage.encryption_key"), "{err}");
    assert!(!err.contains(&secret), "{err}");

    // The new key with the old one as previous: starts, and rekey moves everything over.
    let mut rotating = wrong.clone();
    rotating.encryption.keys.previous = vec![key(&old)];
    let rekeyed = tokio::task::spawn_blocking(move || {
        wa_groups_gateway::cli_registry::storage(
            &rotating,
            wa_groups_gateway::cli_registry::StorageAction::Rekey,
        )
    })
    .await
    .expect("joined")
    .expect("rekeyed");
    assert!(rekeyed.starts_with("1 access tokens"), "{rekeyed}");
    let after = Application::build(wrong)
        .await
        .expect("the new key alone opens it");
    drop(after);
}

/// Two replicas on one PostgreSQL database.
struct Replicas {
    bases: Vec<String>,
    issuer: TokenIssuer,
    http: reqwest::Client,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Replicas {
    async fn start(meta: &MockServer) -> Replicas {
        let db = TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = test_config(
            &meta.uri(),
            dir.path(),
            "[telemetry]\nlog_level = \"warn\"\n",
        )
        .replacen(
            "[storage]\n",
            &format!(
                "[storage]\nencryption_key = \"{}\"\n",
                EncryptionKey::generate()
            ),
            1,
        );
        let mut settings = Settings::from_toml_overrides(&toml).expect("valid configuration");
        settings.storage.url = db.url.clone().into();
        let issuer = TokenIssuer::new(&settings.auth, None).expect("signing key");
        let mut bases = Vec::new();
        for _ in 0..2 {
            let app = Application::build(settings.clone()).await.expect("replica");
            bases.push(format!("http://127.0.0.1:{}", app.port()));
            tokio::spawn(app.run_until_stopped());
        }
        Replicas {
            bases,
            issuer,
            http: reqwest::Client::new(),
            _db: db,
            _dir: dir,
        }
    }

    fn token(&self, team: &str, scopes: &[Scope]) -> String {
        self.issuer
            .issue(team, scopes, None, 3600)
            .expect("token")
            .token
    }

    async fn put(&self, replica: usize, path: &str, token: &str, body: Value) -> u16 {
        self.http
            .put(format!("{}{path}", self.bases[replica]))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16()
    }

    async fn create_status(&self, replica: usize, token: &str, pn: &str) -> u16 {
        self.http
            .post(format!(
                "{}/v1/phone-numbers/{pn}/groups",
                self.bases[replica]
            ))
            .bearer_auth(token)
            .json(&json!({"subject": format!("S {}", uuid())}))
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn replicas_agree_within_a_second_on_teams_numbers_and_tokens() {
    let meta = MockServer::builder().start().await;
    let replicas = Replicas::start(&meta).await;
    let admin = replicas.token("platform", &[Scope::Admin]);
    let ops = replicas.token("ops", &[Scope::GroupsWrite]);
    // Before: replica 1 does not know the team.
    assert_eq!(replicas.create_status(1, &ops, PN3).await, 401);
    meta_creates_with(&meta, PN3, "fleet-token-1").await;
    let number = format!("/v1/admin/phone-numbers/{PN3}");
    assert_eq!(
        replicas
            .put(0, &number, &admin, json!({"access_token": "fleet-token-1"}))
            .await,
        201
    );
    assert_eq!(
        replicas
            .put(
                0,
                "/v1/admin/teams/ops",
                &admin,
                json!({"phone_numbers": [PN3]})
            )
            .await,
        201
    );
    // Made on replica 0, a group is created through replica 1 within a second.
    eventually(
        Duration::from_secs(1),
        "replica 1 creates for ops",
        async || (replicas.create_status(1, &ops, PN3).await == 202).then_some(()),
    )
    .await;
    // A token replaced on replica 1 is what Meta sees from replica 0 within a second.
    meta_creates_with(&meta, PN3, "fleet-token-2").await;
    assert_eq!(
        replicas
            .put(1, &number, &admin, json!({"access_token": "fleet-token-2"}))
            .await,
        200
    );
    eventually(
        Duration::from_secs(1),
        "replica 0 uses the new token",
        async || {
            if replicas.create_status(0, &ops, PN3).await != 202 {
                return None;
            }
            let seen = meta.received_requests().await.unwrap_or_default();
            let last = seen
                .iter()
                .rev()
                .find(|r| r.url.path() == format!("/{API_VERSION}/{PN3}/groups"))?;
            (last.headers.get("authorization")?.to_str().ok()? == "Bearer fleet-token-2")
                .then_some(())
        },
    )
    .await;
    // Deleted on replica 0: refused on both within a second.
    let res = replicas
        .http
        .delete(format!("{}/v1/admin/teams/ops", replicas.bases[0]))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 204);
    assert_eq!(replicas.create_status(0, &ops, PN3).await, 401);
    eventually(
        Duration::from_secs(1),
        "replica 1 refuses ops",
        async || (replicas.create_status(1, &ops, PN3).await == 401).then_some(()),
    )
    .await;
}
