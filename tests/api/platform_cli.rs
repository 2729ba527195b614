//! Runtime management from the command line and through faults (DESIGN §11): the real binary's
//! `team`, `phone-number`, `storage rekey` and `token issue`; a team made by the command line
//! in force on a running gateway; replicas that lose their notification connection, and a
//! change nobody announced, bounded by `storage.cache_ttl`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use wa_groups_gateway::auth::{Scope, TokenIssuer};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::crypto::EncryptionKey;
use wiremock::MockServer;

use crate::fleet::{Gateway, binary, free_port, start};
use crate::helpers::{eventually, test_config, uuid};
use crate::pg::TestDatabase;

/// A number only storage knows.
const PN3: &str = "333333";

/// The test configuration with `storage.encryption_key = current` and, when given,
/// `storage.previous_encryption_keys`; written to a file of `dir` named `name`.
fn config_file(meta: &str, dir: &Path, name: &str, current: &str, previous: &[&str]) -> PathBuf {
    let previous = previous
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let toml = test_config(meta, dir, "[telemetry]\nlog_level = \"warn\"\n").replacen(
        "[storage]\n",
        &format!(
            "[storage]\nencryption_key = \"{current}\"\nprevious_encryption_keys = [{previous}]\n"
        ),
        1,
    );
    let file = dir.join(name);
    std::fs::write(&file, toml).expect("config file");
    file
}

/// Runs the binary with `--config config` (storage at `db_url`), `stdin` written to it.
fn run(dir: &Path, config: &Path, db_url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = binary(dir, "platform-cli-test")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("WAGW__STORAGE__URL", db_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("the binary ends")
}

fn said(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The command succeeded; answers its stdout.
fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", said(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command was refused (exit 2, nothing on stdout); answers its stderr.
fn refused(out: Output) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(out.stdout.is_empty(), "{}", said(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/gateway.db", dir.display())
}

#[tokio::test]
async fn the_command_line_manages_teams_and_numbers_and_never_prints_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = config_file(
        "http://127.0.0.1:9",
        d,
        "cli.toml",
        &EncryptionKey::generate(),
        &[],
    );
    let db = sqlite_url(d);
    let cli = |args: &[&str], stdin: &str| run(d, &config, &db, args, stdin);
    let secret = format!("EAAG-cli-secret-{}", uuid());
    let no_secret = |out: &Output| {
        let all = said(out);
        assert!(
            !all.contains(&secret),
            "the access token was printed: {all}"
        );
    };

    // A number, its token from stdin: stored, only its fingerprint shown.
    let out = cli(
        &[
            "phone-number",
            "put",
            PN3,
            "--per-second",
            "5",
            "--burst",
            "10",
        ],
        &format!("{secret}\n"),
    );
    no_secret(&out);
    let put = ok(out);
    let fingerprint = wa_groups_gateway::crypto::fingerprint(secret.as_bytes());
    assert!(put.contains("created"), "{put}");
    assert!(put.contains(&fingerprint), "{put}");
    let out = cli(&["phone-number", "put", PN3], &secret);
    no_secret(&out);
    assert!(ok(out).contains("replaced"));
    let out = cli(&["phone-number", "list"], "");
    no_secret(&out);
    let listed: Value = serde_json::from_str(&ok(out)).expect("json");
    let number = listed["phone_numbers"]
        .as_array()
        .expect("phone_numbers")
        .iter()
        .find(|n| n["phone_number_id"] == PN3)
        .cloned()
        .expect("the stored number is listed");
    assert_eq!(number["source"], "api", "{number}");
    assert_eq!(
        number["token_fingerprint"],
        fingerprint.as_str(),
        "{number}"
    );
    // An empty token is no token.
    let err = refused(cli(&["phone-number", "put", "444444"], "\n"));
    assert!(err.contains("stdin"), "{err}");

    // A team granted it; bad input names what is wrong, and nothing is stored.
    let err = refused(cli(&["team", "put", "Bad Name", "--phone-number", PN3], ""));
    assert!(err.contains("team"), "{err}");
    let err = refused(cli(&["team", "put", "ops", "--phone-number", "999999"], ""));
    assert!(err.contains("phone_numbers[0]"), "{err}");
    let err = refused(cli(
        &[
            "team",
            "put",
            "ops",
            "--phone-number",
            PN3,
            "--per-second",
            "0",
            "--burst",
            "1",
        ],
        "",
    ));
    assert!(err.contains("--per-second"), "{err}");
    let teams: Value = serde_json::from_str(&ok(cli(&["team", "list"], ""))).expect("json");
    assert!(!teams.to_string().contains("\"ops\""), "{teams}");
    let err = refused(cli(&["team", "put", "sales", "--phone-number", PN3], ""));
    assert!(err.contains("read-only"), "{err}");

    let put = ok(cli(&["team", "put", "ops", "--phone-number", PN3], ""));
    assert!(put.contains("team ops: created"), "{put}");
    let teams: Value = serde_json::from_str(&ok(cli(&["team", "list"], ""))).expect("json");
    let ops = teams["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == "ops")
        .cloned()
        .expect("ops is listed");
    assert_eq!(ops["source"], "api", "{ops}");
    assert_eq!(ops["phone_numbers"], json!([PN3]), "{ops}");

    // `token issue` mints for the stored team, within its grants.
    let issue = |numbers: &[&str]| {
        let mut args = vec!["token", "issue", "--team", "ops", "--scope", "groups:read"];
        for pn in numbers {
            args.extend(["--phone-number", pn]);
        }
        cli(&args, "")
    };
    let token = ok(issue(&[PN3]));
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    let err = refused(issue(&["111111"]));
    assert!(err.contains("--phone-number"), "{err}");

    // A number still granted cannot go; the team can, and then its tokens cannot be minted.
    let err = refused(cli(&["phone-number", "delete", PN3], ""));
    assert!(err.contains("ops"), "{err}");
    assert!(ok(cli(&["team", "delete", "ops"], "")).contains("deleted"));
    let err = refused(issue(&[]));
    assert!(err.contains("--team"), "{err}");
    let err = refused(cli(&["team", "delete", "ops"], ""));
    assert!(err.contains("not found"), "{err}");
    assert!(ok(cli(&["phone-number", "delete", PN3], "")).contains("deleted"));

    // The database file holds no token in clear.
    for entry in std::fs::read_dir(d).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("file");
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the access token is in a file in clear"
        );
    }
}

/// Waits for a process to end within `within`; answers its stderr.
fn exits_within(mut child: std::process::Child, log: &Path, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("status") {
            assert!(!status.success(), "{status}");
            return std::fs::read_to_string(log).unwrap_or_default();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "still running after {within:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_wrong_key_refuses_to_start_naming_it_and_storage_rekey_moves_to_a_new_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let meta = "http://127.0.0.1:9";
    let (old, new) = (EncryptionKey::generate(), EncryptionKey::generate());
    let under_old = config_file(meta, d, "old.toml", &old, &[]);
    let under_new = config_file(meta, d, "new.toml", &new, &[]);
    let rotating = config_file(meta, d, "rotating.toml", &new, &[&old]);
    let db = sqlite_url(d);
    let secret = format!("EAAG-rekey-secret-{}", uuid());
    ok(run(
        d,
        &under_old,
        &db,
        &["phone-number", "put", PN3],
        &secret,
    ));

    // The new key alone opens nothing: every command and `serve` refuse, naming the key.
    for args in [
        &["phone-number", "list"][..],
        &["team", "list"],
        &["storage", "rekey"],
    ] {
        let out = run(d, &under_new, &db, args, "");
        assert!(!said(&out).contains(&secret), "{}", said(&out));
        let err = refused(out);
        assert!(err.contains("storage.encryption_key"), "{args:?}: {err}");
    }
    let log = d.join("serve.log");
    let serving = binary(d, "platform-cli-test")
        .arg("--config")
        .arg(&under_new)
        .arg("serve")
        .env("WAGW__STORAGE__URL", &db)
        .env("WAGW__SERVER__PORT", free_port().to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("the binary runs");
    let stderr = exits_within(serving, &log, Duration::from_secs(20));
    assert!(stderr.contains("storage.encryption_key"), "{stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");

    // With the old key as previous, rekey seals everything under the new one.
    let out = ok(run(d, &rotating, &db, &["storage", "rekey"], ""));
    assert!(out.contains("1 access tokens"), "{out}");
    assert!(out.contains("1 were under a previous key"), "{out}");
    let listed = ok(run(d, &under_new, &db, &["phone-number", "list"], ""));
    assert!(listed.contains(PN3), "{listed}");
    let err = refused(run(d, &under_old, &db, &["phone-number", "list"], ""));
    assert!(err.contains("storage.encryption_key"), "{err}");
}

/// Gateway processes on one PostgreSQL database, with the configuration in a file the
/// command line reads too.
struct Fleet {
    replicas: Vec<Gateway>,
    db: TestDatabase,
    config: PathBuf,
    issuer: TokenIssuer,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// `storage_lines` go inside `[storage]` (e.g. `cache_ttl = "1s"`).
    async fn start(meta: &MockServer, replicas: u32, storage_lines: &str) -> Fleet {
        let db = TestDatabase::create().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_file(
            &meta.uri(),
            dir.path(),
            "fleet.toml",
            &EncryptionKey::generate(),
            &[],
        );
        let toml = std::fs::read_to_string(&config).expect("config").replacen(
            "[storage]\n",
            &format!("[storage]\n{storage_lines}\n"),
            1,
        );
        std::fs::write(&config, &toml).expect("config file");
        let settings = Settings::from_toml_overrides(&toml).expect("valid configuration");
        let issuer = TokenIssuer::new(&settings.auth, None).expect("signing key");
        let replicas = futures_util::future::join_all(
            (1..=replicas).map(|run| start(dir.path(), &config, &db.url, run)),
        )
        .await;
        Fleet {
            replicas,
            db,
            config,
            issuer,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            dir,
        }
    }

    fn cli(&self, args: &[&str], stdin: &str) -> Output {
        run(self.dir.path(), &self.config, &self.db.url, args, stdin)
    }

    fn token(&self, team: &str, scopes: &[Scope]) -> String {
        self.issuer
            .issue(team, scopes, None, 3600)
            .expect("token")
            .token
    }

    async fn sql(&self) -> PgConnection {
        PgConnection::connect(&self.db.url)
            .await
            .expect("database connection")
    }

    /// What `replica` answers `ops` listing its groups on PN3: 200 while the team is in
    /// force there, 401 once it is not.
    async fn list_status(&self, replica: usize, token: &str) -> u16 {
        self.http
            .get(self.replicas[replica].url(&format!("/v1/phone-numbers/{PN3}/groups")))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer")
            .status()
            .as_u16()
    }

    async fn admin(&self, replica: usize, method: reqwest::Method, path: &str, body: Value) -> u16 {
        let admin = self.token("platform", &[Scope::Admin]);
        let mut req = self
            .http
            .request(method.clone(), self.replicas[replica].url(path))
            .bearer_auth(admin);
        if method == reqwest::Method::PUT {
            req = req.json(&body);
        }
        req.send().await.expect("answer").status().as_u16()
    }
}

#[tokio::test]
async fn a_team_made_on_the_command_line_is_in_force_on_running_gateways_within_a_second() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::start(&meta, 2, "").await;
    let ops = fleet.token("ops", &[Scope::GroupsRead]);
    for replica in 0..2 {
        assert_eq!(fleet.list_status(replica, &ops).await, 401);
    }
    let secret = format!("EAAG-fleet-cli-{}", uuid());
    let out = fleet.cli(&["phone-number", "put", PN3], &secret);
    assert!(!said(&out).contains(&secret), "{}", said(&out));
    ok(out);
    ok(fleet.cli(&["team", "put", "ops", "--phone-number", PN3], ""));
    let made = Instant::now();
    for replica in 0..2 {
        eventually(
            Duration::from_secs(1).saturating_sub(made.elapsed()),
            &format!("replica {replica} knows ops"),
            async || (fleet.list_status(replica, &ops).await == 200).then_some(()),
        )
        .await;
    }
    // `token issue` on the same storage mints for it, and the gateways accept the token.
    let minted = ok(fleet.cli(
        &["token", "issue", "--team", "ops", "--scope", "groups:read"],
        "",
    ));
    assert_eq!(fleet.list_status(1, minted.trim()).await, 200);

    ok(fleet.cli(&["team", "delete", "ops"], ""));
    let deleted = Instant::now();
    for replica in 0..2 {
        eventually(
            Duration::from_secs(1).saturating_sub(deleted.elapsed()),
            &format!("replica {replica} refuses ops"),
            async || (fleet.list_status(replica, &ops).await == 401).then_some(()),
        )
        .await;
    }
    for gateway in &fleet.replicas {
        assert!(!gateway.stderr().contains(&secret));
        assert!(!gateway.stdout().contains(&secret));
    }
}

#[tokio::test]
async fn a_replica_whose_notification_connection_dropped_still_learns_a_team_deletion() {
    let meta = MockServer::builder().start().await;
    // The default cache_ttl (60 s, a reload every 15 s) is far longer than this test: only
    // the reload after reconnecting can help.
    let fleet = Fleet::start(&meta, 2, "").await;
    let ops = fleet.token("ops", &[Scope::GroupsRead]);
    let (changer, reader) = (0, 1);
    assert_eq!(
        fleet
            .admin(
                changer,
                reqwest::Method::PUT,
                &format!("/v1/admin/phone-numbers/{PN3}"),
                json!({"access_token": "EAAG-cut"}),
            )
            .await,
        201
    );
    let mut sql = fleet.sql().await;
    for round in 0..4 {
        let made = fleet
            .admin(
                changer,
                reqwest::Method::PUT,
                "/v1/admin/teams/ops",
                json!({"phone_numbers": [PN3]}),
            )
            .await;
        assert_eq!(made, 201, "round {round}");
        eventually(
            Duration::from_secs(2),
            &format!("round {round}: the reader knows ops"),
            async || (fleet.list_status(reader, &ops).await == 200).then_some(()),
        )
        .await;
        // The reader's notification connections are cut while the team is deleted: the
        // announcement may go out before it listens again.
        let cut = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .execute(&mut sql);
        let deleted = fleet.admin(
            changer,
            reqwest::Method::DELETE,
            "/v1/admin/teams/ops",
            Value::Null,
        );
        let (cut, deleted) = tokio::join!(cut, deleted);
        cut.expect("terminate listeners");
        assert_eq!(deleted, 204, "round {round}");
        eventually(
            Duration::from_secs(2),
            &format!("round {round}: the reader refuses ops"),
            async || (fleet.list_status(reader, &ops).await == 401).then_some(()),
        )
        .await;
    }
}

#[tokio::test]
async fn storage_cache_ttl_bounds_a_registry_change_nobody_announced() {
    let meta = MockServer::builder().start().await;
    let fleet = Fleet::start(&meta, 1, "cache_ttl = \"1s\"").await;
    let ops = fleet.token("ops", &[Scope::GroupsRead]);
    assert_eq!(
        fleet
            .admin(
                0,
                reqwest::Method::PUT,
                &format!("/v1/admin/phone-numbers/{PN3}"),
                json!({"access_token": "EAAG-ttl"}),
            )
            .await,
        201
    );
    assert_eq!(
        fleet
            .admin(
                0,
                reqwest::Method::PUT,
                "/v1/admin/teams/ops",
                json!({"phone_numbers": [PN3]}),
            )
            .await,
        201
    );
    assert_eq!(fleet.list_status(0, &ops).await, 200);
    // Deleted in the database behind the gateways' back: no NOTIFY.
    let mut sql = fleet.sql().await;
    let gone = sqlx::query("DELETE FROM platform_teams WHERE name = 'ops'")
        .execute(&mut sql)
        .await
        .expect("delete");
    assert_eq!(gone.rows_affected(), 1);
    let deleted = Instant::now();
    eventually(
        Duration::from_millis(1500),
        "the gateway refuses ops within storage.cache_ttl",
        async || (fleet.list_status(0, &ops).await == 401).then_some(()),
    )
    .await;
    assert!(
        deleted.elapsed() <= Duration::from_secs(1),
        "{:?}",
        deleted.elapsed()
    );
}
