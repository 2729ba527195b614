//! Meta's webhook POSTs and the events read out of them (tables `webhook_inbox`,
//! `webhook_events`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{Row, SqliteConnection};

use super::SqliteStorage;
use crate::clock::now;
use crate::domain::events::NewWebhookEvent;
use crate::storage::{InboxOutcome, InboxStore, Result};

#[async_trait]
impl InboxStore for SqliteStorage {
    async fn store_post(&self, body_sha256: &str, body: &[u8]) -> Result<InboxOutcome> {
        let result = sqlx::query(
            "INSERT INTO webhook_inbox (body_sha256, body, received_at) VALUES (?, ?, ?)
             ON CONFLICT (body_sha256) DO NOTHING",
        )
        .bind(body_sha256)
        .bind(body)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(if result.rows_affected() == 1 {
            InboxOutcome::Stored(result.last_insert_rowid())
        } else {
            InboxOutcome::Duplicate
        })
    }

    /// Inbox rows not yet processed, oldest first (a restart resumes from here).
    async fn unprocessed(&self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT id, body FROM webhook_inbox WHERE processed_at IS NULL AND failed_at IS NULL
             ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Counts a failed attempt at processing a stored POST; after `max_attempts` the POST is
    /// set aside (answers true). Needs a working database: when the database itself fails,
    /// nothing is counted and nothing is set aside.
    async fn record_failure(&self, id: i64, error: &str, max_attempts: i64) -> Result<bool> {
        let now = now();
        let set_aside: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_inbox SET attempts = attempts + 1, last_error = ?,
               failed_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE NULL END
             WHERE id = ? RETURNING failed_at IS NOT NULL",
        )
        .bind(error)
        .bind(max_attempts)
        .bind(&now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(set_aside == Some(1))
    }
}

pub(super) async fn mark_processed(conn: &mut SqliteConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE webhook_inbox SET processed_at = ? WHERE id = ?")
        .bind(now())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores one event; its row id, or None when the same event was already stored.
pub(super) async fn insert_event(
    conn: &mut SqliteConnection,
    inbox_id: i64,
    event: &NewWebhookEvent,
) -> sqlx::Result<Option<i64>> {
    let result = sqlx::query(
        "INSERT INTO webhook_events (event_key, inbox_id, field, event_type, phone_number_id, group_id,
           meta_request_id, occurred_at, payload, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING",
    )
    .bind(&event.event_key)
    .bind(inbox_id)
    .bind(&event.field)
    .bind(&event.event_type)
    .bind(&event.phone_number_id)
    .bind(&event.group_id)
    .bind(&event.meta_request_id)
    .bind(&event.occurred_at)
    .bind(event.payload.to_string())
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok((result.rows_affected() == 1).then(|| result.last_insert_rowid()))
}

/// The first `group_create` event stored for Meta's request id: (phone number, item).
pub(super) async fn early_creation_event(
    conn: &mut SqliteConnection,
    meta_request_id: &str,
) -> sqlx::Result<Option<(Option<String>, Value)>> {
    let early = sqlx::query(
        "SELECT payload, phone_number_id FROM webhook_events
         WHERE meta_request_id = ? AND event_type = 'group_create' ORDER BY id LIMIT 1",
    )
    .bind(meta_request_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(early.and_then(|row| {
        let payload: String = row.get(0);
        let value = serde_json::from_str::<Value>(&payload).ok()?;
        Some((row.get(1), value))
    }))
}
