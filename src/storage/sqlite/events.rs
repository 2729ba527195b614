//! Team events, their deliveries and the teams' endpoint state (tables `team_events`,
//! `event_deliveries`, `webhook_endpoints`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::SqliteStorage;
use crate::clock::{ms_to_rfc3339, now, now_ms};
use crate::domain::events::{EventType, TeamEvent};
use crate::storage::{
    DeliveryRecord, DeliveryStatus, DueDelivery, EndpointRecord, EventPage, EventStore,
    FailedAttempt, FeedPage, Lease, PruneBatch, Result,
};

const EVENT_COLUMNS: &str =
    "seq, id, type, occurred_at, phone_number_id, group_id, request_id, data";

/// Reads `EVENT_COLUMNS`; None for a type this build does not know.
pub(super) fn event_from_row(row: &SqliteRow) -> Option<(i64, TeamEvent)> {
    let event_type = EventType::parse(row.get::<String, _>(2).as_str())?;
    let data = serde_json::from_str(row.get::<String, _>(7).as_str()).unwrap_or(Value::Null);
    Some((
        row.get(0),
        TeamEvent {
            id: row.get(1),
            event_type,
            occurred_at: row.get(3),
            phone_number_id: row.get(4),
            group_id: row.get(5),
            request_id: row.get(6),
            data,
        },
    ))
}

/// Stores a team event and, when a team owns it, the row that gets it delivered.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    webhook_event_id: i64,
    team: Option<&str>,
    event: &TeamEvent,
) -> sqlx::Result<()> {
    let now = now();
    let seq = sqlx::query(
        "INSERT INTO team_events (id, webhook_event_id, team, type, occurred_at, phone_number_id,
           group_id, request_id, data, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&event.id)
    .bind(webhook_event_id)
    .bind(team)
    .bind(event.event_type.as_str())
    .bind(&event.occurred_at)
    .bind(&event.phone_number_id)
    .bind(&event.group_id)
    .bind(&event.request_id)
    .bind(event.data.to_string())
    .bind(&now)
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    if let Some(team) = team {
        sqlx::query(
            "INSERT INTO event_deliveries (event_seq, team, next_attempt_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(team)
        .bind(now_ms())
        .bind(&now)
        .bind(&now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl EventStore for SqliteStorage {
    /// A team's events on the given numbers after `after` (a seq), oldest first.
    async fn list(&self, team: &str, numbers: &[String], page: FeedPage) -> Result<EventPage> {
        let FeedPage { after, limit } = page;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM team_events
             WHERE team = ? AND seq > ? AND phone_number_id IN (SELECT value FROM json_each(?))
             ORDER BY seq LIMIT ?"
        )))
        .bind(team)
        .bind(after)
        .bind(serde_json::to_string(numbers).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(page_of(&rows, limit))
    }

    /// Events of groups no team owns, oldest first (administrators only).
    async fn list_unowned(&self, page: FeedPage) -> Result<EventPage> {
        let FeedPage { after, limit } = page;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM team_events WHERE team IS NULL AND seq > ?
             ORDER BY seq LIMIT ?"
        )))
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(page_of(&rows, limit))
    }

    /// The feed position of one of the team's events.
    async fn seq_of(&self, team: &str, event_id: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM team_events WHERE team = ? AND id = ?")
                .bind(team)
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn delivery(&self, event_id: &str) -> Result<Option<DeliveryRecord>> {
        let row = sqlx::query(
            "SELECT te.id, d.team, d.status, d.attempts, d.next_attempt_at, d.last_status,
                    d.last_error, d.delivered_at
             FROM event_deliveries d JOIN team_events te ON te.seq = d.event_seq WHERE te.id = ?",
        )
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| DeliveryRecord {
            event_id: r.get(0),
            team: r.get(1),
            status: DeliveryStatus::parse(r.get::<String, _>(2).as_str()),
            attempts: r.get(3),
            next_attempt_at: ms_to_rfc3339(r.get(4)),
            last_status: r.get(5),
            last_error: r.get(6),
            delivered_at: r.get(7),
        }))
    }

    async fn endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let rows = sqlx::query(
            "SELECT team, url, state, failing_since, last_success_at, last_failure_at, last_error,
                    disabled_at, disabled_reason
             FROM webhook_endpoints ORDER BY team",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| EndpointRecord {
                team: r.get(0),
                url: r.get(1),
                enabled: r.get::<String, _>(2) == "enabled",
                failing_since: r.get::<Option<i64>, _>(3).map(ms_to_rfc3339),
                last_success_at: r.get(4),
                last_failure_at: r.get(5),
                last_error: r.get(6),
                disabled_at: r.get(7),
                disabled_reason: r.get(8),
            })
            .collect())
    }

    // ---- the delivery worker -------------------------------------------------------------

    /// Records the configured endpoint; a changed URL is a new, enabled endpoint.
    async fn sync_endpoint(&self, team: &str, url: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (team, url, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (team) DO UPDATE SET url = excluded.url, state = 'enabled',
               failing_since = NULL, last_error = NULL, disabled_at = NULL, disabled_reason = NULL,
               updated_at = excluded.updated_at
             WHERE webhook_endpoints.url <> excluded.url",
        )
        .bind(team)
        .bind(url)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Teams whose endpoint is disabled.
    async fn disabled_teams(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT team FROM webhook_endpoints WHERE state = 'disabled'")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Pending deliveries of teams outside `teams` (no `webhook.url`) are skipped.
    async fn skip_unconfigured(&self, teams: &[String]) -> Result<u64> {
        let teams = serde_json::to_string(teams).unwrap_or_else(|_| "[]".into());
        // Looked for first: a write would take SQLite's write lock on every pass.
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM event_deliveries WHERE status = 'pending'
               AND team NOT IN (SELECT value FROM json_each(?)))",
        )
        .bind(&teams)
        .fetch_one(&self.pool)
        .await?;
        if !any {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE event_deliveries SET status = 'skipped', last_error = 'the team has no webhook.url',
               updated_at = ?
             WHERE status = 'pending' AND team NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(now())
        .bind(&teams)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Pending deliveries of a team whose endpoint is disabled are skipped.
    async fn skip_pending(&self, team: &str, reason: &str) -> Result<u64> {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM event_deliveries WHERE status = 'pending' AND team = ?)",
        )
        .bind(team)
        .fetch_one(&self.pool)
        .await?;
        if !any {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE event_deliveries SET status = 'skipped', last_error = ?, updated_at = ?
             WHERE status = 'pending' AND team = ?",
        )
        .bind(reason)
        .bind(now())
        .bind(team)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Claims up to `limit` due deliveries of a team for one attempt each: the attempt is
    /// counted and the row leased until `lease_until`, so a crash mid-attempt only delays a
    /// retry (with the same event id) and two workers never send the same attempt.
    async fn claim_due(&self, team: &str, lease: Lease) -> Result<Vec<DueDelivery>> {
        let Lease {
            now_ms,
            until_ms: lease_until,
            limit,
        } = lease;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM event_deliveries WHERE status = 'pending' AND team = ? AND next_attempt_at <= ?
             ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(team)
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let stamp = now();
        let mut claimed: Vec<(i64, i64, i64)> = sqlx::query(
            "UPDATE event_deliveries SET attempts = attempts + 1, next_attempt_at = ?,
               last_attempt_at = ?, updated_at = ?
             WHERE status = 'pending' AND next_attempt_at <= ?
               AND id IN (SELECT value FROM json_each(?))
             RETURNING id, event_seq, attempts",
        )
        .bind(lease_until)
        .bind(&stamp)
        .bind(&stamp)
        .bind(now_ms)
        .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        claimed.sort_unstable();
        let mut due = Vec::with_capacity(claimed.len());
        for (id, seq, attempts) in claimed {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM team_events WHERE seq = ?"
            )))
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
            match row.as_ref().and_then(event_from_row) {
                Some((_, event)) => due.push(DueDelivery {
                    id,
                    attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                    event,
                }),
                None => {
                    self.attempt_failed(
                        id,
                        &FailedAttempt::give_up(None, "the event cannot be read"),
                    )
                    .await?;
                }
            }
        }
        Ok(due)
    }

    /// The earliest pending attempt after `now_ms`.
    async fn next_due_after(&self, now_ms: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM event_deliveries WHERE status = 'pending' AND next_attempt_at > ?",
        )
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn delivered(&self, id: i64, team: &str, http_status: u16) -> Result<()> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE event_deliveries SET status = 'delivered', last_status = ?, last_error = NULL,
               delivered_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(i64::from(http_status))
        .bind(&now)
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = ?, updated_at = ?
             WHERE team = ?",
        )
        .bind(&now)
        .bind(&now)
        .bind(team)
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    /// Notes a failed attempt on the endpoint; answers when its run of failures began.
    async fn endpoint_failed(&self, team: &str, now_ms: i64, error: &str) -> Result<i64> {
        let now = now();
        let since: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?),
               last_failure_at = ?, last_error = ?, updated_at = ?
             WHERE team = ? RETURNING failing_since",
        )
        .bind(now_ms)
        .bind(&now)
        .bind(error)
        .bind(&now)
        .bind(team)
        .fetch_optional(&self.pool)
        .await?;
        Ok(since.unwrap_or(now_ms))
    }

    async fn attempt_failed(&self, id: i64, failure: &FailedAttempt<'_>) -> Result<()> {
        let status = if failure.retry_at_ms.is_some() {
            "pending"
        } else {
            "failed"
        };
        sqlx::query(
            "UPDATE event_deliveries SET status = ?, next_attempt_at = COALESCE(?, next_attempt_at),
               last_status = ?, last_error = ?, updated_at = ? WHERE id = ?",
        )
        .bind(status)
        .bind(failure.retry_at_ms)
        .bind(failure.http_status.map(i64::from))
        .bind(failure.error)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Disables the endpoint; true when it was enabled until now.
    async fn disable_endpoint(&self, team: &str, reason: &str) -> Result<bool> {
        let now = now();
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET state = 'disabled', disabled_at = ?, disabled_reason = ?,
               updated_at = ? WHERE team = ? AND state = 'enabled'",
        )
        .bind(&now)
        .bind(reason)
        .bind(&now)
        .bind(team)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
    async fn prune_events(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT te.seq FROM team_events te
             WHERE te.created_at < ?
               AND NOT EXISTS (SELECT 1 FROM event_deliveries d
                               WHERE d.event_seq = te.seq AND d.status = 'pending')
             ORDER BY te.seq LIMIT ?",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .fetch_all(&mut *tx)
        .await?;
        if seqs.is_empty() {
            return Ok(0);
        }
        let seqs = serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "DELETE FROM event_deliveries WHERE event_seq IN (SELECT value FROM json_each(?))",
        )
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM team_events WHERE seq IN (SELECT value FROM json_each(?))")
                .bind(&seqs)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

fn page_of(rows: &[SqliteRow], limit: u32) -> EventPage {
    let kept = &rows[..rows.len().min(limit as usize)];
    let more_after = if rows.len() > kept.len() {
        kept.last().map(|r| r.get::<i64, _>(0))
    } else {
        None
    };
    EventPage {
        events: kept
            .iter()
            .filter_map(event_from_row)
            .map(|(_, e)| e)
            .collect(),
        more_after,
    }
}
