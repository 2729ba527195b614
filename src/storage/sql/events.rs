//! Team events, their deliveries and the teams' endpoint state (tables `team_events`,
//! `event_deliveries`, `webhook_endpoints`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow};

use super::rows::{known, narrow};
use super::{SqlStorage, placeholders, value_rows};
use crate::clock::{ms_to_rfc3339, now, now_ms};
use crate::domain::FeedPosition;
use crate::domain::events::{EventType, TeamEvent};
use crate::storage::{
    DeliveryRecord, DeliveryStatus, DueDelivery, EndpointRecord, EventPage, EventStore,
    FailedAttempt, FeedPage, Lease, PruneBatch, Result,
};

const EVENT_COLUMNS: &str =
    "seq, id, type, occurred_at, phone_number_id, group_id, request_id, data, tx";

/// A team event as `team_events` holds it (`EVENT_COLUMNS` but `tx`).
#[derive(FromRow)]
pub(super) struct EventRow {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    occurred_at: String,
    phone_number_id: String,
    group_id: Option<String>,
    request_id: Option<String>,
    /// JSON.
    data: String,
}

impl EventRow {
    /// The event and its seq; None for a type this build does not know (a newer build
    /// stored it): shown to nobody, as when it was stored.
    pub(super) fn into_event(self) -> Option<(i64, TeamEvent)> {
        let event_type = EventType::parse(&self.event_type)?;
        let data = serde_json::from_str(&self.data).unwrap_or(Value::Null);
        Some((
            self.seq,
            TeamEvent {
                id: self.id,
                event_type,
                occurred_at: self.occurred_at,
                phone_number_id: self.phone_number_id,
                group_id: self.group_id,
                request_id: self.request_id,
                data,
            },
        ))
    }
}

/// A feed line: a team event read with `EVENT_COLUMNS`, and its feed position.
#[derive(FromRow)]
struct FeedRow {
    #[sqlx(flatten)]
    event: EventRow,
    tx: i64,
}

impl FeedRow {
    fn position(&self) -> FeedPosition {
        FeedPosition {
            tx: self.tx,
            seq: self.event.seq,
        }
    }
}

#[derive(FromRow)]
struct PositionRow {
    tx: i64,
    seq: i64,
}

/// A team event just stored.
#[derive(FromRow)]
struct InsertedRow {
    seq: i64,
    id: String,
}

/// A delivery as `delivery` reads it (the event's id from `team_events`).
#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    team: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<String>,
}

impl DeliveryRow {
    fn into_record(self) -> sqlx::Result<DeliveryRecord> {
        Ok(DeliveryRecord {
            status: known("status", &self.status, DeliveryStatus::parse)?,
            event_id: self.id,
            team: self.team,
            attempts: self.attempts,
            next_attempt_at: ms_to_rfc3339(self.next_attempt_at),
            last_status: self.last_status,
            last_error: self.last_error,
            delivered_at: self.delivered_at,
        })
    }
}

/// A team's endpoint as `webhook_endpoints` holds it.
#[derive(FromRow)]
struct EndpointRow {
    team: String,
    url: String,
    state: String,
    failing_since: Option<i64>,
    last_success_at: Option<String>,
    last_failure_at: Option<String>,
    last_error: Option<String>,
    disabled_at: Option<String>,
    disabled_reason: Option<String>,
}

impl EndpointRow {
    fn into_record(self) -> sqlx::Result<EndpointRecord> {
        Ok(EndpointRecord {
            enabled: known("state", &self.state, |s| match s {
                "enabled" => Some(true),
                "disabled" => Some(false),
                _ => None,
            })?,
            team: self.team,
            url: self.url,
            failing_since: self.failing_since.map(ms_to_rfc3339),
            last_success_at: self.last_success_at,
            last_failure_at: self.last_failure_at,
            last_error: self.last_error,
            disabled_at: self.disabled_at,
            disabled_reason: self.disabled_reason,
        })
    }
}

/// A delivery `claim_due` just claimed.
#[derive(FromRow)]
struct ClaimedRow {
    id: i64,
    event_seq: i64,
    /// Attempts made, the claimed one included.
    attempts: i64,
}

impl ClaimedRow {
    /// The delivery of the event stored as `row`; None when there is no event to send (gone,
    /// or of a type this build does not know).
    fn into_due(self, row: Option<&AnyRow>) -> sqlx::Result<Option<DueDelivery>> {
        let Some(row) = row else {
            return Ok(None);
        };
        let Some((_, event)) = EventRow::from_row(row)?.into_event() else {
            return Ok(None);
        };
        Ok(Some(DueDelivery {
            id: self.id,
            attempt: narrow("attempts", self.attempts)?,
            event,
        }))
    }
}

/// Most team events written by one statement (each binds ten values).
pub(super) const ROWS_PER_INSERT: usize = 500;

/// Stores a team event and, when a team owns it, the row that gets it delivered.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    webhook_event_id: i64,
    team: Option<&str>,
    event: &TeamEvent,
) -> sqlx::Result<()> {
    insert_many(
        conn,
        &[(webhook_event_id, team.map(str::to_owned), event.clone())],
    )
    .await
}

/// Stores team events, in order, and for those a team owns the rows that get them
/// delivered: (stored Meta event, team, event).
pub(super) async fn insert_many(
    conn: &mut AnyConnection,
    rows: &[(i64, Option<String>, TeamEvent)],
) -> sqlx::Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        insert_chunk(conn, chunk).await?;
    }
    Ok(())
}

/// `insert_many` for at most `ROWS_PER_INSERT` rows: two statements.
async fn insert_chunk(
    conn: &mut AnyConnection,
    rows: &[(i64, Option<String>, TeamEvent)],
) -> sqlx::Result<()> {
    let now = now();
    // Only numbered placeholders are formatted in; the values are bound.
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO team_events (created_at, id, webhook_event_id, team, type, occurred_at,
           phone_number_id, group_id, request_id, data)
         VALUES {} RETURNING seq, id",
        value_rows("$1", 2, 9, rows.len())
    )))
    .bind(&now);
    for (webhook_event_id, team, event) in rows {
        insert = insert
            .bind(&event.id)
            .bind(*webhook_event_id)
            .bind(team.as_deref())
            .bind(event.event_type.as_str())
            .bind(&event.occurred_at)
            .bind(&event.phone_number_id)
            .bind(&event.group_id)
            .bind(&event.request_id)
            .bind(event.data.to_string());
    }
    let seqs: std::collections::HashMap<String, i64> = insert
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| InsertedRow::from_row(r).map(|r| (r.id, r.seq)))
        .collect::<sqlx::Result<_>>()?;
    let delivered: Vec<(i64, &str)> = rows
        .iter()
        .filter_map(|(_, team, event)| Some((*seqs.get(&event.id)?, team.as_deref()?)))
        .collect();
    if delivered.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO event_deliveries (next_attempt_at, created_at, updated_at, event_seq, team)
         VALUES {}",
        value_rows("$1, $2, $2", 3, 2, delivered.len())
    )))
    .bind(now_ms())
    .bind(&now);
    for (seq, team) in delivered {
        insert = insert.bind(seq).bind(team);
    }
    insert.execute(&mut *conn).await?;
    Ok(())
}

#[async_trait]
impl EventStore for SqlStorage {
    /// A team's events on the given numbers after `after` (a seq), oldest first.
    async fn list(&self, team: &str, numbers: &[String], page: FeedPage) -> Result<EventPage> {
        if numbers.is_empty() {
            return Ok(EventPage {
                events: Vec::new(),
                more_after: None,
            });
        }
        let FeedPage { after, limit } = page;
        // Only fixed fragments and numbered placeholders are spliced in; values are bound.
        let mut query = sqlx::query_as::<_, FeedRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM team_events
             WHERE (tx, seq) > ($1, $2) AND team = $3 {visible} AND phone_number_id IN ({numbers})
             ORDER BY tx, seq LIMIT $4",
            visible = self.dialect.committed_events(),
            numbers = placeholders(5, numbers.len()),
        )))
        .bind(after.tx)
        .bind(after.seq)
        .bind(team)
        .bind(i64::from(limit) + 1);
        for number in numbers {
            query = query.bind(number);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(page_of(rows, limit))
    }

    /// Events of groups no team owns, oldest first (administrators only); on the given
    /// numbers only, when some are given.
    async fn list_unowned(&self, numbers: Option<&[String]>, page: FeedPage) -> Result<EventPage> {
        if numbers.is_some_and(<[String]>::is_empty) {
            return Ok(EventPage {
                events: Vec::new(),
                more_after: None,
            });
        }
        let FeedPage { after, limit } = page;
        // Only fixed fragments and numbered placeholders are spliced in; values are bound.
        let mut query = sqlx::query_as::<_, FeedRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM team_events
             WHERE (tx, seq) > ($1, $2) AND team IS NULL {visible} {numbers}
             ORDER BY tx, seq LIMIT $3",
            visible = self.dialect.committed_events(),
            numbers = numbers
                .map(|n| format!("AND phone_number_id IN ({})", placeholders(4, n.len())))
                .unwrap_or_default(),
        )))
        .bind(after.tx)
        .bind(after.seq)
        .bind(i64::from(limit) + 1);
        for number in numbers.unwrap_or_default() {
            query = query.bind(number);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(page_of(rows, limit))
    }

    /// The feed position of one of the team's events.
    async fn position_of(&self, team: &str, event_id: &str) -> Result<Option<FeedPosition>> {
        let row: Option<PositionRow> =
            sqlx::query_as("SELECT tx, seq FROM team_events WHERE team = $1 AND id = $2")
                .bind(team)
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| FeedPosition {
            tx: r.tx,
            seq: r.seq,
        }))
    }

    async fn delivery(&self, event_id: &str) -> Result<Option<DeliveryRecord>> {
        let row: Option<DeliveryRow> = sqlx::query_as(
            "SELECT te.id, d.team, d.status, d.attempts, d.next_attempt_at, d.last_status,
                    d.last_error, d.delivered_at
             FROM event_deliveries d JOIN team_events te ON te.seq = d.event_seq WHERE te.id = $1",
        )
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(DeliveryRow::into_record).transpose()?)
    }

    async fn endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(
            "SELECT team, url, state, failing_since, last_success_at, last_failure_at, last_error,
                    disabled_at, disabled_reason
             FROM webhook_endpoints ORDER BY team",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(EndpointRow::into_record)
            .collect::<sqlx::Result<_>>()?)
    }

    // ---- the delivery worker -------------------------------------------------------------

    /// Records the configured endpoint; a changed URL is a new, enabled endpoint.
    async fn sync_endpoint(&self, team: &str, url: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (team, url, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (team) DO UPDATE SET url = excluded.url, state = 'enabled',
               failing_since = NULL, last_error = NULL, disabled_at = NULL, disabled_reason = NULL,
               updated_at = excluded.updated_at
             WHERE webhook_endpoints.url <> excluded.url",
        )
        .bind(team)
        .bind(url)
        .bind(now())
        .execute(&self.writer)
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
        // Empty lists are not SQL: a team name is never empty, so it stands for none.
        let configured: Vec<&str> = match teams.is_empty() {
            true => vec![""],
            false => teams.iter().map(String::as_str).collect(),
        };
        // Looked for first: a write would take SQLite's write lock on every pass.
        let mut probe = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM event_deliveries WHERE status = 'pending' AND team NOT IN ({}) LIMIT 1",
            placeholders(1, configured.len())
        )));
        for team in &configured {
            probe = probe.bind(*team);
        }
        if probe.fetch_optional(&self.pool).await?.is_none() {
            return Ok(0);
        }
        let mut update = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE event_deliveries SET status = 'skipped', last_error = 'the team has no webhook.url',
               updated_at = $1
             WHERE status = 'pending' AND team NOT IN ({})",
            placeholders(2, configured.len())
        )))
        .bind(now());
        for team in &configured {
            update = update.bind(*team);
        }
        Ok(update.execute(&self.writer).await?.rows_affected())
    }

    /// Pending deliveries of a team whose endpoint is disabled are skipped.
    async fn skip_pending(&self, team: &str, reason: &str) -> Result<u64> {
        let any = sqlx::query(
            "SELECT 1 FROM event_deliveries WHERE status = 'pending' AND team = $1 LIMIT 1",
        )
        .bind(team)
        .fetch_optional(&self.pool)
        .await?;
        if any.is_none() {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE event_deliveries SET status = 'skipped', last_error = $1, updated_at = $2
             WHERE status = 'pending' AND team = $3",
        )
        .bind(reason)
        .bind(now())
        .bind(team)
        .execute(&self.writer)
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
        let stamp = now();
        // One statement: the rows are chosen and leased at once, and on PostgreSQL rows another
        // replica is claiming right now are skipped rather than waited for. The choice is
        // materialised so that it is made once (a subquery in the WHERE clause may be run
        // again per row, and LIMIT would then not hold).
        let mut claimed: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH due AS MATERIALIZED (
               SELECT id FROM event_deliveries
               WHERE status = 'pending' AND team = $3 AND next_attempt_at <= $4
               ORDER BY next_attempt_at, id LIMIT $5 {skip_locked})
             UPDATE event_deliveries SET attempts = attempts + 1, next_attempt_at = $1,
               last_attempt_at = $2, updated_at = $2
             WHERE id IN (SELECT id FROM due) AND status = 'pending' AND next_attempt_at <= $4
             RETURNING id, event_seq, attempts",
            skip_locked = self.dialect.skip_locked(),
        )))
        .bind(lease_until)
        .bind(&stamp)
        .bind(team)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.writer)
        .await?;
        claimed.sort_unstable_by_key(|c| c.id);
        let mut due = Vec::with_capacity(claimed.len());
        for claim in claimed {
            let id = claim.id;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM team_events WHERE seq = $1"
            )))
            .bind(claim.event_seq)
            .fetch_optional(&self.pool)
            .await?;
            // A row this build cannot read is given up, not claimed again at every pass
            // (where it would hold up the deliveries claimed with it).
            let readable = claim.into_due(row.as_ref()).unwrap_or_else(|e| {
                tracing::error!(error = %e, delivery = id, "a claimed delivery cannot be read; giving it up");
                None
            });
            match readable {
                Some(delivery) => due.push(delivery),
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
            "SELECT MIN(next_attempt_at) FROM event_deliveries WHERE status = 'pending' AND next_attempt_at > $1",
        )
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn delivered(&self, id: i64, team: &str, http_status: u16) -> Result<()> {
        let now = now();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE event_deliveries SET status = 'delivered', last_status = $1, last_error = NULL,
               delivered_at = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(i64::from(http_status))
        .bind(&now)
        .bind(&now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = $1, updated_at = $2
             WHERE team = $3",
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
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1),
               last_failure_at = $2, last_error = $3, updated_at = $4
             WHERE team = $5 RETURNING failing_since",
        )
        .bind(now_ms)
        .bind(&now)
        .bind(error)
        .bind(&now)
        .bind(team)
        .fetch_optional(&self.writer)
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
            "UPDATE event_deliveries SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at),
               last_status = $3, last_error = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(status)
        .bind(failure.retry_at_ms)
        .bind(failure.http_status.map(i64::from))
        .bind(failure.error)
        .bind(now())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Disables the endpoint; true when it was enabled until now.
    async fn disable_endpoint(&self, team: &str, reason: &str) -> Result<bool> {
        let now = now();
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET state = 'disabled', disabled_at = $1, disabled_reason = $2,
               updated_at = $3 WHERE team = $4 AND state = 'enabled'",
        )
        .bind(&now)
        .bind(reason)
        .bind(&now)
        .bind(team)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }
    async fn prune_events(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT te.seq FROM team_events te
             WHERE te.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM event_deliveries d
                               WHERE d.event_seq = te.seq AND d.status = 'pending')
             ORDER BY te.seq LIMIT $2",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .fetch_all(&mut *tx)
        .await?;
        if seqs.is_empty() {
            return Ok(0);
        }
        // Only numbered placeholders are spliced in; the seqs are bound.
        let list = placeholders(1, seqs.len());
        let mut deliveries = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM event_deliveries WHERE event_seq IN ({list})"
        )));
        let mut events = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM team_events WHERE seq IN ({list})"
        )));
        for seq in &seqs {
            deliveries = deliveries.bind(*seq);
            events = events.bind(*seq);
        }
        deliveries.execute(&mut *tx).await?;
        let done = events.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

fn page_of(mut rows: Vec<FeedRow>, limit: u32) -> EventPage {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more_after = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(FeedRow::position)
    } else {
        None
    };
    EventPage {
        events: rows
            .into_iter()
            .filter_map(|r| r.event.into_event())
            .map(|(_, e)| e)
            .collect(),
        more_after,
    }
}
