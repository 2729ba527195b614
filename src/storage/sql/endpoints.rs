//! Teams' webhook endpoints, deliveries per (event, endpoint) and the attempts log (tables
//! `webhook_endpoints`, `webhook_deliveries`, `webhook_attempts`).
//!
//! A replica delivers to an endpoint only while it holds the endpoint's lease
//! (`lease_owner`, `lease_until`), taken with one conditional UPDATE: so each attempt is made
//! by one replica, and an endpoint's deliveries go out in order.

use async_trait::async_trait;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

use super::events::{self, EVENT_COLUMNS, EventRow};
use super::rows::flag;
use super::{SqlStorage, placeholders, value_rows};
use crate::clock::{ms_to_rfc3339, now, now_ms, now_secs};
use crate::domain::endpoint::{EventTypeFilter, wants};
use crate::domain::events::{EventType, TeamEvent, event_id};
use crate::storage::{
    AttemptFilter, AttemptOutcome, AttemptRecord, DueDelivery, EndpointChange, EndpointHealth,
    EndpointRecord, EndpointStore, EndpointTarget, NewEndpoint, ReplayOutcome, ReplaySelection,
    Result, SettledAttempt, Verdict,
};

/// The `field` of the stored event standing for a gateway verdict (as for expiries).
const GATEWAY_FIELD: &str = "gateway";
const DISABLED_TYPE: &str = "endpoint_disabled";
/// Events a replay reads at once.
const REPLAY_CHUNK: i64 = 1000;

const ENDPOINT_COLUMNS: &str = "e.team, e.id, e.url, e.description, e.event_types, e.disabled,
    e.last_success_at, e.failing_since, e.last_failure_at, e.last_error, e.disabled_reason,
    e.disabled_at, e.created_at, e.updated_at,
    (SELECT COUNT(*) FROM webhook_deliveries d
     WHERE d.team = e.team AND d.endpoint_id = e.id AND d.status = 'pending') AS backlog";

#[derive(FromRow)]
struct EndpointRow {
    team: String,
    id: String,
    url: String,
    description: String,
    event_types: Option<String>,
    disabled: i64,
    last_success_at: Option<String>,
    failing_since: Option<i64>,
    last_failure_at: Option<String>,
    last_error: Option<String>,
    disabled_reason: Option<String>,
    disabled_at: Option<String>,
    created_at: String,
    updated_at: String,
    backlog: i64,
}

impl EndpointRow {
    fn into_record(self) -> sqlx::Result<EndpointRecord> {
        Ok(EndpointRecord {
            disabled: flag("disabled", self.disabled)?,
            event_types: self
                .event_types
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            team: self.team,
            id: self.id,
            url: self.url,
            description: self.description,
            backlog: self.backlog,
            last_success_at: self.last_success_at,
            failing_since: self.failing_since.map(ms_to_rfc3339),
            last_failure_at: self.last_failure_at,
            last_error: self.last_error,
            disabled_reason: self.disabled_reason,
            disabled_at: self.disabled_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(FromRow)]
struct TargetRow {
    team: String,
    id: String,
    url: String,
    sealed_secret: Option<String>,
    previous_sealed_secret: Option<String>,
    previous_secret_until: Option<i64>,
    failing_since: Option<i64>,
    consecutive_failures: i64,
}

#[derive(FromRow)]
struct AttemptRow {
    id: i64,
    event_id: String,
    attempt: i64,
    outcome: String,
    http_status: Option<i64>,
    error: Option<String>,
    duration_ms: i64,
    at: String,
}

#[derive(FromRow)]
struct DueRow {
    attempts: i64,
    first_due_at: i64,
    #[sqlx(flatten)]
    event: EventRow,
}

impl SqlStorage {
    async fn endpoint_rows(
        &self,
        team: Option<&str>,
        id: Option<&str>,
    ) -> Result<Vec<EndpointRecord>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e
             WHERE ($1 IS NULL OR e.team = $1) AND ($2 IS NULL OR e.id = $2)
             ORDER BY e.team, e.created_at, e.id"
        )))
        .bind(team)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(EndpointRow::into_record)
            .collect::<sqlx::Result<_>>()?)
    }
}

#[async_trait]
impl EndpointStore for SqlStorage {
    async fn sync_config_endpoints(&self, configured: &[(String, String)]) -> Result<()> {
        let now = now();
        let mut tx = self.writer.begin().await?;
        for (team, url) in configured {
            sqlx::query(
                "INSERT INTO webhook_endpoints (team, id, url, created_at, updated_at)
                 VALUES ($1, 'config', $2, $3, $3)
                 ON CONFLICT (team, id) DO UPDATE SET url = excluded.url, disabled = 0,
                   disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,
                   consecutive_failures = 0, paused_until = 0, last_error = NULL,
                   updated_at = excluded.updated_at
                 WHERE webhook_endpoints.url <> excluded.url",
            )
            .bind(team)
            .bind(url)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        // Teams whose configuration no longer has a webhook.
        let stale: Vec<String> =
            sqlx::query_scalar("SELECT team FROM webhook_endpoints WHERE id = 'config'")
                .fetch_all(&mut *tx)
                .await?;
        for team in stale {
            if configured.iter().any(|(t, _)| *t == team) {
                continue;
            }
            delete_endpoint_rows(&mut tx, &team, "config").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_endpoint(&self, e: &NewEndpoint<'_>) -> Result<()> {
        let now = now();
        sqlx::query(
            "INSERT INTO webhook_endpoints (team, id, url, description, event_types, sealed_secret,
               disabled, disabled_reason, disabled_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(e.team)
        .bind(e.id)
        .bind(e.url)
        .bind(e.description)
        .bind(e.event_types.map(|t| json!(t).to_string()))
        .bind(e.sealed_secret)
        .bind(i64::from(e.disabled))
        .bind(e.disabled.then_some("created disabled"))
        .bind(e.disabled.then(|| now.clone()))
        .bind(&now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn count_endpoints(&self, team: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_endpoints WHERE team = $1")
                .bind(team)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn endpoint(&self, team: &str, id: &str) -> Result<Option<EndpointRecord>> {
        Ok(self.endpoint_rows(Some(team), Some(id)).await?.pop())
    }

    async fn list_endpoints(&self, team: Option<&str>) -> Result<Vec<EndpointRecord>> {
        self.endpoint_rows(team, None).await
    }

    async fn update_endpoint(&self, team: &str, id: &str, change: &EndpointChange) -> Result<bool> {
        let now = now();
        let mut tx = self.writer.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT disabled FROM webhook_endpoints WHERE team = $1 AND id = $2",
        )
        .bind(team)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(was_disabled) = exists else {
            return Ok(false);
        };
        if let Some(url) = &change.url {
            // A new address starts with a clean record.
            sqlx::query(
                "UPDATE webhook_endpoints SET url = $1, failing_since = NULL,
                   consecutive_failures = 0, paused_until = 0, last_error = NULL, updated_at = $2
                 WHERE team = $3 AND id = $4",
            )
            .bind(url)
            .bind(&now)
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(description) = &change.description {
            sqlx::query(
                "UPDATE webhook_endpoints SET description = $1, updated_at = $2
                 WHERE team = $3 AND id = $4",
            )
            .bind(description)
            .bind(&now)
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(types) = &change.event_types {
            sqlx::query(
                "UPDATE webhook_endpoints SET event_types = $1, updated_at = $2
                 WHERE team = $3 AND id = $4",
            )
            .bind(types.as_ref().map(|t| json!(t).to_string()))
            .bind(&now)
            .bind(team)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        match change.disabled {
            Some(true) if was_disabled == 0 => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = 'disabled by the team',
                       disabled_at = $1, updated_at = $1 WHERE team = $2 AND id = $3",
                )
                .bind(&now)
                .bind(team)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            Some(false) if was_disabled != 0 => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET disabled = 0, disabled_reason = NULL,
                       disabled_at = NULL, failing_since = NULL, consecutive_failures = 0,
                       paused_until = 0, updated_at = $1 WHERE team = $2 AND id = $3",
                )
                .bind(&now)
                .bind(team)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                // The backlog is due now, all of it at the same instant: it then goes out
                // in event order. Its retries start afresh.
                sqlx::query(
                    "UPDATE webhook_deliveries SET next_attempt_at = $1, first_due_at = $1,
                       updated_at = $2
                     WHERE team = $3 AND endpoint_id = $4 AND status = 'pending'",
                )
                .bind(now_ms())
                .bind(&now)
                .bind(team)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_endpoint(&self, team: &str, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let deleted = delete_endpoint_rows(&mut tx, team, id).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn rotate_secret(
        &self,
        team: &str,
        id: &str,
        sealed_secret: &str,
        previous_until: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET previous_sealed_secret = sealed_secret,
               previous_secret_until = $1, sealed_secret = $2, updated_at = $3
             WHERE team = $4 AND id = $5 AND sealed_secret IS NOT NULL",
        )
        .bind(previous_until)
        .bind(sealed_secret)
        .bind(now())
        .bind(team)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn sealed_secrets(&self) -> Result<Vec<(String, String, String, Option<String>)>> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT team, id, sealed_secret, previous_sealed_secret FROM webhook_endpoints
             WHERE sealed_secret IS NOT NULL ORDER BY team, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn reseal_secret(
        &self,
        team: &str,
        id: &str,
        sealed: &str,
        previous: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_endpoints SET sealed_secret = $1, previous_sealed_secret = $2
             WHERE team = $3 AND id = $4",
        )
        .bind(sealed)
        .bind(previous)
        .bind(team)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_attempts(
        &self,
        team: &str,
        id: &str,
        filter: &AttemptFilter<'_>,
    ) -> Result<Vec<AttemptRecord>> {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT id, event_id, attempt, outcome, http_status, error, duration_ms, at
             FROM webhook_attempts
             WHERE team = $1 AND endpoint_id = $2 AND ($3 IS NULL OR outcome = $3)
               AND ($4 IS NULL OR event_id = $4) AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6",
        )
        .bind(team)
        .bind(id)
        .bind(filter.outcome.map(AttemptOutcome::as_str))
        .bind(filter.event_id)
        .bind(filter.before)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AttemptRecord {
                    outcome: super::rows::known("outcome", &r.outcome, AttemptOutcome::parse)?,
                    event_id: r.event_id,
                    attempt: r.attempt,
                    http_status: r.http_status,
                    error: r.error,
                    duration_ms: r.duration_ms,
                    at: r.at,
                    seq: r.id,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(Into::into)
    }

    async fn replay(
        &self,
        team: &str,
        id: &str,
        selection: &ReplaySelection<'_>,
        filter: Option<&EventTypeFilter>,
    ) -> Result<ReplayOutcome> {
        let mut tx = self.writer.begin().await?;
        let mut chosen: Vec<i64> = Vec::new();
        match selection {
            ReplaySelection::EventIds(ids) => {
                let mut query = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(format!(
                    "SELECT seq, id FROM team_events WHERE team = $1 AND id IN ({})",
                    placeholders(2, ids.len())
                )))
                .bind(team);
                for event in ids.iter() {
                    query = query.bind(event);
                }
                let found = query.fetch_all(&mut *tx).await?;
                let unknown: Vec<String> = ids
                    .iter()
                    .filter(|id| !found.iter().any(|(_, f)| f == *id))
                    .cloned()
                    .collect();
                if !unknown.is_empty() {
                    return Ok(ReplayOutcome::Unknown(unknown));
                }
                // Asked for by id: replayed whatever the filter says.
                chosen.extend(found.into_iter().map(|(seq, _)| seq));
            }
            ReplaySelection::Since(since) => {
                let mut after = 0i64;
                loop {
                    let page: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT seq, type FROM team_events
                         WHERE team = $1 AND created_at >= $2 AND seq > $3
                         ORDER BY seq LIMIT $4",
                    )
                    .bind(team)
                    .bind(*since)
                    .bind(after)
                    .bind(REPLAY_CHUNK)
                    .fetch_all(&mut *tx)
                    .await?;
                    let Some((last, _)) = page.last() else { break };
                    after = *last;
                    for (seq, event_type) in &page {
                        if EventType::parse(event_type).is_some_and(|t| wants(filter, t)) {
                            chosen.push(*seq);
                        }
                    }
                }
            }
        }
        chosen.sort_unstable();
        let now_ms = now_ms();
        let now = now();
        for chunk in chosen.chunks(300) {
            let mut upsert = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO webhook_deliveries (next_attempt_at, first_due_at, created_at,
                   updated_at, team, endpoint_id, event_seq)
                 VALUES {}
                 ON CONFLICT (team, endpoint_id, event_seq) DO UPDATE SET status = 'pending',
                   next_attempt_at = excluded.next_attempt_at,
                   first_due_at = excluded.first_due_at, updated_at = excluded.updated_at",
                value_rows("$1, $1, $2, $2, $3, $4", 5, 1, chunk.len())
            )))
            .bind(now_ms)
            .bind(&now)
            .bind(team)
            .bind(id);
            for seq in chunk {
                upsert = upsert.bind(*seq);
            }
            upsert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(ReplayOutcome::Queued(chosen.len() as u64))
    }

    async fn due_endpoints(&self, now_ms: i64, limit: usize) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT e.team, e.id FROM webhook_endpoints e
             WHERE e.disabled = 0 AND e.paused_until <= $1 AND e.lease_until < $1
               AND EXISTS (SELECT 1 FROM webhook_deliveries d
                           WHERE d.team = e.team AND d.endpoint_id = e.id
                             AND d.status = 'pending' AND d.next_attempt_at <= $1)
             ORDER BY e.served_at LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn take_endpoint(
        &self,
        team: &str,
        id: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<Option<EndpointTarget>> {
        let row: Option<TargetRow> = sqlx::query_as(
            "UPDATE webhook_endpoints SET lease_owner = $1, lease_until = $2, served_at = $3
             WHERE team = $4 AND id = $5 AND disabled = 0 AND paused_until <= $3
               AND lease_until < $3
             RETURNING team, id, url, sealed_secret, previous_sealed_secret,
               previous_secret_until, failing_since, consecutive_failures",
        )
        .bind(owner)
        .bind(until_ms)
        .bind(now_ms)
        .bind(team)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| EndpointTarget {
            team: r.team,
            id: r.id,
            url: r.url,
            sealed_secret: r.sealed_secret,
            previous_sealed_secret: r.previous_sealed_secret,
            previous_secret_until: r.previous_secret_until,
            failing_since: r.failing_since,
            consecutive_failures: r.consecutive_failures,
        }))
    }

    async fn renew_endpoint(
        &self,
        team: &str,
        id: &str,
        owner: &str,
        until_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET lease_until = $1
             WHERE team = $2 AND id = $3 AND lease_owner = $4 AND lease_until >= $5",
        )
        .bind(until_ms)
        .bind(team)
        .bind(id)
        .bind(owner)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_endpoint(&self, team: &str, id: &str, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_endpoints SET lease_until = 0, lease_owner = NULL
             WHERE team = $1 AND id = $2 AND lease_owner = $3",
        )
        .bind(team)
        .bind(id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn due_deliveries(
        &self,
        team: &str,
        id: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<DueDelivery>> {
        let columns = EVENT_COLUMNS
            .split(", ")
            .map(|c| format!("te.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<AnyRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT d.id AS delivery_id, d.attempts, d.first_due_at, {columns}
             FROM webhook_deliveries d JOIN team_events te ON te.seq = d.event_seq
             WHERE d.team = $1 AND d.endpoint_id = $2 AND d.status = 'pending'
               AND d.next_attempt_at <= $3
             ORDER BY d.next_attempt_at, d.event_seq LIMIT $4"
        )))
        .bind(team)
        .bind(id)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let delivery_id: i64 = row.try_get("delivery_id")?;
            // A row this build cannot read is given up alone, not read again at every turn
            // (where it would hold up the deliveries after it); an event of a type this
            // build does not know was never shown, and is not sent either.
            let readable = DueRow::from_row(&row)
                .map_err(|e| {
                    tracing::error!(error = %e, delivery = delivery_id, "a delivery's event cannot be read; giving it up");
                })
                .ok()
                .and_then(|r| Some((r.attempts, r.first_due_at, r.event.into_event()?.1)));
            match readable {
                Some((attempts, first_due_at, event)) => due.push(DueDelivery {
                    id: delivery_id,
                    attempt: attempts + 1,
                    first_due_at,
                    event,
                }),
                None => {
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed',
                           last_error = 'the event cannot be read', updated_at = $1 WHERE id = $2",
                    )
                    .bind(now())
                    .bind(delivery_id)
                    .execute(&self.writer)
                    .await?;
                }
            }
        }
        Ok(due)
    }

    async fn settle(
        &self,
        target: &EndpointTarget,
        attempts: &[SettledAttempt],
        health: &EndpointHealth,
        expire_before: i64,
    ) -> Result<bool> {
        let now = now();
        let mut tx = self.writer.begin().await?;
        for a in attempts {
            let (status, next) = match a.verdict {
                Verdict::Delivered => ("delivered", None),
                Verdict::RetryAt(at) => ("pending", Some(at)),
                Verdict::Failed => ("failed", None),
            };
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1,
                   next_attempt_at = COALESCE($2, next_attempt_at), attempts = $3,
                   last_status = $4, last_error = $5,
                   delivered_at = CASE WHEN $1 = 'delivered' THEN $6 ELSE delivered_at END,
                   updated_at = $6
                 WHERE id = $7",
            )
            .bind(status)
            .bind(next)
            .bind(a.attempt)
            .bind(a.http_status.map(i64::from))
            .bind(a.error.as_deref())
            .bind(&now)
            .bind(a.delivery_id)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in attempts.chunks(100) {
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO webhook_attempts (team, endpoint_id, event_id, attempt, outcome,
                   http_status, error, duration_ms, at, at_ms)
                 VALUES {}",
                value_rows("$1, $2", 3, 8, chunk.len())
            )))
            .bind(&target.team)
            .bind(&target.id);
            for a in chunk {
                let outcome = match a.verdict {
                    Verdict::Delivered => AttemptOutcome::Succeeded,
                    _ => AttemptOutcome::Failed,
                };
                insert = insert
                    .bind(&a.event_id)
                    .bind(a.attempt)
                    .bind(outcome.as_str())
                    .bind(a.http_status.map(i64::from))
                    .bind(a.error.as_deref())
                    .bind(a.duration_ms)
                    .bind(ms_to_rfc3339(a.at_ms))
                    .bind(a.at_ms);
            }
            insert.execute(&mut *tx).await?;
        }
        let mut disabled = false;
        match health {
            EndpointHealth::Healthy => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = NULL, consecutive_failures = 0,
                       paused_until = 0, last_success_at = $1
                     WHERE team = $2 AND id = $3",
                )
                .bind(&now)
                .bind(&target.team)
                .bind(&target.id)
                .execute(&mut *tx)
                .await?;
            }
            EndpointHealth::Failing {
                paused_until,
                error,
                disable,
            } => {
                let failed_at = attempts.last().map_or_else(now_ms, |a| a.at_ms);
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1),
                       consecutive_failures = consecutive_failures + 1, paused_until = $2,
                       last_failure_at = $3, last_error = $4,
                       last_success_at = CASE WHEN $5 = 1 THEN $3 ELSE last_success_at END
                     WHERE team = $6 AND id = $7",
                )
                .bind(failed_at)
                .bind(*paused_until)
                .bind(&now)
                .bind(error)
                .bind(i64::from(
                    attempts.iter().any(|a| a.verdict == Verdict::Delivered),
                ))
                .bind(&target.team)
                .bind(&target.id)
                .execute(&mut *tx)
                .await?;
                if let Some(reason) = disable {
                    disabled = disable_endpoint(&mut tx, target, reason).await?;
                } else {
                    // Deliveries that waited out webhooks.retry_for behind the failing
                    // endpoint fail (kept, listed, replayable).
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'failed',
                           last_error = COALESCE(last_error, 'not delivered within webhooks.retry_for'),
                           updated_at = $1
                         WHERE team = $2 AND endpoint_id = $3 AND status = 'pending'
                           AND first_due_at < $4",
                    )
                    .bind(&now)
                    .bind(&target.team)
                    .bind(&target.id)
                    .bind(expire_before)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(disabled)
    }

    async fn backlog_by_team(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT team, COUNT(*) FROM webhook_deliveries WHERE status = 'pending' GROUP BY team",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn prune_attempts(&self, before_ms: i64, limit: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_attempts WHERE id IN (
               SELECT id FROM webhook_attempts WHERE at_ms < $1 ORDER BY id LIMIT $2)",
        )
        .bind(before_ms)
        .bind(i64::from(limit))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Deletes an endpoint with its deliveries and attempts.
async fn delete_endpoint_rows(conn: &mut AnyConnection, team: &str, id: &str) -> Result<bool> {
    for table in ["webhook_deliveries", "webhook_attempts"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE team = $1 AND endpoint_id = $2"
        )))
        .bind(team)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE team = $1 AND id = $2")
        .bind(team)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables the endpoint (once) and tells its team: a `webhook.endpoint_disabled` event in
/// the feed, concerning no phone number.
async fn disable_endpoint(
    conn: &mut AnyConnection,
    target: &EndpointTarget,
    reason: &str,
) -> Result<bool> {
    let now = now();
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = $1, disabled_at = $2,
           lease_until = 0, lease_owner = NULL
         WHERE team = $3 AND id = $4 AND disabled = 0",
    )
    .bind(reason)
    .bind(&now)
    .bind(&target.team)
    .bind(&target.id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let key = format!(
        "endpoint-disabled:{}:{}:{}",
        target.team,
        target.id,
        now_ms()
    );
    let data = json!({
        "endpoint_id": target.id,
        "url": crate::domain::url::without_credentials(&target.url),
        "reason": reason,
    });
    let stored: Option<i64> = sqlx::query_scalar(
        "INSERT INTO webhook_events (event_key, inbox_id, field, event_type, occurred_at,
           payload, received_at)
         VALUES ($1, 0, $2, $3, $4, $5, $6)
         ON CONFLICT (event_key) DO NOTHING RETURNING id",
    )
    .bind(&key)
    .bind(GATEWAY_FIELD)
    .bind(DISABLED_TYPE)
    .bind(now_secs())
    .bind(data.to_string())
    .bind(&now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(stored) = stored {
        let event = TeamEvent {
            id: event_id(&key),
            event_type: EventType::EndpointDisabled,
            occurred_at: now_secs(),
            phone_number_id: String::new(),
            group_id: None,
            request_id: None,
            data,
        };
        events::insert(conn, stored, Some(&target.team), &event).await?;
    }
    Ok(true)
}
