//! The committed spec is the served spec, and Swagger UI is served from the binary.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn committed_openapi_json_equals_the_served_document() {
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: Value = serde_json::from_str(include_str!("../../openapi/openapi.json"))
        .expect("openapi/openapi.json is JSON");
    assert!(
        served == committed,
        "openapi/openapi.json is stale: regenerate it with `cargo run -q -- openapi > openapi/openapi.json`"
    );
    assert_eq!(served["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_contract_operation_is_documented_with_its_scope() {
    let app = spawn_app().await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut found = std::collections::BTreeMap::new();
    for (_, ops) in spec["paths"].as_object().unwrap() {
        for (_, op) in ops.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                found.insert(id.to_owned(), op["security"][0]["bearer"].clone());
            }
        }
    }
    let expected = [
        ("create_group", "groups:write"),
        ("get_group_request", "groups:read"),
        ("list_groups", "groups:read"),
        ("get_group", "groups:read"),
        ("update_group", "groups:write"),
        ("set_group_profile_picture", "groups:write"),
        ("delete_group", "groups:delete"),
        ("get_invite_link", "groups:read"),
        ("reset_invite_link", "groups:write"),
        ("send_invitation", "groups:invite"),
        ("send_group_message", "groups:message"),
        ("list_join_requests", "groups:read"),
        ("approve_join_requests", "groups:write"),
        ("reject_join_requests", "groups:write"),
        ("remove_participants", "groups:write"),
    ];
    for (id, scope) in expected {
        assert_eq!(
            found.get(id),
            Some(&serde_json::json!([scope])),
            "{id} must need {scope}"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_offline_and_redirects_without_slash() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/swagger-ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let redirect = app.http.get(app.url("/swagger-ui")).send().await.unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "/swagger-ui/");
    let init = app
        .http
        .get(app.url("/swagger-ui/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(init.text().await.unwrap().contains("/openapi.json"));
}
