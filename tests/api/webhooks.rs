//! Meta's webhook ingress: handshake, signatures, durability, duplicates, leniency.

use secrecy::ExposeSecret;
use std::time::Duration;

use serde_json::{Value, json};
use wa_groups_gateway::domain::meta_webhook::sign;
use wa_groups_gateway::storage::sql::{Dialect, SqlStorage};

use crate::helpers::*;

#[tokio::test]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let app = spawn_app().await;
    let ok = app
        .http
        .get(app.url(&format!(
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = app
        .http
        .get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
}

#[tokio::test]
async fn bad_or_missing_signatures_are_401_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Signed").await;
    let hook = lifecycle_webhook(
        PN,
        vec![json!({"timestamp": "2", "group_id": g, "type": "group_delete"})],
    );
    let raw = serde_json::to_vec(&hook).unwrap();
    let forged = sign(b"not-the-app-secret", &raw);
    assert_eq!(
        app.send_webhook_raw(&raw, Some(&forged)).await.status(),
        401
    );
    assert_eq!(app.send_webhook_raw(&raw, None).await.status(), 401);
    assert_eq!(
        app.send_webhook_raw(&raw, Some("sha256=")).await.status(),
        401
    );
    // A signature over other bytes (re-serialised JSON) does not verify the raw body.
    let reserialised = serde_json::to_vec_pretty(&hook).unwrap();
    let sig_of_other = sign(APP_SECRET.as_bytes(), &reserialised);
    assert_eq!(
        app.send_webhook_raw(&raw, Some(&sig_of_other))
            .await
            .status(),
        401
    );
    app.webhooks_processed().await;
    let list: Value = app
        .get(&format!("/v1/phone-numbers/{PN}/groups"), &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["groups"].as_array().unwrap().len(),
        1,
        "the unsigned delete was not applied"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_is_recognised() {
    let app = spawn_app().await;
    let hook = lifecycle_webhook(
        PN,
        vec![
            json!({"timestamp": "3", "group_id": "GX", "type": "group_delete", "request_id": "D"}),
        ],
    );
    let first: Value = app.send_webhook(&hook).await.json().await.unwrap();
    let second: Value = app.send_webhook(&hook).await.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
}

#[tokio::test]
async fn batched_entries_and_unknown_fields_are_all_processed() {
    let app = spawn_app().await;
    let token = app.sales();
    // Two creations completed by one POST with two entries, plus things Meta may add.
    let mut ids = Vec::new();
    for i in 0..2 {
        let meta_request = format!("BATCH-{i}");
        let guard = wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(json!({"request_id": meta_request})),
            )
            .mount_as_scoped(&app.meta)
            .await;
        let created: Value = app
            .post_json(
                &format!("/v1/phone-numbers/{PN}/groups"),
                &token,
                &json!({"subject": format!("B{i}")}),
            )
            .await
            .json()
            .await
            .unwrap();
        drop(guard);
        ids.push(created["request_id"].as_str().unwrap().to_owned());
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "brand_new_top_level": true,
        "entry": [
            {"id": "W1", "changes": [
                {"field": "group_lifecycle_update", "value": {"messaging_product": "whatsapp",
                    "metadata": {"phone_number_id": PN},
                    "groups": [{"timestamp": 1755548877, "group_id": "GB0", "type": "group_create", "request_id": "BATCH-0",
                                "subject": "B0", "invite_link": "https://chat.whatsapp.com/B0", "shiny_new_field": [1, 2]}]}},
                {"field": "some_future_field", "value": {"anything": "goes"}}
            ]},
            {"id": "W2", "changes": [
                {"field": "group_lifecycle_update", "value": {"messaging_product": "whatsapp",
                    "metadata": {"phone_number_id": PN},
                    "groups": [{"timestamp": "1755548878", "group_id": "GB1", "type": "group_create", "request_id": "BATCH-1",
                                "subject": "B1", "invite_link": "https://chat.whatsapp.com/B1"},
                               {"timestamp": "1755548879", "group_id": "GB1", "type": "group_brand_new_event"}]}}
            ]}
        ]
    });
    assert_eq!(app.send_webhook(&body).await.status(), 200);
    let a = app.wait_for_request(&token, &ids[0], "created").await;
    let b = app.wait_for_request(&token, &ids[1], "created").await;
    assert_eq!(a["group_id"], "GB0");
    assert_eq!(b["group_id"], "GB1");
}

#[tokio::test]
async fn a_body_that_is_not_json_but_signed_is_accepted_and_ignored() {
    let app = spawn_app().await;
    let raw = b"this is not json";
    let res = app
        .send_webhook_raw(raw, Some(&sign(APP_SECRET.as_bytes(), raw)))
        .await;
    assert_eq!(res.status(), 200);
    // The gateway keeps working afterwards.
    let hook = lifecycle_webhook(
        PN,
        vec![json!({"timestamp": "9", "group_id": "GZ", "type": "group_delete"})],
    );
    assert_eq!(app.send_webhook(&hook).await.status(), 200);
}

#[tokio::test]
async fn a_post_that_keeps_failing_is_set_aside_and_does_not_hold_back_later_ones() {
    let app = spawn_app().await;
    let token = app.sales();
    // The database refuses every event of group POISON: a stand-in for a POST that trips a
    // bug in processing.
    let storage = SqlStorage::connect(app.settings.storage.url.expose_secret(), 2)
        .await
        .unwrap();
    let pool = storage.pool();
    let (poisoning, body_text): (&[&str], _) = match storage.dialect() {
        Dialect::Sqlite => (
            &[
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_events WHEN NEW.group_id = 'POISON'
               BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            ],
            "CAST(body AS TEXT)",
        ),
        Dialect::Postgres => (
            &[
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'poisoned'; END $$",
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_events FOR EACH ROW
                 WHEN (NEW.group_id = 'POISON') EXECUTE FUNCTION poison()",
            ],
            "convert_from(body, 'UTF8')",
        ),
    };
    for statement in poisoning {
        sqlx::query(*statement).execute(pool).await.unwrap();
    }
    let poison = lifecycle_webhook(
        PN,
        vec![json!({"timestamp": "1", "group_id": "POISON", "type": "group_delete"})],
    );
    assert_eq!(app.send_webhook(&poison).await.status(), 200);

    // A creation completed by a later POST completes at once all the same.
    let started = std::time::Instant::now();
    app.create_group(&token, PN, "After the poison").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The bad POST is tried a few times, then set aside with its error, its body kept.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row: (i64, Option<String>, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(
            format!(
                "SELECT attempts, last_error, failed_at FROM webhook_inbox WHERE {body_text} LIKE '%POISON%'"
            ),
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        if row.2.is_some() {
            assert_eq!(row.0, 5);
            assert!(row.1.unwrap_or_default().contains("poisoned"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never set aside: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
