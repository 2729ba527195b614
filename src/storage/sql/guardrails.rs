//! Meta's 131208 backoff per number (table `number_backoffs`).

use async_trait::async_trait;

use super::SqlStorage;
use crate::clock::now;
use crate::storage::{BackoffStore, Result};

#[async_trait]
impl BackoffStore for SqlStorage {
    async fn hold_group_operations(&self, phone_number_id: &str, until_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO number_backoffs (phone_number_id, until_ms, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (phone_number_id) DO UPDATE SET
               until_ms = CASE WHEN excluded.until_ms > number_backoffs.until_ms
                               THEN excluded.until_ms ELSE number_backoffs.until_ms END,
               updated_at = excluded.updated_at",
        )
        .bind(phone_number_id)
        .bind(until_ms)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn group_operations_held_until(&self, phone_number_id: &str) -> Result<Option<i64>> {
        let until: Option<(i64,)> =
            sqlx::query_as("SELECT until_ms FROM number_backoffs WHERE phone_number_id = $1")
                .bind(phone_number_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(until.map(|(u,)| u))
    }
}
