//! Several real gateway processes on one PostgreSQL database (DESIGN §7): what one replica
//! learns, all know. Each test has a database of its own (`pg::TestDatabase`) and starts the
//! built binary several times against it, with wiremock as Meta.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::sign;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fleet::{Gateway, burst, join_post, joiner, log_tail, meta_answers_creation, start};
use crate::helpers::{API_VERSION, APP_SECRET, PN, jti_of, test_config, uuid};
use crate::pg::TestDatabase;
use crate::receiver::Receiver;

/// A fleet's shared setup: its config file, a token of `sales` valid on every replica, and
/// an HTTP client.
struct Fleet {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    token: String,
    admin: String,
    http: reqwest::Client,
    db: TestDatabase,
}

impl Fleet {
    async fn new(meta: &MockServer, extra: &str) -> Fleet {
        let db = TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = test_config(
            &meta.uri(),
            dir.path(),
            &format!("[telemetry]\nlog_level = \"warn\"\n{extra}"),
        );
        let config = dir.path().join("fleet.toml");
        std::fs::write(&config, &toml).expect("config file");
        let settings = Settings::from_toml_overrides(&toml).expect("valid configuration");
        let issuer = TokenIssuer::new(&settings.auth, None).expect("signing key");
        let token = issuer
            .issue(
                "sales",
                &[Scope::GroupsRead, Scope::GroupsWrite],
                None,
                3600,
            )
            .expect("token")
            .token;
        let admin = issuer
            .issue("platform", &[Scope::Admin], None, 3600)
            .expect("token")
            .token;
        Fleet {
            dir,
            config,
            token,
            admin,
            http: reqwest::Client::builder()
                // Longer than any `wait_seconds` these tests send (20): an answer that waited
                // the whole time shows as the 202 it is, not as a transport error.
                .timeout(Duration::from_secs(30))
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
            db,
        }
    }

    /// `count` replicas started at the same moment, on the same (possibly empty) database.
    async fn replicas(&self, count: u32) -> Vec<Gateway> {
        let starts = (1..=count).map(|run| self.replica(run));
        futures_util::future::join_all(starts).await
    }

    async fn replica(&self, run: u32) -> Gateway {
        start(self.dir.path(), &self.config, &self.db.url, run).await
    }

    /// The ids of the team's events in the feed (its first 1,000), sorted.
    async fn event_ids(&self, gateway: &Gateway) -> Vec<String> {
        let page: Value = self
            .http
            .get(format!("{}/v1/events?limit=1000", gateway.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("json");
        let mut ids: Vec<String> = page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        ids.sort_unstable();
        ids
    }

    async fn post_webhook(&self, gateway: &Gateway, body: &Value) -> reqwest::StatusCode {
        let raw = serde_json::to_vec(body).expect("json");
        self.http
            .post(format!("{}/webhooks/whatsapp", gateway.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &raw))
            .body(raw)
            .send()
            .await
            .expect("webhook POST")
            .status()
    }

    /// Creates a group through `gateway` (Meta answers `meta_request`), without waiting.
    async fn request_creation(&self, gateway: &Gateway, subject: &str) -> Value {
        self.http
            .post(format!("{}/v1/phone-numbers/{PN}/groups", gateway.base))
            .bearer_auth(&self.token)
            .json(&json!({"subject": subject}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json")
    }
}

fn creation_webhook(meta_request: &str, group_id: &str, subject: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [
        {"field": "group_lifecycle_update", "value": {
            "metadata": {"phone_number_id": PN},
            "groups": [{"timestamp": "1755548877", "group_id": group_id, "type": "group_create",
                "request_id": meta_request, "subject": subject,
                "invite_link": "https://chat.whatsapp.com/F"}]}}]}]})
}

async fn meta_accepts_creations(meta: &MockServer, meta_request: &str, delay: Duration) {
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(
            ResponseTemplate::new(200).set_delay(delay).set_body_json(
                json!({"messaging_product": "whatsapp", "request_id": meta_request}),
            ),
        )
        .mount(meta)
        .await;
}

/// Follows `GET /v1/events` from the start, a page at a time, as a consumer does: every
/// event in the order read, until `stop` says so and the feed has nothing more.
async fn follow_feed(
    http: reqwest::Client,
    base: String,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Value> {
    let mut read = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/events?limit=50");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: Value = match http.get(&url).bearer_auth(&token).send().await {
            Ok(res) => res.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let done = *stop.borrow();
        read.extend(events.iter().cloned());
        match page["paging"]["after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                // The cursor of the last event read is where the next look starts.
                if let Some(last) = events.last() {
                    after = last["id"].as_str().map(str::to_owned);
                }
                if done && events.is_empty() {
                    return read;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn three_replicas_share_the_inbox_the_feed_and_the_deliveries_even_when_one_dies() {
    const POSTS: usize = 600;
    const GROUPS: usize = 3;
    let meta = MockServer::builder().start().await;
    let receiver = Receiver::start().await;
    let fleet = Fleet::new(
        &meta,
        &format!(
            "[delivery]\nfirst_retry_ms = 100\nbackoff_factor = 2.0\nmax_retry_delay_ms = 1000\n\
             request_timeout_ms = 1000\npoll_interval_ms = 100\n{}",
            receiver.team_toml("sales", "ok")
        ),
    )
    .await;
    // Started together on an empty database: they take turns at the migrations.
    let mut replicas = fleet.replicas(3).await;

    // The team's groups: created on the first replica, completed by webhooks to the second.
    let mut groups = Vec::new();
    for n in 0..GROUPS {
        let meta_request = format!("FLEET-{n}-{}", uuid());
        let guard = meta_answers_creation(&meta, &meta_request).await;
        fleet
            .request_creation(&replicas[0], &format!("Fleet {n}"))
            .await;
        drop(guard);
        let group_id = format!("GFLEET{n}{}", uuid());
        let creation = creation_webhook(&meta_request, &group_id, &format!("Fleet {n}"));
        assert_eq!(fleet.post_webhook(&replicas[1], &creation).await, 200);
        groups.push(group_id);
    }

    // A consumer follows the feed on the third replica the whole time.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(follow_feed(
        fleet.http.clone(),
        replicas[2].base.clone(),
        fleet.token.clone(),
        stopped,
    ));

    // The burst, spread over the replicas; the second is killed a third of the way in and
    // never comes back.
    let bodies: Vec<Vec<u8>> = (0..POSTS).map(|i| join_post(i, &groups)).collect();
    let mut acknowledged = BTreeSet::new();
    for (round, chunk) in (0..POSTS).collect::<Vec<_>>().chunks(POSTS / 6).enumerate() {
        if round == 2 {
            replicas[1].child.kill().expect("SIGKILL");
            let _ = replicas[1].child.wait();
        }
        let mut by_replica: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in chunk {
            by_replica.entry(i % 3).or_default().push(i);
        }
        let sends = by_replica
            .iter()
            .map(|(r, which)| burst(&fleet.http, &replicas[*r].base, &bodies, which, |_, _| {}));
        for answers in futures_util::future::join_all(sends).await {
            acknowledged.extend(answers.into_iter().filter(|a| a.1).map(|a| a.0));
        }
    }
    assert!(
        acknowledged.len() >= POSTS * 2 / 3 && acknowledged.len() < POSTS,
        "{} acknowledged: the kill did not land mid-burst",
        acknowledged.len()
    );

    // Every acknowledged POST becomes one event, which the consumer reads exactly once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeMap::new();
    while seen.len() < acknowledged.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged POSTs are in the feed\n{}",
            seen.len(),
            acknowledged.len(),
            log_tail(&replicas[0].log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = crate::fleet::feed(&fleet.http, &replicas[0].base, &fleet.token).await;
    }
    stop.send(true).expect("reader alive");
    let read = reader.await.expect("reader");
    let mut read_ids = BTreeSet::new();
    for event in &read {
        let id = event["id"].as_str().expect("id").to_owned();
        assert!(read_ids.insert(id.clone()), "the consumer read {id} twice");
    }
    let joins: BTreeSet<String> = read
        .iter()
        .filter(|e| e["type"] == "group.participants_added")
        .map(|e| {
            e["data"]["added_participants"][0]["wa_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for i in &acknowledged {
        assert!(
            joins.contains(&joiner(*i)),
            "the consumer following the cursor never saw POST {i}"
        );
        assert_eq!(seen[&joiner(*i)].len(), 1, "POST {i} became several events");
    }

    // Each event is delivered to the team's webhook, by one replica: at most a few sent twice
    // (those the killed replica had in flight), never once per replica.
    let wanted: BTreeSet<String> = read
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    receiver
        .wait_until("every event delivered", Duration::from_secs(60), |hits| {
            let delivered: BTreeSet<&str> = hits
                .iter()
                .filter(|h| h.answered == 200)
                .map(|h| h.webhook_id.as_str())
                .collect();
            wanted.iter().all(|id| delivered.contains(id.as_str()))
        })
        .await;
    let hits = receiver.hits_for("sales");
    let mut per_event: BTreeMap<&str, usize> = BTreeMap::new();
    for hit in hits.iter().filter(|h| h.answered == 200) {
        *per_event.entry(hit.webhook_id.as_str()).or_default() += 1;
    }
    let repeated = per_event.values().filter(|n| **n > 1).count();
    assert!(
        repeated <= 16,
        "{repeated} events were delivered more than once"
    );
    assert!(per_event.values().all(|n| *n <= 2), "{per_event:?}");
}

#[tokio::test]
async fn a_creation_started_on_one_replica_answers_when_the_webhook_lands_on_another() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::new(&meta, "").await;
    let replicas = fleet.replicas(2).await;
    let meta_request = format!("WAIT-{}", uuid());
    meta_accepts_creations(&meta, &meta_request, Duration::ZERO).await;

    let started = Instant::now();
    let waiting = fleet
        .http
        .post(format!(
            "{}/v1/phone-numbers/{PN}/groups?wait_seconds=20",
            replicas[0].base
        ))
        .bearer_auth(&fleet.token)
        .json(&json!({"subject": "Across"}))
        .send();
    let webhook = async {
        // Once Meta was asked, its webhook arrives at the other replica.
        while meta
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let group = format!("GWAIT{}", uuid());
        let body = creation_webhook(&meta_request, &group, "Across");
        assert_eq!(fleet.post_webhook(&replicas[1], &body).await, 200);
        group
    };
    let (answer, group) = tokio::join!(waiting, webhook);
    let answer = answer.expect("create answers");
    assert_eq!(answer.status(), 201);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["status"], "created", "{body}");
    assert_eq!(body["group_id"], group.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}: the waiter was not woken",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_same_new_idempotency_key_at_two_replicas_at_once_reaches_meta_once() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::new(&meta, "").await;
    let replicas = fleet.replicas(2).await;
    // Meta takes its time, so the second request arrives while the first is running.
    meta_accepts_creations(
        &meta,
        &format!("IDEM-{}", uuid()),
        Duration::from_millis(500),
    )
    .await;
    let key = format!("key-{}", uuid());
    let send = |gateway: &Gateway| {
        fleet
            .http
            .post(format!("{}/v1/phone-numbers/{PN}/groups", gateway.base))
            .bearer_auth(&fleet.token)
            .header("Idempotency-Key", &key)
            .json(&json!({"subject": "Once"}))
            .send()
    };
    let (a, b) = tokio::join!(send(&replicas[0]), send(&replicas[1]));
    let (a, b) = (a.expect("answer"), b.expect("answer"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (202, 202));
    let replayed = [&a, &b]
        .iter()
        .filter(|r| r.headers().get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 1, "one answer is the replay of the other");
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["request_id"], b["request_id"]);
    let creations = meta
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(creations, 1, "Meta was asked {creations} times");
}

/// Two teams at two replicas create the same subject on the same number at the same moment:
/// one creation reaches Meta, the other answers 409, round after round (DESIGN §5).
#[tokio::test]
async fn the_same_subject_at_two_replicas_at_once_reaches_meta_once() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::new(&meta, "").await;
    let replicas = fleet.replicas(2).await;
    // Meta takes its time and names each creation, so each round's subject is freed again.
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(|_: &wiremock::Request| {
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(300))
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": uuid()}))
        })
        .mount(&meta)
        .await;
    let settings = Settings::from_toml_overrides(
        &std::fs::read_to_string(&fleet.config).expect("config file"),
    )
    .expect("valid configuration");
    let support = TokenIssuer::new(&settings.auth, None)
        .expect("signing key")
        .issue("support", &[Scope::GroupsWrite], None, 3600)
        .expect("token")
        .token;
    let rounds = 5;
    for round in 0..rounds {
        let subject = format!("Round {round}");
        let send = |gateway: &Gateway, token: &str| {
            fleet
                .http
                .post(format!("{}/v1/phone-numbers/{PN}/groups", gateway.base))
                .bearer_auth(token)
                .json(&json!({ "subject": subject }))
                .send()
        };
        let (a, b) = tokio::join!(
            send(&replicas[0], &fleet.token),
            send(&replicas[1], &support)
        );
        let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 409], "round {round}");
    }
    let creations = meta
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(creations, rounds, "Meta was asked {creations} times");
}

/// Meta's creation webhook and the group's next webhook land on two replicas at once, round
/// after round: whichever replica processes which first, the team gets both events (DESIGN
/// §7: an event is held until the creation naming its owner is known, never left ownerless).
#[tokio::test]
async fn a_groups_events_racing_its_creation_on_another_replica_all_reach_the_team() {
    const ROUNDS: usize = 20;
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::new(&meta, "").await;
    let replicas = fleet.replicas(2).await;
    let mut groups = Vec::new();
    for round in 0..ROUNDS {
        let meta_request = format!("RACE-{round}-{}", uuid());
        let guard = meta_answers_creation(&meta, &meta_request).await;
        let subject = format!("Race {round}");
        let created = fleet.request_creation(&replicas[0], &subject).await;
        assert_eq!(created["status"], "pending", "{created}");
        drop(guard);
        let group = format!("GRACE{round}{}", uuid().replace('-', ""));
        let creation = creation_webhook(&meta_request, &group, &subject);
        let join: Value =
            serde_json::from_slice(&join_post(round, std::slice::from_ref(&group))).expect("json");
        let (a, b) = tokio::join!(
            fleet.post_webhook(&replicas[0], &creation),
            fleet.post_webhook(&replicas[1], &join)
        );
        assert_eq!((a.as_u16(), b.as_u16()), (200, 200));
        groups.push(group);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/events?limit=1000", replicas[1].base);
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let page: Value = fleet
                .http
                .get(&url)
                .bearer_auth(&fleet.token)
                .send()
                .await
                .expect("events")
                .json()
                .await
                .expect("json");
            for event in page["events"].as_array().expect("events") {
                seen.entry(event["group_id"].as_str().unwrap_or_default().to_owned())
                    .or_default()
                    .insert(event["type"].as_str().unwrap_or_default().to_owned());
            }
            match page["paging"]["after"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let missing: Vec<&String> = groups
            .iter()
            .filter(|g| {
                seen.get(*g).is_none_or(|types| {
                    !types.contains("group.created") || !types.contains("group.participants_added")
                })
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {ROUNDS} groups lack an event: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_token_revoked_on_one_replica_is_refused_by_the_others_within_a_second() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::new(&meta, "").await;
    let replicas = fleet.replicas(3).await;
    let jti = jti_of(&fleet.token);
    let list = |gateway: &Gateway| {
        fleet
            .http
            .get(format!("{}/v1/phone-numbers/{PN}/groups", gateway.base))
            .bearer_auth(&fleet.token)
            .send()
    };
    for replica in &replicas {
        assert_eq!(list(replica).await.expect("answer").status(), 200);
    }
    let revoked = fleet
        .http
        .delete(format!("{}/v1/admin/tokens/{jti}", replicas[0].base))
        .bearer_auth(&fleet.admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 204);
    let since = Instant::now();
    for replica in &replicas[1..] {
        loop {
            let status = list(replica).await.expect("answer").status();
            if status == 401 {
                break;
            }
            assert_eq!(status, 200);
            assert!(
                since.elapsed() < Duration::from_secs(1),
                "{} still accepts the revoked token after {:?}",
                replica.base,
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_phone_numbers_rate_limit_holds_across_replicas_through_redis() {
    let meta = MockServer::builder().start().await;
    // A number of this test's own: the bucket in Redis is per number.
    let number = format!(
        "9{}",
        &uuid()
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    );
    let number: String = number.chars().take(15).collect();
    // One request id of Meta's per creation, in turn.
    for _ in 0..4 {
        Mock::given(method("POST"))
            .and(path(format!("/{API_VERSION}/{number}/groups")))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"messaging_product": "whatsapp", "request_id": format!("RL-{}", uuid())}),
            ))
            .up_to_n_times(1)
            .mount(&meta)
            .await;
    }
    let fleet = Fleet::new(
        &meta,
        &format!(
            "[rate_limit]\nstore = \"redis\"\nredis_url = \"{}\"\n\n\
             [phone_numbers.{number}]\naccess_token = \"t\"\nrate_limit = {{ per_second = 1, burst = 2 }}\n\n\
             [teams.sales_rl]\nphone_numbers = [\"{number}\"]\n",
            crate::pg::redis_url()
        ),
    )
    .await;
    let replicas = fleet.replicas(2).await;
    let settings =
        Settings::from_toml_overrides(&std::fs::read_to_string(&fleet.config).expect("config"))
            .expect("valid");
    let token = TokenIssuer::new(&settings.auth, None)
        .expect("key")
        .issue("sales_rl", &[Scope::GroupsWrite], None, 3600)
        .expect("token")
        .token;
    let create = |gateway: &Gateway| {
        fleet
            .http
            .post(format!("{}/v1/phone-numbers/{number}/groups", gateway.base))
            .bearer_auth(&token)
            .json(&json!({"subject": "Limited"}))
            .send()
    };
    // Two calls take the bucket's two tokens, one on each replica; a third on either is
    // refused, although each replica alone saw at most two.
    assert_eq!(create(&replicas[0]).await.unwrap().status(), 202);
    assert_eq!(create(&replicas[1]).await.unwrap().status(), 202);
    let refused = create(&replicas[1]).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    // Refill: a token a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(create(&replicas[0]).await.unwrap().status(), 202);
    let ready: Value = fleet
        .http
        .get(format!("{}/readyz", replicas[0].base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["dependencies"]["redis"], "ok", "{ready}");
}

#[tokio::test]
async fn without_redis_a_replica_keeps_serving_on_its_own_buckets_and_says_so() {
    // Nothing listens on port 1: Redis is unreachable from the start.
    let app = crate::helpers::spawn_app_with(
        "[rate_limit]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1\"\n\n\
         [phone_numbers.333333]\naccess_token = \"t\"\nrate_limit = { per_second = 1, burst = 1 }\n\n\
         [teams.limited]\nphone_numbers = [\"333333\"]\n",
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/333333/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "request_id": format!("NR-{}", uuid())}),
        ))
        .up_to_n_times(1)
        .mount(&app.meta)
        .await;
    let token = app.token("limited", &["groups:write"]);
    let create = || {
        app.http
            .post(app.url("/v1/phone-numbers/333333/groups"))
            .bearer_auth(&token)
            .json(&json!({"subject": "No Redis"}))
            .send()
    };
    // Served, and still limited: by this replica's own bucket.
    assert_eq!(create().await.unwrap().status(), 202);
    assert_eq!(create().await.unwrap().status(), 429);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["dependencies"]["storage"], "ok");
    assert!(
        ready["dependencies"]["redis"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unreachable"),
        "{ready}"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wagw_rate_limit_local_fallbacks_total{limit=\"phone_number\"}")),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_its_database_a_replica_is_not_ready_and_meta_is_asked_to_send_again() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::new(&meta, "").await;
    let replica = fleet.replica(1).await;
    let ready = fleet
        .http
        .get(format!("{}/readyz", replica.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    fleet.db.drop_now().await;
    let ready = fleet
        .http
        .get(format!("{}/readyz", replica.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["dependencies"]["storage"], "unreachable", "{ready}");
    // A webhook POST that cannot be stored is not acknowledged: Meta sends it again later.
    let status = fleet
        .post_webhook(&replica, &creation_webhook("R", "GGONE", "Gone"))
        .await;
    assert_eq!(status, 500);
}

/// Two replicas on one database share every endpoint's deliveries: each event reaches each
/// of the team's endpoints (configuration's and one made through the API on one replica)
/// exactly once, whichever replica processed it. (Order holds per endpoint for events
/// committed before its turn; events two replicas commit at the same moment have no order.)
#[tokio::test]
async fn two_replicas_deliver_each_event_once_per_endpoint() {
    const POSTS: usize = 120;
    let meta = MockServer::builder().start().await;
    let receiver = Receiver::start().await;
    let fleet = Fleet::new(
        &meta,
        &format!(
            "[delivery]\nfirst_retry_ms = 100\nbackoff_factor = 2.0\nmax_retry_delay_ms = 1000\n\
             request_timeout_ms = 1000\npoll_interval_ms = 20\n{}",
            receiver.team_toml("sales", "ok")
        ),
    )
    .await;
    // Endpoint secrets are stored sealed: the replicas share a key (the environment's file
    // of the config profile the fleet runs).
    let profile = fleet.dir.path().join("config");
    std::fs::create_dir_all(&profile).expect("config dir");
    std::fs::write(
        profile.join("crash-test.toml"),
        format!(
            "[storage]\nencryption_key = \"{}\"\n",
            wa_groups_gateway::crypto::EncryptionKey::generate()
        ),
    )
    .expect("profile");
    let replicas = fleet.replicas(2).await;

    // A token with the webhooks scope, issued by the platform team, and an endpoint made on
    // the first replica.
    let issued: Value = fleet
        .http
        .post(format!("{}/v1/admin/tokens", replicas[0].base))
        .bearer_auth(&fleet.admin)
        .json(&json!({"team": "sales", "scopes": ["webhooks"], "ttl_seconds": 3600}))
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("json");
    let hooks = issued["token"].as_str().expect("token").to_owned();
    let created: Value = fleet
        .http
        .post(format!("{}/v1/webhook-endpoints", replicas[0].base))
        .bearer_auth(&hooks)
        .json(&json!({"url": receiver.url("api", "ok")}))
        .send()
        .await
        .expect("create endpoint")
        .json()
        .await
        .expect("json");
    receiver.set_secret("api", created["secret"].as_str().expect("secret"));

    let meta_request = format!("TWO-{}", uuid());
    let guard = meta_answers_creation(&meta, &meta_request).await;
    fleet.request_creation(&replicas[0], "Two replicas").await;
    drop(guard);
    let group_id = format!("GTWO{}", uuid());
    let creation = creation_webhook(&meta_request, &group_id, "Two replicas");
    assert_eq!(fleet.post_webhook(&replicas[1], &creation).await, 200);
    let groups = vec![group_id];
    let bodies: Vec<Vec<u8>> = (0..POSTS).map(|i| join_post(i, &groups)).collect();
    let by_replica: Vec<Vec<usize>> = (0..2)
        .map(|r| (0..POSTS).filter(|i| i % 2 == r).collect())
        .collect();
    let sends = by_replica
        .iter()
        .enumerate()
        .map(|(r, which)| burst(&fleet.http, &replicas[r].base, &bodies, which, |_, _| {}));
    for answers in futures_util::future::join_all(sends).await {
        assert!(answers.iter().all(|a| a.1), "every POST acknowledged");
    }

    let hits = receiver
        .wait_until(
            "every event at both endpoints",
            Duration::from_secs(60),
            |hits| {
                ["sales", "api"].iter().all(|name| {
                    hits.iter()
                        .filter(|h| h.team == *name && h.answered == 200)
                        .count()
                        > POSTS
                })
            },
        )
        .await;
    // Nothing more trickles in: no second delivery of anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits_after = receiver.hits();
    assert_eq!(hits_after.len(), hits.len(), "late duplicates");
    let feed = fleet.event_ids(&replicas[1]).await;
    assert_eq!(feed.len(), POSTS + 1);
    for name in ["sales", "api"] {
        let mut delivered: Vec<&str> = hits_after
            .iter()
            .filter(|h| h.team == name)
            .map(|h| h.webhook_id.as_str())
            .collect();
        assert!(
            hits_after
                .iter()
                .filter(|h| h.team == name)
                .all(|h| h.verified.is_ok() && h.answered == 200),
            "{name}: every delivery verified and accepted"
        );
        assert_eq!(
            delivered.len(),
            POSTS + 1,
            "{name}: each event exactly once"
        );
        delivered.sort_unstable();
        assert_eq!(delivered, feed, "{name}: the feed's events");
    }
}

/// A batch to a slow endpoint takes longer than one delivery lease (30 attempts of 150 ms
/// against a 2 s lease): the replica delivering renews the lease as it goes, so the other
/// replica never takes the endpoint over and sends the same events again.
#[tokio::test]
async fn a_batch_longer_than_the_lease_is_delivered_once() {
    const POSTS: usize = 30;
    let meta = MockServer::builder().start().await;
    let receiver = Receiver::start().await;
    let fleet = Fleet::new(
        &meta,
        &format!(
            "[delivery]\nrequest_timeout_ms = 500\npoll_interval_ms = 20\n{}",
            receiver.team_toml("sales", "lagging")
        ),
    )
    .await;
    let replicas = fleet.replicas(2).await;
    let meta_request = format!("LAG-{}", uuid());
    let guard = meta_answers_creation(&meta, &meta_request).await;
    fleet.request_creation(&replicas[0], "Lagging").await;
    drop(guard);
    let group_id = format!("GLAG{}", uuid());
    let creation = creation_webhook(&meta_request, &group_id, "Lagging");
    assert_eq!(fleet.post_webhook(&replicas[1], &creation).await, 200);
    let groups = vec![group_id];
    for i in 0..POSTS {
        let body: Value = serde_json::from_slice(&join_post(i, &groups)).expect("json");
        assert_eq!(fleet.post_webhook(&replicas[i % 2], &body).await, 200);
    }

    let hits = receiver
        .wait_until("every event delivered", Duration::from_secs(60), |hits| {
            hits.len() > POSTS
        })
        .await;
    // Past the lease of the last batch: a replica that took the endpoint over would have
    // sent again by now.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let hits_after = receiver.hits();
    assert_eq!(hits_after.len(), hits.len(), "late duplicates");
    let mut delivered: Vec<&str> = hits_after.iter().map(|h| h.webhook_id.as_str()).collect();
    delivered.sort_unstable();
    let feed = fleet.event_ids(&replicas[0]).await;
    assert_eq!(delivered, feed, "each of the feed's events exactly once");
}
