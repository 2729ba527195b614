//! The committed spec is the served spec, and Swagger UI is served from the binary.

use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

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

/// A valid body for each operation that takes one (`g` is a group the caller owns).
fn valid_body(operation: &str) -> Option<Value> {
    let body = match operation {
        "create_group" => serde_json::json!({"subject": "Statuses"}),
        "update_group" => serde_json::json!({"subject": "New"}),
        "reset_invite_link" => serde_json::json!({}),
        "send_invitation" => {
            serde_json::json!({"to": "16505551234", "template": {"name": "group_invite", "language": "en"}})
        }
        "approve_join_requests" | "reject_join_requests" => {
            serde_json::json!({"join_request_ids": ["JR1"]})
        }
        "remove_participants" => serde_json::json!({"participants": ["16505551234"]}),
        "admin_set_group_owner" => serde_json::json!({"team": "sales", "phone_number_id": PN}),
        "admin_issue_token" => serde_json::json!({"team": "sales", "scopes": ["groups:read"]}),
        _ => return None,
    };
    Some(body)
}

struct Operation {
    id: String,
    method: reqwest::Method,
    template: String,
    documented: std::collections::BTreeSet<u16>,
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (template, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            let documented = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|s| s.parse().ok())
                .collect();
            out.push(Operation {
                id: id.to_owned(),
                method: method.to_uppercase().parse().unwrap(),
                template: template.clone(),
                documented,
            });
        }
    }
    out
}

/// The path with its parameters filled in: each from `values`, or `fallback`.
fn fill(template: &str, values: &[(&str, &str)], fallback: Option<&str>) -> String {
    let mut path = template.to_owned();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), fallback.unwrap_or(value));
    }
    path
}

/// Every operation of the served document is driven into each answer a caller can provoke
/// (no token, no scope, broken input, an unknown group, a body of the wrong type or size,
/// Meta failing, refusing or unreachable) and every status it answers must be documented
/// for it: the document and the handlers cannot drift apart.
#[tokio::test]
async fn every_status_an_operation_answers_is_documented() {
    let app = spawn_app_with("[teams.support.rate_limit]\nper_second = 1\nburst = 1\n").await;
    let dead = spawn_app_against("http://127.0.0.1:9", "").await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sales = app.sales();
    let g = app.create_group(&sales, PN, "Statuses").await;
    let created = app.request_creation_answered(&sales).await;
    let dead_sales = dead.sales();
    let dead_g = {
        let created = dead.request_creation_raw(&dead_sales).await;
        assert_eq!(created, 503, "Meta unreachable");
        "GDEAD".to_owned()
    };
    let values = [
        ("phone_number_id", PN),
        ("group_id", g.as_str()),
        ("request_id", created.as_str()),
        ("jti", "0b8f6c1e-9d1a-4c5b-8f3e-1a2b3c4d5e6f"),
    ];
    let full = |op: &str| {
        if op.starts_with("admin_") {
            app.token("platform", &["admin"])
        } else {
            sales.clone()
        }
    };
    let mut undocumented = Vec::new();
    for op in operations(&spec) {
        if !op.template.starts_with("/v1/") {
            continue;
        }
        let body = valid_body(&op.id);
        let send = |base: &TestApp,
                    path: String,
                    token: Option<String>,
                    body: Option<(&'static str, Vec<u8>)>| {
            let mut req = base.http.request(op.method.clone(), base.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some((ct, bytes)) = body {
                req = req.header("content-type", ct).body(bytes);
            }
            async move { req.send().await.unwrap().status().as_u16() }
        };
        let json = |v: &Option<Value>| {
            v.as_ref()
                .map(|v| ("application/json", serde_json::to_vec(v).unwrap()))
        };
        let path = fill(&op.template, &values, None);
        let mut seen = Vec::new();
        // Meta answers every call with one failure after the other.
        for answer in [
            ResponseTemplate::new(500).set_body_json(meta_error(1, "down")),
            ResponseTemplate::new(400).set_body_json(meta_error(131041, "unknown")),
            ResponseTemplate::new(403).set_body_json(meta_error(131207, "suspended")),
            ResponseTemplate::new(400).set_body_json(meta_error(131208, "throttled")),
            ResponseTemplate::new(200).set_body_string("<html>"),
        ] {
            let guard = Mock::given(any())
                .respond_with(answer)
                .mount_as_scoped(&app.meta)
                .await;
            seen.push(send(&app, path.clone(), Some(full(&op.id)), json(&body)).await);
            drop(guard);
        }
        seen.push(send(&app, path.clone(), None, json(&body)).await);
        seen.push(send(&app, path.clone(), Some("x.y.z".into()), json(&body)).await);
        let scopeless = app.token_for_numbers(
            if op.id.starts_with("admin_") {
                "platform"
            } else {
                "sales"
            },
            &[],
            None,
        );
        seen.push(send(&app, path.clone(), Some(scopeless), json(&body)).await);
        let support = app.token(
            "support",
            &[
                "groups:read",
                "groups:write",
                "groups:delete",
                "groups:invite",
            ],
        );
        for _ in 0..2 {
            seen.push(send(&app, path.clone(), Some(support.clone()), json(&body)).await);
        }
        if op.template.contains('{') {
            let broken = fill(&op.template, &values, Some("bad!id"));
            seen.push(send(&app, broken, Some(full(&op.id)), json(&body)).await);
            let unknown = op.template.replace("{group_id}", "GUNKNOWN");
            let unknown = fill(&unknown, &values, None);
            seen.push(send(&app, unknown, Some(full(&op.id)), json(&body)).await);
        }
        if body.is_some() {
            seen.push(
                send(
                    &app,
                    path.clone(),
                    Some(full(&op.id)),
                    Some(("text/plain", b"x".to_vec())),
                )
                .await,
            );
            seen.push(
                send(
                    &app,
                    path.clone(),
                    Some(full(&op.id)),
                    Some(("application/json", b"{".to_vec())),
                )
                .await,
            );
            let big = vec![b' '; 70 * 1024];
            seen.push(
                send(
                    &app,
                    path.clone(),
                    Some(full(&op.id)),
                    Some(("application/json", big)),
                )
                .await,
            );
        }
        let dead_path = fill(&op.template.replace("{group_id}", &dead_g), &values, None);
        let dead_token = if op.id.starts_with("admin_") {
            dead.token("platform", &["admin"])
        } else {
            dead_sales.clone()
        };
        seen.push(send(&dead, dead_path, Some(dead_token), json(&body)).await);
        for status in seen {
            if !op.documented.contains(&status) {
                undocumented.push(format!("{} {} answered {status}", op.id, op.template));
            }
        }
    }
    undocumented.sort();
    undocumented.dedup();
    assert!(
        undocumented.is_empty(),
        "answers missing from the OpenAPI document:\n{}",
        undocumented.join("\n")
    );
}

// ---- the document states the rules the gateway enforces (DESIGN §5) -----------------------

async fn served_spec(app: &TestApp) -> Value {
    let res = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    res.json().await.unwrap()
}

/// The schema at `pointer` in the document, following one `$ref` when it is one.
fn schema_at<'a>(spec: &'a Value, pointer: &str) -> &'a Value {
    let schema = spec
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} documented"));
    match schema["$ref"].as_str() {
        Some(target) => spec
            .pointer(target.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{target} documented")),
        None => schema,
    }
}

/// The schema of parameter `name` of the operation at `path` and `method`.
fn param_schema<'a>(spec: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    spec["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} documents {name}"))
}

fn number(schema: &Value, key: &str) -> usize {
    schema[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {schema}")) as usize
}

/// The status of `res`, and the fields its problem names.
async fn outcome(res: reqwest::Response) -> (u16, Vec<String>) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, error_fields(&body))
}

/// Each bound the document states is the gateway's: the value at the bound passes the field's
/// check and the one past it is refused naming the field. The bounds are read from the served
/// document, so a rule enforced but not documented (or documented but not enforced) fails.
#[tokio::test]
async fn the_documented_bounds_are_the_enforced_ones() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Bounds").await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"success": true, "request_id": "X"})),
        )
        .with_priority(u8::MAX)
        .mount(&app.meta)
        .await;
    let spec = served_spec(&app).await;
    let create = format!("/v1/phone-numbers/{PN}/groups");

    // subject: maxLength characters pass, one more is refused; the pattern keeps out the
    // characters the gateway refuses.
    let subject = schema_at(
        &spec,
        "/components/schemas/CreateGroupBody/properties/subject",
    );
    let max = number(subject, "maxLength");
    assert_eq!(number(subject, "minLength"), 1);
    let pattern = subject["pattern"].as_str().expect("subject pattern");
    for range in [r"\u0000-\u001F", r"\u202A-\u202E", r"\u2066-\u2069"] {
        assert!(
            pattern.starts_with(&format!("^[^{range}")) || pattern.contains(range),
            "{pattern}"
        );
    }
    let res = app
        .post_json(
            &create,
            &token,
            &serde_json::json!({"subject": "é".repeat(max)}),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "a subject of maxLength ({max}) characters"
    );
    let (status, fields) = outcome(
        app.post_json(
            &create,
            &token,
            &serde_json::json!({"subject": "é".repeat(max + 1)}),
        )
        .await,
    )
    .await;
    assert_eq!((status, fields), (400, vec!["subject".to_owned()]));

    // description on PATCH: the same for its own bound.
    let description = schema_at(
        &spec,
        "/components/schemas/UpdateGroupBody/properties/description",
    );
    let max = number(description, "maxLength");
    let group_path = format!("/v1/groups/{g}");
    let patch = |text: String| {
        let (app, token, path) = (&app, &token, &group_path);
        async move {
            let body = serde_json::json!({ "description": text });
            app.send_json(reqwest::Method::PATCH, path, token, &body)
                .await
        }
    };

    assert_eq!(patch("d".repeat(max)).await.status(), 202);
    assert_eq!(
        outcome(patch("d".repeat(max + 1)).await).await,
        (400, vec!["description".to_owned()])
    );

    // participants: maxItems entries pass, one more is refused; uniqueItems holds.
    let participants = schema_at(
        &spec,
        "/components/schemas/RemoveParticipantsBody/properties/participants",
    );
    let max = number(participants, "maxItems");
    assert_eq!(participants["uniqueItems"], true);
    let numbers = |n: usize| -> Vec<String> { (0..n).map(|i| format!("1650555{i:04}")).collect() };
    let remove_path = format!("/v1/groups/{g}/participants/remove");
    let remove = |list: Vec<String>| {
        let (app, token, path) = (&app, &token, &remove_path);
        async move {
            let body = serde_json::json!({ "participants": list });
            app.post_json(path, token, &body).await
        }
    };

    assert_eq!(remove(numbers(max)).await.status(), 202);
    assert_eq!(
        outcome(remove(numbers(max + 1)).await).await,
        (400, vec!["participants".to_owned()])
    );

    // limit: the documented range of each listing.
    for (path, method) in [
        (create.clone(), "/v1/phone-numbers/{phone_number_id}/groups"),
        ("/v1/events".to_owned(), "/v1/events"),
    ] {
        let limit = param_schema(&spec, method, "get", "limit");
        let (min, max) = (number(limit, "minimum"), number(limit, "maximum"));
        for ok in [min, max] {
            let res = app.get(&format!("{path}?limit={ok}"), &token).await;
            assert_eq!(res.status(), 200, "{path}?limit={ok}");
        }
        for bad in [min - 1, max + 1] {
            let res = app.get(&format!("{path}?limit={bad}"), &token).await;
            assert_eq!(
                outcome(res).await,
                (400, vec!["limit".to_owned()]),
                "{path}?limit={bad}"
            );
        }
    }

    // wait_seconds: one past the documented maximum is refused.
    let wait = param_schema(
        &spec,
        "/v1/phone-numbers/{phone_number_id}/groups",
        "post",
        "wait_seconds",
    );
    let past = number(wait, "maximum") + 1;
    let res = app
        .post_json(
            &format!("{create}?wait_seconds={past}"),
            &token,
            &serde_json::json!({"subject": "Wait"}),
        )
        .await;
    assert_eq!(outcome(res).await, (400, vec!["wait_seconds".to_owned()]));

    // fields: every documented name is accepted, a name outside the enum is refused.
    let fields = param_schema(&spec, "/v1/groups/{group_id}", "get", "fields");
    let names: Vec<&str> = fields["items"]["enum"]
        .as_array()
        .expect("fields enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    let res = app
        .get(
            &format!("/v1/groups/{g}?fields={}", names.join(",")),
            &token,
        )
        .await;
    assert_ne!(res.status(), 400, "every documented field is accepted");
    let res = app
        .get(&format!("/v1/groups/{g}?fields=owner"), &token)
        .await;
    assert_eq!(outcome(res).await, (400, vec!["fields".to_owned()]));

    // Path ids: maxLength passes the check (the group is then unknown: 404), one more is 400.
    let group_id = param_schema(&spec, "/v1/groups/{group_id}", "get", "group_id");
    let max = number(group_id, "maxLength");
    assert_eq!(
        app.get(&format!("/v1/groups/{}", "G".repeat(max)), &token)
            .await
            .status(),
        404
    );
    let res = app
        .get(&format!("/v1/groups/{}", "G".repeat(max + 1)), &token)
        .await;
    assert_eq!(outcome(res).await, (400, vec!["group_id".to_owned()]));
    let pn = param_schema(
        &spec,
        "/v1/phone-numbers/{phone_number_id}/groups",
        "get",
        "phone_number_id",
    );
    let max = number(pn, "maxLength");
    let res = app
        .get(
            &format!("/v1/phone-numbers/{}/groups", "9".repeat(max)),
            &token,
        )
        .await;
    assert_eq!(
        res.status(),
        403,
        "a well-formed number the token is not granted"
    );
    let res = app
        .get(
            &format!("/v1/phone-numbers/{}/groups", "9".repeat(max + 1)),
            &token,
        )
        .await;
    assert_eq!(
        outcome(res).await,
        (400, vec!["phone_number_id".to_owned()])
    );
}

/// Every query parameter the document lists for an operation is one the route reads, and
/// any other is refused naming it: the document's parameters are the accepted ones.
#[tokio::test]
async fn every_documented_query_parameter_is_read_and_no_other() {
    let app = spawn_app().await;
    let token = app.sales();
    let spec = served_spec(&app).await;
    let refused = |fields: &Value, name: &str| {
        fields["errors"].as_array().is_some_and(|errors| {
            errors.iter().any(|e| {
                e["field"] == name && e["message"] == "is not a query parameter of this route"
            })
        })
    };
    let mut checked = 0;
    for op in operations(&spec) {
        if !op.template.starts_with("/v1/") {
            continue;
        }
        let path = fill(
            &op.template,
            &[
                ("phone_number_id", PN),
                ("group_id", "G1"),
                ("request_id", "req_1"),
                ("jti", "abc"),
            ],
            None,
        );
        let documented: Vec<String> = spec["paths"][&op.template]
            [op.method.as_str().to_lowercase()]["parameters"]
            .as_array()
            .map(|params| {
                params
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let send = |query: String| {
            let mut req = app
                .http
                .request(op.method.clone(), app.url(&format!("{path}?{query}")))
                .bearer_auth(&token);
            if op.method != reqwest::Method::GET && op.method != reqwest::Method::DELETE {
                req = match op.id.as_str() {
                    "set_group_profile_picture" => {
                        req.header("content-type", "image/jpeg").body("x")
                    }
                    _ => req.json(&serde_json::json!({})),
                };
            }
            req.send()
        };
        for name in &documented {
            let body: Value = send(format!("{name}=%21"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or(Value::Null);
            assert!(
                !refused(&body, name),
                "{}: documented {name} is refused: {body}",
                op.id
            );
            checked += 1;
        }
        let body: Value = send("undocumented=1".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        assert!(
            refused(&body, "undocumented"),
            "{}: an undocumented parameter: {body}",
            op.id
        );
    }
    assert!(checked >= 15, "only {checked} documented query parameters");
}
