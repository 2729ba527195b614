//! Background work is supervised and readiness tells the truth quickly (issue 20, DESIGN §7):
//! a task that panics is restarted, counted and reported by `/readyz` while it is down; a
//! database that stops answering makes `/readyz` 503 within a second, not after the pool's
//! 30 s, and 200 again once it answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use wa_groups_gateway::config::Settings;
use wa_groups_gateway::startup::Application;

use crate::helpers::*;
use crate::pg::TestDatabase;

async fn readiness(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let res = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz answers");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

#[tokio::test]
async fn a_task_that_panics_is_restarted_counted_and_reported_by_readyz_meanwhile() {
    let app = spawn_app().await;
    assert_eq!(readiness(&app.http, &app.address).await.0, 200);
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    // Panics in its first two runs, each time a moment after starting; then runs for good.
    app.tasks.spawn("flaky-test-task", move || {
        let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if run <= 2 {
                panic!("flaky run {run} broke");
            }
            std::future::pending::<()>().await
        }
    });
    let down = eventually(
        Duration::from_secs(5),
        "readyz reports the task down",
        async || {
            let (status, body) = readiness(&app.http, &app.address).await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(down["status"], "task down", "{down}");
    let why = down["dependencies"]["task:flaky-test-task"]
        .as_str()
        .expect("the task is named");
    assert!(why.contains("broke"), "{why}");
    eventually(
        Duration::from_secs(10),
        "ready again once it runs",
        async || {
            let (status, _) = readiness(&app.http, &app.address).await;
            (status == 200 && runs.load(Ordering::SeqCst) >= 3).then_some(())
        },
    )
    .await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wagw_task_restarts_total{task=\"flaky-test-task\"} 2")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("task_restarts"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A TCP relay to PostgreSQL that can go silent: connections stay open but nothing passes,
/// as with a database host that froze or a network that drops packets. Speaking again, it
/// closes the connections that went silent (their conversation is lost) and relays new ones.
struct Relay {
    port: u16,
    silent: Arc<AtomicBool>,
    /// Bumped when the relay speaks again: connections of an older epoch close.
    epoch: tokio::sync::watch::Sender<u32>,
}

impl Relay {
    async fn to_postgres() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = Arc::new(AtomicBool::new(false));
        let (epoch, epochs) = tokio::sync::watch::channel(0u32);
        let quiet = silent.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (quiet, mut epochs) = (quiet.clone(), epochs.clone());
                epochs.mark_unchanged();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = relay_one(client, quiet) => {}
                        _ = epochs.changed() => {}
                    }
                });
            }
        });
        Relay {
            port,
            silent,
            epoch,
        }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    fn speak_again(&self) {
        self.silent.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }
}

/// Relays one client connection to PostgreSQL, swallowing what passes while `quiet`.
async fn relay_one(mut client: TcpStream, quiet: Arc<AtomicBool>) {
    if quiet.load(Ordering::SeqCst) {
        // Accepted, never answered.
        return std::future::pending().await;
    }
    let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
        let _ = client.shutdown().await;
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    tokio::join!(
        pass(&mut cr, &mut sw, &quiet),
        pass(&mut sr, &mut cw, &quiet)
    );
}

async fn pass(
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
    quiet: &AtomicBool,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // While silent, bytes are swallowed: the other side waits forever.
        if !quiet.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn readyz_answers_within_a_second_when_the_database_stops_answering() {
    let db = TestDatabase::create().await;
    let relay = Relay::to_postgres().await;
    let meta = wiremock::MockServer::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings =
        Settings::from_toml_overrides(&test_config(&meta.uri(), dir.path(), "")).unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    settings.storage.url = format!("postgres://postgres@127.0.0.1:{}/{name}", relay.port).into();
    let app = Application::build(settings).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(readiness(&http, &base).await.0, 200);

    relay.go_silent();
    for _ in 0..3 {
        let asked = Instant::now();
        let (status, body) = readiness(&http, &base).await;
        let took = asked.elapsed();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["dependencies"]["storage"], "unreachable", "{body}");
        assert!(took < Duration::from_millis(1_500), "readyz took {took:?}");
    }

    // The database answers again (on new connections): ready again.
    relay.speak_again();
    eventually(Duration::from_secs(45), "ready again", async || {
        (readiness(&http, &base).await.0 == 200).then_some(())
    })
    .await;
}
