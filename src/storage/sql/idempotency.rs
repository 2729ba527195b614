//! Answers kept for `Idempotency-Key` replays (table `idempotency_keys`).

use async_trait::async_trait;

use super::SqlStorage;
use super::rows::narrow;
use crate::clock::now;
use crate::storage::{Claim, IdempotencyStore, KeyClaim, PruneBatch, Result, StoredAnswer};

#[async_trait]
impl IdempotencyStore for SqlStorage {
    async fn claim(&self, claim: &KeyClaim<'_>) -> Result<Claim> {
        let KeyClaim {
            team,
            key,
            fingerprint,
            expired_before,
            abandoned_before,
        } = *claim;
        // A claim without an answer is taken for dead after a while, unless it is linked to
        // a creation that exists: that one may have reached Meta, and a retry answers it.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE team = $1 AND idem_key = $2
             AND (created_at < $3 OR (completed_at IS NULL AND created_at < $4
               AND (request_id IS NULL OR NOT EXISTS (
                 SELECT 1 FROM create_requests c WHERE c.request_id = idempotency_keys.request_id))))",
        )
        .bind(team)
        .bind(key)
        .bind(expired_before)
        .bind(abandoned_before)
        .execute(&self.writer)
        .await?;
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (team, idem_key, fingerprint, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (team, idem_key) DO NOTHING",
        )
        .bind(team)
        .bind(key)
        .bind(fingerprint)
        .bind(now())
        .execute(&self.writer)
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(Claim::Claimed);
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT fingerprint, status, location, body FROM idempotency_keys WHERE team = $1 AND idem_key = $2",
        )
        .bind(team)
        .bind(key)
        .fetch_optional(&self.writer)
        .await?;
        // Freed between the insert and the read: the next claim will take it.
        let Some(row) = row else {
            return Ok(Claim::Held {
                fingerprint: fingerprint.to_owned(),
                answer: None,
            });
        };
        let answer = match row.status {
            Some(status) => Some(StoredAnswer {
                status: narrow("status", status)?,
                location: row.location,
                body: row.body.unwrap_or_default(),
            }),
            None => None,
        };
        Ok(Claim::Held {
            fingerprint: row.fingerprint,
            answer,
        })
    }

    async fn complete(&self, team: &str, key: &str, answer: &StoredAnswer) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $1, location = $2, body = $3, completed_at = $4
             WHERE team = $5 AND idem_key = $6",
        )
        .bind(i64::from(answer.status))
        .bind(&answer.location)
        .bind(&answer.body)
        .bind(now())
        .bind(team)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn abandon(&self, team: &str, key: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE team = $1 AND idem_key = $2 AND completed_at IS NULL",
        )
        .bind(team)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn link(&self, team: &str, key: &str, request_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET request_id = $1 WHERE team = $2 AND idem_key = $3",
        )
        .bind(request_id)
        .bind(team)
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn linked(&self, team: &str, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT request_id FROM idempotency_keys WHERE team = $1 AND idem_key = $2",
        )
        .bind(team)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    async fn prune_keys(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (team, idem_key) IN (
               SELECT team, idem_key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

/// A key as `idempotency_keys` holds it; `status` is set once its answer is kept.
#[derive(sqlx::FromRow)]
struct KeyRow {
    fingerprint: String,
    status: Option<i64>,
    location: Option<String>,
    body: Option<Vec<u8>>,
}
