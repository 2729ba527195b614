//! Meta's 131208 backoff per number (table `number_backoffs`) and the billable messages
//! counted for usage (table `message_usage`).

use async_trait::async_trait;

use super::SqlStorage;
use crate::clock::now;
use crate::storage::{BackoffStore, PruneBatch, Result, UsageFilter, UsageRow, UsageStore};

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

#[async_trait]
impl UsageStore for SqlStorage {
    async fn usage(&self, filter: &UsageFilter<'_>) -> Result<Vec<UsageRow>> {
        let rows: Vec<UsageRecord> = sqlx::query_as(
            "SELECT team, day, phone_number_id, category, COUNT(*) AS billable_messages
             FROM message_usage
             WHERE day >= $1 AND day <= $2 AND ($3 = '' OR team = $3)
             GROUP BY team, day, phone_number_id, category
             ORDER BY day, phone_number_id, category, team",
        )
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.team.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                team: r.team,
                day: r.day,
                phone_number_id: r.phone_number_id,
                category: r.category,
                billable_messages: r.billable_messages,
            })
            .collect())
    }

    async fn prune_usage(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM message_usage WHERE message_id IN (
               SELECT message_id FROM message_usage WHERE day < $1 LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

#[derive(sqlx::FromRow)]
struct UsageRecord {
    team: Option<String>,
    day: String,
    phone_number_id: String,
    category: String,
    billable_messages: i64,
}
