//! Meta's webhook POSTs and the events read out of them (tables `webhook_inbox`,
//! `webhook_events`).

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStorage;
use crate::clock::now;
use crate::storage::{InboxOutcome, InboxStore, PruneBatch, Result};

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
    async fn prune_inbox(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let posts = sqlx::query(
            "DELETE FROM webhook_inbox WHERE id IN (
               SELECT id FROM webhook_inbox
               WHERE received_at < ? AND (processed_at IS NOT NULL OR failed_at IS NOT NULL)
               ORDER BY id LIMIT ?)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.pool)
        .await?;
        // Events a team event still refers to stay until that one is pruned.
        let events = sqlx::query(
            "DELETE FROM webhook_events WHERE id IN (
               SELECT we.id FROM webhook_events we
               WHERE we.received_at < ?
                 AND NOT EXISTS (SELECT 1 FROM team_events te WHERE te.webhook_event_id = we.id)
               ORDER BY we.id LIMIT ?)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.pool)
        .await?;
        Ok(posts.rows_affected() + events.rows_affected())
    }
}
