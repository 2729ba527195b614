//! "Within a second" through faults (issue 20, DESIGN §7): a replica whose notification
//! connection was cut, a change nobody announced, a revocation committed out of order. Real
//! gateway processes on one PostgreSQL database, with wiremock as Meta.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::sign;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fleet::{Gateway, start};
use crate::helpers::{API_VERSION, APP_SECRET, PN, eventually, jti_of, test_config, uuid};
use crate::pg::TestDatabase;

/// Two replicas on one database, tokens of `sales`, `support` and `platform` (admin).
struct Pair {
    replicas: Vec<Gateway>,
    db: TestDatabase,
    issuer: TokenIssuer,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// `storage_lines` go inside `[storage]` (e.g. `cache_ttl = "1s"`).
    async fn start(meta: &MockServer, storage_lines: &str) -> Pair {
        let db = TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = test_config(
            &meta.uri(),
            dir.path(),
            "[telemetry]\nlog_level = \"warn\"\n",
        )
        .replacen("[storage]\n", &format!("[storage]\n{storage_lines}\n"), 1);
        let config = dir.path().join("fleet.toml");
        std::fs::write(&config, &toml).expect("config file");
        let settings = Settings::from_toml_overrides(&toml).expect("valid configuration");
        let issuer = TokenIssuer::new(&settings.auth, None).expect("signing key");
        let replicas = futures_util::future::join_all(
            (1..=2).map(|run| start(dir.path(), &config, &db.url, run)),
        )
        .await;
        Pair {
            replicas,
            db,
            issuer,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            _dir: dir,
        }
    }

    fn token(&self, team: &str, scopes: &[Scope]) -> String {
        self.issuer
            .issue(team, scopes, None, 3600)
            .expect("token")
            .token
    }

    async fn sql(&self) -> PgConnection {
        PgConnection::connect(&self.db.url)
            .await
            .expect("database connection")
    }

    /// A group of `team` made through replica 0: the creation, then Meta's webhook.
    async fn group_of(&self, meta: &MockServer, token: &str) -> String {
        let meta_request = format!("M-{}", uuid());
        let guard = Mock::given(method("POST"))
            .and(path(format!("/{API_VERSION}/{PN}/groups")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"request_id": meta_request})),
            )
            .mount_as_scoped(meta)
            .await;
        let subject = format!("S {}", uuid());
        let created: Value = self
            .http
            .post(format!(
                "{}/v1/phone-numbers/{PN}/groups",
                self.replicas[0].base
            ))
            .bearer_auth(token)
            .json(&json!({ "subject": subject }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        drop(guard);
        let group = format!("G{}", uuid());
        let hook = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [
            {"field": "group_lifecycle_update", "value": {
                "metadata": {"phone_number_id": PN},
                "groups": [{"timestamp": "1755548877", "group_id": group, "type": "group_create",
                    "request_id": meta_request, "subject": subject,
                    "invite_link": "https://chat.whatsapp.com/F"}]}}]}]});
        let raw = serde_json::to_vec(&hook).expect("json");
        let posted = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.replicas[0].base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &raw))
            .body(raw)
            .send()
            .await
            .expect("webhook");
        assert_eq!(posted.status(), 200);
        let request = created["request_id"].as_str().expect("request_id");
        eventually(
            Duration::from_secs(10),
            "the creation completes",
            async || {
                let body: Value = self
                    .http
                    .get(format!(
                        "{}/v1/group-requests/{request}",
                        self.replicas[0].base
                    ))
                    .bearer_auth(token)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (body["status"] == "created").then_some(())
            },
        )
        .await;
        group
    }

    /// The status `gateway` answers `token` for the group's invite link.
    async fn link_status(&self, gateway: &Gateway, group: &str, token: &str) -> u16 {
        self.http
            .get(format!("{}/v1/groups/{group}/invite-link", gateway.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16()
    }
}

/// Meta answers a group's invite link, and its info (an adoption or a move reads it).
async fn meta_answers_invite_links(meta: &MockServer) {
    Mock::given(method("GET"))
        .and(path_regex(format!("^/{API_VERSION}/G[^/]+/invite_link$")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"invite_link": "https://chat.whatsapp.com/L"})),
        )
        .mount(meta)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!("^/{API_VERSION}/G[^/]+$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"subject": "Moved"})))
        .mount(meta)
        .await;
}

#[tokio::test]
async fn a_change_no_replica_announced_is_seen_once_the_cache_ttl_ran_out() {
    let meta = MockServer::builder().start().await;
    meta_answers_invite_links(&meta).await;
    let pair = Pair::start(&meta, "cache_ttl = \"1s\"").await;
    let sales = pair.token("sales", &[Scope::GroupsRead, Scope::GroupsWrite]);
    let group = pair.group_of(&meta, &sales).await;
    let other = &pair.replicas[1];
    assert_eq!(pair.link_status(other, &group, &sales).await, 200);
    // The owner changes in storage and nobody says so (an operator's UPDATE, a notification
    // lost for good): the replica's memory may answer at most storage.cache_ttl longer.
    let mut sql = pair.sql().await;
    sqlx::query("UPDATE groups SET owner_team = 'support' WHERE group_id = $1")
        .bind(&group)
        .execute(&mut sql)
        .await
        .expect("update");
    eventually(
        Duration::from_secs(3),
        "the old owner is refused",
        async || (pair.link_status(other, &group, &sales).await == 404).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn a_replica_whose_notification_connection_dropped_forgets_what_it_cached() {
    let meta = MockServer::builder().start().await;
    meta_answers_invite_links(&meta).await;
    // The default cache_ttl (60 s) is far longer than this test: only the reconnect can help.
    let pair = Pair::start(&meta, "").await;
    let scopes = [Scope::GroupsRead, Scope::GroupsWrite];
    let tokens = [pair.token("sales", &scopes), pair.token("support", &scopes)];
    let admin = pair.token("platform", &[Scope::Admin]);
    let group = pair.group_of(&meta, &tokens[0]).await;
    let (mover, reader) = (&pair.replicas[0], &pair.replicas[1]);
    let mut sql = pair.sql().await;
    for round in 0..6 {
        let (owner, next) = (round % 2, (round + 1) % 2);
        let next_team = ["sales", "support"][next];
        // The reader has the current owner in memory.
        assert_eq!(pair.link_status(reader, &group, &tokens[owner]).await, 200);
        // Its notification connections are cut while the group moves on the other replica:
        // the move's announcement may go out before the reader listens again.
        let cut = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .execute(&mut sql);
        let moved = pair
            .http
            .put(format!("{}/v1/admin/groups/{group}/owner", mover.base))
            .bearer_auth(&admin)
            .json(&json!({"team": next_team, "phone_number_id": PN}))
            .send();
        let (cut, moved) = tokio::join!(cut, moved);
        cut.expect("terminate listeners");
        assert_eq!(moved.expect("move").status().as_u16(), 200, "round {round}");
        eventually(
            Duration::from_secs(3),
            &format!("round {round}: the reader follows the move"),
            async || {
                let old = pair.link_status(reader, &group, &tokens[owner]).await;
                let new = pair.link_status(reader, &group, &tokens[next]).await;
                (old == 404 && new == 200).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_revocation_committed_after_a_later_one_is_refused_within_a_second() {
    let meta = MockServer::builder().start().await;
    let pair = Pair::start(&meta, "").await;
    let early = pair.token("sales", &[Scope::GroupsRead]);
    let later = pair.token("sales", &[Scope::GroupsRead]);
    let admin = pair.token("platform", &[Scope::Admin]);
    let reader = &pair.replicas[1];
    let list = |token: &str| {
        pair.http
            .get(format!("{}/v1/phone-numbers/{PN}/groups", reader.base))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(list(&early).await.expect("answer").status(), 200);
    // A revocation takes its sequence number, and commits only after a later one did.
    let mut slow = pair.sql().await;
    let mut tx = slow.begin().await.expect("begin");
    sqlx::query("INSERT INTO revoked_tokens (jti, revoked_at, revoked_by) VALUES ($1, $2, 'slow')")
        .bind(jti_of(&early))
        .bind("2026-12-04T00:00:00Z")
        .execute(&mut *tx)
        .await
        .expect("insert");
    let revoked = pair
        .http
        .delete(format!(
            "{}/v1/admin/tokens/{}",
            pair.replicas[0].base,
            jti_of(&later)
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 204);
    eventually(
        Duration::from_secs(2),
        "the later revocation arrives",
        async || (list(&later).await.ok()?.status() == 401).then_some(()),
    )
    .await;
    tx.commit().await.expect("commit");
    eventually(
        Duration::from_secs(1),
        "the revocation committed late arrives",
        async || (list(&early).await.ok()?.status() == 401).then_some(()),
    )
    .await;
}
