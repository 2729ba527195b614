//! Retention (`[retention]`, README, "Keys"): every table that grows with traffic is pruned in
//! the background, in small batches, so the database stays bounded and no pass holds
//! SQLite's write lock for long (webhook ingress and API calls keep their latency meanwhile).

use crate::supervisor::Supervisor;
use std::future::Future;
use std::time::Duration;

use crate::clock::ago;
use crate::config::RetentionSettings;
use crate::storage::{PruneBatch, Result, Storage};

/// Pause between two batches: the rest of the gateway gets the database in between.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);
/// The first pass runs this long after start, out of the way of the start itself.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(5);

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Starts pruning on the current runtime, every `retention.interval_seconds`.
pub fn spawn(
    settings: &RetentionSettings,
    revocations_outlive: Duration,
    storage: &Storage,
    supervisor: &Supervisor,
) {
    let settings = settings.clone();
    let storage = storage.clone();
    supervisor.spawn("retention", move || {
        let (settings, storage) = (settings.clone(), storage.clone());
        async move {
            tokio::time::sleep(FIRST_PASS_AFTER).await;
            loop {
                match prune(&settings, revocations_outlive, &storage).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::info!(rows, "retention: old rows pruned"),
                    Err(e) => tracing::error!(error = %e, "retention pass failed; will retry"),
                }
                tokio::time::sleep(Duration::from_secs(settings.interval_seconds)).await;
            }
        }
    });
}

/// One pass over every table: answers the rows deleted. A revocation is kept for
/// `revocations_outlive` (the longest lifetime a token may have, and the leeway): every token
/// it refuses has expired once it goes.
pub async fn prune(
    settings: &RetentionSettings,
    revocations_outlive: Duration,
    storage: &Storage,
) -> Result<u64> {
    let limit = settings.batch_size;
    let cutoff = |days: u32| ago(DAY * days);
    let (events, inbox, audit, keys, creations) = (
        cutoff(settings.team_events_days),
        cutoff(settings.webhook_inbox_days),
        cutoff(settings.audit_days),
        cutoff(settings.idempotency_keys_days),
        cutoff(settings.creations_days),
    );
    let batch = |before| PruneBatch { before, limit };
    let (events, inbox, audit, keys, creations) = (
        batch(&events),
        batch(&inbox),
        batch(&audit),
        batch(&keys),
        batch(&creations),
    );
    let mut rows = 0;
    // Team events first: Meta's events they refer to are pruned only after them.
    rows += drain(limit, || storage.events.prune_events(&events)).await?;
    // The attempts log is kept as long as the events it tells of.
    let attempts_before = crate::clock::now_ms()
        - i64::try_from((DAY * settings.team_events_days).as_millis()).unwrap_or(i64::MAX);
    rows += drain(limit, || {
        storage.endpoints.prune_attempts(attempts_before, limit)
    })
    .await?;
    rows += drain(limit, || storage.inbox.prune_inbox(&inbox)).await?;
    rows += drain(limit, || storage.audit.prune_audit(&audit)).await?;
    rows += drain(limit, || storage.idempotency.prune_keys(&keys)).await?;
    rows += drain(limit, || storage.groups.prune_creations(&creations)).await?;
    // Usage rows are kept by day (`YYYY-MM-DD`): a day before the cut-off's day goes.
    let usage = ago(DAY * settings.usage_days);
    let usage_day = usage.get(..10).unwrap_or(&usage).to_owned();
    let usage = batch(&usage_day);
    rows += drain(limit, || storage.usage.prune_usage(&usage)).await?;
    let revocations = ago(revocations_outlive);
    let revocations = batch(&revocations);
    rows += drain(limit, || storage.tokens.prune_revocations(&revocations)).await?;
    Ok(rows)
}

/// Runs `batch` until it deletes fewer than `limit` rows, pausing between batches.
async fn drain<F, Fut>(limit: u32, mut batch: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let deleted = batch().await?;
        total += deleted;
        if deleted < u64::from(limit) {
            return Ok(total);
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}
