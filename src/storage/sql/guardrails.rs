//! Meta's 131208 backoff per number (table `number_backoffs`) and the billable messages
//! counted for usage (table `message_usage`).

use async_trait::async_trait;

use super::SqlStorage;
use crate::clock::now;
use serde_json::json;
use sqlx::Row;

use super::events;
use crate::clock::now_secs;
use crate::domain::events::{EventType, TeamEvent, event_id};
use crate::storage::{
    BackoffStore, PruneBatch, ReconcileStore, RegisteredGroup, Result, UsageFilter, UsageRow,
    UsageStore,
};

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

/// The `field` of the stored event standing for a reconciliation: not one of Meta's.
const GATEWAY_FIELD: &str = "gateway";
const RECONCILED_TYPE: &str = "group_reconciled_deleted";

#[async_trait]
impl ReconcileStore for SqlStorage {
    async fn active_groups(&self, phone_number_id: &str) -> Result<Vec<RegisteredGroup>> {
        let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT group_id, owner_team, created_at FROM groups
             WHERE phone_number_id = $1 AND status = 'active' ORDER BY seq",
        )
        .bind(phone_number_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(group_id, owner_team, created_at)| RegisteredGroup {
                group_id,
                owner_team,
                created_at,
            })
            .collect())
    }

    async fn mark_vanished(&self, group_id: &str) -> Result<bool> {
        let mut tx = self.writer.begin_with(self.dialect.begin()).await?;
        let row = sqlx::query(
            "UPDATE groups SET status = 'deleted', updated_at = $1
             WHERE group_id = $2 AND status = 'active'
             RETURNING owner_team, phone_number_id",
        )
        .bind(now())
        .bind(group_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let team: Option<String> = row.try_get(0)?;
        let phone_number_id: String = row.try_get(1)?;
        let key = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(
                format!("reconciled:{group_id}:{}", now()).as_bytes(),
            ))
        };
        let data = json!({ "reason": "reconciled" });
        // Team events hang off a stored event; this one stands for the gateway's finding.
        let stored: Option<i64> = sqlx::query_scalar(
            "INSERT INTO webhook_events (event_key, inbox_id, field, event_type,
               phone_number_id, group_id, occurred_at, payload, received_at)
             VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (event_key) DO NOTHING RETURNING id",
        )
        .bind(&key)
        .bind(GATEWAY_FIELD)
        .bind(RECONCILED_TYPE)
        .bind(&phone_number_id)
        .bind(group_id)
        .bind(now_secs())
        .bind(data.to_string())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(stored) = stored {
            let event = TeamEvent {
                id: event_id(&key),
                event_type: EventType::Deleted,
                occurred_at: now_secs(),
                phone_number_id,
                group_id: Some(group_id.to_owned()),
                request_id: None,
                data,
            };
            events::insert(&mut tx, stored, team.as_deref(), &event).await?;
        }
        tx.commit().await?;
        // Every replica's ownership cache forgets the group.
        self.announce_group(group_id).await?;
        Ok(true)
    }

    async fn note_unowned(
        &self,
        phone_number_id: &str,
        group_id: &str,
        subject: Option<&str>,
    ) -> Result<()> {
        let now = now();
        sqlx::query(
            "INSERT INTO groups (group_id, phone_number_id, subject, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(phone_number_id)
        .bind(subject)
        .bind(&now)
        .bind(&now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        let taken = sqlx::query(
            "INSERT INTO job_leases (name, holder, until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE job_leases.until_ms <= $4 OR job_leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }
}
