//! Real gateway processes for the tests that kill them or run several at once: started from
//! the built binary with a config file, killed when dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use wa_groups_gateway::domain::meta_webhook::sign;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockGuard, MockServer, ResponseTemplate};

use crate::helpers::{API_VERSION, APP_SECRET, PN, webhook};

/// Meta answers the next creation on `PN` with `meta_request`, for as long as the guard lives.
pub async fn meta_answers_creation(meta: &MockServer, meta_request: &str) -> MockGuard {
    Mock::given(method("POST"))
        .and(path(format!("/{API_VERSION}/{PN}/groups")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"messaging_product": "whatsapp", "request_id": meta_request}),
            ),
        )
        .mount_as_scoped(meta)
        .await
}

/// The WhatsApp user who joins in POST number `i` of a burst.
pub fn joiner(i: usize) -> String {
    format!("1555{i:07}")
}

/// POST number `i` of a burst: `joiner(i)` joins one of `groups` through the invite link.
pub fn join_post(i: usize, groups: &[String]) -> Vec<u8> {
    let join = json!({
        "timestamp": (1_755_600_000 + i).to_string(),
        "group_id": groups[i % groups.len()],
        "type": "group_participants_add",
        "reason": "invite_link",
        "added_participants": [{"wa_id": joiner(i)}],
    });
    serde_json::to_vec(&webhook("group_participants_update", PN, vec![join])).expect("json")
}

/// Signed POSTs in flight at once in a burst.
const CONCURRENCY: usize = 20;

/// A gateway process; killed when dropped, so a failing test leaves nothing behind.
pub struct Gateway {
    pub child: Child,
    pub base: String,
    /// Its standard error: the log.
    pub log: PathBuf,
    pub stdout: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Resident memory, in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The gateway binary, run in `dir` with the config profile `environment`; it inherits none
/// of the test environment's `WAGW…` or `RUST_LOG` variables, so only what a test sets counts.
pub fn binary(dir: &Path, environment: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wa-groups-gateway"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WAGW") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    // No config/ directory in `dir`: the compiled-in defaults, then a file, then env.
    cmd.current_dir(dir).env("APP_ENVIRONMENT", environment);
    cmd
}

/// Runs `serve`, a command that serves on `port`, with its output in files of `dir` named by
/// `run`, and waits for `/healthz`.
pub async fn serve(mut serve: Command, dir: &Path, port: u16, run: u32) -> Gateway {
    let log = dir.join(format!("stderr-{run}.log"));
    let stdout = dir.join(format!("stdout-{run}.log"));
    let child = serve
        .stdout(File::create(&stdout).expect("stdout file"))
        .stderr(File::create(&log).expect("log file"))
        .spawn()
        .expect("the gateway binary starts");
    let mut gateway = Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
        stdout,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = http.get(gateway.url("/healthz")).send().await
            && res.status() == 200
        {
            return gateway;
        }
        if let Ok(Some(status)) = gateway.child.try_wait() {
            panic!("the gateway exited ({status}):\n{}", log_tail(&gateway.log));
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never became healthy:\n{}",
            log_tail(&gateway.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the binary with `--config FILE`, the port and storage from `WAGW__…` variables;
/// `run` names its log files.
pub async fn start(dir: &Path, config: &Path, db_url: &str, run: u32) -> Gateway {
    let port = free_port();
    let mut cmd = binary(dir, "crash-test");
    cmd.arg("--config")
        .arg(config)
        .arg("serve")
        .env("WAGW__SERVER__PORT", port.to_string())
        .env("WAGW__STORAGE__URL", db_url);
    serve(cmd, dir, port, run).await
}

/// Sends the POSTs numbered `which`, `CONCURRENCY` at a time; answers (index, answered 200,
/// duplicate flag) as they complete, handing each to `on_answer` first.
pub async fn burst(
    http: &reqwest::Client,
    base: &str,
    bodies: &[Vec<u8>],
    which: &[usize],
    mut on_answer: impl FnMut(usize, bool),
) -> Vec<(usize, bool, bool)> {
    let url = format!("{base}/webhooks/whatsapp");
    let mut answers = futures_util::stream::iter(which.iter().map(|&i| (i, &bodies[i])))
        .map(|(i, body)| {
            let req = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sign(APP_SECRET.as_bytes(), body))
                .body(body.clone());
            async move {
                match req.send().await {
                    Ok(res) if res.status() == 200 => {
                        let v: Value = res.json().await.unwrap_or(Value::Null);
                        (i, true, v["duplicate"] == true)
                    }
                    _ => (i, false, false),
                }
            }
        })
        .buffer_unordered(CONCURRENCY);
    let mut all = Vec::with_capacity(bodies.len());
    while let Some((i, ok, duplicate)) = answers.next().await {
        on_answer(i, ok);
        all.push((i, ok, duplicate));
    }
    all
}

/// `participants_added` events of the feed: wa_id → event ids (more than one = a duplicate).
/// An error (say, a pooled connection the server closed meanwhile) is retried a few times.
pub async fn feed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut last_error = String::new();
    for _ in 0..5 {
        match try_feed(http, base, token).await {
            Ok(found) => return found,
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("GET /v1/events kept failing: {last_error}");
}

async fn try_feed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/events?limit=1000");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let res = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = res.status();
        let page: Value = res.json().await.map_err(|e| format!("{status}: {e:?}"))?;
        let Some(events) = page["events"].as_array() else {
            return Err(format!("{status}: {page}"));
        };
        for e in events {
            if e["type"] == "group.participants_added" {
                let who = e["data"]["added_participants"][0]["wa_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                found
                    .entry(who)
                    .or_default()
                    .push(e["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        match page["paging"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return Ok(found),
        }
    }
}
