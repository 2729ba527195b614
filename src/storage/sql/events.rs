//! Team events, their deliveries and the teams' endpoint state (tables `team_events`,
//! `event_deliveries`, `webhook_endpoints`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{AnyConnection, FromRow};

use super::{SqlStorage, placeholders, value_rows};
use crate::clock::{now, now_ms};
use crate::domain::FeedPosition;
use crate::domain::endpoint::{EventTypeFilter, wants};
use crate::domain::events::{EventType, TeamEvent};
use crate::storage::{EventPage, EventStore, FeedPage, PruneBatch, Result};

pub(super) const EVENT_COLUMNS: &str =
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
    let owned: Vec<(i64, &str, EventType)> = rows
        .iter()
        .filter_map(|(_, team, event)| {
            Some((*seqs.get(&event.id)?, team.as_deref()?, event.event_type))
        })
        .collect();
    fan_out(conn, &owned).await
}

#[derive(FromRow)]
struct FilterRow {
    team: String,
    id: String,
    event_types: Option<String>,
}

/// The `webhook_deliveries` rows that get freshly stored team events delivered: one per
/// (event, endpoint of its team whose filter takes the event's type). Events of no team,
/// and `webhook.endpoint_disabled` (feed only), are delivered nowhere.
async fn fan_out(conn: &mut AnyConnection, stored: &[(i64, &str, EventType)]) -> sqlx::Result<()> {
    let stored: Vec<&(i64, &str, EventType)> = stored
        .iter()
        .filter(|(_, _, t)| *t != EventType::EndpointDisabled)
        .collect();
    if stored.is_empty() {
        return Ok(());
    }
    let mut teams: Vec<&str> = stored.iter().map(|(_, team, _)| *team).collect();
    teams.sort_unstable();
    teams.dedup();
    // Only numbered placeholders are spliced in; the names are bound.
    let mut query = sqlx::query_as::<_, FilterRow>(sqlx::AssertSqlSafe(format!(
        "SELECT team, id, event_types FROM webhook_endpoints WHERE team IN ({})",
        placeholders(1, teams.len())
    )));
    for team in &teams {
        query = query.bind(*team);
    }
    let endpoints = query.fetch_all(&mut *conn).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let filters: Vec<(&str, &str, Option<EventTypeFilter>)> = endpoints
        .iter()
        .map(|e| {
            let filter = e
                .event_types
                .as_deref()
                .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
                .map(EventTypeFilter::new);
            (e.team.as_str(), e.id.as_str(), filter)
        })
        .collect();
    let mut rows: Vec<(i64, &str, &str)> = Vec::new();
    for (seq, team, event_type) in stored {
        for (endpoint_team, endpoint_id, filter) in &filters {
            if endpoint_team == team && wants(filter.as_ref(), *event_type) {
                rows.push((*seq, team, endpoint_id));
            }
        }
    }
    let now_ms = now_ms();
    let now = now();
    for chunk in rows.chunks(300) {
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_deliveries (next_attempt_at, first_due_at, created_at, updated_at,
               event_seq, team, endpoint_id)
             VALUES {} ON CONFLICT (team, endpoint_id, event_seq) DO NOTHING",
            value_rows("$1, $1, $2, $2", 3, 3, chunk.len())
        )))
        .bind(now_ms)
        .bind(&now);
        for (seq, team, endpoint_id) in chunk {
            insert = insert.bind(*seq).bind(*team).bind(*endpoint_id);
        }
        insert.execute(&mut *conn).await?;
    }
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
             WHERE (tx, seq) > ($1, $2) AND team = $3 {visible}
               AND (phone_number_id IN ({numbers}) OR phone_number_id = '')
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

    async fn prune_events(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT te.seq FROM team_events te
             WHERE te.created_at < $1
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
            "DELETE FROM webhook_deliveries WHERE event_seq IN ({list})"
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
