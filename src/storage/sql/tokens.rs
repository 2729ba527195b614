//! Revoked token ids (table `revoked_tokens`).

use async_trait::async_trait;

use super::SqlStorage;
use crate::clock::now;
use crate::storage::{PruneBatch, Result, TokenStore};

#[async_trait]
impl TokenStore for SqlStorage {
    async fn revoke(&self, jti: &str, by: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, revoked_at, revoked_by) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(now())
        .bind(by)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn revoked_since(&self, seq: i64) -> Result<Vec<(i64, String)>> {
        let rows: Vec<RevokedRow> =
            sqlx::query_as("SELECT seq, jti FROM revoked_tokens WHERE seq > $1 ORDER BY seq")
                .bind(seq)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| (r.seq, r.jti)).collect())
    }

    async fn prune_revocations(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM revoked_tokens WHERE seq IN (
               SELECT seq FROM revoked_tokens WHERE revoked_at < $1 ORDER BY seq LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

#[derive(sqlx::FromRow)]
struct RevokedRow {
    seq: i64,
    jti: String,
}
