//! Meta's failures and limits, idempotent retries, rate limits, metrics, secrets kept out
//! of every output, body limits and graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn graph(p: &str) -> String {
    format!("/{API_VERSION}/{p}")
}

fn create_path() -> String {
    format!("/v1/phone-numbers/{PN}/groups")
}

async fn post_with_key(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url(&create_path()))
        .bearer_auth(app.sales())
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

// ---- Idempotency-Key ------------------------------------------------------------------------

#[tokio::test]
async fn the_same_key_and_body_replays_without_a_second_group() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "IDEM-1"})))
        .mount(&app.meta)
        .await;
    let body = json!({"subject": "Once only"});
    let first = post_with_key(&app, "key-1", &body).await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await.unwrap();
    let second = post_with_key(&app, "key-1", &body).await;
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.json::<Value>().await.unwrap(), first_body);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 1);

    let conflict = post_with_key(&app, "key-1", &json!({"subject": "Something else"})).await;
    assert_eq!(conflict.status(), 422);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 1);

    // Another team may use the same key for its own request.
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "IDEM-2"})))
        .with_priority(1)
        .mount(&app.meta)
        .await;
    let other = app
        .http
        .post(app.url(&create_path()))
        .bearer_auth(app.token("support", &["groups:write"]))
        .header("Idempotency-Key", "key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 202);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 2);
}

#[tokio::test]
async fn concurrent_duplicates_wait_for_the_first() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"request_id": "IDEM-C"}))
                .set_delay(Duration::from_millis(600)),
        )
        .mount(&app.meta)
        .await;
    let body = json!({"subject": "Concurrent"});
    let (a, b) = tokio::join!(
        post_with_key(&app, "key-c", &body),
        post_with_key(&app, "key-c", &body)
    );
    assert_eq!(a.status(), 202);
    assert_eq!(b.status(), 202);
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["request_id"], b["request_id"]);
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 1);
}

#[tokio::test]
async fn a_failed_creation_is_replayed_not_retried_upstream() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(meta_error(131000, "Something went wrong")),
        )
        .mount(&app.meta)
        .await;
    let body = json!({"subject": "Unknown outcome"});
    assert_eq!(post_with_key(&app, "key-f", &body).await.status(), 502);
    let again = post_with_key(&app, "key-f", &body).await;
    assert_eq!(again.status(), 502);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(creations_sent(&app.upstream_requests().await, PN), 1);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_400() {
    let app = spawn_app().await;
    let res = post_with_key(&app, "has space", &json!({"subject": "S"})).await;
    assert_eq!(res.status(), 400);
    assert_eq!(error_fields(&problem(res).await), vec!["Idempotency-Key"]);
    assert!(app.upstream_requests().await.is_empty());
}

// ---- rate limits ----------------------------------------------------------------------------

#[tokio::test]
async fn a_team_over_its_budget_gets_429_then_recovers() {
    let app = spawn_app_with("[teams.support.rate_limit]\nper_second = 2\nburst = 2\n").await;
    let support = app.token("support", &["groups:read"]);
    let list = format!("/v1/phone-numbers/{PN}/groups");
    assert_eq!(app.get(&list, &support).await.status(), 200);
    assert_eq!(app.get(&list, &support).await.status(), 200);
    let refused = app.get(&list, &support).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after));
    assert_eq!(refused.headers()["ratelimit-limit"], "2");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(problem(refused).await["status"], 429);
    // Other teams are not affected.
    assert_eq!(app.get(&list, &app.sales()).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get(&list, &support).await.status(), 200);
}

#[tokio::test]
async fn a_phone_number_budget_protects_metas_quota_for_all_teams() {
    let app = spawn_app_with(&format!(
        "[phone_numbers.{PN}.rate_limit]\nper_second = 1\nburst = 1\n"
    ))
    .await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "Q"})))
        .mount(&app.meta)
        .await;
    let first = app
        .post_json(&create_path(), &app.sales(), &json!({"subject": "A"}))
        .await;
    assert_eq!(first.status(), 202);
    let second = app
        .post_json(
            &create_path(),
            &app.token("support", &["groups:write"]),
            &json!({"subject": "B"}),
        )
        .await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().get("retry-after").is_some());
    assert_eq!(
        creations_sent(&app.upstream_requests().await, PN),
        1,
        "the refused call never reached Meta"
    );
}

// ---- fault matrix ---------------------------------------------------------------------------

#[tokio::test]
async fn each_throttling_code_is_429_and_never_retried_blindly_for_creates() {
    for code in [4, 17, 80007, 130429, 131056, 131208, 133016] {
        let app = spawn_app().await;
        Mock::given(method("POST"))
            .and(path(graph(&format!("{PN}/groups"))))
            .respond_with(ResponseTemplate::new(400).set_body_json(meta_error(code, "throttled")))
            .mount(&app.meta)
            .await;
        let res = app
            .post_json(&create_path(), &app.sales(), &json!({"subject": "T"}))
            .await;
        assert_eq!(res.status(), 429, "code {code}");
        assert!(res.headers().get("retry-after").is_some(), "code {code}");
        assert_eq!(problem(res).await["upstream"]["code"], code);
        assert_eq!(
            creations_sent(&app.upstream_requests().await, PN),
            1,
            "code {code}"
        );
    }
}

#[tokio::test]
async fn usage_headers_set_retry_after() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(meta_error(80007, "WABA rate limit"))
                .insert_header(
                    "x-business-use-case-usage",
                    r#"{"123":[{"type":"whatsapp_business_management","call_count":100,"estimated_time_to_regain_access":3}]}"#,
                ),
        )
        .mount(&app.meta)
        .await;
    let res = app
        .post_json(&create_path(), &app.sales(), &json!({"subject": "T"}))
        .await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "180");
}

#[tokio::test]
async fn a_deadline_bounds_all_attempts_of_a_read() {
    let app = spawn_app_with("").await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Slow").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(4)),
        )
        .mount(&app.meta)
        .await;
    let started = Instant::now();
    let res = app
        .get(&format!("/v1/groups/{g}/invite-link"), &token)
        .await;
    assert_eq!(res.status(), 504);
    // timeout_ms = 2000 in tests bounds the whole call, retries included.
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "{:?}",
        started.elapsed()
    );
    let attempts = app
        .upstream_requests()
        .await
        .iter()
        .filter(|r| r.url.path() == graph(&format!("{g}/invite_link")))
        .count();
    assert!((1..=3).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn a_slow_attempt_is_cut_short_and_retried_within_the_deadline() {
    let app = spawn_app_tuned(None, "", "attempt_timeout_ms = 300", "").await;
    let token = app.sales();
    let g = app.create_group(&token, PN, "Flaky").await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .mount(&app.meta)
        .await;
    Mock::given(method("GET"))
        .and(path(graph(&format!("{g}/invite_link"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"invite_link": "https://chat.whatsapp.com/OK"})),
        )
        .mount(&app.meta)
        .await;
    let started = Instant::now();
    let res = app
        .get(&format!("/v1/groups/{g}/invite-link"), &token)
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let attempts = app
        .upstream_requests()
        .await
        .iter()
        .filter(|r| r.url.path() == graph(&format!("{g}/invite_link")))
        .count();
    assert_eq!(attempts, 2);
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body); answers its request line,
/// or None when the connection closed or broke.
pub fn read_request(reader: &mut impl BufRead) -> Option<String> {
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return None;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(first)
}

/// A "Meta" that answers creations properly and drops every other connection unanswered,
/// counting the requests it saw by their first line.
fn resetting_meta() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let Some(first) = read_request(&mut reader) else {
                continue;
            };
            log.lock().unwrap().push(first.trim().to_owned());
            if first.starts_with("POST") && first.contains("/groups ") {
                let payload = r#"{"messaging_product":"whatsapp","request_id":"RST"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                    payload.len()
                );
            }
            // Everything else: the connection is closed without an answer.
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

#[tokio::test]
async fn a_dropped_connection_is_retried_for_reads_and_never_for_resets() {
    let (base, seen) = resetting_meta();
    let app = spawn_app_against(&base, "").await;
    let token = app.sales();
    let created = app.request_creation(&token, PN, "Reset").await;
    app.complete_creation(&token, PN, &created, "RST", "GRST", "Reset")
        .await;

    let read = app.get("/v1/groups/GRST/invite-link", &token).await;
    assert_eq!(read.status(), 502);
    let reset = app
        .post_json("/v1/groups/GRST/invite-link", &token, &json!({}))
        .await;
    assert_eq!(reset.status(), 502);
    let seen = seen.lock().unwrap().clone();
    let gets = seen
        .iter()
        .filter(|l| l.starts_with("GET ") && l.contains("/invite_link"))
        .count();
    let posts = seen
        .iter()
        .filter(|l| l.starts_with("POST ") && l.contains("/invite_link"))
        .count();
    assert_eq!(gets, 3, "a read is tried three times in all: {seen:?}");
    assert_eq!(posts, 1, "a link reset is never replayed: {seen:?}");
}

/// A "Meta" that keeps connections alive and counts them: creations get a request id, every
/// other request an invite link.
fn keep_alive_meta() -> (String, Arc<Mutex<usize>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(Mutex::new(0usize));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            *counter.lock().unwrap() += 1;
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                // One request after the other on the same connection, until the client closes it.
                while let Some(first) = read_request(&mut reader) {
                    let payload = if first.starts_with("POST") && first.contains("/groups ") {
                        r#"{"messaging_product":"whatsapp","request_id":"KA"}"#
                    } else {
                        r#"{"messaging_product":"whatsapp","invite_link":"https://chat.whatsapp.com/KA"}"#
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
                        payload.len()
                    );
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), connections)
}

#[tokio::test]
async fn calls_to_meta_reuse_pooled_connections() {
    let (base, connections) = keep_alive_meta();
    let app = spawn_app_against(&base, "").await;
    let token = app.sales();
    let created = app.request_creation(&token, PN, "Pooled").await;
    app.complete_creation(&token, PN, &created, "KA", "GKA", "Pooled")
        .await;
    for _ in 0..10 {
        let res = app.get("/v1/groups/GKA/invite-link", &token).await;
        assert_eq!(res.status(), 200);
    }
    // One worker in tests: eleven calls to Meta over one kept-alive connection.
    assert_eq!(*connections.lock().unwrap(), 1);
}

// ---- metrics --------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_show_requests_upstream_calls_webhooks_and_refusals() {
    let app = spawn_app_with("[teams.support.rate_limit]\nper_second = 1\nburst = 1\n").await;
    let token = app.sales();
    app.create_group(&token, PN, "Metrics").await;
    let support = app.token("support", &["groups:read"]);
    app.get(&create_path(), &support).await;
    app.get(&create_path(), &support).await;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for name in [
        "wagw_http_requests_total",
        "wagw_http_request_duration_seconds_bucket",
        "wagw_upstream_requests_total",
        "wagw_upstream_request_duration_seconds_bucket",
        "wagw_webhook_posts_total",
        "wagw_webhook_events_total",
        "wagw_rate_limited_total",
        "wagw_build_info",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(text.contains(r#"route="/v1/phone-numbers/{phone_number_id}/groups""#));
    assert!(text.contains(r#"operation="create_group""#));
    assert!(text.contains(r#"team="support""#));
}

// ---- body limits ----------------------------------------------------------------------------

#[tokio::test]
async fn json_bodies_over_64_kib_are_413() {
    let app = spawn_app().await;
    let big = json!({"subject": "S", "description": "x".repeat(70 * 1024)});
    let res = app.post_json(&create_path(), &app.sales(), &big).await;
    assert_eq!(res.status(), 413);
    problem(res).await;
    assert!(app.upstream_requests().await.is_empty());
}

/// Sends a request head and the start of a body that never ends; answers the status line
/// the gateway sends back, and how long it took.
async fn drip(port: u16, head: String) -> (String, Duration) {
    // Blocking socket work off the test's runtime, which also drives the server.
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(head.as_bytes()).unwrap();
        let mut status = String::new();
        BufReader::new(stream).read_line(&mut status).unwrap();
        (status, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_dripping_its_body_is_cut_off() {
    let slow = spawn_app_tuned(None, "body_timeout_ms = 500", "", "").await;
    let token = slow.sales();
    let g = slow.create_group(&token, PN, "Drip").await;
    let heads = [
        format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"subj",
            create_path()
        ),
        format!(
            "PUT /v1/groups/{g}/profile-picture HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\nJFIF"
        ),
        format!(
            "PUT /v1/groups/{g}/profile-picture HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nJFIF"
        ),
    ];
    for head in heads {
        let (status, elapsed) = drip(slow.port, head).await;
        assert!(status.contains(" 408 "), "got {status:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }
}

// ---- the real binary: secrets, shutdown -----------------------------------------------------

/// The gateway binary with its output captured.
struct Binary {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn spawn(config: &str, envs: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(
            &file,
            config.replace("{DIR}", &dir.path().display().to_string()),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wa-groups-gateway"));
        cmd.arg("--config")
            .arg(&file)
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("Swagger UI: http://127.0.0.1:").nth(1)
                        && let Some(port) = rest.split('/').next().and_then(|p| p.parse().ok())
                    {
                        let _ = tx.send(port);
                    }
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the gateway did not start: {}", output.lock().unwrap()));
        Binary {
            child,
            port,
            output,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary_config(meta: &str, app_secret: &str, signing: &str, access_token: &str) -> String {
    format!(
        r#"
[server]
host = "127.0.0.1"
port = 0
workers = 1
shutdown_grace_seconds = 10

[graph]
mode = "live"
base_url = "{meta}"
timeout_ms = 3000

[storage]
url = "sqlite://{{DIR}}/gateway.db"

[telemetry]
log_format = "json"
log_level = "debug"

[webhooks]
verify_token = "verify-for-binary"
app_secret = "{app_secret}"

[[auth.keys]]
kid = "bin"
algorithm = "HS256"
secret = "{signing}"
signing = true

[phone_numbers.{PN}]
access_token = "{access_token}"

[teams.sales]
phone_numbers = ["{PN}"]
"#
    )
}

fn mint(signing: &str) -> String {
    let settings = wa_groups_gateway::config::Settings::from_toml_overrides(&format!(
        "[[auth.keys]]\nkid = \"bin\"\nalgorithm = \"HS256\"\nsecret = \"{signing}\"\n"
    ))
    .unwrap();
    wa_groups_gateway::cli::issue_token(
        &settings,
        "sales",
        &["groups:read groups:write groups:delete groups:invite".into()],
        &[],
        Some("1h"),
        None,
    )
    .expect("token")
    .token
}

#[tokio::test]
async fn no_secret_appears_in_logs_responses_or_metrics() {
    const ACCESS: &str = "CANARYaccessTOKEN0123456789";
    const APP: &str = "CANARYappSECRET0123456789";
    const SIGNING: &str = "CANARYsigningKEY0123456789";
    let meta = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"request_id": "CANARY-REQ"})))
        .mount(&meta)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(meta_error(190, "Invalid OAuth access token")),
        )
        .mount(&meta)
        .await;
    // The team's webhook: its secret, and credentials in its URL, are secrets too. The
    // receiver (wiremock) refuses deliveries, so failures get logged.
    const HOOK_SECRET_RAW: &str = "CANARYteamHOOKsecret0123456789";
    const URL_PASSWORD: &str = "CANARYurlPASSWORD0123";
    use base64::Engine;
    let hook_secret = base64::engine::general_purpose::STANDARD.encode(HOOK_SECRET_RAW);
    let hook_url = meta
        .uri()
        .replace("http://", &format!("http://ops:{URL_PASSWORD}@"))
        + "/hooks?key=CANARYqueryKEY";
    let config = format!(
        "{}webhook = {{ url = \"{hook_url}\", secret = \"whsec_{hook_secret}\" }}\n",
        binary_config(&meta.uri(), APP, SIGNING, ACCESS)
    );
    let bin = Binary::spawn(&config, &[("RUST_LOG", "trace")]);
    let token = mint(SIGNING);
    let http = reqwest::Client::new();
    let mut seen = String::new();
    let record = |res: reqwest::Response| async move {
        let mut text = format!("{} {:?}\n", res.status(), res.headers());
        text.push_str(&res.text().await.unwrap_or_default());
        text
    };
    seen.push_str(
        &record(
            http.post(bin.url(&create_path()))
                .bearer_auth(&token)
                .json(&json!({"subject": "Canary"}))
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    let hook = lifecycle_webhook(
        PN,
        vec![
            json!({"timestamp": "1", "group_id": "GCAN", "type": "group_create", "request_id": "CANARY-REQ", "subject": "Canary", "invite_link": "https://chat.whatsapp.com/C"}),
        ],
    );
    let raw = serde_json::to_vec(&hook).unwrap();
    let sig = wa_groups_gateway::domain::meta_webhook::sign(APP.as_bytes(), &raw);
    seen.push_str(
        &record(
            http.post(bin.url("/webhooks/whatsapp"))
                .header("x-hub-signature-256", sig)
                .header("content-type", "application/json")
                .body(raw.clone())
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    seen.push_str(
        &record(
            http.post(bin.url("/webhooks/whatsapp"))
                .header("x-hub-signature-256", "sha256=00")
                .body(raw)
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meta refuses the gateway's token (190): logged loudly, without the token.
    seen.push_str(
        &record(
            http.get(bin.url("/v1/groups/GCAN"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    seen.push_str(
        &record(
            http.get(bin.url("/v1/groups/GCAN"))
                .bearer_auth("garbage.jwt.here")
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    seen.push_str(&record(http.get(bin.url("/metrics")).send().await.unwrap()).await);
    seen.push_str(&record(http.get(bin.url("/openapi.json")).send().await.unwrap()).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = bin.output.lock().unwrap().clone();
    assert!(
        logs.contains("Meta refused the gateway's access token"),
        "the 190 is logged loudly"
    );
    assert!(seen.contains("502"), "the 190 became a 502");
    assert!(
        logs.contains("webhook delivery failed"),
        "a delivery to the team's webhook was attempted and failed"
    );
    for secret in [
        ACCESS,
        APP,
        SIGNING,
        token.as_str(),
        hook_secret.as_str(),
        URL_PASSWORD,
        "CANARYqueryKEY",
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
        assert!(
            !seen.contains(secret),
            "a secret leaked into a response or the metrics"
        );
    }
    // JSON logs carry the request id and the team.
    assert!(
        logs.lines()
            .any(|l| l.contains("\"request_id\"") && l.contains("\"team\":\"sales\""))
    );
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    let meta = MockServer::builder().start().await;
    Mock::given(method("POST"))
        .and(path(graph(&format!("{PN}/groups"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"request_id": "TERM"}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&meta)
        .await;
    let mut bin = Binary::spawn(
        &binary_config(&meta.uri(), "app", "signing-key-for-term", "tok"),
        &[],
    );
    let token = mint("signing-key-for-term");
    let url = bin.url(&create_path());
    let in_flight = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(&json!({"subject": "Graceful"}))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Signalled once the request is in flight (Meta has it), however loaded the machine.
    crate::helpers::eventually(
        Duration::from_secs(10),
        "the creation reaches Meta",
        async || {
            let asked = meta.received_requests().await.unwrap_or_default();
            (!asked.is_empty()).then_some(())
        },
    )
    .await;
    bin.signal("TERM");
    let status = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got an answer");
    assert_eq!(status, 202);
    let exit = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            if let Some(status) = bin.child.try_wait().unwrap() {
                return Some(status);
            }
            if started.elapsed() > Duration::from_secs(15) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        exit.is_some_and(|s| s.success()),
        "the gateway exits cleanly after SIGTERM: {exit:?}"
    );
}
