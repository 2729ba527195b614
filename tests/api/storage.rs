//! The storage layer on both backends: each scenario runs on SQLite and on PostgreSQL, and
//! what only PostgreSQL's concurrent writers can do (several transactions at once) is shown
//! on PostgreSQL.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wa_groups_gateway::domain::events::{EventType, NewWebhookEvent, TeamEvent};
use wa_groups_gateway::domain::{FeedPosition, GroupId, PhoneNumberId};
use wa_groups_gateway::storage::sql::{Dialect, SqlStorage};
use wa_groups_gateway::storage::{
    Backend, Claim, FeedPage, GroupStore, InboxOutcome, KeyClaim, NewOwner, NewTeamEvent,
    PendingCreation, Storage,
};

use crate::helpers::{PN, problem, spawn_app, uuid};
use crate::pg::TestDatabase;

/// A fresh storage of each backend (the tempdir and database live as long as the storage).
async fn backends() -> Vec<(&'static str, Storage, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Storage::connect(&format!("sqlite://{}/s.db", dir.path().display()), 1)
        .await
        .expect("sqlite");
    let db = TestDatabase::create().await;
    let postgres = Storage::connect(&db.url, 5).await.expect("postgres");
    vec![
        ("sqlite", sqlite, Box::new(dir)),
        ("postgres", postgres, Box::new(db)),
    ]
}

fn event(key: &str) -> NewWebhookEvent {
    NewWebhookEvent {
        event_key: key.to_owned(),
        field: "group_status_update".into(),
        event_type: "group_suspend".into(),
        phone_number_id: Some("1".into()),
        group_id: Some("G".into()),
        meta_request_id: None,
        occurred_at: None,
        payload: json!({}),
    }
}

fn team_event(id: &str) -> TeamEvent {
    TeamEvent {
        id: id.to_owned(),
        event_type: EventType::Suspended,
        occurred_at: "2026-12-01T00:00:00Z".into(),
        phone_number_id: "1".into(),
        group_id: Some("G".into()),
        request_id: None,
        data: json!({}),
    }
}

/// Stores one Meta event and its team event for `sales` in a transaction left open.
async fn open_transaction_with_event(
    storage: &Storage,
    n: &str,
) -> Box<dyn wa_groups_gateway::storage::RegistryTx> {
    let InboxOutcome::Stored(inbox) = storage
        .inbox
        .store_post(&uuid(), n.as_bytes())
        .await
        .expect("post")
    else {
        panic!("a new POST");
    };
    let mut tx = storage.begin().await.expect("begin");
    let stored = tx
        .insert_webhook_event(inbox, &event(&format!("k{n}")))
        .await
        .expect("event")
        .expect("new");
    let team_event = team_event(&format!("evt_{n}"));
    tx.insert_team_event(&NewTeamEvent {
        source: stored,
        team: Some("sales"),
        event: &team_event,
    })
    .await
    .expect("team event");
    tx
}

async fn feed_ids(storage: &Storage, after: FeedPosition) -> (Vec<String>, Option<FeedPosition>) {
    let page = storage
        .events
        .list("sales", &["1".to_owned()], FeedPage { after, limit: 100 })
        .await
        .expect("feed");
    let last = page.events.last().map(|e| e.id.clone());
    let position = match &last {
        Some(id) => storage.events.position_of("sales", id).await.expect("pos"),
        None => None,
    };
    (page.events.into_iter().map(|e| e.id).collect(), position)
}

#[tokio::test]
async fn the_same_post_and_the_same_event_are_stored_once_on_both_backends() {
    for (name, storage, _keep) in backends().await {
        assert!(matches!(
            storage.inbox.store_post("a", b"{}").await.unwrap(),
            InboxOutcome::Stored(_)
        ));
        assert_eq!(
            storage.inbox.store_post("a", b"{}").await.unwrap(),
            InboxOutcome::Duplicate,
            "{name}"
        );
        let InboxOutcome::Stored(second) = storage.inbox.store_post("b", b"{ }").await.unwrap()
        else {
            panic!("{name}: another body is new");
        };
        let mut tx = storage.begin().await.unwrap();
        assert!(
            tx.insert_webhook_event(second, &event("k1"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            tx.insert_webhook_event(second, &event("k1"))
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        tx.commit().await.unwrap();
    }
}

/// The ingress writes concurrent POSTs, and the processor their events, a batch per
/// statement: each is answered for itself, and a repeat inside the batch is a duplicate.
#[tokio::test]
async fn batches_of_posts_and_events_answer_each_one_on_both_backends() {
    for (name, storage, _keep) in backends().await {
        let first = storage.inbox.store_post("b", b"[]").await.unwrap();
        let outcomes = storage
            .inbox
            .store_posts(&[("a", b"{}"), ("b", b"[]"), ("c", b"1"), ("a", b"{}")])
            .await
            .unwrap();
        let [
            InboxOutcome::Stored(a),
            InboxOutcome::Duplicate,
            InboxOutcome::Stored(c),
            InboxOutcome::Duplicate,
        ] = outcomes[..]
        else {
            panic!("{name}: {outcomes:?} after {first:?}");
        };
        assert_ne!(a, c, "{name}");
        let mut tx = storage.begin().await.unwrap();
        let (k1, k2) = (event("k1"), event("k2"));
        assert!(tx.insert_webhook_event(a, &k1).await.unwrap().is_some());
        let ids = tx
            .insert_webhook_events(&[(a, &k2), (c, &k1), (c, &k2), (c, &event("k3"))])
            .await
            .unwrap();
        assert!(
            matches!(ids[..], [Some(_), None, None, Some(_)]),
            "{name}: {ids:?}"
        );
        tx.commit().await.unwrap();
    }
}

/// Processing commits without waiting for the disk; nothing else may. However a derived unit
/// of work ends, SQLite's writer waits for the disk again afterwards.
#[tokio::test]
async fn only_processing_commits_skip_waiting_for_the_disk_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/s.db", dir.path().display());
    let storage = SqlStorage::connect(&url, 1).await.expect("sqlite");
    let full = 2;
    let synchronous = || async {
        sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(storage.writer())
            .await
            .expect("pragma")
    };
    assert_eq!(synchronous().await, full, "before");
    let committed = storage.begin_derived().await.expect("begin");
    committed.commit().await.expect("commit");
    assert_eq!(synchronous().await, full, "after a commit");
    let abandoned = storage.begin_derived().await.expect("begin");
    drop(abandoned);
    assert_eq!(synchronous().await, full, "after a rollback");
    let ordinary = storage.begin().await.expect("begin");
    ordinary.commit().await.expect("commit");
    assert_eq!(synchronous().await, full, "after an ordinary commit");
}

#[tokio::test]
async fn adopting_and_moving_a_group_on_both_backends() {
    for (name, storage, _keep) in backends().await {
        let g = GroupId::parse("Gadopt").unwrap();
        let pn = PhoneNumberId::parse("1").unwrap();
        let owner = |team, subject| NewOwner {
            group_id: &g,
            phone_number_id: &pn,
            team,
            subject,
        };
        assert_eq!(
            storage
                .groups
                .set_owner(&owner("sales", Some("Found")))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            storage
                .groups
                .set_owner(&owner("support", None))
                .await
                .unwrap()
                .as_deref(),
            Some("sales"),
            "{name}"
        );
        let record = storage.groups.group(&g).await.unwrap().unwrap();
        assert_eq!(record.owner_team.as_deref(), Some("support"), "{name}");
        assert_eq!(record.subject.as_deref(), Some("Found"), "{name}");
        let owners = storage
            .groups
            .owners(&["Gadopt".into(), "Gother".into()])
            .await
            .unwrap();
        assert_eq!(owners.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn an_idempotency_key_is_claimed_once_on_both_backends() {
    for (name, storage, _keep) in backends().await {
        let claim = |fingerprint| KeyClaim {
            team: "sales",
            key: "k",
            fingerprint,
            expired_before: "2000-01-01T00:00:00.000Z",
            abandoned_before: "2000-01-01T00:00:00.000Z",
        };
        let first = storage.idempotency.claim(&claim("f1")).await.unwrap();
        assert!(matches!(first, Claim::Claimed), "{name}");
        match storage.idempotency.claim(&claim("f1")).await.unwrap() {
            Claim::Held {
                fingerprint,
                answer: None,
            } => assert_eq!(fingerprint, "f1", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_feed_reads_in_commit_order_on_both_backends() {
    for (name, storage, _keep) in backends().await {
        for n in ["1", "2"] {
            open_transaction_with_event(&storage, n)
                .await
                .commit()
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (ids, position) = loop {
            let read = feed_ids(&storage, FeedPosition::default()).await;
            if read.0.len() == 2 || std::time::Instant::now() > deadline {
                break read;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(ids, ["evt_1", "evt_2"], "{name}");
        let (after, _) = feed_ids(&storage, position.unwrap()).await;
        assert!(after.is_empty(), "{name}: {after:?}");
    }
}

#[tokio::test]
async fn a_reader_never_passes_an_event_whose_transaction_is_still_running() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(&db.url, 5).await.expect("postgres");
    // The first writer takes its seq and keeps its transaction open...
    let slow = open_transaction_with_event(&storage, "slow").await;
    // ...while a second writer commits a later seq.
    open_transaction_with_event(&storage, "fast")
        .await
        .commit()
        .await
        .unwrap();
    // A reader sees nothing yet: showing the later event would move its cursor past the
    // earlier one, which it would then never read.
    let (ids, position) = feed_ids(&storage, FeedPosition::default()).await;
    assert!(ids.is_empty(), "{ids:?}");
    assert!(position.is_none());
    slow.commit().await.unwrap();
    // Transactions are counted across the whole server: another test's open transaction may
    // hold back part of the feed a moment longer (in order: an earlier event may show first).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ids = loop {
        let (ids, _) = feed_ids(&storage, FeedPosition::default()).await;
        if ids.len() == 2 || std::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(ids, ["evt_slow", "evt_fast"]);
}

/// The ids of the stored POSTs `tx` claims, at most `limit`.
async fn claimed_ids(tx: &mut dyn wa_groups_gateway::storage::RegistryTx, limit: i64) -> Vec<i64> {
    let claimed = tx.claim_posts(limit).await.unwrap();
    claimed.into_iter().map(|(id, _)| id).collect()
}

#[tokio::test]
async fn replicas_processing_the_inbox_never_take_the_same_post() {
    let db = TestDatabase::create().await;
    let storage = Storage::connect(&db.url, 5).await.expect("postgres");
    for n in 0..4 {
        storage
            .inbox
            .store_post(&format!("h{n}"), format!("{n}").as_bytes())
            .await
            .unwrap();
    }
    let mut first = storage.begin().await.unwrap();
    let taken = claimed_ids(first.as_mut(), 2).await;
    let mut second = storage.begin().await.unwrap();
    let others = claimed_ids(second.as_mut(), 10).await;
    assert_eq!(taken.len(), 2);
    assert_eq!(others.len(), 2);
    assert!(
        taken.iter().all(|id| !others.contains(id)),
        "{taken:?} {others:?}"
    );
    // A claim ends with its transaction: rolled back (a replica that died), the POSTs are
    // free again.
    // (A dropped transaction is rolled back as its connection goes back to the pool.)
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut third = storage.begin().await.unwrap();
        let freed = claimed_ids(third.as_mut(), 10).await;
        if freed.len() == 2 {
            assert_eq!(freed, taken);
            break;
        }
        assert!(freed.is_empty(), "{freed:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "the claims never returned"
        );
        drop(third);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(second);
}

// ---- rows this build does not expect: errors, never panics or guesses ---------------------

/// A fresh storage of each backend, with its pools, to write what the gateway never would.
async fn backends_with_sql() -> Vec<(&'static str, Storage, SqlStorage, Box<dyn std::any::Any>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite://{}/s.db", dir.path().display());
    let db = TestDatabase::create().await;
    let mut opened = Vec::new();
    for (name, url, keep) in [
        (
            "sqlite",
            sqlite_url,
            Box::new(dir) as Box<dyn std::any::Any>,
        ),
        ("postgres", db.url.clone(), Box::new(db)),
    ] {
        let storage = Storage::connect(&url, 2).await.expect(name);
        let sql = SqlStorage::connect(&url, 2).await.expect(name);
        opened.push((name, storage, sql, keep));
    }
    opened
}

async fn execute(sql: &SqlStorage, statement: &str) {
    sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(sql.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn creation(request_id: &str) -> PendingCreation {
    PendingCreation {
        request_id: request_id.to_owned(),
        team: "sales".into(),
        phone_number_id: "1".into(),
        subject: format!("Subject of {request_id}"),
    }
}

/// A status this build never writes used to read as `pending` (a creation) or be taken for
/// a state it is not (a delivery, a group, an endpoint): each is now an error naming it.
#[tokio::test]
async fn stored_statuses_this_build_does_not_know_are_errors_not_guesses_on_both_backends() {
    for (name, storage, sql, _keep) in backends_with_sql().await {
        assert!(
            storage
                .groups
                .insert_creation(&creation("req_weird"))
                .await
                .unwrap()
        );
        execute(
            &sql,
            "UPDATE create_requests SET status = 'weird' WHERE request_id = 'req_weird'",
        )
        .await;
        let read = storage.groups.creation("req_weird").await;
        let e = read.expect_err(&format!(
            "{name}: an unknown creation status is not pending"
        ));
        assert!(e.to_string().contains("\"weird\""), "{name}: {e}");

        let g = GroupId::parse("Gweird").unwrap();
        let pn = PhoneNumberId::parse("1").unwrap();
        storage
            .groups
            .set_owner(&NewOwner {
                group_id: &g,
                phone_number_id: &pn,
                team: "sales",
                subject: None,
            })
            .await
            .unwrap();
        execute(
            &sql,
            "UPDATE groups SET status = 'archived' WHERE group_id = 'Gweird'",
        )
        .await;
        let e = storage.groups.group(&g).await.expect_err(name);
        assert!(e.to_string().contains("\"archived\""), "{name}: {e}");

        storage
            .endpoints
            .sync_config_endpoints(&[("sales".into(), "https://example.com/hook".into())])
            .await
            .unwrap();
        execute(&sql, "UPDATE webhook_endpoints SET disabled = 7").await;
        let e = storage
            .endpoints
            .list_endpoints(None)
            .await
            .expect_err(name);
        assert!(e.to_string().contains("disabled"), "{name}: {e}");

        execute(
            &sql,
            "INSERT INTO webhook_attempts (team, endpoint_id, event_id, attempt, outcome,
               duration_ms, at, at_ms) VALUES ('sales', 'config', 'evt_w', 1, 'bounced', 1, 'x', 1)",
        )
        .await;
        let filter = wa_groups_gateway::storage::AttemptFilter {
            outcome: None,
            event_id: None,
            before: None,
            limit: 10,
        };
        let e = storage
            .endpoints
            .list_attempts("sales", "config", &filter)
            .await
            .expect_err(name);
        assert!(e.to_string().contains("\"bounced\""), "{name}: {e}");
    }
}

/// A value of another type than the column's, or a NULL where the gateway always writes
/// one (a schema changed under the gateway), is an error naming the column, not a panic.
/// SQLite stores any type in any column; PostgreSQL needs the column changed first.
#[tokio::test]
async fn a_value_of_another_type_or_a_null_is_an_error_not_a_panic_on_both_backends() {
    for (name, storage, sql, _keep) in backends_with_sql().await {
        let g = GroupId::parse("Gtyped").unwrap();
        let pn = PhoneNumberId::parse("1").unwrap();
        storage
            .groups
            .set_owner(&NewOwner {
                group_id: &g,
                phone_number_id: &pn,
                team: "sales",
                subject: None,
            })
            .await
            .unwrap();
        assert!(
            storage
                .groups
                .insert_creation(&creation("req_typed"))
                .await
                .unwrap()
        );
        if sql.dialect() == Dialect::Sqlite {
            // Text in an INTEGER column, bytes in a TEXT one: SQLite keeps both as given.
            execute(
                &sql,
                "UPDATE groups SET suspended = 'yes' WHERE group_id = 'Gtyped'",
            )
            .await;
            execute(
                &sql,
                "UPDATE create_requests SET subject = X'00ff' WHERE request_id = 'req_typed'",
            )
            .await;
        } else {
            execute(
                &sql,
                "ALTER TABLE groups ALTER COLUMN suspended DROP NOT NULL",
            )
            .await;
            execute(
                &sql,
                "UPDATE groups SET suspended = NULL WHERE group_id = 'Gtyped'",
            )
            .await;
            execute(
                &sql,
                "ALTER TABLE create_requests ALTER COLUMN subject TYPE BYTEA USING subject::bytea",
            )
            .await;
        }
        let e = storage.groups.group(&g).await.expect_err(name);
        assert!(e.to_string().contains("suspended"), "{name}: {e}");
        let e = storage.groups.creation("req_typed").await.expect_err(name);
        assert!(e.to_string().contains("subject"), "{name}: {e}");
        // What the registry reads without those columns still reads.
        let owners = storage.groups.owners(&["Gtyped".into()]).await.unwrap();
        assert_eq!(
            owners.get("Gtyped").map(String::as_str),
            Some("sales"),
            "{name}"
        );
    }
}

/// The delivery worker reads a batch: one delivery whose event cannot be read used to
/// panic the worker (every delivery stopped); now it is given up and the others are sent.
#[tokio::test]
async fn a_claimed_delivery_whose_event_cannot_be_read_is_given_up_alone_on_both_backends() {
    for (name, storage, sql, _keep) in backends_with_sql().await {
        storage
            .endpoints
            .sync_config_endpoints(&[("sales".into(), "https://example.com/hook".into())])
            .await
            .unwrap();
        for n in ["bad", "good"] {
            open_transaction_with_event(&storage, n)
                .await
                .commit()
                .await
                .unwrap();
        }
        if sql.dialect() == Dialect::Sqlite {
            execute(
                &sql,
                "UPDATE team_events SET occurred_at = X'00' WHERE id = 'evt_bad'",
            )
            .await;
        } else {
            execute(
                &sql,
                "ALTER TABLE team_events ALTER COLUMN occurred_at DROP NOT NULL",
            )
            .await;
            execute(
                &sql,
                "UPDATE team_events SET occurred_at = NULL WHERE id = 'evt_bad'",
            )
            .await;
        }
        let now_ms = wa_groups_gateway::clock::now_ms() + 60_000;
        let due = storage
            .endpoints
            .due_deliveries("sales", "config", now_ms, 10)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids: Vec<&str> = due.iter().map(|d| d.event.id.as_str()).collect();
        assert_eq!(ids, ["evt_good"], "{name}");
        assert_eq!(due[0].attempt, 1, "{name}");
        let (status, error): (String, Option<String>) = sqlx::query_as(
            "SELECT d.status, d.last_error FROM webhook_deliveries d
             JOIN team_events te ON te.seq = d.event_seq WHERE te.id = 'evt_bad'",
        )
        .fetch_one(sql.pool())
        .await
        .unwrap();
        assert_eq!(status, "failed", "{name}");
        assert_eq!(error.as_deref(), Some("the event cannot be read"), "{name}");
        // Given up once: the next read does not meet it again.
        let again = storage
            .endpoints
            .due_deliveries("sales", "config", now_ms, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "{name}");
    }
}

/// Over HTTP: a creation in a state this build does not know answers 500 (problem+json,
/// the value kept for the logs), not `pending`; the gateway goes on answering.
#[tokio::test]
async fn storage_surprise_a_creation_in_an_unknown_state_answers_500_and_the_gateway_serves_on() {
    let app = spawn_app().await;
    let sql = SqlStorage::connect(app.settings.storage.url.expose_secret(), 1)
        .await
        .expect("the app's database");
    for id in ["req_odd", "req_fine"] {
        let mut pending = creation(id);
        pending.phone_number_id = PN.to_owned();
        assert!(sql.insert_creation(&pending).await.unwrap());
    }
    execute(
        &sql,
        "UPDATE create_requests SET status = 'weird' WHERE request_id = 'req_odd'",
    )
    .await;
    let token = app.sales();

    let res = app.get("/v1/group-requests/req_odd", &token).await;
    assert_eq!(res.status(), 500);
    let problem = problem(res).await;
    assert_eq!(problem["status"], 500);
    assert!(
        !problem.to_string().contains("weird"),
        "what storage found stays in the logs: {problem}"
    );

    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let res = app.get("/v1/group-requests/req_fine", &token).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "pending");
}

/// Over HTTP: a group row of another type (text in an integer column on SQLite, a NULL on
/// PostgreSQL) answers 500 where a panic used to drop the connection; the gateway goes on
/// answering, from the same rows where it does not need the broken column.
#[tokio::test]
async fn storage_surprise_a_group_row_of_another_type_answers_500_and_the_gateway_serves_on() {
    let app = spawn_app().await;
    let sql = SqlStorage::connect(app.settings.storage.url.expose_secret(), 1)
        .await
        .expect("the app's database");
    let pn = PhoneNumberId::parse(PN).unwrap();
    let g = GroupId::parse("Gbroken").unwrap();
    sql.set_owner(&NewOwner {
        group_id: &g,
        phone_number_id: &pn,
        team: "sales",
        subject: Some("Broken"),
    })
    .await
    .unwrap();
    if sql.dialect() == Dialect::Sqlite {
        execute(
            &sql,
            "UPDATE groups SET suspended = 'yes' WHERE group_id = 'Gbroken'",
        )
        .await;
    } else {
        execute(
            &sql,
            "ALTER TABLE groups ALTER COLUMN suspended DROP NOT NULL",
        )
        .await;
        execute(
            &sql,
            "UPDATE groups SET suspended = NULL WHERE group_id = 'Gbroken'",
        )
        .await;
    }
    let token = app.sales();

    let res = app.get("/v1/groups/Gbroken", &token).await;
    assert_eq!(res.status(), 500);
    assert_eq!(problem(res).await["status"], 500);

    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let list: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["groups"][0]["id"], "Gbroken");
}
