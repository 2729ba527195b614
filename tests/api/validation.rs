//! Every input rule of DESIGN §4 as a table: each row is one request that breaks (or just
//! meets) a rule, the status it must get, the fields its problem must name, and the promise
//! that nothing reached Meta. Plus X-Request-Id (§5) and unknown routes.

use reqwest::Method;
use serde_json::{Value, json};
use wa_groups_gateway::domain::synthetic_jpeg_header;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\xc0\0\0\0\xc0\x08\x02\0\0\0";
const FIVE_MIB: usize = 5 * 1024 * 1024;

#[derive(Clone, Debug)]
enum Content {
    None,
    Json(Value),
    /// Bytes under a declared Content-Type.
    Typed(&'static str, Vec<u8>),
    /// Bytes without any Content-Type.
    Untyped(Vec<u8>),
    /// multipart/form-data parts: (name, bytes, content type).
    Multipart(Vec<(&'static str, Vec<u8>, &'static str)>),
}

struct Row {
    name: String,
    method: Method,
    path: String,
    content: Content,
    status: u16,
    /// The `errors[].field` names, exactly (order aside); `a|b` accepts either name and a
    /// trailing `?` marks a name that may or may not be listed.
    fields: Vec<&'static str>,
    headers: Vec<(&'static str, String)>,
}

impl Row {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Row {
        self.headers.push((name, value.into()));
        self
    }
}

fn row(
    name: impl Into<String>,
    method: Method,
    path: impl Into<String>,
    content: Content,
    status: u16,
    fields: &[&'static str],
) -> Row {
    Row {
        name: name.into(),
        method,
        path: path.into(),
        content,
        status,
        fields: fields.to_vec(),
        headers: Vec::new(),
    }
}

fn json_body(v: Value) -> Content {
    Content::Json(v)
}

fn create_path() -> String {
    format!("/v1/phone-numbers/{PN}/groups")
}

async fn send(app: &TestApp, token: &str, row: &Row) -> reqwest::Response {
    let mut req = app
        .http
        .request(row.method.clone(), app.url(&row.path))
        .bearer_auth(token);
    for (name, value) in &row.headers {
        req = req.header(*name, value);
    }
    req = match &row.content {
        Content::None => req,
        Content::Json(v) => req.json(v),
        Content::Typed(ct, bytes) => req.header("content-type", *ct).body(bytes.clone()),
        Content::Untyped(bytes) => req.body(bytes.clone()),
        Content::Multipart(parts) => {
            let mut form = reqwest::multipart::Form::new();
            for (name, bytes, ct) in parts {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name("upload.bin")
                    .mime_str(ct)
                    .expect("mime");
                form = form.part(*name, part);
            }
            req.multipart(form)
        }
    };
    req.send().await.expect("request")
}

/// Does `actual` name exactly the `expected` fields (each entry may offer `a|b`)?
fn fields_match(expected: &[&str], actual: &[String]) -> bool {
    let mut left: Vec<&str> = actual.iter().map(String::as_str).collect();
    for want in expected {
        let (want, optional) = match want.strip_suffix('?') {
            Some(w) => (w, true),
            None => (*want, false),
        };
        match left
            .iter()
            .position(|got| want.split('|').any(|alt| alt == *got))
        {
            Some(i) => {
                left.remove(i);
            }
            None if optional => {}
            None => return false,
        }
    }
    left.is_empty()
}

/// Runs every row, collecting all mismatches so one run shows every broken rule.
async fn check_rows(app: &TestApp, token: &str, rows: &[Row]) {
    let mut failures = Vec::new();
    for row in rows {
        let before = app.upstream_requests().await.len();
        let res = send(app, token, row).await;
        let status = res.status().as_u16();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ct = header("content-type").unwrap_or_default();
        let request_id = header("x-request-id");
        let text = res.text().await.unwrap_or_default();
        let label = format!("{} ({} {})", row.name, row.method, shorten(&row.path));
        if status != row.status {
            failures.push(format!(
                "{label}: status {status}, want {} — {}",
                row.status,
                shorten(&text)
            ));
            continue;
        }
        if row.status >= 400 {
            if !ct.starts_with("application/problem+json") {
                failures.push(format!("{label}: content-type {ct:?}"));
                continue;
            }
            let Ok(problem) = serde_json::from_str::<Value>(&text) else {
                failures.push(format!("{label}: body is not JSON: {}", shorten(&text)));
                continue;
            };
            for key in ["type", "title", "detail", "request_id"] {
                if !problem[key].is_string() {
                    failures.push(format!("{label}: problem lacks {key}: {problem}"));
                }
            }
            if problem["status"] != row.status {
                failures.push(format!("{label}: problem status {}", problem["status"]));
            }
            match &request_id {
                None => failures.push(format!("{label}: no X-Request-Id")),
                Some(id) if problem["request_id"] != id.as_str() => failures.push(format!(
                    "{label}: X-Request-Id {id} but request_id {}",
                    problem["request_id"]
                )),
                Some(_) => {}
            }
            let fields = error_fields(&problem);
            if !fields_match(&row.fields, &fields) {
                failures.push(format!(
                    "{label}: fields {fields:?}, want {:?} — {}",
                    row.fields,
                    shorten(&problem.to_string())
                ));
            }
        }
        let reached = app.upstream_requests().await.len() - before;
        if reached != 0 {
            failures.push(format!("{label}: {reached} request(s) reached Meta"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_owned()
    }
}

/// Meta answers anything, so a call that should have been refused would be recorded.
async fn answer_everything(app: &TestApp) {
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"success": true, "request_id": "X"})),
        )
        .with_priority(u8::MAX)
        .mount(&app.meta)
        .await;
}

async fn app_with_group() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let token = app.sales();
    let group = app.create_group(&token, PN, "Validation").await;
    answer_everything(&app).await;
    (app, token, group)
}

// ---- tables ------------------------------------------------------------------------------

#[tokio::test]
async fn create_group_input_rules() {
    use Method as M;
    let app = spawn_app().await;
    answer_everything(&app).await;
    let token = app.sales();
    let create = create_path();
    let body = |v: Value| json_body(v);
    let rows = vec![
        row(
            "subject missing",
            M::POST,
            &create,
            body(json!({})),
            400,
            &["subject"],
        ),
        row(
            "subject blank after trim",
            M::POST,
            &create,
            body(json!({"subject": "   "})),
            400,
            &["subject"],
        ),
        row(
            "subject tabs and newlines",
            M::POST,
            &create,
            body(json!({"subject": "\t\n"})),
            400,
            &["subject"],
        ),
        row(
            "subject empty",
            M::POST,
            &create,
            body(json!({"subject": ""})),
            400,
            &["subject"],
        ),
        row(
            "subject 129 characters",
            M::POST,
            &create,
            body(json!({"subject": "x".repeat(129)})),
            400,
            &["subject"],
        ),
        row(
            "subject 129 multi-byte characters",
            M::POST,
            &create,
            body(json!({"subject": "é".repeat(129)})),
            400,
            &["subject"],
        ),
        row(
            "subject 127 characters padded to 129",
            M::POST,
            &create,
            body(json!({"subject": format!(" {} ", "x".repeat(127))})),
            400,
            &["subject"],
        ),
        row(
            "subject a number",
            M::POST,
            &create,
            body(json!({"subject": 42})),
            400,
            &["subject"],
        ),
        row(
            "subject null",
            M::POST,
            &create,
            body(json!({"subject": null})),
            400,
            &["subject"],
        ),
        row(
            "subject a list",
            M::POST,
            &create,
            body(json!({"subject": ["a"]})),
            400,
            &["subject"],
        ),
        row(
            "description 2049 characters",
            M::POST,
            &create,
            body(json!({"subject": "S", "description": "d".repeat(2049)})),
            400,
            &["description"],
        ),
        row(
            "description null",
            M::POST,
            &create,
            body(json!({"subject": "S", "description": null})),
            400,
            &["description"],
        ),
        row(
            "description a number",
            M::POST,
            &create,
            body(json!({"subject": "S", "description": 1})),
            400,
            &["description"],
        ),
        row(
            "join_approval_mode sometimes",
            M::POST,
            &create,
            body(json!({"subject": "S", "join_approval_mode": "sometimes"})),
            400,
            &["join_approval_mode"],
        ),
        row(
            "join_approval_mode in capitals",
            M::POST,
            &create,
            body(json!({"subject": "S", "join_approval_mode": "AUTO_APPROVE"})),
            400,
            &["join_approval_mode"],
        ),
        row(
            "join_approval_mode a boolean",
            M::POST,
            &create,
            body(json!({"subject": "S", "join_approval_mode": true})),
            400,
            &["join_approval_mode"],
        ),
        row(
            "join_approval_mode null",
            M::POST,
            &create,
            body(json!({"subject": "S", "join_approval_mode": null})),
            400,
            &["join_approval_mode"],
        ),
        row(
            "unknown body field",
            M::POST,
            &create,
            body(json!({"subject": "S", "subjet": "typo"})),
            400,
            &["subjet"],
        ),
        row(
            "messaging_product is the gateway's business",
            M::POST,
            &create,
            body(json!({"subject": "S", "messaging_product": "whatsapp"})),
            400,
            &["messaging_product"],
        ),
        row(
            "wait_seconds -1",
            M::POST,
            format!("{create}?wait_seconds=-1"),
            body(json!({"subject": "S"})),
            400,
            &["wait_seconds"],
        ),
        row(
            "wait_seconds 31",
            M::POST,
            format!("{create}?wait_seconds=31"),
            body(json!({"subject": "S"})),
            400,
            &["wait_seconds"],
        ),
        row(
            "wait_seconds abc",
            M::POST,
            format!("{create}?wait_seconds=abc"),
            body(json!({"subject": "S"})),
            400,
            &["wait_seconds"],
        ),
        row(
            "wait_seconds empty",
            M::POST,
            format!("{create}?wait_seconds="),
            body(json!({"subject": "S"})),
            400,
            &["wait_seconds"],
        ),
        row(
            "wait_seconds 1.5",
            M::POST,
            format!("{create}?wait_seconds=1.5"),
            body(json!({"subject": "S"})),
            400,
            &["wait_seconds"],
        ),
        row(
            "wait_seconds overflowing u32",
            M::POST,
            format!("{create}?wait_seconds=99999999999999999999"),
            body(json!({"subject": "S"})),
            400,
            &["wait_seconds"],
        ),
        row(
            "phone_number_id 12a",
            M::POST,
            "/v1/phone-numbers/12a/groups",
            body(json!({"subject": "S"})),
            400,
            &["phone_number_id"],
        ),
        row(
            "phone_number_id 33 digits",
            M::POST,
            format!("/v1/phone-numbers/{}/groups", "1".repeat(33)),
            body(json!({"subject": "S"})),
            400,
            &["phone_number_id"],
        ),
        row(
            "phone_number_id with +",
            M::POST,
            "/v1/phone-numbers/+111111/groups",
            body(json!({"subject": "S"})),
            400,
            &["phone_number_id"],
        ),
        row(
            "Idempotency-Key with a space",
            M::POST,
            &create,
            body(json!({"subject": "S"})),
            400,
            &["Idempotency-Key"],
        )
        .header("idempotency-key", "a b"),
        row(
            "Idempotency-Key of 256 characters",
            M::POST,
            &create,
            body(json!({"subject": "S"})),
            400,
            &["Idempotency-Key"],
        )
        .header("idempotency-key", "k".repeat(256)),
        row(
            "several broken fields at once",
            M::POST,
            "/v1/phone-numbers/12a/groups?wait_seconds=99",
            body(json!({"subject": "   "})),
            400,
            &["phone_number_id", "wait_seconds", "subject"],
        ),
        row(
            "every body field broken at once",
            M::POST,
            &create,
            body(
                json!({"subject": 42, "description": null, "join_approval_mode": "x", "extra": 1}),
            ),
            400,
            &["subject", "description", "join_approval_mode", "extra"],
        ),
        row(
            "malformed JSON",
            M::POST,
            &create,
            Content::Typed("application/json", b"{\"subject\": ".to_vec()),
            400,
            &["body"],
        ),
        row(
            "trailing garbage after JSON",
            M::POST,
            &create,
            Content::Typed("application/json", b"{\"subject\": \"S\"} x".to_vec()),
            400,
            &["body"],
        ),
        row(
            "JSON array body",
            M::POST,
            &create,
            body(json!([{"subject": "S"}])),
            400,
            &["body"],
        ),
        row(
            "JSON string body",
            M::POST,
            &create,
            body(json!("S")),
            400,
            &["body"],
        ),
        row(
            "JSON null body",
            M::POST,
            &create,
            body(json!(null)),
            400,
            &["body"],
        ),
        row(
            "empty JSON body",
            M::POST,
            &create,
            Content::Typed("application/json", Vec::new()),
            400,
            &["body"],
        ),
        row(
            "Content-Type text/plain",
            M::POST,
            &create,
            Content::Typed("text/plain", br#"{"subject": "S"}"#.to_vec()),
            415,
            &[],
        ),
        row(
            "Content-Type form-urlencoded",
            M::POST,
            &create,
            Content::Typed("application/x-www-form-urlencoded", b"subject=S".to_vec()),
            415,
            &[],
        ),
        row(
            "no Content-Type",
            M::POST,
            &create,
            Content::Untyped(br#"{"subject": "S"}"#.to_vec()),
            415,
            &[],
        ),
        row(
            "JSON body over the limit",
            M::POST,
            &create,
            body(json!({"subject": "S", "description": "d".repeat(200 * 1024)})),
            413,
            &[],
        ),
    ];
    check_rows(&app, &token, &rows).await;
}

#[tokio::test]
async fn listing_and_reading_input_rules() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let list = create_path();
    let rows = vec![
        row(
            "limit 0",
            M::GET,
            format!("{list}?limit=0"),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "limit 1025",
            M::GET,
            format!("{list}?limit=1025"),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "limit x",
            M::GET,
            format!("{list}?limit=x"),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "limit empty",
            M::GET,
            format!("{list}?limit="),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "limit -5",
            M::GET,
            format!("{list}?limit=-5"),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "after and before together",
            M::GET,
            format!("{list}?after=c2VxOjE&before=c2VxOjE"),
            Content::None,
            400,
            &["after|before"],
        ),
        row(
            "after not a cursor",
            M::GET,
            format!("{list}?after=%21%21%21"),
            Content::None,
            400,
            &["after"],
        ),
        row(
            "before not a cursor",
            M::GET,
            format!("{list}?before=nope"),
            Content::None,
            400,
            &["before"],
        ),
        row(
            "listing on phone_number_id 12a",
            M::GET,
            "/v1/phone-numbers/12a/groups",
            Content::None,
            400,
            &["phone_number_id"],
        ),
        row(
            "listing: two broken parameters",
            M::GET,
            "/v1/phone-numbers/12a/groups?limit=0",
            Content::None,
            400,
            &["phone_number_id", "limit"],
        ),
        row(
            "fields with an unknown field",
            M::GET,
            format!("/v1/groups/{g}?fields=subject,owner"),
            Content::None,
            400,
            &["fields"],
        ),
        row(
            "fields empty",
            M::GET,
            format!("/v1/groups/{g}?fields="),
            Content::None,
            400,
            &["fields"],
        ),
        row(
            "fields with an empty item",
            M::GET,
            format!("/v1/groups/{g}?fields=subject,,description"),
            Content::None,
            400,
            &["fields"],
        ),
        row(
            "fields in capitals",
            M::GET,
            format!("/v1/groups/{g}?fields=Subject"),
            Content::None,
            400,
            &["fields"],
        ),
        row(
            "group_id bad.id",
            M::GET,
            "/v1/groups/bad.id",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "group_id a%20b",
            M::GET,
            "/v1/groups/a%20b",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "group_id a%2Fb",
            M::GET,
            "/v1/groups/a%2Fb",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "group_id with +",
            M::GET,
            "/v1/groups/a+b",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "group_id 257 characters",
            M::GET,
            format!("/v1/groups/{}", "A".repeat(257)),
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "bad group_id and bad fields",
            M::GET,
            "/v1/groups/bad.id?fields=owner",
            Content::None,
            400,
            &["group_id", "fields"],
        ),
        row(
            "delete group_id bad.id",
            M::DELETE,
            "/v1/groups/bad.id",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "invite link of group_id bad.id",
            M::GET,
            "/v1/groups/bad.id/invite-link",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "reset link of group_id bad.id",
            M::POST,
            "/v1/groups/bad.id/invite-link",
            Content::None,
            400,
            &["group_id"],
        ),
        row(
            "join requests limit 0",
            M::GET,
            format!("/v1/groups/{g}/join-requests?limit=0"),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "join requests limit 1025",
            M::GET,
            format!("/v1/groups/{g}/join-requests?limit=1025"),
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "join requests after not a cursor",
            M::GET,
            format!("/v1/groups/{g}/join-requests?after=a%20b"),
            Content::None,
            400,
            &["after"],
        ),
        row(
            "group request id a.b",
            M::GET,
            "/v1/group-requests/a.b",
            Content::None,
            400,
            &["request_id"],
        ),
        row(
            "group request id 65 characters",
            M::GET,
            format!("/v1/group-requests/{}", "r".repeat(65)),
            Content::None,
            400,
            &["request_id"],
        ),
    ];
    check_rows(&app, &token, &rows).await;
}

#[tokio::test]
async fn group_body_input_rules() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let group = format!("/v1/groups/{g}");
    let remove = format!("/v1/groups/{g}/participants/remove");
    let approve = format!("/v1/groups/{g}/join-requests/approve");
    let reject = format!("/v1/groups/{g}/join-requests/reject");
    let invite = format!("/v1/groups/{g}/invitations");
    let body = |v: Value| json_body(v);
    let nine: Vec<String> = (0..9).map(|i| format!("1650555000{i}")).collect();
    let many_ids: Vec<String> = (0..101).map(|i| format!("JR{i}")).collect();
    let template = json!({"name": "group_invite", "language": "en_US"});
    let rows = vec![
        // PATCH
        row(
            "update with an empty object",
            M::PATCH,
            &group,
            body(json!({})),
            400,
            &["subject|description"],
        ),
        row(
            "update subject blank",
            M::PATCH,
            &group,
            body(json!({"subject": "   "})),
            400,
            &["subject"],
        ),
        row(
            "update subject 129 characters",
            M::PATCH,
            &group,
            body(json!({"subject": "x".repeat(129)})),
            400,
            &["subject"],
        ),
        row(
            "update subject null",
            M::PATCH,
            &group,
            body(json!({"subject": null})),
            400,
            &["subject"],
        ),
        row(
            "update description null",
            M::PATCH,
            &group,
            body(json!({"description": null})),
            400,
            &["description"],
        ),
        row(
            "update description 2049",
            M::PATCH,
            &group,
            body(json!({"description": "d".repeat(2049)})),
            400,
            &["description"],
        ),
        row(
            "update description a number",
            M::PATCH,
            &group,
            body(json!({"description": 5})),
            400,
            &["description"],
        ),
        row(
            "update unknown field",
            M::PATCH,
            &group,
            body(json!({"subject": "S", "join_approval_mode": "auto_approve"})),
            400,
            &["join_approval_mode"],
        ),
        row(
            "update on group_id bad.id",
            M::PATCH,
            "/v1/groups/bad.id",
            body(json!({"subject": "S"})),
            400,
            &["group_id"],
        ),
        row(
            "update malformed JSON",
            M::PATCH,
            &group,
            Content::Typed("application/json", b"{".to_vec()),
            400,
            &["body"],
        ),
        row(
            "update JSON array",
            M::PATCH,
            &group,
            body(json!([])),
            400,
            &["body"],
        ),
        row(
            "update text/plain",
            M::PATCH,
            &group,
            Content::Typed("text/plain", b"subject=S".to_vec()),
            415,
            &[],
        ),
        // participants
        row(
            "participants empty",
            M::POST,
            &remove,
            body(json!({"participants": []})),
            400,
            &["participants"],
        ),
        row(
            "participants 9 entries",
            M::POST,
            &remove,
            body(json!({"participants": nine})),
            400,
            &["participants"],
        ),
        row(
            "participants duplicate",
            M::POST,
            &remove,
            body(json!({"participants": ["16505551234", "16505551234"]})),
            400,
            &["participants[1]"],
        ),
        row(
            "participant 12345 too short",
            M::POST,
            &remove,
            body(json!({"participants": ["12345"]})),
            400,
            &["participants[0]"],
        ),
        row(
            "participant 16 digits",
            M::POST,
            &remove,
            body(json!({"participants": ["1234567890123456"]})),
            400,
            &["participants[0]"],
        ),
        row(
            "participant +1-650",
            M::POST,
            &remove,
            body(json!({"participants": ["+1-650"]})),
            400,
            &["participants[0]"],
        ),
        row(
            "participant not a string",
            M::POST,
            &remove,
            body(json!({"participants": [16505551234_u64]})),
            400,
            &["participants[0]"],
        ),
        row(
            "participants: each bad entry named",
            M::POST,
            &remove,
            body(json!({"participants": ["16505551234", "x", null]})),
            400,
            &["participants[1]", "participants[2]"],
        ),
        row(
            "participants missing",
            M::POST,
            &remove,
            body(json!({})),
            400,
            &["participants"],
        ),
        row(
            "participants a string",
            M::POST,
            &remove,
            body(json!({"participants": "16505551234"})),
            400,
            &["participants"],
        ),
        row(
            "participants null",
            M::POST,
            &remove,
            body(json!({"participants": null})),
            400,
            &["participants"],
        ),
        row(
            "participants with an unknown field",
            M::POST,
            &remove,
            body(json!({"participants": ["16505551234"], "users": []})),
            400,
            &["users"],
        ),
        // join requests
        row(
            "approve empty",
            M::POST,
            &approve,
            body(json!({"join_request_ids": []})),
            400,
            &["join_request_ids"],
        ),
        row(
            "approve duplicate",
            M::POST,
            &approve,
            body(json!({"join_request_ids": ["JR1", "JR1"]})),
            400,
            &["join_request_ids[1]"],
        ),
        row(
            "approve bad chars",
            M::POST,
            &approve,
            body(json!({"join_request_ids": ["JR.1"]})),
            400,
            &["join_request_ids[0]"],
        ),
        row(
            "approve missing",
            M::POST,
            &approve,
            body(json!({})),
            400,
            &["join_request_ids"],
        ),
        row(
            "reject empty",
            M::POST,
            &reject,
            body(json!({"join_request_ids": []})),
            400,
            &["join_request_ids"],
        ),
        row(
            "reject duplicate",
            M::POST,
            &reject,
            body(json!({"join_request_ids": ["JR1", "JR2", "JR1"]})),
            400,
            &["join_request_ids[2]"],
        ),
        row(
            "reject bad chars",
            M::POST,
            &reject,
            body(json!({"join_request_ids": ["a/b"]})),
            400,
            &["join_request_ids[0]"],
        ),
        row(
            "reject not strings",
            M::POST,
            &reject,
            body(json!({"join_request_ids": [1]})),
            400,
            &["join_request_ids[0]"],
        ),
        row(
            "reject 101 ids",
            M::POST,
            &reject,
            body(json!({"join_request_ids": many_ids})),
            400,
            &["join_request_ids"],
        ),
        // invitations
        row(
            "invitation to bad",
            M::POST,
            &invite,
            body(json!({"to": "12345", "template": template})),
            400,
            &["to"],
        ),
        row(
            "invitation to a number",
            M::POST,
            &invite,
            body(json!({"to": 16505551234_u64, "template": template})),
            400,
            &["to"],
        ),
        row(
            "invitation template missing",
            M::POST,
            &invite,
            body(json!({"to": "+16505551234"})),
            400,
            &["template"],
        ),
        row(
            "invitation template a string",
            M::POST,
            &invite,
            body(json!({"to": "+16505551234", "template": "group_invite"})),
            400,
            &["template"],
        ),
        row(
            "invitation template.name with uppercase",
            M::POST,
            &invite,
            body(
                json!({"to": "+16505551234", "template": {"name": "Group_Invite", "language": "en_US"}}),
            ),
            400,
            &["template.name"],
        ),
        row(
            "invitation template.language english",
            M::POST,
            &invite,
            body(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "english"}}),
            ),
            400,
            &["template.language"],
        ),
        row(
            "invitation template empty",
            M::POST,
            &invite,
            body(json!({"to": "+16505551234", "template": {}})),
            400,
            &["template.name", "template.language"],
        ),
        row(
            "invitation template.parameters blank",
            M::POST,
            &invite,
            body(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US", "parameters": [" "]}}),
            ),
            400,
            &["template.parameters[0]"],
        ),
        row(
            "invitation template.parameters null",
            M::POST,
            &invite,
            body(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US", "parameters": null}}),
            ),
            400,
            &["template.parameters"],
        ),
        row(
            "invitation template.parameters not a list",
            M::POST,
            &invite,
            body(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US", "parameters": "x"}}),
            ),
            400,
            &["template.parameters"],
        ),
        row(
            "invitation to null",
            M::POST,
            &invite,
            body(json!({"to": null, "template": template})),
            400,
            &["to"],
        ),
        row(
            "invitation Idempotency-Key with a control character",
            M::POST,
            &invite,
            body(json!({"to": "+16505551234", "template": template})),
            400,
            &["Idempotency-Key"],
        )
        .header("idempotency-key", "a\tb"),
        row(
            "invitation template unknown field",
            M::POST,
            &invite,
            body(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US", "namespace": "x"}}),
            ),
            400,
            &["template.namespace"],
        ),
        row(
            "invitation empty",
            M::POST,
            &invite,
            body(json!({})),
            400,
            &["to", "template"],
        ),
    ];
    check_rows(&app, &token, &rows).await;
}

#[tokio::test]
async fn group_message_input_rules() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let messages = format!("/v1/groups/{g}/messages");
    let body = |v: Value| json_body(v);
    let mut rows = vec![
        row(
            "message: empty object",
            M::POST,
            &messages,
            body(json!({})),
            400,
            &["type"],
        ),
        row(
            "message: content without type",
            M::POST,
            &messages,
            body(json!({"text": {"body": "hi"}})),
            400,
            &["type"],
        ),
        row(
            "message: an unsupported type",
            M::POST,
            &messages,
            body(json!({"type": "interactive", "interactive": {"type": "button"}})),
            400,
            &["type", "interactive"],
        ),
        row(
            "message: type a number",
            M::POST,
            &messages,
            body(json!({"type": 1, "text": {"body": "hi"}})),
            400,
            &["type"],
        ),
        row(
            "message: type null",
            M::POST,
            &messages,
            body(json!({"type": null, "text": {"body": "hi"}})),
            400,
            &["type"],
        ),
        row(
            "message: text without its object",
            M::POST,
            &messages,
            body(json!({"type": "text"})),
            400,
            &["text"],
        ),
        row(
            "message: text as a string",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": "hi"})),
            400,
            &["text"],
        ),
        row(
            "message: text without body",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {}})),
            400,
            &["text.body"],
        ),
        row(
            "message: text body empty",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": ""}})),
            400,
            &["text.body"],
        ),
        row(
            "message: text body blank",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": " \n "}})),
            400,
            &["text.body"],
        ),
        row(
            "message: text body a number",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": 5}})),
            400,
            &["text.body"],
        ),
        row(
            "message: text preview_url a string",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "hi", "preview_url": "yes"}})),
            400,
            &["text.preview_url"],
        ),
        row(
            "message: text preview_url null",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "hi", "preview_url": null}})),
            400,
            &["text.preview_url"],
        ),
        row(
            "message: text unknown field",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "hi", "bold": true}})),
            400,
            &["text.bold"],
        ),
        row(
            "message: a second content object",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "hi"}, "image": {"id": "1"}})),
            400,
            &["image"],
        ),
        row(
            "message: a recipient in the body",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "hi"}, "to": "16505551234"})),
            400,
            &["to"],
        ),
        row(
            "message: image without link or id",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"caption": "c"}})),
            400,
            &["image.link"],
        ),
        row(
            "message: image with link and id",
            M::POST,
            &messages,
            body(
                json!({"type": "image", "image": {"link": "https://example.com/a.jpg", "id": "1"}}),
            ),
            400,
            &["image.id"],
        ),
        row(
            "message: image link over http",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"link": "http://example.com/a.jpg"}})),
            400,
            &["image.link"],
        ),
        row(
            "message: image link not a URL",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"link": "a.jpg"}})),
            400,
            &["image.link"],
        ),
        row(
            "message: image id with a slash",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"id": "1/2"}})),
            400,
            &["image.id"],
        ),
        row(
            "message: image caption empty",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"id": "1", "caption": ""}})),
            400,
            &["image.caption"],
        ),
        row(
            "message: image with a file name",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"id": "1", "filename": "a.jpg"}})),
            400,
            &["image.filename"],
        ),
        row(
            "message: video with a file name",
            M::POST,
            &messages,
            body(json!({"type": "video", "video": {"id": "1", "filename": "a.mp4"}})),
            400,
            &["video.filename"],
        ),
        row(
            "message: audio with a caption",
            M::POST,
            &messages,
            body(json!({"type": "audio", "audio": {"id": "1", "caption": "listen"}})),
            400,
            &["audio.caption"],
        ),
        row(
            "message: audio link null",
            M::POST,
            &messages,
            body(json!({"type": "audio", "audio": {"link": null}})),
            400,
            &["audio.link"],
        ),
        row(
            "message: document file name with a slash",
            M::POST,
            &messages,
            body(json!({"type": "document", "document": {"id": "1", "filename": "a/b.pdf"}})),
            400,
            &["document.filename"],
        ),
        row(
            "message: document caption null",
            M::POST,
            &messages,
            body(json!({"type": "document", "document": {"id": "1", "caption": null}})),
            400,
            &["document.caption"],
        ),
        row(
            "message: document unknown field",
            M::POST,
            &messages,
            body(
                json!({"type": "document", "document": {"id": "1", "mime_type": "application/pdf"}}),
            ),
            400,
            &["document.mime_type"],
        ),
        row(
            "message: template without name",
            M::POST,
            &messages,
            body(json!({"type": "template", "template": {"language": "en_US"}})),
            400,
            &["template.name"],
        ),
        row(
            "message: template name with spaces",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "Order Update", "language": "en_US"}}),
            ),
            400,
            &["template.name"],
        ),
        row(
            "message: template without language",
            M::POST,
            &messages,
            body(json!({"type": "template", "template": {"name": "order_update"}})),
            400,
            &["template.language"],
        ),
        row(
            "message: template language as Meta's object",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"}}}),
            ),
            400,
            &["template.language"],
        ),
        row(
            "message: template language malformed",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": "en-US"}}),
            ),
            400,
            &["template.language"],
        ),
        row(
            "message: template components not a list",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "components": {"type": "body"}}}),
            ),
            400,
            &["template.components"],
        ),
        row(
            "message: template component a string",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "components": ["body"]}}),
            ),
            400,
            &["template.components[0]"],
        ),
        row(
            "message: template component without type",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "components": [{"type": "body"}, {"parameters": []}]}}),
            ),
            400,
            &["template.components[1].type"],
        ),
        row(
            "message: template component parameters not objects",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "components": [{"type": "body", "parameters": ["#1042"]}]}}),
            ),
            400,
            &["template.components[0].parameters"],
        ),
        row(
            "message: template with invitation-style parameters",
            M::POST,
            &messages,
            body(
                json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "parameters": ["x"]}}),
            ),
            400,
            &["template.parameters"],
        ),
        row(
            "message: every document field broken at once",
            M::POST,
            &messages,
            body(
                json!({"type": "document", "document": {"link": "http://x", "id": "a/b", "caption": "", "filename": "a/b"}, "extra": 1}),
            ),
            400,
            &[
                "document.link",
                "document.id",
                "document.id",
                "document.caption",
                "document.filename",
                "extra",
            ],
        ),
        row(
            "message: text body over 4096 characters",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "é".repeat(4097)}})),
            400,
            &["text.body"],
        ),
        row(
            "message: image caption over 1024 characters",
            M::POST,
            &messages,
            body(json!({"type": "image", "image": {"id": "1", "caption": "c".repeat(1025)}})),
            400,
            &["image.caption"],
        ),
        row(
            "message: a bad group id and a bad body",
            M::POST,
            "/v1/groups/bad.id/messages",
            body(json!({"type": "text", "text": {}})),
            400,
            &["group_id", "text.body"],
        ),
        row(
            "message: body not JSON",
            M::POST,
            &messages,
            Content::Typed("application/json", b"{".to_vec()),
            400,
            &["body"],
        ),
        row(
            "message: not declared JSON",
            M::POST,
            &messages,
            Content::Typed("text/plain", b"hello".to_vec()),
            415,
            &[],
        ),
    ];
    rows.push(
        row(
            "message: Idempotency-Key with a space",
            M::POST,
            &messages,
            body(json!({"type": "text", "text": {"body": "hi"}})),
            400,
            &["Idempotency-Key"],
        )
        .header("idempotency-key", "a b"),
    );
    check_rows(&app, &token, &rows).await;
}

#[tokio::test]
async fn profile_picture_input_rules() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let picture = format!("/v1/groups/{g}/profile-picture");
    let jpeg = |w, h| synthetic_jpeg_header(w, h);
    let mut oversized = jpeg(192, 192);
    oversized.resize(FIVE_MIB + 1, 0);
    let rows = vec![
        row(
            "PNG bytes declared image/jpeg",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", PNG.to_vec()),
            400,
            &["file"],
        ),
        row(
            "text declared image/jpeg",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", b"hello".to_vec()),
            400,
            &["file"],
        ),
        row(
            "empty body declared image/jpeg",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", Vec::new()),
            400,
            &["file"],
        ),
        row(
            "JPEG 191x191",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", jpeg(191, 191)),
            400,
            &["file"],
        ),
        row(
            "JPEG 200x300",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", jpeg(200, 300)),
            400,
            &["file"],
        ),
        row(
            "JPEG over 5 MiB",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", oversized.clone()),
            413,
            &[],
        ),
        row(
            "Content-Type text/plain",
            M::PUT,
            &picture,
            Content::Typed("text/plain", jpeg(192, 192)),
            415,
            &[],
        ),
        row(
            "Content-Type image/png",
            M::PUT,
            &picture,
            Content::Typed("image/png", PNG.to_vec()),
            415,
            &[],
        ),
        row(
            "no Content-Type",
            M::PUT,
            &picture,
            Content::Untyped(jpeg(192, 192)),
            415,
            &[],
        ),
        row(
            "multipart without part file",
            M::PUT,
            &picture,
            Content::Multipart(vec![("picture", jpeg(192, 192), "image/jpeg")]),
            400,
            &["file"],
        ),
        row(
            "multipart part file holding a PNG",
            M::PUT,
            &picture,
            Content::Multipart(vec![("file", PNG.to_vec(), "image/png")]),
            400,
            &["file"],
        ),
        row(
            "multipart part file not square",
            M::PUT,
            &picture,
            Content::Multipart(vec![("file", jpeg(300, 200), "image/jpeg")]),
            400,
            &["file"],
        ),
        row(
            "multipart part file over 5 MiB",
            M::PUT,
            &picture,
            Content::Multipart(vec![("file", oversized.clone(), "image/jpeg")]),
            413,
            &[],
        ),
        row(
            "multipart without a boundary",
            M::PUT,
            &picture,
            Content::Typed("multipart/form-data", b"--x\r\n\r\n".to_vec()),
            400,
            &[],
        ),
        row(
            "picture on group_id bad.id",
            M::PUT,
            "/v1/groups/bad.id/profile-picture",
            Content::Typed("image/jpeg", jpeg(192, 192)),
            400,
            &["group_id"],
        ),
    ];
    check_rows(&app, &token, &rows).await;
}

// ---- the edges that pass -----------------------------------------------------------------

#[tokio::test]
async fn values_at_the_limits_are_accepted_and_forwarded() {
    let app = spawn_app().await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Limits").await;
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "R-limits"})))
        .mount(&app.meta)
        .await;
    let subject = "é".repeat(128);
    let description = "日".repeat(2048);
    let res = app
        .post_json(
            &format!("{}?wait_seconds=0", create_path()),
            &token,
            &json!({"subject": subject, "description": description, "join_approval_mode": "approval_required"}),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let sent: Vec<_> = app
        .upstream_requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == format!("/{API_VERSION}/{PN}/groups"))
        .collect();
    let forwarded: Value =
        serde_json::from_slice(&sent.last().expect("forwarded").body).expect("json");
    assert_eq!(forwarded["subject"], subject.as_str());
    assert_eq!(forwarded["description"], description.as_str());

    for limit in ["1", "1024"] {
        let res = app
            .get(&format!("{}?limit={limit}", create_path()), &token)
            .await;
        assert_eq!(res.status(), 200, "limit={limit}");
    }

    Mock::given(method("DELETE"))
        .and(path(format!("/{API_VERSION}/{g}/participants")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "RM"})))
        .expect(1)
        .mount(&app.meta)
        .await;
    let eight: Vec<String> = (0..8).map(|i| format!("+1650555000{i}")).collect();
    let res = app
        .post_json(
            &format!("/v1/groups/{g}/participants/remove"),
            &token,
            &json!({"participants": eight}),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );

    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{g}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(2)
        .mount(&app.meta)
        .await;
    let res = app
        .http
        .put(app.url(&format!("/v1/groups/{g}/profile-picture")))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(synthetic_jpeg_header(192, 192))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202, "192x192 is the minimum");
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/v1/groups/{g}"),
            &token,
            &json!({"description": ""}),
        )
        .await;
    assert_eq!(res.status(), 202, "an empty description clears it");
}

// ---- X-Request-Id and routing ------------------------------------------------------------

#[tokio::test]
async fn x_request_id_is_on_every_answer_echoed_when_sane_replaced_when_not() {
    let app = spawn_app().await;
    let token = app.sales();
    let sending = |id: Option<String>, authorized: bool| {
        let mut req = app.http.get(app.url(&format!("{}?limit=0", create_path())));
        if authorized {
            req = req.bearer_auth(&token);
        }
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let id_of = |res: &reqwest::Response| {
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Sane: echoed in the header and in the problem, on a 400 and a 401.
    for authorized in [true, false] {
        let res = sending(Some("abc-123".into()), authorized)
            .await
            .expect("request");
        assert_eq!(id_of(&res).as_deref(), Some("abc-123"));
        let p = problem(res).await;
        assert_eq!(p["request_id"], "abc-123");
    }
    // 128 characters is still sane.
    let longest = "r".repeat(128);
    let res = sending(Some(longest.clone()), true).await.expect("request");
    assert_eq!(id_of(&res).as_deref(), Some(longest.as_str()));
    // Insane: replaced, never echoed.
    let insane = [
        "x".repeat(300),
        "x".repeat(129),
        "abc 123".to_owned(),
        "abc\t123".to_owned(),
        "<script>".to_owned(),
        String::new(),
    ];
    for bad in insane {
        let res = sending(Some(bad.clone()), true).await.expect("request");
        let id = id_of(&res).expect("an X-Request-Id");
        assert_ne!(id, bad);
        assert!(!id.is_empty() && id.len() <= 128, "{id}");
        let p = problem(res).await;
        assert_eq!(p["request_id"], id.as_str());
    }
    // Absent: generated, unique.
    let a = id_of(&sending(None, true).await.expect("request")).expect("id");
    let b = id_of(&sending(None, true).await.expect("request")).expect("id");
    assert_ne!(a, b);
    // Success answers carry it too.
    let ok = app
        .http
        .get(app.url(&create_path()))
        .bearer_auth(&token)
        .header("x-request-id", "ok-1")
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), 200);
    assert_eq!(id_of(&ok).as_deref(), Some("ok-1"));
    let health = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert!(id_of(&health).is_some());
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = spawn_app().await;
    answer_everything(&app).await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Routes").await;
    let before = app.upstream_requests().await.len();
    let cases = [
        (Method::GET, "/nope".to_owned(), &[404][..]),
        (Method::GET, "/v1/nope".to_owned(), &[404]),
        (Method::GET, "/v1/groups".to_owned(), &[404, 405]),
        (Method::GET, format!("/v1/groups/{g}/nope"), &[404]),
        (
            Method::POST,
            "/v2/phone-numbers/111111/groups".to_owned(),
            &[404],
        ),
        (Method::DELETE, create_path(), &[404, 405]),
        (Method::PUT, format!("/v1/groups/{g}"), &[404, 405]),
        (Method::POST, format!("/v1/groups/{g}"), &[404, 405]),
        (
            Method::GET,
            format!("/v1/groups/{g}/invitations"),
            &[404, 405],
        ),
        (
            Method::DELETE,
            format!("/v1/groups/{g}/join-requests"),
            &[404, 405],
        ),
        (
            Method::GET,
            format!("/v1/groups/{g}/profile-picture"),
            &[404, 405],
        ),
    ];
    for (m, p, allowed) in cases {
        for authorized in [true, false] {
            let mut req = app.http.request(m.clone(), app.url(&p));
            if authorized {
                req = req.bearer_auth(&token);
            }
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            assert!(allowed.contains(&status), "{m} {p}: {status}");
            assert!(res.headers().contains_key("x-request-id"), "{m} {p}");
            let body = problem(res).await;
            assert_eq!(body["status"], status, "{m} {p}");
        }
    }
    assert_eq!(app.upstream_requests().await.len(), before);
}

/// DESIGN §4: `GET /v1/events`, `after` cursor, `limit` 1–1000 (default 100).
#[tokio::test]
async fn events_input_rules() {
    use Method as M;
    let app = spawn_app().await;
    answer_everything(&app).await;
    let token = app.sales();
    let rows = vec![
        row("events", M::GET, "/v1/events", Content::None, 200, &[]),
        row(
            "events limit 1000",
            M::GET,
            "/v1/events?limit=1000",
            Content::None,
            200,
            &[],
        ),
        row(
            "events limit 0",
            M::GET,
            "/v1/events?limit=0",
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "events limit 1001",
            M::GET,
            "/v1/events?limit=1001",
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "events limit x",
            M::GET,
            "/v1/events?limit=x",
            Content::None,
            400,
            &["limit"],
        ),
        row(
            "events after not a cursor",
            M::GET,
            "/v1/events?after=%21%21",
            Content::None,
            400,
            &["after"],
        ),
        row(
            "events after an unknown event id",
            M::GET,
            "/v1/events?after=evt_0000",
            Content::None,
            400,
            &["after"],
        ),
    ];
    check_rows(&app, &token, &rows).await;
}

// ---- known gaps (DESIGN says otherwise; see the ignore reasons) ----------------------------

/// DESIGN §4: "the shape of path and query parameters and body (400, every broken field
/// listed)". A malformed body must not hide the broken path and query parameters.
#[tokio::test]
async fn a_malformed_body_still_lists_broken_path_and_query_fields() {
    use Method as M;
    let app = spawn_app().await;
    answer_everything(&app).await;
    let token = app.sales();
    let rows = vec![
        row(
            "malformed JSON and a bad phone_number_id and wait_seconds",
            M::POST,
            "/v1/phone-numbers/12a/groups?wait_seconds=99",
            Content::Typed("application/json", b"{".to_vec()),
            400,
            &["phone_number_id", "wait_seconds", "body?"],
        ),
        row(
            "JSON array and a bad group_id",
            M::PATCH,
            "/v1/groups/bad.id",
            json_body(json!([])),
            400,
            &["group_id", "body?"],
        ),
        row(
            "malformed JSON and a bad group_id",
            M::POST,
            "/v1/groups/bad.id/participants/remove",
            Content::Typed("application/json", b"{".to_vec()),
            400,
            &["group_id", "body?"],
        ),
    ];
    check_rows(&app, &token, &rows).await;
}

/// `+16505551234` and `16505551234` are the same WhatsApp user (DESIGN §4 participant =
/// optional `+` then digits); "no duplicates" must not depend on the spelling.
#[tokio::test]
async fn the_same_participant_spelled_twice_is_a_duplicate() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let rows = vec![row(
        "participants +N and N",
        M::POST,
        format!("/v1/groups/{g}/participants/remove"),
        json_body(json!({"participants": ["+16505551234", "16505551234"]})),
        400,
        &["participants[1]"],
    )];
    check_rows(&app, &token, &rows).await;
}

// ---- names that disguise, truncated pictures, loose query strings (DESIGN §4) -----------

#[tokio::test]
async fn subjects_and_descriptions_that_could_disguise_a_group_are_refused() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let create = create_path();
    let group = format!("/v1/groups/{g}");
    let mut rows = Vec::new();
    let subjects = [
        ("NUL", "Team\u{0}chat"),
        ("line feed", "Team\nchat"),
        ("trailing line feed", "Team chat\n"),
        ("carriage return", "Team\rchat"),
        ("escape sequence", "\u{1B}[2JTeam"),
        ("C1 control", "Team\u{85}chat"),
        ("right-to-left override", "Invoice \u{202E}fdp.exe"),
        ("left-to-right embedding", "\u{202A}Team"),
        ("first-strong isolate", "Team \u{2068}chat\u{2069}"),
    ];
    for (what, subject) in subjects {
        rows.push(row(
            format!("create: subject with {what}"),
            M::POST,
            &create,
            json_body(json!({ "subject": subject })),
            400,
            &["subject"],
        ));
        rows.push(row(
            format!("update: subject with {what}"),
            M::PATCH,
            &group,
            json_body(json!({ "subject": subject })),
            400,
            &["subject"],
        ));
    }
    let descriptions = [
        ("NUL", "Rules\u{0}"),
        ("carriage return", "Rules:\r\n1. be kind"),
        ("tab", "Rules:\tbe kind"),
        ("escape sequence", "\u{1B}[31mred"),
        ("right-to-left override", "Pay to \u{202E}4321"),
        ("pop directional isolate", "Rules\u{2069}"),
    ];
    for (what, description) in descriptions {
        rows.push(row(
            format!("create: description with {what}"),
            M::POST,
            &create,
            json_body(json!({ "subject": "Team", "description": description })),
            400,
            &["description"],
        ));
        rows.push(row(
            format!("update: description with {what}"),
            M::PATCH,
            &group,
            json_body(json!({ "description": description })),
            400,
            &["description"],
        ));
    }
    check_rows(&app, &token, &rows).await;

    // A description keeps its paragraphs: line feeds go to Meta as sent.
    let before = app.upstream_requests().await.len();
    let res = app
        .send_json(
            M::PATCH,
            &group,
            &token,
            &json!({"description": "Rules:\n1. be kind\n2. no spam"}),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let sent = app.upstream_requests().await;
    assert_eq!(sent.len(), before + 1);
    let forwarded = String::from_utf8_lossy(&sent[before].body).into_owned();
    assert!(
        forwarded.contains(r"Rules:\n1. be kind\n2. no spam"),
        "{forwarded}"
    );
}

#[tokio::test]
async fn message_text_refuses_only_nul() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let messages = format!("/v1/groups/{g}/messages");
    let rows = vec![
        row(
            "text with NUL",
            M::POST,
            &messages,
            json_body(json!({"type": "text", "text": {"body": "hi\u{0}there"}})),
            400,
            &["text.body"],
        ),
        row(
            "caption with NUL",
            M::POST,
            &messages,
            json_body(
                json!({"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "a\u{0}"}}),
            ),
            400,
            &["image.caption"],
        ),
    ];
    check_rows(&app, &token, &rows).await;
    let res = app
        .post_json(
            &messages,
            &token,
            &json!({"type": "text", "text": {"body": "line one\r\nline two \u{202E}as written"}}),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn a_truncated_jpeg_is_refused() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let picture = format!("/v1/groups/{g}/profile-picture");
    let whole = synthetic_jpeg_header(640, 640);
    // A picture with scan data, cut off in the middle of it as a dropped upload would be.
    let mut scan = whole[..whole.len() - 2].to_vec();
    scan.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    scan.extend(std::iter::repeat_n(0x5A, 4096));
    let cut_in_scan = scan[..3000].to_vec();
    let without_end_marker = whole[..whole.len() - 2].to_vec();
    let rows = vec![
        row(
            "JPEG without its end marker",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", without_end_marker.clone()),
            400,
            &["file"],
        ),
        row(
            "JPEG cut in its scan data",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", cut_in_scan.clone()),
            400,
            &["file"],
        ),
        row(
            "JPEG cut after one byte of its end marker",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", whole[..whole.len() - 1].to_vec()),
            400,
            &["file"],
        ),
        row(
            "multipart JPEG cut in its scan data",
            M::PUT,
            &picture,
            Content::Multipart(vec![("file", cut_in_scan, "image/jpeg")]),
            400,
            &["file"],
        ),
        row(
            "start and end markers without a frame header",
            M::PUT,
            &picture,
            Content::Typed("image/jpeg", vec![0xFF, 0xD8, 0xFF, 0xD9]),
            400,
            &["file"],
        ),
    ];
    check_rows(&app, &token, &rows).await;

    // The same picture, whole, goes up.
    scan.extend_from_slice(&[0xFF, 0xD9]);
    let res = app
        .http
        .put(app.url(&picture))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(scan)
        .send()
        .await
        .expect("request");
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn unknown_and_repeated_query_parameters_are_refused_on_every_route() {
    use Method as M;
    let (app, token, g) = app_with_group().await;
    let admin = app.token("platform", &["admin"]);
    let create = create_path();
    let team = || json_body(json!({"subject": "Team"}));
    let none = || Content::None;
    // Every /v1 route, each with a body it would accept, so the query is the only fault.
    let routes: Vec<(M, String, Content)> = vec![
        (M::POST, create.clone(), team()),
        (M::GET, create.clone(), none()),
        (M::GET, "/v1/group-requests/req_1".into(), none()),
        (M::GET, format!("/v1/groups/{g}"), none()),
        (M::PATCH, format!("/v1/groups/{g}"), team()),
        (
            M::PUT,
            format!("/v1/groups/{g}/profile-picture"),
            Content::Typed("image/jpeg", synthetic_jpeg_header(192, 192)),
        ),
        (M::DELETE, format!("/v1/groups/{g}"), none()),
        (M::GET, format!("/v1/groups/{g}/invite-link"), none()),
        (M::POST, format!("/v1/groups/{g}/invite-link"), none()),
        (
            M::POST,
            format!("/v1/groups/{g}/invitations"),
            json_body(
                json!({"to": "+16505551234", "template": {"name": "group_invite", "language": "en_US"}}),
            ),
        ),
        (
            M::POST,
            format!("/v1/groups/{g}/messages"),
            json_body(json!({"type": "text", "text": {"body": "hi"}})),
        ),
        (M::GET, format!("/v1/groups/{g}/join-requests"), none()),
        (
            M::POST,
            format!("/v1/groups/{g}/join-requests/approve"),
            json_body(json!({"join_request_ids": ["J1"]})),
        ),
        (
            M::POST,
            format!("/v1/groups/{g}/join-requests/reject"),
            json_body(json!({"join_request_ids": ["J1"]})),
        ),
        (
            M::POST,
            format!("/v1/groups/{g}/participants/remove"),
            json_body(json!({"participants": ["+16505551234"]})),
        ),
        (M::GET, "/v1/events".into(), none()),
    ];
    let mut rows = Vec::new();
    for (method, path, content) in &routes {
        rows.push(row(
            "an unknown parameter",
            method.clone(),
            format!("{path}?foo=1"),
            content.clone(),
            400,
            &["foo"],
        ));
        rows.push(row(
            "an unknown parameter twice, with an empty one",
            method.clone(),
            format!("{path}?foo=1&foo=2&bar"),
            content.clone(),
            400,
            &["foo", "bar"],
        ));
    }
    let repeated = [
        (
            M::GET,
            format!("/v1/groups/{g}?fields=subject&fields=participants"),
            none(),
            "fields",
        ),
        (
            M::GET,
            format!("/v1/groups/{g}?fields=subject&fields=subject"),
            none(),
            "fields",
        ),
        (
            M::POST,
            format!("{create}?wait_seconds=0&wait_seconds=30"),
            team(),
            "wait_seconds",
        ),
        (
            M::GET,
            format!("{create}?limit=5&limit=1024"),
            none(),
            "limit",
        ),
        (
            M::GET,
            format!("/v1/groups/{g}/join-requests?limit=5&limit=6"),
            none(),
            "limit",
        ),
        (
            M::GET,
            "/v1/events?after=evt_a&after=evt_b".into(),
            none(),
            "after",
        ),
    ];
    for (method, path, content, name) in repeated {
        rows.push(row(
            format!("{name} given twice"),
            method,
            path,
            content,
            400,
            &[name],
        ));
    }
    check_rows(&app, &token, &rows).await;

    let admin_routes: Vec<(M, String, Content)> = vec![
        (
            M::GET,
            format!("/v1/admin/phone-numbers/{PN}/groups"),
            none(),
        ),
        (
            M::PUT,
            format!("/v1/admin/groups/{g}/owner"),
            json_body(json!({"team": "sales", "phone_number_id": PN})),
        ),
        (M::GET, "/v1/admin/audit".into(), none()),
        (
            M::POST,
            "/v1/admin/tokens".into(),
            json_body(json!({"team": "sales", "scopes": ["groups:read"]})),
        ),
        (M::DELETE, "/v1/admin/tokens/abc".into(), none()),
        (M::GET, "/v1/admin/events/unowned".into(), none()),
        (M::GET, "/v1/admin/webhook-endpoints".into(), none()),
    ];
    let mut rows = Vec::new();
    for (method, path, content) in admin_routes {
        rows.push(row(
            "an unknown parameter",
            method,
            format!("{path}?foo=1"),
            content,
            400,
            &["foo"],
        ));
    }
    rows.push(row(
        "audit team given twice",
        M::GET,
        "/v1/admin/audit?team=sales&team=ops",
        none(),
        400,
        &["team"],
    ));
    check_rows(&app, &admin, &rows).await;

    // The parameters a route defines, each once, still work.
    for path in [
        format!("/v1/groups/{g}?fields=subject,participants"),
        format!("{create}?limit=5&after=c2VxOjE"),
        "/v1/events?limit=5".to_owned(),
    ] {
        let res = app.get(&path, &token).await;
        assert_eq!(
            res.status(),
            200,
            "{path}: {}",
            res.text().await.unwrap_or_default()
        );
    }
}
