//! Background work that keeps running (docs/architecture.md, "Supervision"): each long-lived
//! task (webhook processing, deliveries, notifications, retention, …) runs under a supervisor
//! that restarts it with backoff when it panics, counts the restart
//! (`wagw_task_restarts_total{task}`) and tells `/readyz` which task is down and why until it
//! runs again.
//!
//! Tasks handle their own errors (log and retry); what reaches the supervisor is what they
//! could not handle: a panic. A task that returns has stopped on purpose (the gateway is
//! stopping) and is not restarted.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// The first pause before a restart; doubled after each quick failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long counts as healthy: the next failure starts from `FIRST_BACKOFF` again.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// The supervised tasks of one gateway, shared by the tasks and `/readyz`.
#[derive(Clone, Default)]
pub struct Supervisor {
    down: Arc<Mutex<BTreeMap<&'static str, String>>>,
}

impl Supervisor {
    /// The tasks down now, each with why: empty while everything runs.
    pub fn down(&self) -> BTreeMap<&'static str, String> {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `make()` as task `task` on the current runtime, again after each panic.
    pub fn spawn<F, Fut>(&self, task: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let supervisor = self.clone();
        tokio::spawn(async move {
            supervisor
                .supervise(task, move || tokio::spawn(make()))
                .await
        });
    }

    /// `spawn` for a task that must stay on this thread (it holds `!Send` state, such as an
    /// awc client); to be awaited inside a `LocalSet` or an actix system.
    pub async fn run_local<F, Fut>(&self, task: &'static str, make: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        self.supervise(task, || tokio::task::spawn_local(make()))
            .await
    }

    async fn supervise(&self, task: &'static str, mut start: impl FnMut() -> JoinHandle<()>) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let outcome = start().await;
            let why = match outcome {
                Ok(()) => return,
                // Cancelled: the runtime is shutting down.
                Err(e) if e.is_cancelled() => return,
                Err(e) => panic_message(e.into_panic()),
            };
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = FIRST_BACKOFF;
            }
            tracing::error!(task, reason = %why, restart_in_ms = backoff.as_millis() as u64, "a background task failed; restarting it");
            metrics::counter!(crate::metrics::TASK_RESTARTS, "task" => task).increment(1);
            self.set_down(task, Some(format!("restarting after a panic: {why}")));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            self.set_down(task, None);
        }
    }

    fn set_down(&self, task: &'static str, why: Option<String>) {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match why {
            Some(why) => down.insert(task, why),
            None => down.remove(task),
        };
    }
}

/// What a panic said, when it said it with a string (as `panic!` and `expect` do).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(
            || "a panic without a message".to_owned(),
            |s| (*s).to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A task that panics twice is restarted, reported down meanwhile, and up once it runs.
    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_reported_down_meanwhile() {
        let supervisor = Supervisor::default();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let (gate, opened) = tokio::sync::watch::channel(false);
        supervisor.spawn("flaky", move || {
            let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
            let mut opened = opened.clone();
            async move {
                if run <= 2 {
                    // Held until the test looked at the state, then it panics.
                    let _ = opened.wait_for(|open| *open).await;
                    panic!("run {run} broke");
                }
                std::future::pending::<()>().await
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(supervisor.down().is_empty(), "nothing failed yet");
        gate.send(true).unwrap();
        let mut seen_down = None;
        while runs.load(Ordering::SeqCst) < 3 {
            if let Some(why) = supervisor.down().get("flaky") {
                seen_down = Some(why.clone());
            }
            assert!(Instant::now() < deadline, "not restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let why = seen_down.expect("reported down between runs");
        assert!(why.contains("broke"), "{why}");
        assert!(
            supervisor.down().is_empty(),
            "up again: {:?}",
            supervisor.down()
        );
    }

    #[tokio::test]
    async fn a_task_that_returns_has_stopped_and_is_not_restarted() {
        let supervisor = Supervisor::default();
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        supervisor.spawn("once", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(supervisor.down().is_empty());
    }

    #[test]
    fn panic_messages_are_read_from_either_string_kind() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7_u8)), "a panic without a message");
    }
}
