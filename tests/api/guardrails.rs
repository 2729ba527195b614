//! DESIGN §15, guardrails: Meta's group error codes as stable problem types, quotas checked
//! before Meta, Meta's 131208 backoff shared by every replica, business-scoped user ids.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

fn graph(p: &str) -> String {
    format!("/{API_VERSION}/{p}")
}

const PROBLEMS: &str = "https://wa-groups-gateway.dev/problems/";

/// Every documented Groups code reaches the caller with its own problem type, Meta's code
/// and Meta's documented status, even when Meta's HTTP status says something else.
#[tokio::test]
async fn each_group_error_code_has_a_stable_problem_type_and_metas_code() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Codes").await;
    let cases = [
        (131020, 400, "group-without-participants"),
        (131041, 400, "group-unknown"),
        (131059, 400, "invalid-cursor"),
        (131202, 400, "duplicate-participant"),
        (131203, 400, "participant-terms-not-accepted"),
        (131204, 400, "participant-limit"),
        (131207, 403, "group-suspended"),
        (131209, 400, "picture-not-square"),
        (131210, 400, "picture-too-small"),
        (131211, 400, "group-create-limit-reached"),
        (131212, 400, "participant-not-in-group"),
        (131213, 400, "join-request-unknown"),
        (131214, 400, "group-creation-disabled"),
        (131215, 400, "phone-number-not-eligible"),
        // Undocumented codes of the range keep Meta's code under the generic type.
        (131205, 400, "upstream-error"),
        (131206, 400, "upstream-error"),
    ];
    for (code, status, slug) in cases {
        // Meta's status is deliberately odd (418): the gateway goes by the code.
        let guard = Mock::given(method("GET"))
            .and(path(graph(&g)))
            .respond_with(
                ResponseTemplate::new(if slug == "upstream-error" { 400 } else { 418 })
                    .set_body_json(meta_error(code, "refused")),
            )
            .expect(1)
            .mount_as_scoped(&app.meta)
            .await;
        let res = app
            .get(&format!("/v1/groups/{g}?fields=subject"), &token)
            .await;
        assert_eq!(res.status(), status, "{code}");
        assert!(res.headers().get("retry-after").is_none(), "{code}");
        let p = problem(res).await;
        assert_eq!(p["type"], format!("{PROBLEMS}{slug}"), "{code}: {p}");
        assert_eq!(p["upstream"]["code"], code, "{code}: {p}");
        drop(guard);
    }
}

#[tokio::test]
async fn metas_group_throttling_has_its_own_type_and_is_not_replayed() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Throttled").await;
    Mock::given(method("GET"))
        .and(path(graph(&g)))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "message": "(#131208) Group Rate Limit Hit", "code": 131208, "is_transient": true}})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .get(&format!("/v1/groups/{g}?fields=subject"), &token)
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "60");
    let p = problem(res).await;
    assert_eq!(p["type"], format!("{PROBLEMS}group-rate-limited"));
    assert_eq!(p["upstream"]["code"], 131208);
}

/// Meta's 206 (131201) is a success with failures: answered 200, the failed items listed, and
/// the partial success named with its own type and Meta's code.
#[tokio::test]
async fn a_partial_success_names_metas_131201() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Partial").await;
    for (meta_method, route, key) in [
        ("POST", "approve", "approved"),
        ("DELETE", "reject", "rejected"),
    ] {
        let succeeded = format!("{key}_join_requests");
        let guard = Mock::given(method(meta_method))
            .and(path(graph(&format!("{g}/join_requests"))))
            .respond_with(ResponseTemplate::new(206).set_body_json(json!({
                "messaging_product": "whatsapp",
                succeeded: ["JR1"],
                "failed_join_requests": [{"join_request_id": "JR2", "errors": [{"code": 131213, "message": "gone"}]}],
                "errors": [{"code": 131201, "message": "Not all join requests succeeded"}]
            })))
            .expect(1)
            .mount_as_scoped(&app.meta)
            .await;
        let res = app
            .post_json(
                &format!("/v1/groups/{g}/join-requests/{route}"),
                &token,
                &json!({"join_request_ids": ["JR1", "JR2"]}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body[key], json!(["JR1"]));
        assert_eq!(body["failed"][0]["error"]["code"], 131213);
        assert_eq!(
            body["partial_success"]["type"],
            format!("{PROBLEMS}partial-success")
        );
        assert_eq!(
            body["partial_success"]["upstream"]["code"], 131201,
            "{body}"
        );
        drop(guard);
    }
    // A full success says nothing of a partial one.
    Mock::given(method("POST"))
        .and(path(graph(&format!("{g}/join_requests"))))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"approved_join_requests": ["JR3"]})),
        )
        .mount(&app.meta)
        .await;
    let body: Value = app
        .post_json(
            &format!("/v1/groups/{g}/join-requests/approve"),
            &token,
            &json!({"join_request_ids": ["JR3"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(body.get("partial_success").is_none(), "{body}");
}

// ---- quotas ---------------------------------------------------------------------------------

/// Meta's answer to a creation: a new request id each time.
pub struct NewRequestId;

impl wiremock::Respond for NewRequestId {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({"messaging_product": "whatsapp", "request_id": uuid()}))
    }
}

/// Meta answers every creation on `pn` with a new request id (and sends no webhook).
async fn meta_accepts_creations(app: &TestApp, pn: &str) {
    Mock::given(method("POST"))
        .and(path(graph(&format!("{pn}/groups"))))
        .respond_with(NewRequestId)
        .mount(&app.meta)
        .await;
}

async fn create(app: &TestApp, token: &str, pn: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/phone-numbers/{pn}/groups"),
        token,
        &json!({"subject": format!("Quota {}", uuid())}),
    )
    .await
}

async fn assert_over_quota(res: reqwest::Response, scope: &str, limit: u32) {
    assert_eq!(res.status(), 409);
    let p = problem(res).await;
    assert_eq!(p["type"], format!("{PROBLEMS}group-quota-exceeded"), "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(scope) && detail.contains(&format!("at most {limit} groups")),
        "{p}"
    );
}

/// The number's `max_groups` counts every team's active groups and pending creations; over
/// it, 409 and nothing reaches Meta; a deleted group frees its slot.
#[tokio::test]
async fn the_numbers_quota_counts_active_groups_and_pending_creations_of_every_team() {
    let pn: wa_groups_gateway::domain::PhoneNumberId =
        wa_groups_gateway::domain::PhoneNumberId::parse(PN).unwrap();
    let app = spawn_app_adjusted(None, "", "", "", move |s| {
        s.phone_number_max_groups.insert(pn, 2);
    })
    .await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read", "groups:write", "groups:delete"]);
    let active = app.create_group(&sales, PN, "Active").await;
    meta_accepts_creations(&app, PN).await;
    // A creation pending (no webhook yet) holds the second slot.
    assert_eq!(create(&app, &support, PN).await.status(), 202);
    let sent = creations_sent(&app.upstream_requests().await, PN);
    for token in [&sales, &support] {
        assert_over_quota(create(&app, token, PN).await, "phone number", 2).await;
    }
    assert_eq!(
        creations_sent(&app.upstream_requests().await, PN),
        sent,
        "nothing upstream"
    );
    // Another number has its own quota (Meta's 10,000 by default).
    meta_accepts_creations(&app, PN2).await;
    assert_eq!(create(&app, &sales, PN2).await.status(), 202);
    // Deleting the active group frees its slot.
    Mock::given(method("DELETE"))
        .and(path(graph(&active)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&app.meta)
        .await;
    assert_eq!(
        app.delete(&format!("/v1/groups/{active}"), &sales)
            .await
            .status(),
        204
    );
    assert_eq!(create(&app, &support, PN).await.status(), 202);
    assert_over_quota(create(&app, &support, PN).await, "phone number", 2).await;
}

/// A failed creation frees its slot at once: only pending creations count.
#[tokio::test]
async fn a_refused_creation_does_not_hold_a_slot() {
    let pn = wa_groups_gateway::domain::PhoneNumberId::parse(PN).unwrap();
    let app = spawn_app_adjusted(None, "", "", "", move |s| {
        s.phone_number_max_groups.insert(pn, 1);
    })
    .await;
    let sales = app.sales();
    let guard = Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(400).set_body_json(meta_error(131215, "not eligible")))
        .mount_as_scoped(&app.meta)
        .await;
    assert_eq!(create(&app, &sales, PN).await.status(), 400);
    drop(guard);
    meta_accepts_creations(&app, PN).await;
    assert_eq!(create(&app, &sales, PN).await.status(), 202);
    assert_over_quota(create(&app, &sales, PN).await, "phone number", 1).await;
}

/// A team's `max_groups` applies on each of its numbers, and to it alone.
#[tokio::test]
async fn a_teams_quota_applies_per_number_and_to_that_team_only() {
    let app = spawn_app_adjusted(None, "", "", "", |s| {
        s.team_max_groups.insert("sales".into(), 1);
    })
    .await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read", "groups:write"]);
    meta_accepts_creations(&app, PN).await;
    meta_accepts_creations(&app, PN2).await;
    assert_eq!(create(&app, &sales, PN).await.status(), 202);
    let sent = creations_sent(&app.upstream_requests().await, PN);
    assert_over_quota(create(&app, &sales, PN).await, "team", 1).await;
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), sent);
    assert_eq!(create(&app, &support, PN).await.status(), 202);
    assert_eq!(create(&app, &sales, PN2).await.status(), 202);
    assert_over_quota(create(&app, &sales, PN2).await, "team", 1).await;
}

/// Quotas set through the admin API are in force at once, for numbers and teams alike.
#[tokio::test]
async fn quotas_set_through_the_admin_api_are_enforced() {
    let key = wa_groups_gateway::crypto::EncryptionKey::parse(
        &wa_groups_gateway::crypto::EncryptionKey::generate(),
    )
    .unwrap();
    let app = spawn_app_adjusted(None, "", "", "", move |s| {
        s.encryption.keys.current = Some(key)
    })
    .await;
    let admin = app.token("platform", &["admin"]);
    let put = |path: String, body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.send_json(reqwest::Method::PUT, &path, &admin, &body)
                .await
                .status()
        }
    };
    const PN3: &str = "333333";
    assert_eq!(
        put(
            format!("/v1/admin/phone-numbers/{PN3}"),
            json!({"access_token": "t-333", "max_groups": 2})
        )
        .await,
        201
    );
    assert_eq!(
        put(
            "/v1/admin/teams/ops".into(),
            json!({"phone_numbers": [PN3], "max_groups": 1})
        )
        .await,
        201
    );
    assert_eq!(
        put(
            "/v1/admin/teams/dev".into(),
            json!({"phone_numbers": [PN3]})
        )
        .await,
        201
    );
    let ops = app.token("ops", &["groups:write"]);
    let dev = app.token("dev", &["groups:write"]);
    meta_accepts_creations(&app, PN3).await;
    assert_eq!(create(&app, &ops, PN3).await.status(), 202);
    assert_over_quota(create(&app, &ops, PN3).await, "team", 1).await;
    assert_eq!(create(&app, &dev, PN3).await.status(), 202);
    assert_over_quota(create(&app, &dev, PN3).await, "phone number", 2).await;
    assert_eq!(creations_sent(&app.upstream_requests().await, PN3), 2);
}

#[test]
fn max_groups_outside_metas_limit_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = test_config("http://127.0.0.1:1", dir.path(), "");
    for (written, key) in [
        (
            format!("access_token = \"{TOKEN_PN}\"\nmax_groups = 0"),
            format!("phone_numbers.{PN}.max_groups"),
        ),
        (
            format!("access_token = \"{TOKEN_PN}\"\nmax_groups = 10001"),
            format!("phone_numbers.{PN}.max_groups"),
        ),
        (
            "[teams.support]\nmax_groups = 0".to_owned(),
            "teams.support.max_groups".to_owned(),
        ),
    ] {
        let from = if written.starts_with("[teams") {
            "[teams.support]".to_owned()
        } else {
            format!("access_token = \"{TOKEN_PN}\"")
        };
        let toml = base.replacen(&from, &written, 1);
        let err = wa_groups_gateway::config::Settings::from_toml_overrides(&toml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(&key), "{key}: {err}");
    }
    let ok = base.replacen(
        &format!("access_token = \"{TOKEN_PN}\""),
        &format!("access_token = \"{TOKEN_PN}\"\nmax_groups = 10000"),
        1,
    );
    let settings = wa_groups_gateway::config::Settings::from_toml_overrides(&ok).unwrap();
    assert_eq!(
        settings
            .phone_number_max_groups
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![10000]
    );
}

// ---- two replicas on one PostgreSQL database -------------------------------------------------

/// A number of the replica tests' own, with its `max_groups`, and the team that uses it.
const RACED: &str = "444444";

/// Two gateway processes on one PostgreSQL database, with wiremock as Meta.
struct Pair {
    _dir: tempfile::TempDir,
    _db: crate::pg::TestDatabase,
    replicas: Vec<crate::fleet::Gateway>,
    token: String,
    http: reqwest::Client,
}

impl Pair {
    async fn start(meta: &wiremock::MockServer, extra: &str) -> Pair {
        Pair::on(meta, RACED, extra).await
    }

    /// Two replicas whose team `racers` uses `number` (`max_groups` 3).
    async fn on(meta: &wiremock::MockServer, number: &str, extra: &str) -> Pair {
        Pair::tuned(meta, number, "", extra).await
    }

    /// `on`, with `graph_lines` inside `[graph]`.
    async fn tuned(
        meta: &wiremock::MockServer,
        number: &str,
        graph_lines: &str,
        extra: &str,
    ) -> Pair {
        let db = crate::pg::TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = tuned_config(
            &meta.uri(),
            dir.path(),
            "",
            graph_lines,
            &format!(
                "[telemetry]\nlog_level = \"warn\"\n\
                 [phone_numbers.{number}]\naccess_token = \"t-444\"\nmax_groups = 3\n\
                 [teams.racers]\nphone_numbers = [\"{number}\"]\n{extra}"
            ),
        );
        let config = dir.path().join("pair.toml");
        std::fs::write(&config, &toml).expect("config file");
        let settings =
            wa_groups_gateway::config::Settings::from_toml_overrides(&toml).expect("valid");
        let token = wa_groups_gateway::auth::TokenIssuer::new(&settings.auth, None)
            .expect("signing key")
            .issue(
                "racers",
                &[
                    wa_groups_gateway::auth::Scope::GroupsRead,
                    wa_groups_gateway::auth::Scope::GroupsWrite,
                ],
                None,
                3600,
            )
            .expect("token")
            .token;
        let replicas = futures_util::future::join_all(
            (1..=2).map(|run| crate::fleet::start(dir.path(), &config, &db.url, run)),
        )
        .await;
        Pair {
            _dir: dir,
            _db: db,
            replicas,
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    async fn create(&self, replica: usize, subject: &str) -> reqwest::Response {
        self.create_on(replica, RACED, subject).await
    }

    async fn create_on(&self, replica: usize, number: &str, subject: &str) -> reqwest::Response {
        self.http
            .post(self.replicas[replica].url(&format!("/v1/phone-numbers/{number}/groups")))
            .bearer_auth(&self.token)
            .json(&json!({ "subject": subject }))
            .send()
            .await
            .expect("create")
    }
}

/// Two replicas racing for the last slots: exactly `max_groups` creations reach Meta, every
/// other one is refused 409 before Meta, whichever replica it came through.
#[tokio::test]
async fn two_replicas_racing_never_both_take_the_last_slot() {
    let meta = wiremock::MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{RACED}/groups"))))
        // Slow enough that every creation is in flight at once.
        .respond_with(DelayedRequestId(std::time::Duration::from_millis(300)))
        .mount(&meta)
        .await;
    let pair = Pair::start(&meta, "").await;
    let subjects: Vec<String> = (0..16).map(|i| format!("Race {i}")).collect();
    let attempts = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| pair.create(i % 2, s));
    let answers = futures_util::future::join_all(attempts).await;
    let mut accepted = 0;
    let mut refused = 0;
    for res in answers {
        match res.status().as_u16() {
            202 => accepted += 1,
            409 => {
                let p = problem(res).await;
                assert_eq!(p["type"], format!("{PROBLEMS}group-quota-exceeded"), "{p}");
                refused += 1;
            }
            other => panic!(
                "unexpected {other}: {}",
                res.text().await.unwrap_or_default()
            ),
        }
    }
    assert_eq!((accepted, refused), (3, 13));
    let sent = meta.received_requests().await.unwrap_or_default();
    assert_eq!(
        creations_sent(&sent, RACED),
        3,
        "only the accepted reached Meta"
    );
    // Still full, on either replica.
    for replica in 0..2 {
        assert_eq!(pair.create(replica, "Late").await.status(), 409);
    }
}

/// Meta's answer to a creation after `0`: a new request id each time.
struct DelayedRequestId(std::time::Duration);

impl wiremock::Respond for DelayedRequestId {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        wiremock::Respond::respond(&NewRequestId, request).set_delay(self.0)
    }
}

// ---- Meta's 131208 backoff ------------------------------------------------------------------

/// Meta's 131208, with its usage header advising `minutes`.
fn group_throttled(minutes: Option<u64>) -> ResponseTemplate {
    let answer =
        ResponseTemplate::new(429).set_body_json(meta_error(131208, "Group Rate Limit Hit"));
    match minutes {
        Some(m) => answer.insert_header(
            "x-business-use-case-usage",
            json!({"1234": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": m}]})
                .to_string()
                .as_str(),
        ),
        None => answer,
    }
}

/// Requests Meta received for group `g` or its sub-paths.
async fn calls_about(app: &TestApp, g: &str) -> usize {
    let prefix = graph(g);
    app.upstream_requests()
        .await
        .iter()
        .filter(|r| r.url.path().starts_with(&prefix))
        .count()
}

async fn assert_held_back(res: reqwest::Response, at_most: u64, at_least: u64) {
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (at_least..=at_most).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let p = problem(res).await;
    assert_eq!(p["type"], format!("{PROBLEMS}group-rate-limited"), "{p}");
}

/// After Meta's 131208 no group operation of the number (reads included) goes upstream until
/// Meta's advised time; the refused call is not retried; other numbers and messages flow.
#[tokio::test]
async fn after_131208_the_numbers_group_operations_wait_for_metas_advised_time() {
    let app = spawn_app().await;
    let token = app.token("sales", &["groups:read", "groups:write", "groups:message"]);
    let g = app.create_group(&token, PN, "Hot").await;
    let other = app.create_group(&token, PN2, "Cool").await;
    Mock::given(method("GET"))
        .and(path(graph(&g)))
        .respond_with(group_throttled(Some(2)))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .get(&format!("/v1/groups/{g}?fields=subject"), &token)
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "120");
    assert_eq!(problem(res).await["upstream"]["code"], 131208);
    // Reads, changes and creations of the number wait, unsent.
    assert_held_back(
        app.get(&format!("/v1/groups/{g}?fields=subject"), &token)
            .await,
        120,
        115,
    )
    .await;
    assert_held_back(
        app.get(&format!("/v1/groups/{g}/invite-link"), &token)
            .await,
        120,
        115,
    )
    .await;
    assert_held_back(
        app.send_json(
            reqwest::Method::PATCH,
            &format!("/v1/groups/{g}"),
            &token,
            &json!({"subject": "New"}),
        )
        .await,
        120,
        115,
    )
    .await;
    let creations = creations_sent(&app.upstream_requests().await, PN);
    assert_held_back(create(&app, &token, PN).await, 120, 115).await;
    assert_eq!(
        creations_sent(&app.upstream_requests().await, PN),
        creations
    );
    assert_eq!(
        calls_about(&app, &g).await,
        1,
        "only the throttled call reached Meta"
    );
    // Another number is not held back.
    Mock::given(method("GET"))
        .and(path(graph(&other)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": other, "subject": "Cool"})),
        )
        .mount(&app.meta)
        .await;
    assert_eq!(
        app.get(&format!("/v1/groups/{other}?fields=subject"), &token)
            .await
            .status(),
        200
    );
    // Messages are not group operations.
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/messages"))))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.1"}]})),
        )
        .expect(1)
        .mount(&app.meta)
        .await;
    let sent = app
        .post_json(
            &format!("/v1/groups/{g}/messages"),
            &token,
            &json!({"type": "text", "text": {"body": "hi"}}),
        )
        .await;
    assert_eq!(
        sent.status(),
        202,
        "{}",
        sent.text().await.unwrap_or_default()
    );
}

/// Without Meta's usage header the hold is 60 s.
#[tokio::test]
async fn without_metas_advice_the_hold_is_sixty_seconds() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Plain").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(group_throttled(None))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .get(&format!("/v1/groups/{g}/invite-link"), &token)
        .await;
    assert_eq!(res.headers()["retry-after"], "60");
    assert_held_back(
        app.get(&format!("/v1/groups/{g}/invite-link"), &token)
            .await,
        60,
        55,
    )
    .await;
}

/// A hold ends at its time: calls flow again.
#[tokio::test]
async fn a_hold_ends_at_its_time() {
    use wa_groups_gateway::storage::BackoffStore;
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Brief").await;
    let storage = wa_groups_gateway::storage::sql::SqlStorage::connect(
        secrecy::ExposeSecret::expose_secret(&app.settings.storage.url),
        1,
    )
    .await
    .unwrap();
    let until = chrono::Utc::now().timestamp_millis() + 1500;
    storage.hold_group_operations(PN, until).await.unwrap();
    // An earlier time never shortens it.
    storage
        .hold_group_operations(PN, until - 1000)
        .await
        .unwrap();
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"invite_link": "https://chat.whatsapp.com/X"})),
        )
        .mount(&app.meta)
        .await;
    assert_held_back(
        app.get(&format!("/v1/groups/{g}/invite-link"), &token)
            .await,
        2,
        1,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert_eq!(
        app.get(&format!("/v1/groups/{g}/invite-link"), &token)
            .await
            .status(),
        200
    );
}

/// A 131208 seen by one replica holds the other back (through storage, and through Redis
/// when the buckets are shared there).
#[tokio::test]
async fn a_131208_on_one_replica_holds_back_the_other() {
    for store in ["", "redis"] {
        // A number of this run's own: a hold in Redis outlives the test.
        let number = format!("{}", 500_000 + rand::random::<u32>() % 400_000);
        let extra = if store == "redis" {
            format!(
                "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\n",
                crate::pg::redis_url()
            )
        } else {
            String::new()
        };
        let meta = wiremock::MockServer::builder().start().await;
        Mock::given(method("POST"))
            .and(path(graph(&format!("{number}/groups"))))
            .respond_with(group_throttled(Some(1)))
            .mount(&meta)
            .await;
        let pair = Pair::on(&meta, &number, &extra).await;
        let first = pair.create_on(0, &number, "Throttled").await;
        assert_eq!(first.status(), 429, "{store}");
        assert_eq!(first.headers()["retry-after"], "60");
        for replica in [1, 0] {
            let res = pair
                .create_on(replica, &number, &format!("Held {replica}"))
                .await;
            assert_held_back(res, 60, 50).await;
        }
        let sent = meta.received_requests().await.unwrap_or_default();
        assert_eq!(
            creations_sent(&sent, &number),
            1,
            "{store}: one call reached Meta"
        );
    }
}

// ---- business-scoped user ids ---------------------------------------------------------------

const BSUID: &str = "US.13491208655302741918";

#[tokio::test]
async fn participants_are_removed_by_phone_number_or_by_business_scoped_user_id() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Usernames").await;
    Mock::given(method("DELETE"))
        .and(path(graph(&format!("{g}/participants"))))
        .and(wiremock::matchers::body_json(json!({
            "messaging_product": "whatsapp",
            "participants": [{"user": "+16505551234"}, {"user_id": BSUID}]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "RM1"})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/participants/remove"),
            &token,
            &json!({"participants": ["+16505551234", {"user_id": BSUID}]}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["upstream_request_id"], "RM1");
}

/// Each broken entry is named; at most 8 entries in all; nothing reaches Meta.
#[tokio::test]
async fn a_broken_participant_entry_is_a_400_naming_it() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Strict").await;
    let nine: Vec<Value> = (0..9)
        .map(|i| {
            if i % 2 == 0 {
                json!(format!("+1650555{i:04}"))
            } else {
                json!({"user_id": format!("US.{i}")})
            }
        })
        .collect();
    let cases = [
        (json!(nine), "participants"),
        (
            json!([{"user_id": BSUID}, {"user_id": BSUID}]),
            "participants[1]",
        ),
        (json!(["16505551234", "+16505551234"]), "participants[1]"),
        (
            json!([{"user_id": "16505551234"}]),
            "participants[0].user_id",
        ),
        (json!([{"user_id": 7}]), "participants[0].user_id"),
        (json!([{"user": "16505551234"}]), "participants[0].user"),
        (json!([{}]), "participants[0].user_id"),
        (json!([16505551234u64]), "participants[0]"),
        (json!([]), "participants"),
    ];
    for (participants, field) in cases {
        let res = app
            .post_json(
                &format!("/v1/groups/{g}/participants/remove"),
                &token,
                &json!({"participants": participants}),
            )
            .await;
        assert_eq!(res.status(), 400, "{participants}");
        let p = problem(res).await;
        assert!(error_fields(&p).contains(&field.to_owned()), "{field}: {p}");
    }
    // A phone number and a user id are different people, even with the same digits.
    Mock::given(method("DELETE"))
        .and(path(graph(&format!("{g}/participants"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let eight: Vec<Value> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                json!(format!("+1650555{i:04}"))
            } else {
                json!({"user_id": format!("US.1650555{i:04}")})
            }
        })
        .collect();
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/participants/remove"),
            &token,
            &json!({"participants": eight}),
        )
        .await;
    assert_eq!(res.status(), 202);
}

/// Group info and join requests pass `user_id`, `parent_user_id` and `username` on, and a
/// participant without `wa_id` breaks nothing.
#[tokio::test]
async fn group_info_and_join_requests_pass_business_scoped_ids_on() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Info").await;
    let participants = json!([
        {"wa_id": "16505551234", "user_id": "US.1"},
        {"user_id": BSUID, "parent_user_id": "US.ENT.99", "username": "jane"}
    ]);
    Mock::given(method("GET"))
        .and(path(graph(&g)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": g, "participants": participants, "total_participant_count": "2"})))
        .mount(&app.meta)
        .await;
    let info: Value = app
        .get(
            &format!("/v1/groups/{g}?fields=participants,total_participant_count"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["participants"], participants);
    assert_eq!(info["total_participant_count"], 2);
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/join_requests"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [
            {"join_request_id": "JR1", "user_id": BSUID, "parent_user_id": "US.ENT.99", "username": "jane", "creation_timestamp": 1755548877},
            {"join_request_id": "JR2", "wa_id": "16505551234", "user_id": "US.1", "creation_timestamp": "1755548877"}
        ]})))
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
        json!([
            {"join_request_id": "JR1", "wa_id": null, "user_id": BSUID, "parent_user_id": "US.ENT.99", "username": "jane", "created_at": "2025-08-18T20:27:57Z"},
            {"join_request_id": "JR2", "wa_id": "16505551234", "user_id": "US.1", "created_at": "2025-08-18T20:27:57Z"}
        ])
    );
}

/// Team events carry Meta's business-scoped fields as sent, with or without `wa_id`.
#[tokio::test]
async fn team_events_pass_business_scoped_ids_on() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Events").await;
    let added = json!({"timestamp": "1755548900", "group_id": g, "type": "group_participants_add",
        "reason": "invite_link", "added_participants": [
            {"user_id": BSUID, "parent_user_id": "US.ENT.99", "username": "jane"},
            {"wa_id": "16505551234", "user_id": "US.1"}]});
    let asked = json!({"timestamp": "1755548901", "group_id": g, "type": "group_join_request_created",
        "join_request_id": "JR9", "user_id": BSUID, "username": "jane"});
    let left = json!({"timestamp": "1755548902", "group_id": g, "type": "group_participants_remove",
        "initiated_by": "participant", "removed_participants": [{"user_id": BSUID, "username": "jane"}]});
    let hook = webhook("group_participants_update", PN, vec![added, asked, left]);
    assert_eq!(app.send_webhook(&hook).await.status(), 200);
    let events = eventually(
        std::time::Duration::from_secs(10),
        "the events",
        async || {
            let page: Value = app
                .get("/v1/events?limit=100", &token)
                .await
                .json()
                .await
                .ok()?;
            let events = page["events"].as_array()?.clone();
            (events.len() >= 4).then_some(events)
        },
    )
    .await;
    let of = |t: &str| {
        events
            .iter()
            .find(|e| e["type"] == t)
            .cloned()
            .unwrap_or_default()
    };
    let added = of("group.participants_added");
    assert_eq!(
        added["data"]["added_participants"][0],
        json!({"user_id": BSUID, "parent_user_id": "US.ENT.99", "username": "jane"})
    );
    assert_eq!(
        added["data"]["added_participants"][1]["wa_id"],
        "16505551234"
    );
    assert_eq!(of("group.join_request_created")["data"]["user_id"], BSUID);
    assert_eq!(of("group.join_request_created")["data"]["username"], "jane");
    assert_eq!(
        of("group.participants_removed")["data"]["removed_participants"][0]["user_id"],
        BSUID
    );
}

/// The gateway takes the picture part under either of Meta's names, as the sandbox does.
#[tokio::test]
async fn the_picture_part_may_be_named_profile_picture_file() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Pictured").await;
    Mock::given(method("POST"))
        .and(path(graph(&g)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(2)
        .mount(&app.meta)
        .await;
    for part in ["file", "profile_picture_file"] {
        let form = reqwest::multipart::Form::new().part(
            part,
            reqwest::multipart::Part::bytes(wa_groups_gateway::domain::synthetic_jpeg_header(
                256, 256,
            ))
            .file_name("p.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
        );
        let res = app
            .http
            .put(app.url(&format!("/v1/groups/{g}/profile-picture")))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{part}");
    }
}

// ---- usage ----------------------------------------------------------------------------------

/// Meta's status webhook for message `id` sent to `group`, at `ts`, priced as `pricing`.
fn status_hook(
    group: &str,
    id: &str,
    status: &str,
    participant: Option<&str>,
    ts: i64,
    pricing: Value,
) -> Value {
    let mut item = json!({"id": id, "recipient_id": group, "recipient_type": "group", "status": status,
        "timestamp": ts.to_string(), "pricing": pricing});
    if let Some(p) = participant {
        item["recipient_participant_id"] = json!(p);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PN}, "statuses": [item]}}]}]})
}

fn billed(category: &str) -> Value {
    json!({"billable": true, "pricing_model": "PMP", "category": category, "type": "regular"})
}

/// 2026-12-01T10:00:00Z and the next day.
const DAY1: i64 = 1_796_119_200;
const DAY2: i64 = DAY1 + 86_400;

#[tokio::test]
async fn usage_counts_each_billable_message_once_per_team_day_number_and_category() {
    let app = spawn_app().await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read", "groups:write"]);
    let ours = app.create_group(&sales, PN, "Billed").await;
    let theirs = app.create_group(&support, PN, "Theirs").await;
    let hooks = [
        // One marketing message: sent, delivered to two, read, and Meta resends one status.
        status_hook(
            &ours,
            "wamid.M1",
            "sent",
            None,
            DAY1,
            billed("group_marketing"),
        ),
        status_hook(
            &ours,
            "wamid.M1",
            "delivered",
            Some("16505550001"),
            DAY1 + 1,
            billed("group_marketing"),
        ),
        status_hook(
            &ours,
            "wamid.M1",
            "delivered",
            Some("16505550002"),
            DAY1 + 1,
            billed("group_marketing"),
        ),
        status_hook(
            &ours,
            "wamid.M1",
            "read",
            Some("16505550001"),
            DAY1 + 2,
            billed("group_marketing"),
        ),
        status_hook(
            &ours,
            "wamid.M1",
            "read",
            Some("16505550001"),
            DAY1 + 2,
            billed("group_marketing"),
        ),
        // A utility message the next day, a free reply, and another team's message.
        status_hook(
            &ours,
            "wamid.M2",
            "sent",
            None,
            DAY2,
            billed("group_utility"),
        ),
        status_hook(
            &ours,
            "wamid.M3",
            "sent",
            None,
            DAY1,
            json!({"billable": "false", "pricing_model": "PMP", "category": "group_service", "type": "free_group_customer_service"}),
        ),
        status_hook(
            &theirs,
            "wamid.M4",
            "delivered",
            Some("16505550003"),
            DAY1,
            billed("group_marketing"),
        ),
        status_hook(
            &theirs,
            "wamid.M5",
            "sent",
            None,
            DAY1,
            billed("group_marketing"),
        ),
    ];
    for hook in &hooks {
        assert_eq!(app.send_webhook(hook).await.status(), 200);
    }
    app.webhooks_processed().await;
    let usage: Value = app
        .get("/v1/usage?from=2026-12-01&to=2026-12-02", &sales)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        usage,
        json!({"from": "2026-12-01", "to": "2026-12-02", "usage": [
            {"day": "2026-12-01", "phone_number_id": PN, "category": "group_marketing", "billable_messages": 1},
            {"day": "2026-12-02", "phone_number_id": PN, "category": "group_utility", "billable_messages": 1}
        ]})
    );
    let one_day: Value = app
        .get("/v1/usage?from=2026-12-02&to=2026-12-02", &sales)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one_day["usage"].as_array().unwrap().len(), 1);
    let theirs: Value = app
        .get("/v1/usage?from=2026-12-01&to=2026-12-01", &support)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["usage"][0]["billable_messages"], 2);

    let admin = app.token("platform", &["admin"]);
    let all: Value = app
        .get("/v1/admin/usage?from=2026-12-01&to=2026-12-31", &admin)
        .await
        .json()
        .await
        .unwrap();
    let rows = all["usage"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{all}");
    assert!(
        rows.iter()
            .any(|r| r["team"] == "support" && r["billable_messages"] == 2)
    );
    let only: Value = app
        .get(
            "/v1/admin/usage?from=2026-12-01&to=2026-12-31&team=sales",
            &admin,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        only["usage"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["team"] == "sales")
    );
    // A team token cannot read the platform's view.
    assert_eq!(
        app.get("/v1/admin/usage?from=2026-12-01&to=2026-12-31", &sales)
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn a_usage_range_that_makes_no_sense_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let sales = app.sales();
    for (query, field) in [
        ("", "from"),
        ("?from=2026-12-01", "to"),
        ("?from=2026-12-1&to=2026-12-02", "from"),
        ("?from=2026-12-01&to=tomorrow", "to"),
        ("?from=2026-12-02&to=2026-12-01", "to"),
        ("?from=2025-01-01&to=2026-12-01", "to"),
        ("?from=2026-12-01&to=2026-12-02&team=sales", "team"),
    ] {
        let res = app.get(&format!("/v1/usage{query}"), &sales).await;
        assert_eq!(res.status(), 400, "{query}");
        let p = problem(res).await;
        assert!(error_fields(&p).contains(&field.to_owned()), "{query}: {p}");
    }
}

// ---- reconciliation -------------------------------------------------------------------------

fn listing(groups: &[&str], after: Option<&str>) -> ResponseTemplate {
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| json!({"id": g, "subject": format!("Subject of {g}"), "created_at": "1755548877"}))
        .collect();
    let mut body = json!({"data": {"groups": groups}, "paging": {"cursors": {"before": "B"}}});
    if let Some(after) = after {
        body["paging"]["cursors"]["after"] = json!(after);
        body["paging"]["next"] = json!("https://graph.facebook.com/next");
    }
    ResponseTemplate::new(200).set_body_json(body)
}

#[tokio::test]
async fn reconciliation_marks_vanished_groups_deleted_and_lists_unknown_ones_as_unowned() {
    let app = spawn_app().await;
    let sales = app.sales();
    let kept = app.create_group(&sales, PN, "Kept").await;
    let vanished = app.create_group(&sales, PN, "Vanished").await;
    let (x, y) = (format!("GX{}", uuid()), format!("GY{}", uuid()));
    Mock::given(method("GET"))
        .and(path(graph(&format!("{PN}/groups"))))
        .and(wiremock::matchers::query_param("after", "PAGE2"))
        .respond_with(listing(&[&y], None))
        .with_priority(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(listing(&[&kept, &x], Some("PAGE2")))
        .with_priority(2)
        .mount(&app.meta)
        .await;
    let admin = app.token("platform", &["admin"]);
    let reconcile = format!("/v1/admin/phone-numbers/{PN}/reconcile");
    assert_eq!(
        app.post_json(&reconcile, &sales, &json!({})).await.status(),
        403
    );
    let res = app.post_json(&reconcile, &admin, &json!({})).await;
    assert_eq!(res.status(), 200);
    let found: Value = res.json().await.unwrap();
    assert_eq!(found["checked"], 3, "{found}");
    assert_eq!(found["marked_deleted"], json!([vanished]));
    let unowned: Vec<&str> = found["unowned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(unowned.len(), 2);
    assert!(unowned.contains(&x.as_str()) && unowned.contains(&y.as_str()));
    // The owner is told, and the group is gone from its listing.
    let events = eventually(
        std::time::Duration::from_secs(10),
        "group.deleted",
        async || {
            let page: Value = app
                .get("/v1/events?limit=100", &sales)
                .await
                .json()
                .await
                .ok()?;
            let deleted = page["events"]
                .as_array()?
                .iter()
                .find(|e| e["type"] == "group.deleted")?
                .clone();
            Some(deleted)
        },
    )
    .await;
    assert_eq!(events["group_id"], vanished.as_str());
    assert_eq!(events["data"]["reason"], "reconciled");
    let listed: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &sales)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![kept.as_str()]);
    // Again: nothing more to delete; the unowned are still there to adopt.
    let again: Value = app
        .post_json(&reconcile, &admin, &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["marked_deleted"], json!([]));
    assert_eq!(again["unowned"].as_array().unwrap().len(), 2);
}

/// Meta failing mid-listing changes nothing: the pass fails with Meta's error.
#[tokio::test]
async fn a_listing_meta_cannot_finish_deletes_nothing() {
    let app = spawn_app().await;
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Safe").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{PN}/groups"))))
        .and(wiremock::matchers::query_param("after", "PAGE2"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(meta_error(131059, "Invalid cursor")),
        )
        .with_priority(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(listing(&[], Some("PAGE2")))
        .with_priority(2)
        .mount(&app.meta)
        .await;
    let admin = app.token("platform", &["admin"]);
    let res = app
        .post_json(
            &format!("/v1/admin/phone-numbers/{PN}/reconcile"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(problem(res).await["upstream"]["code"], 131059);
    let listed: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &sales)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["groups"][0]["id"], g.as_str());
}

/// The periodic job reconciles on its own every `graph.reconcile_interval`.
#[tokio::test]
async fn reconciliation_runs_every_interval() {
    let app = spawn_app_tuned(None, "", "reconcile_interval = \"1s\"", "").await;
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Gone soon").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(listing(&[], None))
        .mount(&app.meta)
        .await;
    let deleted = eventually(
        std::time::Duration::from_secs(10),
        "the periodic reconciliation",
        async || {
            let page: Value = app
                .get("/v1/events?limit=100", &sales)
                .await
                .json()
                .await
                .ok()?;
            page["events"]
                .as_array()?
                .iter()
                .find(|e| e["type"] == "group.deleted")
                .cloned()
        },
    )
    .await;
    assert_eq!(deleted["group_id"], g.as_str());
    assert_eq!(deleted["data"]["reason"], "reconciled");
}

/// One replica at a time: the lease is taken by one holder until it expires.
#[tokio::test]
async fn the_reconciliation_lease_has_one_holder_at_a_time() {
    use wa_groups_gateway::storage::ReconcileStore;
    let app = spawn_app().await;
    let storage = wa_groups_gateway::storage::sql::SqlStorage::connect(
        secrecy::ExposeSecret::expose_secret(&app.settings.storage.url),
        2,
    )
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let name = format!("test-{}", uuid());
    assert!(
        storage
            .take_lease(&name, "a", now, now + 1000)
            .await
            .unwrap()
    );
    assert!(
        !storage
            .take_lease(&name, "b", now + 10, now + 1010)
            .await
            .unwrap()
    );
    assert!(
        storage
            .take_lease(&name, "a", now + 20, now + 1020)
            .await
            .unwrap(),
        "its holder renews it"
    );
    assert!(
        !storage
            .take_lease(&name, "b", now + 1019, now + 2000)
            .await
            .unwrap()
    );
    assert!(
        storage
            .take_lease(&name, "b", now + 1020, now + 2020)
            .await
            .unwrap(),
        "expired, it is free"
    );
    // Racing takers: exactly one wins.
    let takers = (0..8).map(|i| {
        let storage = &storage;
        let name = name.clone();
        async move {
            storage
                .take_lease(&name, &format!("r{i}"), now + 3000, now + 4000)
                .await
                .unwrap()
        }
    });
    let won = futures_util::future::join_all(takers)
        .await
        .into_iter()
        .filter(|w| *w)
        .count();
    assert_eq!(won, 1);
}

/// Two replicas, each running the periodic reconciliation every second: the lease lets one at
/// a time do it, so Meta is listed about once a second, not twice.
#[tokio::test]
async fn one_replica_at_a_time_runs_the_periodic_reconciliation() {
    let meta = wiremock::MockServer::builder().start().await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{RACED}/groups"))))
        .respond_with(listing(&[], None))
        .mount(&meta)
        .await;
    Mock::given(method("GET"))
        .respond_with(listing(&[], None))
        .with_priority(10)
        .mount(&meta)
        .await;
    let pair = Pair::tuned(&meta, RACED, "reconcile_interval = \"1s\"", "").await;
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let listings = meta
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == graph(&format!("{RACED}/groups")))
        .count();
    assert!(
        (2..=5).contains(&listings),
        "{listings} listings in 4.5 s by two replicas"
    );
    drop(pair);
}
