//! The console (`/console/`, README "Console"): its files and their security headers, the
//! sandbox's sign-in link, and the whole page driven in Debian's chromium by Playwright
//! (tests/browser/console.mjs), with what the page did checked against the API.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wa_groups_gateway::auth::Scope;
use wa_groups_gateway::cli::{console_token, issue_token};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::console::CONTENT_SECURITY_POLICY;
use wa_groups_gateway::startup::Application;

/// The demo phone number of config/sandbox-demo.toml.
const PN: &str = "12784358810";
const CHROMIUM: &str = "/usr/bin/chromium";
const INJECTION: &str = "<img src=x onerror=alert(1)>";
/// A group made outside the gateway, adopted in the console.
const UNOWNED: &str = "Made in WhatsApp Manager";
const FILES: [&str; 6] = ["", "console.css", "app.js", "api.js", "dom.js", "pages.js"];

struct Console {
    base: String,
    http: reqwest::Client,
    settings: Settings,
    _dir: tempfile::TempDir,
}

fn sandbox_settings(dir: &Path, extra: &str) -> Settings {
    let toml = format!(
        r#"
[server]
host = "127.0.0.1"
port = 0
workers = 2

[graph]
mode = "sandbox"

[storage]
url = "sqlite://{}/gateway.db"

[sandbox]
webhook_delay_ms = 20
{extra}
"#,
        dir.display()
    );
    Settings::from_toml_overrides(&toml).expect("sandbox configuration is valid")
}

/// The gateway as `cargo run` starts it (sandbox demo), on port 0.
async fn spawn_console() -> Console {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = sandbox_settings(dir.path(), "");
    let app = Application::build(settings.clone())
        .await
        .expect("app builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    Console {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        settings,
        _dir: dir,
    }
}

impl Console {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self, team: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        issue_token(&self.settings, team, &scopes, &[], Some("1h"), None)
            .expect("token")
            .token
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }
}

/// The group of `subject` in the admin listing of the demo number, once Meta lists it.
async fn eventually_listed(console: &Console, admin: &str, subject: &str) -> Value {
    for _ in 0..200 {
        let listed = json_of(
            console
                .get(&format!("/v1/admin/phone-numbers/{PN}/groups"), admin)
                .await,
        )
        .await;
        if let Some(group) = listed["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["subject"] == subject))
        {
            return group.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no group {subject} listed");
}

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.expect("json body")
}

// ---- the files -----------------------------------------------------------------------------

#[tokio::test]
async fn every_console_file_is_served_with_a_strict_policy() {
    let console = spawn_console().await;
    for file in FILES {
        let res = console
            .http
            .get(console.url(&format!("/console/{file}")))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "/console/{file}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = header("content-security-policy");
        assert_eq!(csp, CONTENT_SECURITY_POLICY, "/console/{file}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-"), "{csp}");
        assert!(csp.contains("require-trusted-types-for 'script'"), "{csp}");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "no-referrer");
        let expected_type = match file {
            "" => "text/html",
            f if f.ends_with(".css") => "text/css",
            _ => "text/javascript",
        };
        assert!(
            header("content-type").starts_with(expected_type),
            "/console/{file}: {}",
            header("content-type")
        );
    }
}

#[tokio::test]
async fn the_console_path_redirects_and_unknown_files_are_problems() {
    let console = spawn_console().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = http
        .get(console.url("/console"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/console/");
    for path in [
        "/console/nope.js",
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
    ] {
        let res = http.get(console.url(path)).send().await.expect("request");
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
}

/// Safe by construction: no file parses HTML from a string or loads anything from another
/// origin, and the page's scopes are the gateway's.
#[tokio::test]
async fn the_console_inserts_text_only_and_loads_nothing_from_elsewhere() {
    let console = spawn_console().await;
    let mut scripts = String::new();
    for file in FILES {
        let body = console
            .http
            .get(console.url(&format!("/console/{file}")))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("text");
        for outside in ["http://", "https://", "//cdn", "@import"] {
            assert!(
                !body.contains(outside),
                "/console/{file} contains {outside}"
            );
        }
        if file.ends_with(".js") {
            scripts.push_str(&body);
        }
    }
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "createContextualFragment",
        "DOMParser",
    ] {
        assert!(!scripts.contains(sink), "a console script uses {sink}");
    }
    let listed = scripts
        .lines()
        .find(|l| l.starts_with("export const SCOPES"))
        .expect("pages.js lists the scopes");
    let gateway: Vec<String> = Scope::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    assert!(
        listed.contains(&gateway.join(", ")),
        "the console's scopes differ from the gateway's: {listed}"
    );
    // Files, not API: outside the OpenAPI document.
    let spec = json_of(
        console
            .http
            .get(console.url("/openapi.json"))
            .send()
            .await
            .expect("spec"),
    )
    .await;
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.keys().all(|p| !p.starts_with("/console")));
}

// ---- the sign-in link of the start log -----------------------------------------------------

#[tokio::test]
async fn the_sandbox_signs_the_admin_team_in_on_loopback_only() {
    let console = spawn_console().await;
    let (team, token) = console_token(&console.settings).expect("a sandbox on loopback has a link");
    assert_eq!(team, "platform");
    let res = console.get("/v1/admin/teams", &token).await;
    assert_eq!(res.status(), 200, "the link's token is an admin token");

    let dir = tempfile::tempdir().expect("tempdir");
    let beyond = sandbox_settings(dir.path(), "");
    let mut beyond = beyond;
    beyond.server.host = "0.0.0.0".into();
    assert!(console_token(&beyond).is_none(), "a link beyond loopback");
    let mut live = sandbox_settings(dir.path(), "");
    live.graph.mode = wa_groups_gateway::config::GraphMode::Live;
    assert!(console_token(&live).is_none(), "a link in live mode");
}

#[tokio::test]
async fn the_start_log_prints_a_console_link_whose_token_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let mut child = crate::fleet::binary(dir.path(), "console-test")
        .env("WAGW__SERVER__PORT", "0")
        .env(
            "WAGW__STORAGE__URL",
            format!("sqlite://{}/gateway.db", dir.path().display()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("the gateway starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("/console/#token=")) {
            break line.to_owned();
        }
        if Instant::now() > deadline || child.try_wait().expect("wait").is_some() {
            let _ = child.kill();
            panic!("no console link in the start log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let link = line
        .split_whitespace()
        .find(|w| w.contains("/console/#token="))
        .expect("the link");
    let (page, token) = link.split_once("#token=").expect("fragment");
    assert!(
        page.starts_with("http://127.0.0.1:") && page.ends_with("/console/"),
        "{link}"
    );
    let http = reqwest::Client::new();
    let status = http
        .get(format!(
            "{}/v1/admin/teams",
            page.trim_end_matches("/console/")
        ))
        .bearer_auth(token)
        .send()
        .await
        .map(|r| r.status().as_u16());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        status.ok(),
        Some(200),
        "the link's token is refused: {line}"
    );
}

// ---- the page in a real browser ------------------------------------------------------------

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs tests/browser/console.mjs with node; answers its JSON result.
fn drive_console(base: &str, admin_token: &str, screenshot: &Path) -> Value {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the console is tested in a real browser. Run `scripts/test` \
         (it installs it), or `apt-get install -y chromium`."
    );
    let browser_tests = repository().join("tests/browser");
    assert!(
        browser_tests.join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run `scripts/test` (it installs it), or \
         `npm ci` in tests/browser."
    );
    let mut child = Command::new("node")
        .arg("console.mjs")
        .current_dir(&browser_tests)
        .env("CONSOLE_BASE", base)
        .env("ADMIN_TOKEN", admin_token)
        .env("PHONE_NUMBER", PN)
        .env("INJECTION_SUBJECT", INJECTION)
        .env("UNOWNED_SUBJECT", UNOWNED)
        .env("SCREENSHOT", screenshot)
        .env("CHROMIUM", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts (scripts/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().expect("node runs").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the browser test did not finish within 240 s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser test failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no result from the browser test ({e}):\n{stdout}\n{stderr}"))
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let console = spawn_console().await;
    let admin = console.token("platform", &["admin"]);
    let sales = console.token("sales", &["groups:read", "groups:write"]);

    // A group whose subject tries HTML injection, made by `sales` through the API.
    let res = console
        .http
        .post(console.url(&format!("/v1/phone-numbers/{PN}/groups?wait_seconds=10")))
        .bearer_auth(&sales)
        .json(&json!({ "subject": INJECTION }))
        .send()
        .await
        .expect("request");
    let created = json_of(res).await;
    assert_eq!(created["status"], "created", "{created}");
    let group_id = created["group_id"].as_str().expect("group_id").to_owned();
    let res = console
        .http
        .post(console.url(&format!("/v1/phone-numbers/{PN}/groups?wait_seconds=10")))
        .bearer_auth(&sales)
        .json(&json!({ "subject": "Weekly sales sync" }))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    // A group made outside the gateway (straight at the simulated Graph API), to adopt.
    let meta_token = console
        .settings
        .phone_numbers
        .iter()
        .find(|(pn, _)| pn.as_ref() == PN)
        .map(|(_, t)| t.expose_secret().to_owned())
        .expect("the demo number has a token");
    let res = console
        .http
        .post(console.url(&format!("/sandbox/graph/v23.0/{PN}/groups")))
        .bearer_auth(&meta_token)
        .json(&json!({ "messaging_product": "whatsapp", "subject": UNOWNED }))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    let unowned_id = eventually_listed(&console, &admin, UNOWNED).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // More audit records than one page of the console holds (every admin call is audited).
    for _ in 0..60 {
        assert_eq!(console.get("/v1/admin/teams", &admin).await.status(), 200);
    }

    let screenshot = repository().join("docs/console.png");
    let base = console.base.clone();
    let admin_for_browser = admin.clone();
    let shot = screenshot.clone();
    let result =
        tokio::task::spawn_blocking(move || drive_console(&base, &admin_for_browser, &shot))
            .await
            .expect("browser thread");

    // The team made in the page exists, with its number.
    let teams = json_of(console.get("/v1/admin/teams", &admin).await).await;
    let team = teams["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == result["team"])
        .unwrap_or_else(|| panic!("the console's team is not in {teams}"));
    assert_eq!(team["phone_numbers"], json!([PN]));
    assert_eq!(team["source"], "api");
    // So does the phone number, with the access token typed in the page.
    let numbers = json_of(console.get("/v1/admin/phone-numbers", &admin).await).await;
    assert!(
        numbers["phone_numbers"]
            .as_array()
            .expect("phone_numbers")
            .iter()
            .any(|n| n["phone_number_id"] == "15550001111" && n["source"] == "api"),
        "the console's phone number is not in {numbers}"
    );

    // The token issued in the page was the team's, and is revoked.
    let token = result["token"].as_str().expect("token");
    let jti = result["jti"].as_str().expect("jti");
    let res = console
        .get(&format!("/v1/phone-numbers/{PN}/groups"), token)
        .await;
    assert_eq!(res.status(), 401, "the revoked token still works");
    let audit = json_of(
        console
            .get("/v1/admin/audit?team=platform&limit=1000", &admin)
            .await,
    )
    .await;
    let records = audit["records"].as_array().expect("records");
    assert!(
        records.iter().any(|r| r["route"] == "/v1/admin/tokens"
            && r["status"] == 201
            && r["details"]["issued_jti"] == jti
            && r["details"]["issued_team"] == result["team"]),
        "no issuance of {jti} in the audit log"
    );
    assert!(
        records
            .iter()
            .any(|r| r["details"]["revoked_jti"] == jti && r["status"] == 204),
        "no revocation of {jti} in the audit log"
    );

    // The group moved in the page now belongs to the new team.
    let listed = json_of(
        console
            .get(&format!("/v1/admin/phone-numbers/{PN}/groups"), &admin)
            .await,
    )
    .await;
    let group = listed["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["id"] == group_id.as_str())
        .unwrap_or_else(|| panic!("{group_id} not listed: {listed}"));
    assert_eq!(group["owner"], result["team"]);
    assert_eq!(group["subject"], INJECTION);
    let adopted = eventually_listed(&console, &admin, UNOWNED).await;
    assert_eq!(adopted["id"], unowned_id.as_str());
    assert_eq!(
        adopted["owner"], result["team"],
        "the adoption did not hold"
    );

    // The README's picture was written.
    let png = std::fs::read(&screenshot).expect("docs/console.png");
    assert!(png.starts_with(b"\x89PNG"), "docs/console.png is no PNG");
}
