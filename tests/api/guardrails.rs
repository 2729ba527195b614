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
