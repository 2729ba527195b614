//! One team never receives what was made for another (issue 19, DESIGN §5): creations whose
//! outcome at Meta is unknown are matched to Meta's webhook by phone number and subject, so at
//! most one creation per (number, subject) may wait without Meta's request id.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

/// Meta answers the next creation on `pn` only after the gateway's deadline (test config:
/// 2 s), so its outcome, and its request id, stay unknown to the gateway.
async fn meta_answers_too_late(app: &TestApp, pn: &str) {
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{pn}/groups")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": "LATE"}))
                .set_delay(Duration::from_secs(4)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.meta)
        .await;
}

/// Meta answers every other creation at once, naming each with a request id of its own.
async fn meta_answers_in_time(app: &TestApp) {
    Mock::given(method("POST"))
        .respond_with(|_: &wiremock::Request| {
            ResponseTemplate::new(200)
                .set_body_json(json!({"messaging_product": "whatsapp", "request_id": uuid()}))
        })
        .with_priority(5)
        .mount(&app.meta)
        .await;
}

async fn create(app: &TestApp, token: &str, pn: &str, subject: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/phone-numbers/{pn}/groups"),
        token,
        &json!({ "subject": subject }),
    )
    .await
}

/// Meta's creation webhook whose request id the gateway never learnt.
fn unmatched_creation_webhook(pn: &str, group_id: &str, subject: &str) -> Value {
    lifecycle_webhook(
        pn,
        vec![json!({
            "timestamp": "1755548877",
            "group_id": group_id,
            "type": "group_create",
            "request_id": format!("unseen-{}", uuid()),
            "subject": subject,
            "invite_link": format!("https://chat.whatsapp.com/{group_id}"),
        })],
    )
}

#[tokio::test]
async fn a_second_creation_of_the_same_subject_waits_its_turn_and_never_gets_the_first_teams_group()
{
    let app = spawn_app().await;
    meta_answers_too_late(&app, PN).await;
    meta_answers_in_time(&app).await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read", "groups:write"]);

    // Sales asks first; while its call to Meta is still running, support asks for the same
    // subject on the same number.
    let first = {
        let (app, sales) = (&app, &sales);
        async move { create(app, sales, PN, "Standup").await }
    };
    let second = async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while creations_sent(&app.upstream_requests().await, PN) == 0 {
            assert!(
                Instant::now() < deadline,
                "the first creation never reached Meta"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        create(&app, &support, PN, "Standup").await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(
        second.status(),
        409,
        "the same subject was let through twice"
    );
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    let refusal = problem(second).await;
    assert!(
        refusal["type"]
            .as_str()
            .unwrap()
            .ends_with("/creation-in-progress"),
        "{refusal}"
    );
    // Meta's answer to sales never arrived in time: pending, waiting for the webhook.
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let first_id = first["request_id"].as_str().unwrap().to_owned();

    // Still refused while sales' creation waits for its webhook with an unknown outcome.
    let again = create(&app, &support, PN, "Standup").await;
    assert_eq!(again.status(), 409);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 1);

    // Other subjects, and the same subject on another number, are not held up.
    assert_eq!(create(&app, &support, PN, "Retro").await.status(), 202);
    assert_eq!(create(&app, &sales, PN2, "Standup").await.status(), 202);

    // Meta's webhook names no request the gateway knows: it can only be sales' creation.
    let group = format!("G{}", uuid());
    let hook = unmatched_creation_webhook(PN, &group, "Standup");
    assert_eq!(app.send_webhook(&hook).await.status(), 200);
    let done = app.wait_for_request(&sales, &first_id, "created").await;
    assert_eq!(done["group_id"], group.as_str());
    let invisible = app
        .get(&format!("/v1/groups/{group}/invite-link"), &support)
        .await;
    assert_eq!(invisible.status(), 404);

    // Once sales' creation has its group, support may create the subject too, and Meta is
    // asked for it.
    let third = create(&app, &support, PN, "Standup").await;
    assert_eq!(third.status(), 202);
    let third: Value = third.json().await.unwrap();
    assert_ne!(third["request_id"], first["request_id"]);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 3);
}

#[tokio::test]
async fn a_subject_is_free_again_as_soon_as_meta_names_or_refuses_the_creation() {
    let app = spawn_app().await;
    let sales = app.sales();
    let support = app.token("support", &["groups:read", "groups:write"]);
    // Meta refuses the first creation: the subject is free at once.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(meta_error(131211, "limit")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.meta)
        .await;
    meta_answers_in_time(&app).await;
    let refused = create(&app, &sales, PN, "Weekly").await.status();
    assert!(refused.is_client_error(), "{refused}");
    // Meta names the next one (its webhook has not come yet): its webhook is matched by
    // Meta's request id, so another team's creation of the subject cannot be confused with it.
    assert_eq!(create(&app, &support, PN, "Weekly").await.status(), 202);
    assert_eq!(create(&app, &sales, PN, "Weekly").await.status(), 202);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 3);
}

/// Meta may send a group's webhooks out of order: a join processed before the creation that
/// names the group's owner is held, and reaches the team once the creation is known.
#[tokio::test]
async fn an_event_that_overtakes_its_groups_creation_still_reaches_the_team() {
    let app = spawn_app().await;
    let sales = app.sales();
    let meta_request = format!("M-{}", uuid());
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": meta_request})))
        .mount(&app.meta)
        .await;
    let created = app.request_creation(&sales, PN, "Out of order").await;
    let group = format!("G{}", uuid());
    let join = webhook(
        "group_participants_update",
        PN,
        vec![
            json!({"timestamp": "1755600000", "group_id": group, "type": "group_participants_add",
                    "reason": "invite_link", "added_participants": [{"wa_id": "15550001234"}]}),
        ],
    );
    assert_eq!(app.send_webhook(&join).await.status(), 200);
    // The join is processed (and held) before Meta's creation webhook arrives.
    app.webhooks_processed().await;
    app.complete_creation(&sales, PN, &created, &meta_request, &group, "Out of order")
        .await;
    let types = eventually(
        Duration::from_secs(5),
        "both events reach sales",
        async || {
            let page: Value = app.get("/v1/events", &sales).await.json().await.ok()?;
            let types: Vec<String> = page["events"]
                .as_array()?
                .iter()
                .filter(|e| e["group_id"] == group.as_str())
                .filter_map(|e| e["type"].as_str().map(str::to_owned))
                .collect();
            (types.len() == 2).then_some(types)
        },
    )
    .await;
    assert!(
        types.contains(&"group.participants_added".to_owned()),
        "{types:?}"
    );
    assert!(types.contains(&"group.created".to_owned()), "{types:?}");
    // Nobody else sees the group's events.
    let support = app.token("support", &["groups:read"]);
    let page: Value = app.get("/v1/events", &support).await.json().await.unwrap();
    assert!(
        !page["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["group_id"] == group.as_str()),
        "{page}"
    );
}
