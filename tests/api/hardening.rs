//! Issue 12: each attack or fault that was tried against the release binary, run against
//! the real binary again, and the bound it now meets.

use secrecy::ExposeSecret;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::domain::meta_webhook::sign;
use wa_groups_gateway::storage::sql::SqlStorage;
use wiremock::MockServer;

use crate::fleet::{Gateway, binary, free_port, serve};
use crate::helpers::*;
use crate::resilience::read_request;

/// The binary with `args`, run in `dir` with only `envs` of the WAGW variables.
fn command(dir: &Path, args: &[&str], envs: &[(&str, String)]) -> Command {
    let mut cmd = binary(dir, "hardening-test");
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `serve` and waits for `/healthz`; `config` is written to `dir` when given.
async fn start(dir: &Path, config: Option<&str>, envs: &[(&str, String)], run: u32) -> Gateway {
    let port = free_port();
    let mut envs = envs.to_vec();
    envs.push(("WAGW__SERVER__PORT", port.to_string()));
    let mut args = Vec::new();
    let file = dir.join("gateway.toml");
    if let Some(config) = config {
        std::fs::write(&file, config).expect("config file");
        args.extend(["--config", file.to_str().expect("utf-8 path")]);
    }
    args.push("serve");
    serve(command(dir, &args, &envs), dir, port, run).await
}

fn token(
    settings: &Settings,
    team: &str,
    scopes: &[Scope],
    numbers: Option<Vec<String>>,
) -> String {
    TokenIssuer::new(&settings.auth, None)
        .expect("signing key")
        .issue(team, scopes, numbers, 3600)
        .expect("token")
        .token
}

const ALL_GROUP_SCOPES: [Scope; 4] = [
    Scope::GroupsRead,
    Scope::GroupsWrite,
    Scope::GroupsDelete,
    Scope::GroupsInvite,
];

async fn count(db_url: &str, sql: &str) -> i64 {
    let storage = SqlStorage::connect(db_url, 2).await.expect("database");
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(storage.pool())
        .await
        .expect("count");
    storage.pool().close().await;
    n
}

// ---- 1. anonymous calls ----------------------------------------------------------------------

#[tokio::test]
async fn four_hundred_anonymous_calls_store_nothing_and_are_throttled_per_address() {
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = tuned_config(
        &meta.uri(),
        dir.path(),
        "anonymous_rate_limit = { per_second = 1, burst = 20 }",
        "",
        "",
    );
    let settings = Settings::from_toml_overrides(&config).unwrap();
    let gateway = start(dir.path(), Some(&config), &[], 1).await;
    let http = reqwest::Client::new();
    let url = gateway.url("/v1/groups/AAAA");
    let statuses: Vec<u16> = futures_util::stream::iter(0..400)
        .map(|i| {
            let req = if i % 2 == 0 {
                http.delete(&url)
            } else {
                http.delete(&url).bearer_auth("not.a.token")
            };
            async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized + throttled, 400, "{statuses:?}");
    // The burst, plus what refilled meanwhile at 1 per second.
    assert!(
        (20..=40).contains(&unauthorized),
        "{unauthorized} answered 401"
    );
    let refused = http.delete(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());

    // A caller with a token, from the same address, is not affected.
    let sales = token(&settings, "sales", &ALL_GROUP_SCOPES, None);
    let listed = http
        .get(gateway.url(&format!("/v1/phone-numbers/{PN}/groups")))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    let db = settings.storage.url.expose_secret().to_owned();
    let stored = count(&db, "SELECT COUNT(*) FROM audit_log").await;
    assert!(stored <= 5, "{stored} rows stored for 400 anonymous calls");
    let metrics = http
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("wagw_unauthenticated_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(counted >= 401.0, "counted {counted}");
    let lines = gateway
        .stderr()
        .lines()
        .filter(|l| l.contains("refused before authentication"))
        .count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} log lines for 401 refusals"
    );
    println!(
        "anonymous flood: {unauthorized} x 401, {throttled} x 429, {stored} audit rows, {lines} log lines, {counted} counted"
    );
}

#[tokio::test]
async fn two_thousand_malformed_requests_are_counted_logged_a_few_times_and_throttle_the_address() {
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = tuned_config(
        &meta.uri(),
        dir.path(),
        "anonymous_rate_limit = { per_second = 1, burst = 20 }",
        "",
        "",
    );
    let settings = Settings::from_toml_overrides(&config).unwrap();
    // The default log level: the probe saw one ERROR line per request at it.
    let gateway = start(dir.path(), Some(&config), &[], 1).await;
    let addr = gateway.url("").trim_start_matches("http://").to_owned();
    let malformed: [&[u8]; 3] = [
        b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Probe: a\x01b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-\x01Probe: ab\r\n\r\n",
        b"GET\x01/healthz HTTP/1.1\r\nHost: gateway\r\n\r\n",
    ];
    let started = Instant::now();
    let answers: Vec<String> = futures_util::stream::iter(0..2000)
        .map(|i| {
            let (addr, request) = (addr.clone(), malformed[i % malformed.len()]);
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                stream.write_all(request).await.ok()?;
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.ok()?;
                Some(String::from_utf8_lossy(&answer).lines().next()?.to_owned())
            }
        })
        .buffer_unordered(20)
        .filter_map(|a| async move { a })
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 400")),
        "{:?}",
        answers.iter().find(|a| !a.starts_with("HTTP/1.1 400"))
    );
    assert!(answers.len() >= 1990, "{} answered", answers.len());

    // The address spent its anonymous allowance: an ordinary anonymous call is throttled…
    let http = reqwest::Client::new();
    let refused = http
        .delete(gateway.url("/v1/groups/AAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    // …while a caller with a token, from the same address, is not affected.
    let sales = token(&settings, "sales", &ALL_GROUP_SCOPES, None);
    let listed = http
        .get(gateway.url(&format!("/v1/phone-numbers/{PN}/groups")))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    let metrics = http
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("wagw_requests_refused_total{reason=\"malformed\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(counted >= answers.len() as f64, "counted {counted}");

    // At most one line a second (and one more for the last second).
    let log = gateway.stderr();
    let lines = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("before routing"))
        .count();
    let bound = elapsed.as_secs() as usize + 2;
    assert!(
        (1..=bound).contains(&lines),
        "{lines} log lines for {} malformed requests in {elapsed:?}:\n{}",
        answers.len(),
        log.lines()
            .filter(|l| l.contains("ERROR"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "malformed flood: {} x 400 in {elapsed:?}, {counted} counted, {lines} log lines, then 429",
        answers.len()
    );
}

// ---- 2. webhook ingress memory ---------------------------------------------------------------

#[tokio::test]
async fn a_flood_of_large_unsigned_posts_costs_bounded_memory_and_genuine_posts_stay_fast() {
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        tuned_config(&meta.uri(), dir.path(), "workers = 2", "", "").replace("workers = 1\n", "");
    let gateway = start(dir.path(), Some(&config), &[], 1).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = gateway.url("/webhooks/whatsapp");
    let genuine = |i: usize| {
        let body = serde_json::to_vec(&lifecycle_webhook(
            PN,
            vec![json!({"timestamp": i.to_string(), "group_id": format!("GMEM{i}"), "type": "group_suspend"})],
        ))
        .unwrap();
        let signature = sign(APP_SECRET.as_bytes(), &body);
        http.post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
    };
    for i in 0..5 {
        assert_eq!(genuine(i).send().await.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = gateway.rss();

    // 20 clients sending 15 MiB bodies with a wrong signature, again and again.
    let big = actix_web::web::Bytes::from(vec![b'x'; 15 * 1024 * 1024]);
    let stop = Instant::now() + Duration::from_secs(6);
    let flood: Vec<_> = (0..20)
        .map(|n| {
            let (http, url, big) = (http.clone(), url.clone(), big.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while Instant::now() < stop {
                    let mut req = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(big.clone());
                    // Half well-formed but wrong (read, then refused), half without.
                    if n % 2 == 0 {
                        req =
                            req.header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)));
                    }
                    answers.push(req.send().await.map(|r| r.status().as_u16()).unwrap_or(0));
                }
                answers
            })
        })
        .collect();
    let mut peak = baseline;
    let mut latencies = Vec::new();
    let mut i = 100;
    while Instant::now() < stop {
        peak = peak.max(gateway.rss());
        if i % 5 == 0 {
            let started = Instant::now();
            let res = genuine(i).send().await.unwrap();
            assert_eq!(res.status(), 200, "a genuine POST during the flood");
            latencies.push(started.elapsed());
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut statuses = Vec::new();
    for task in flood {
        statuses.extend(task.await.unwrap());
    }
    peak = peak.max(gateway.rss());
    let growth = peak.saturating_sub(baseline);
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(!latencies.is_empty());
    assert!(
        statuses.iter().all(|s| matches!(s, 0 | 401 | 503)),
        "flood answers: {statuses:?}"
    );
    assert!(
        growth < 100 * 1024 * 1024,
        "RSS grew by {} MiB",
        growth / (1024 * 1024)
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a genuine POST took {slowest:?}"
    );
    println!(
        "ingress flood: {} unsigned 15 MiB POSTs ({} x 401, {} x 503, {} cut), RSS {} MiB -> peak {} MiB (+{} MiB); {} genuine POSTs, slowest {slowest:?}",
        statuses.len(),
        statuses.iter().filter(|s| **s == 401).count(),
        statuses.iter().filter(|s| **s == 503).count(),
        statuses.iter().filter(|s| **s == 0).count(),
        baseline / (1024 * 1024),
        peak / (1024 * 1024),
        growth / (1024 * 1024),
        latencies.len()
    );
}

/// Bytes of body the flood keeps in flight: the gateway's budget (`webhooks.max_in_flight_bytes`,
/// 32 MiB by default) plus actix's buffers of a hundred connections (up to 128 KiB each, read
/// ahead of the handler) and slack.
const CHUNKED_FLOOD_PEAK: u64 = 64 * 1024 * 1024;
/// What may stay resident once the flood is over.
const CHUNKED_FLOOD_LEFT: u64 = 16 * 1024 * 1024;

/// One flooder: chunked POSTs of 64 KiB chunks with a well-formed but wrong signature, sent
/// without pause and without reading the answer until the body is sent; again until `stop`.
async fn chunked_flooder(
    addr: std::net::SocketAddr,
    stop: Instant,
    sent: Arc<AtomicUsize>,
) -> (usize, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /webhooks/whatsapp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: sha256={}\r\n\r\n",
        "0".repeat(64)
    );
    let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b'x', 64 * 1024));
    chunk.extend_from_slice(b"\r\n");
    let (mut answered, mut cut) = (0, 0);
    while Instant::now() < stop {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            cut += 1;
            continue;
        };
        let mut written = stream.write_all(head.as_bytes()).await.is_ok();
        // 15 MiB, within webhooks.max_body_bytes: the whole body is read before the HMAC
        // can be found wrong.
        for _ in 0..240 {
            if !written || Instant::now() >= stop {
                break;
            }
            written = stream.write_all(&chunk).await.is_ok();
            sent.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        if written && stream.write_all(b"0\r\n\r\n").await.is_ok() {
            let mut answer = [0u8; 12];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer));
            if matches!(read.await, Ok(Ok(_))) {
                answered += 1;
                continue;
            }
        }
        cut += 1;
    }
    (answered, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_chunked_posts_with_a_wrong_signature_costs_bounded_memory_given_back_after() {
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config =
        tuned_config(&meta.uri(), dir.path(), "workers = 2", "", "").replace("workers = 1\n", "");
    let gateway = start(dir.path(), Some(&config), &[], 1).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = gateway.url("/webhooks/whatsapp");
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/webhooks/whatsapp")
        .parse()
        .unwrap();
    let genuine = |i: usize| {
        let body = serde_json::to_vec(&lifecycle_webhook(
            PN,
            vec![json!({"timestamp": i.to_string(), "group_id": format!("GCHUNK{i}"), "type": "group_suspend"})],
        ))
        .unwrap();
        let signature = sign(APP_SECRET.as_bytes(), &body);
        http.post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
    };
    for i in 0..5 {
        assert_eq!(genuine(i).send().await.unwrap().status(), 200);
    }
    let baseline = gateway.rss();

    // A hundred clients, no pause between chunks, answers read only once a body is sent.
    let stop = Instant::now() + Duration::from_secs(8);
    let sent = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..100)
        .map(|_| tokio::spawn(chunked_flooder(addr, stop, sent.clone())))
        .collect();
    let mut peak = baseline;
    let mut latencies = Vec::new();
    let mut i = 100;
    while Instant::now() < stop {
        peak = peak.max(gateway.rss());
        if i % 5 == 0 {
            let started = Instant::now();
            let res = genuine(i)
                .send()
                .await
                .unwrap_or_else(|e| panic!("a genuine POST failed during the flood: {e:?}"));
            assert_eq!(res.status(), 200, "a genuine POST during the flood");
            latencies.push(started.elapsed());
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut answered, mut cut) = (0, 0);
    for task in flood {
        let (a, c) = task.await.unwrap();
        (answered, cut) = (answered + a, cut + c);
    }
    peak = peak.max(gateway.rss());

    // Once the flood is over, the memory it took is given back (polled: the gateway may
    // still be reading what the kernel had buffered).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = gateway.rss();
    while after > baseline + CHUNKED_FLOOD_LEFT && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = gateway.rss();
    }
    let mib = |b: u64| b / (1024 * 1024);
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    let report = format!(
        "chunked flood: {} MiB sent in {} POSTs ({answered} answered, {cut} cut), RSS {} MiB -> peak {} MiB -> {} MiB after; {} genuine POSTs, slowest {slowest:?}",
        sent.load(Ordering::Relaxed) / (1024 * 1024),
        answered + cut,
        mib(baseline),
        mib(peak),
        mib(after),
        latencies.len()
    );
    println!("{report}");
    assert!(
        sent.load(Ordering::Relaxed) > 256 * 1024 * 1024,
        "the flood did not reach the gateway: {report}"
    );
    assert!(
        peak.saturating_sub(baseline) < CHUNKED_FLOOD_PEAK,
        "peak above the bound: {report}"
    );
    assert!(
        after <= baseline + CHUNKED_FLOOD_LEFT,
        "memory not given back: {report}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a genuine POST was slow: {report}"
    );
}

// ---- 3. a creation with an unknown outcome ---------------------------------------------------

/// A "Meta" that counts group creations and answers them after `delay` (None: never, the
/// connection is held open).
struct SlowMeta {
    base: String,
    creates: Arc<AtomicUsize>,
    delay: Arc<Mutex<Option<Duration>>>,
}

fn slow_meta() -> SlowMeta {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let creates = Arc::new(AtomicUsize::new(0));
    let delay = Arc::new(Mutex::new(Some(Duration::from_secs(3))));
    let (seen, wait) = (creates.clone(), delay.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, wait) = (seen.clone(), wait.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Some(first) = read_request(&mut reader) else {
                    return;
                };
                if first.starts_with("POST") && first.contains("/groups ") {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                let pause = *wait.lock().unwrap();
                match pause {
                    Some(d) => std::thread::sleep(d),
                    None => std::thread::sleep(Duration::from_secs(120)),
                }
                let payload = r#"{"messaging_product":"whatsapp","request_id":"TOO-LATE"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                    payload.len()
                );
            });
        }
    });
    SlowMeta {
        base,
        creates,
        delay,
    }
}

async fn create_with_key(
    http: &reqwest::Client,
    gateway: &Gateway,
    token: &str,
    key: &str,
    subject: &str,
) -> (u16, Value, bool, Duration) {
    let started = Instant::now();
    let res = http
        .post(gateway.url(&format!("/v1/phone-numbers/{PN}/groups")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({ "subject": subject }))
        .send()
        .await
        .expect("an answer");
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some();
    (
        status,
        res.json().await.unwrap_or(Value::Null),
        replayed,
        started.elapsed(),
    )
}

async fn creation_webhook(
    http: &reqwest::Client,
    gateway: &Gateway,
    meta_id: &str,
    group: &str,
    subject: &str,
) {
    let body = serde_json::to_vec(&lifecycle_webhook(
        PN,
        vec![json!({"timestamp": "1755548877", "group_id": group, "type": "group_create",
            "request_id": meta_id, "subject": subject, "invite_link": format!("https://chat.whatsapp.com/{group}")})],
    ))
    .unwrap();
    let res = http
        .post(gateway.url("/webhooks/whatsapp"))
        .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn wait_created(
    http: &reqwest::Client,
    gateway: &Gateway,
    token: &str,
    request_id: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: Value = http
            .get(gateway.url(&format!("/v1/group-requests/{request_id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] != "pending" {
            return r;
        }
        assert!(Instant::now() < deadline, "{request_id} stayed pending");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn meta_is_asked_once_across_a_timeout_a_kill_and_retries_with_the_same_key() {
    let meta = slow_meta();
    let dir = tempfile::tempdir().unwrap();
    let config = tuned_config(&meta.base, dir.path(), "", "attempt_timeout_ms = 1000", "")
        .replace("timeout_ms = 2000", "timeout_ms = 1000");
    let settings = Settings::from_toml_overrides(&config).unwrap();
    let sales = token(&settings, "sales", &ALL_GROUP_SCOPES, None);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let gateway = start(dir.path(), Some(&config), &[], 1).await;

    // Meta's answer does not come in time: 202 pending, not a failure.
    let (status, first, _, _) =
        create_with_key(&http, &gateway, &sales, "key-timeout", "Once A").await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["status"], "pending");
    let request_a = first["request_id"].as_str().unwrap().to_owned();
    let (status, again, replayed, took) =
        create_with_key(&http, &gateway, &sales, "key-timeout", "Once A").await;
    assert_eq!((status, replayed), (202, true), "{again}");
    assert_eq!(again["request_id"], request_a.as_str());
    assert!(
        took < Duration::from_secs(1),
        "the retry answered at once: {took:?}"
    );
    // Meta's webhook names a request id the gateway never saw: matched by number and subject.
    creation_webhook(&http, &gateway, "META-LOST-A", "GONCEA", "Once A").await;
    let done = wait_created(&http, &gateway, &sales, &request_a).await;
    assert_eq!(done["status"], "created", "{done}");
    assert_eq!(done["group_id"], "GONCEA");
    let (status, again, replayed, _) =
        create_with_key(&http, &gateway, &sales, "key-timeout", "Once A").await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["group_id"], "GONCEA");
    assert_eq!(meta.creates.load(Ordering::SeqCst), 1);

    // The gateway is killed while Meta works on a creation.
    *meta.delay.lock().unwrap() = None;
    let in_flight = {
        let (http, url, sales) = (
            http.clone(),
            gateway.url(&format!("/v1/phone-numbers/{PN}/groups")),
            sales.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(sales)
                .header("Idempotency-Key", "key-kill")
                .json(&json!({"subject": "Once B"}))
                .send()
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while meta.creates.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the creation never reached Meta");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut gateway = gateway;
    gateway.child.kill().expect("SIGKILL");
    let _ = gateway.child.wait();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the caller lost its answer"
    );
    drop(gateway);
    let gateway = start(dir.path(), Some(&config), &[], 2).await;
    let (status, b, replayed, took) =
        create_with_key(&http, &gateway, &sales, "key-kill", "Once B").await;
    assert_eq!((status, replayed), (202, true), "{b}");
    assert!(took < Duration::from_secs(1), "answered at once: {took:?}");
    let request_b = b["request_id"].as_str().unwrap().to_owned();
    // Two minutes later (the claim aged in storage): still that creation, never a new one.
    let storage = SqlStorage::connect(settings.storage.url.expose_secret(), 2)
        .await
        .unwrap();
    let aged = (chrono::Utc::now() - chrono::Duration::minutes(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query("UPDATE idempotency_keys SET created_at = ? WHERE idem_key = 'key-kill'")
        .bind(&aged)
        .execute(storage.pool())
        .await
        .unwrap();
    storage.pool().close().await;
    let (status, b2, _, _) = create_with_key(&http, &gateway, &sales, "key-kill", "Once B").await;
    assert_eq!(status, 202);
    assert_eq!(b2["request_id"], request_b.as_str());
    assert_eq!(meta.creates.load(Ordering::SeqCst), 2, "never asked again");
    // Meta's webhook arrives; the creation whose call died with its process is matched.
    creation_webhook(&http, &gateway, "META-LOST-B", "GONCEB", "Once B").await;
    let done = wait_created(&http, &gateway, &sales, &request_b).await;
    assert_eq!(done["group_id"], "GONCEB", "{done}");
    let (status, again, _, _) =
        create_with_key(&http, &gateway, &sales, "key-kill", "Once B").await;
    assert_eq!(status, 201);
    assert_eq!(again["group_id"], "GONCEB");
    assert_eq!(
        meta.creates.load(Ordering::SeqCst),
        2,
        "one call to Meta per key"
    );
    // The group is the team's like any other.
    let listed: Value = http
        .get(gateway.url(&format!("/v1/phone-numbers/{PN}/groups")))
        .bearer_auth(&sales)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert_eq!(ids, ["GONCEA", "GONCEB"]);
}

// ---- 4. narrowed tokens on creations ---------------------------------------------------------

#[tokio::test]
async fn a_token_narrowed_to_one_number_cannot_read_creations_on_another() {
    let app = spawn_app().await;
    let sales = app.sales();
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(json!({"request_id": "NARROW"})),
        )
        .mount(&app.meta)
        .await;
    let created = app.request_creation(&sales, PN2, "On PN2").await;
    app.complete_creation(&sales, PN2, &created, "NARROW", "GNARROW", "On PN2")
        .await;
    let path = format!(
        "/v1/group-requests/{}",
        created["request_id"].as_str().unwrap()
    );
    let narrowed = app.token_for_numbers("sales", &["groups:read"], Some(vec![PN.to_owned()]));
    let res = app.get(&path, &narrowed).await;
    assert_eq!(res.status(), 403);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("chat.whatsapp.com"),
        "no invite link: {text}"
    );
    // The same team with the number: 200; another team: 404, as for an unknown request.
    assert_eq!(app.get(&path, &sales).await.status(), 200);
    let widened = app.token_for_numbers("sales", &["groups:read"], Some(vec![PN2.to_owned()]));
    assert_eq!(app.get(&path, &widened).await.status(), 200);
    let support = app.token("support", &["groups:read"]);
    assert_eq!(app.get(&path, &support).await.status(), 404);
    // And every group route of that group, for the narrowed token.
    let g = "/v1/groups/GNARROW";
    assert_eq!(app.get(g, &narrowed).await.status(), 403);
    assert_eq!(
        app.get(&format!("{g}/invite-link"), &narrowed)
            .await
            .status(),
        403
    );
}

// ---- 5. team webhook URLs --------------------------------------------------------------------

#[tokio::test]
async fn config_check_refuses_a_team_webhook_at_the_metadata_address() {
    let dir = tempfile::tempdir().unwrap();
    // The metadata address as written plainly, then in every form a resolver accepts (issue
    // 19: each of the disguised ones passed `config check` and start).
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]:8080/hooks",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://2852039166/",
        "http://0xa9fea9fe/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[fe80::1%25eth0]/",
    ] {
        let file = dir.path().join("metadata.toml");
        std::fs::write(
            &file,
            format!(
                "[phone_numbers.{PN}]\naccess_token = \"t\"\n[teams.sales]\nphone_numbers = [\"{PN}\"]\n\
                 webhook = {{ url = \"{url}\", secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }}\n"
            ),
        )
        .unwrap();
        for args in [
            ["--config", file.to_str().unwrap(), "config", "check"].as_slice(),
            ["--config", file.to_str().unwrap(), "serve"].as_slice(),
        ] {
            let out = command(dir.path(), args, &[])
                .output()
                .expect("the binary runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {url}: {stderr}");
            assert!(stderr.contains("teams.sales.webhook.url"), "{stderr}");
            // The refusal says what the address is, whatever its disguise.
            assert!(
                ["169.254.169.254", "link-local", "metadata", "zone id"]
                    .iter()
                    .any(|why| stderr.contains(why)),
                "{url}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn the_endpoint_view_shows_a_failure_class_not_the_receivers_words() {
    // A receiver that answers with words of its own, and a port where nobody listens.
    let talker = MockServer::builder().start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(500)
                .set_body_string("internal db at 10.0.0.7:5432 refused: password for admin"),
        )
        .mount(&talker)
        .await;
    let closed = free_port();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app = spawn_app_with(&format!(
        "[teams.sales.webhook]\nurl = \"{}/hooks\"\nsecret = \"{secret}\"\n\
         [teams.support.webhook]\nurl = \"http://127.0.0.1:{closed}/hooks\"\nsecret = \"{secret}\"\n\
         [delivery]\nfirst_retry_ms = 100\nmax_retry_delay_ms = 200\npoll_interval_ms = 100\n",
        talker.uri()
    ))
    .await;
    app.create_group(&app.sales(), PN, "Talks").await;
    app.create_group(
        &app.token("support", &["groups:read", "groups:write"]),
        PN,
        "Closed",
    )
    .await;
    let admin = app.token("platform", &["admin"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let endpoints = loop {
        let view: Value = app
            .get("/v1/admin/webhook-endpoints", &admin)
            .await
            .json()
            .await
            .unwrap();
        let errors: Vec<&str> = view["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["last_error"].as_str())
            .collect();
        if errors.len() == 2 {
            break view;
        }
        assert!(Instant::now() < deadline, "no failures recorded: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = endpoints.to_string();
    assert!(
        !text.contains("password") && !text.contains("10.0.0.7"),
        "{text}"
    );
    let by_team = |team: &str| {
        endpoints["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["team"] == team)
            .unwrap()["last_error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(by_team("sales"), "answered 500 Internal Server Error");
    assert_eq!(by_team("support"), "connection refused");
}

// ---- 6. development secrets beyond loopback --------------------------------------------------

#[tokio::test]
async fn the_container_without_configuration_refuses_the_public_development_key() {
    let dir = tempfile::tempdir().unwrap();
    let container = [("WAGW__SERVER__HOST", "0.0.0.0".to_owned())];
    let gateway = start(dir.path(), None, &container, 1).await;
    // What anyone who read the README would mint: the compiled-in development key.
    let public = Settings::from_toml_overrides("").unwrap();
    let forged = token(&public, "platform", &[Scope::Admin], None);
    let http = reqwest::Client::new();
    let res = http
        .get(gateway.url("/v1/admin/audit"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "a token of the public key");
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let res = http
        .post(gateway.url("/webhooks/whatsapp"))
        .header("x-hub-signature-256", sign(b"local-app-secret", body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a webhook signed with the public app secret"
    );
    // The demo token printed at start works.
    let stdout = gateway.stdout();
    let demo = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN="))
        .unwrap_or_else(|| panic!("no demo token printed: {stdout}"));
    let res = http
        .get(gateway.url("/v1/phone-numbers/12784358810/groups"))
        .bearer_auth(demo)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(gateway.stderr().contains("auth.keys[0].secret"));
    // Minting with the public key beyond loopback is refused, naming the key.
    let out = command(
        dir.path(),
        &[
            "token",
            "issue",
            "--team",
            "sales",
            "--scope",
            "groups:read",
        ],
        &container,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.keys[0].secret"));
    // Live mode with them does not start, naming the key.
    let out = command(
        dir.path(),
        &["serve"],
        &[
            ("WAGW__SERVER__HOST", "0.0.0.0".to_owned()),
            ("WAGW__GRAPH__MODE", "live".to_owned()),
            ("WAGW__PHONE_NUMBERS__1__ACCESS_TOKEN", "t".to_owned()),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.keys[0].secret"));
}

// ---- passwords inside storage.url and rate_limit.redis_url ---------------------------------

#[tokio::test]
async fn no_command_or_log_shows_the_database_or_redis_password() {
    const PASSWORD: &str = "SECRETPW";
    // The machine's PostgreSQL trusts its users, so the password is carried but not needed;
    // the machine's Redis refuses it, so its errors are logged too.
    let db = crate::pg::TestDatabase::create().await;
    let mut storage_url = url::Url::parse(&db.url).unwrap();
    storage_url.set_password(Some(PASSWORD)).unwrap();
    let mut redis_url = url::Url::parse(&crate::pg::redis_url()).unwrap();
    redis_url.set_username("default").unwrap();
    redis_url.set_password(Some(PASSWORD)).unwrap();
    // Refused at once (a port where nobody listens is retried for half a minute).
    let mut unreachable = storage_url.clone();
    unreachable.set_path("wagw_test_no_such_database");
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[rate_limit]\nstore = \"redis\"\nredis_url = \"{redis_url}\"\n");
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, &config).unwrap();
    let file = file.to_str().unwrap();
    let with_db = |url: &url::Url| [("WAGW__STORAGE__URL", url.to_string())];
    let shown = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    // A gateway serving with both, asked for its readiness (Redis refuses the password).
    let gateway = start(dir.path(), Some(&config), &with_db(&storage_url), 1).await;
    let ready = reqwest::get(gateway.url("/readyz")).await.unwrap();
    let readiness = ready.text().await.unwrap();
    assert!(!readiness.contains(PASSWORD), "{readiness}");
    drop(gateway);
    let dir_files = std::fs::read_dir(dir.path()).unwrap();
    for log in dir_files
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().ends_with(".log"))
    {
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains(PASSWORD), "{}: {text}", log.path().display());
    }

    // `config check` shows both URLs, without the password.
    let out = command(
        dir.path(),
        &["--config", file, "config", "check"],
        &with_db(&storage_url),
    )
    .output()
    .unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains(":***@127.0.0.1"), "{text}");

    // `token revoke` names the storage it wrote to, without the password.
    let out = command(
        dir.path(),
        &["--config", file, "token", "revoke", "urls-test-jti"],
        &with_db(&storage_url),
    )
    .output()
    .unwrap();
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("revoked urls-test-jti"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert_eq!(
        count(
            storage_url.as_str(),
            "SELECT COUNT(*) FROM revoked_tokens WHERE jti = 'urls-test-jti'"
        )
        .await,
        1
    );

    // A storage that cannot be used: the errors of `token revoke` and `serve` name it,
    // without the password.
    for args in [
        ["--config", file, "token", "revoke", "urls-test-jti"].as_slice(),
        ["--config", file, "serve"].as_slice(),
    ] {
        let out = command(dir.path(), args, &with_db(&unreachable))
            .output()
            .unwrap();
        let text = shown(&out);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("wagw_test_no_such_database"),
            "{args:?}: {text}"
        );
        assert!(!text.contains(PASSWORD), "{args:?}: {text}");
    }
}

// ---- 7. retention ----------------------------------------------------------------------------

#[tokio::test]
async fn old_rows_of_every_growing_table_are_pruned_in_batches() {
    let meta = MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = tuned_config(
        &meta.uri(),
        dir.path(),
        "",
        "",
        "[teams.sales.webhook]\nurl = \"http://127.0.0.1:9/hooks\"\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
         [retention]\ninterval_seconds = 1\nbatch_size = 10\n",
    );
    let settings = Settings::from_toml_overrides(&config).unwrap();
    let db = settings.storage.url.expose_secret().to_owned();
    let old = "2024-01-01T00:00:00.000Z";
    let recent = wa_groups_gateway::clock::now();
    {
        let storage = SqlStorage::connect(&db, 2).await.unwrap();
        let pool = storage.pool();
        for i in 0..40 {
            let at = if i < 35 { old } else { recent.as_str() };
            sqlx::query("INSERT INTO audit_log (occurred_at, method, route, request_id, status, team) VALUES (?, 'DELETE', '/v1/groups/{group_id}', ?, 204, 'sales')")
                .bind(at).bind(format!("r{i}")).execute(pool).await.unwrap();
            sqlx::query("INSERT INTO webhook_inbox (body_sha256, body, received_at, processed_at) VALUES (?, x'7b7d', ?, ?)")
                .bind(format!("h{i}")).bind(at).bind(at).execute(pool).await.unwrap();
            sqlx::query("INSERT INTO webhook_events (event_key, inbox_id, field, event_type, payload, received_at) VALUES (?, 1, 'f', 'group_suspend', '{}', ?)")
                .bind(format!("e{i}")).bind(at).execute(pool).await.unwrap();
            let seq: i64 = sqlx::query_scalar("INSERT INTO team_events (id, webhook_event_id, team, type, occurred_at, phone_number_id, data, created_at) VALUES (?, (SELECT id FROM webhook_events WHERE event_key = ?), 'sales', 'group.suspended', ?, ?, '{}', ?) RETURNING seq")
                .bind(format!("evt{i}")).bind(format!("e{i}")).bind(at).bind(PN).bind(at).fetch_one(pool).await.unwrap();
            // One old event still waits for its delivery (an endpoint disabled for longer
            // than retention): it goes with its event.
            let status = if i == 0 { "pending" } else { "delivered" };
            sqlx::query("INSERT INTO webhook_deliveries (event_seq, team, endpoint_id, status, next_attempt_at, first_due_at, created_at, updated_at) VALUES (?, 'sales', 'config', ?, 9999999999999, 0, ?, ?)")
                .bind(seq).bind(status).bind(at).bind(at).execute(pool).await.unwrap();
            let at_ms = chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp_millis();
            sqlx::query("INSERT INTO webhook_attempts (team, endpoint_id, event_id, attempt, outcome, duration_ms, at, at_ms) VALUES ('sales', 'config', ?, 1, 'succeeded', 3, ?, ?)")
                .bind(format!("evt{i}")).bind(at).bind(at_ms).execute(pool).await.unwrap();
            sqlx::query("INSERT INTO idempotency_keys (team, idem_key, fingerprint, created_at) VALUES ('sales', ?, 'f', ?)")
                .bind(format!("k{i}")).bind(at).execute(pool).await.unwrap();
            sqlx::query("INSERT INTO create_requests (request_id, team, phone_number_id, subject, status, created_at, updated_at) VALUES (?, 'sales', ?, 'S', 'created', ?, ?)")
                .bind(format!("req{i}")).bind(PN).bind(at).bind(at).execute(pool).await.unwrap();
        }
        pool.close().await;
    }
    let gateway = start(dir.path(), Some(&config), &[], 1).await;
    let tables = [
        ("audit_log", 5),
        ("webhook_inbox", 5),
        ("team_events", 5),
        ("webhook_deliveries", 5),
        ("webhook_attempts", 5),
        ("webhook_events", 5),
        ("idempotency_keys", 5),
        ("create_requests", 5),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut left = Vec::new();
        for (table, _) in tables {
            left.push(count(&db, &format!("SELECT COUNT(*) FROM {table}")).await);
        }
        if tables
            .iter()
            .zip(&left)
            .all(|((_, want), got)| *got == *want)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left {left:?}, want {tables:?}\n{}",
            gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'"
        )
        .await,
        0
    );
    assert!(gateway.stderr().contains("retention: old rows pruned"));
}
