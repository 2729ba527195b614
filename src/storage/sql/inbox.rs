//! Meta's webhook POSTs and the events read out of them (tables `webhook_inbox`,
//! `webhook_events`).

use std::collections::HashMap;

use async_trait::async_trait;

use super::{SqlStorage, value_rows};
use crate::clock::now;
use crate::storage::{InboxOutcome, InboxStore, PruneBatch, Result};

#[async_trait]
impl InboxStore for SqlStorage {
    async fn store_posts(&self, posts: &[(&str, &[u8])]) -> Result<Vec<InboxOutcome>> {
        // One statement, so one round trip to the database, and one write to disk, for all
        // of them (a single statement is its own transaction).
        // Only numbered placeholders are formatted in; the values are bound.
        let mut insert = sqlx::query_as::<_, StoredPostRow>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_inbox (received_at, body_sha256, body) VALUES {}
             ON CONFLICT (body_sha256) DO NOTHING
             RETURNING id, body_sha256",
            value_rows("$1", 2, 2, posts.len())
        )))
        .bind(now());
        for (body_sha256, body) in posts {
            insert = insert.bind(*body_sha256).bind(*body);
        }
        let mut stored = HashMap::with_capacity(posts.len());
        for row in insert.fetch_all(&self.writer).await? {
            stored.insert(row.body_sha256, row.id);
        }
        // The same body twice in one batch is stored once: the first is answered Stored.
        Ok(posts
            .iter()
            .map(|(body_sha256, _)| match stored.remove(*body_sha256) {
                Some(id) => InboxOutcome::Stored(id),
                None => InboxOutcome::Duplicate,
            })
            .collect())
    }

    /// Counts a failed attempt at processing a stored POST; after `max_attempts` the POST is
    /// set aside (answers true). Needs a working database: when the database itself fails,
    /// nothing is counted and nothing is set aside.
    async fn record_failure(&self, id: i64, error: &str, max_attempts: i64) -> Result<bool> {
        let now = now();
        let set_aside: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_inbox SET attempts = attempts + 1, last_error = $1,
               failed_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE NULL END
             WHERE id = $4 RETURNING CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END",
        )
        .bind(error)
        .bind(max_attempts)
        .bind(&now)
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        Ok(set_aside == Some(1))
    }
    async fn prune_inbox(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let posts = sqlx::query(
            "DELETE FROM webhook_inbox WHERE id IN (
               SELECT id FROM webhook_inbox
               WHERE received_at < $1 AND (processed_at IS NOT NULL OR failed_at IS NOT NULL)
               ORDER BY id LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        // Events a team event still refers to stay until that one is pruned.
        let events = sqlx::query(
            "DELETE FROM webhook_events WHERE id IN (
               SELECT we.id FROM webhook_events we
               WHERE we.received_at < $1
                 AND NOT EXISTS (SELECT 1 FROM team_events te WHERE te.webhook_event_id = we.id)
               ORDER BY we.id LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        Ok(posts.rows_affected() + events.rows_affected())
    }
}

/// A POST just stored.
#[derive(sqlx::FromRow)]
struct StoredPostRow {
    id: i64,
    body_sha256: String,
}
