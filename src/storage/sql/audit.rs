//! The audit log (table `audit_log`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::{SqlStorage, placeholders};
use crate::storage::{
    AuditEntry, AuditFilter, AuditPage, AuditRecord, AuditStore, PruneBatch, Result,
};

#[async_trait]
impl AuditStore for SqlStorage {
    async fn insert(&self, e: &AuditEntry) -> Result<()> {
        // A creation that completed while the caller waited already knows its group.
        sqlx::query(
            "INSERT INTO audit_log (occurred_at, team, jti, method, route, phone_number_id, group_id,
               create_request_id, request_id, upstream_status, upstream_code, fbtrace_id, status, details)
             VALUES ($1, $2, $3, $4, $5, $6,
               COALESCE($7, (SELECT group_id FROM create_requests WHERE request_id = $8)),
               $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&e.occurred_at)
        .bind(&e.team)
        .bind(&e.jti)
        .bind(&e.method)
        .bind(&e.route)
        .bind(&e.phone_number_id)
        .bind(&e.group_id)
        .bind(&e.create_request_id)
        .bind(&e.create_request_id)
        .bind(&e.request_id)
        .bind(e.upstream_status.map(i64::from))
        .bind(e.upstream_code)
        .bind(&e.fbtrace_id)
        .bind(i64::from(e.status))
        .bind(e.details.as_ref().map(Value::to_string))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Newest first, `limit` at most.
    async fn list(&self, filter: &AuditFilter, limit: u32) -> Result<AuditPage> {
        let numbers = filter.phone_numbers.as_deref();
        if numbers.is_some_and(<[String]>::is_empty) {
            return Ok(AuditPage {
                records: Vec::new(),
                next: None,
            });
        }
        // A filter left out is bound as NULL and holds for every row. Only fixed fragments
        // and numbered placeholders are spliced in; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT seq, occurred_at, team, jti, method, route, phone_number_id, group_id,
               create_request_id, request_id, upstream_status, upstream_code, fbtrace_id, status, details
             FROM audit_log
             WHERE ($1 IS NULL OR team = $1)
               AND ($2 IS NULL OR group_id = $2 OR create_request_id IN
                     (SELECT request_id FROM create_requests WHERE group_id = $2))
               AND ($3 IS NULL OR occurred_at >= $3)
               AND ($4 IS NULL OR seq < $4)
               {numbers}
             ORDER BY seq DESC LIMIT $5",
            numbers = numbers
                .map(|n| format!("AND phone_number_id IN ({})", placeholders(6, n.len())))
                .unwrap_or_default(),
        )))
        .bind(&filter.team)
        .bind(&filter.group_id)
        .bind(&filter.since)
        .bind(filter.before_seq)
        .bind(i64::from(limit) + 1);
        for number in numbers.unwrap_or_default() {
            query = query.bind(number);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut records: Vec<(i64, AuditRecord)> = rows
            .into_iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let details: Option<String> = r.get(14);
                (
                    seq,
                    AuditRecord {
                        id: seq.to_string(),
                        entry: AuditEntry {
                            occurred_at: r.get(1),
                            team: r.get(2),
                            jti: r.get(3),
                            method: r.get(4),
                            route: r.get(5),
                            phone_number_id: r.get(6),
                            group_id: r.get(7),
                            create_request_id: r.get(8),
                            request_id: r.get(9),
                            upstream_status: r
                                .get::<Option<i64>, _>(10)
                                .and_then(|s| u16::try_from(s).ok()),
                            upstream_code: r.get(11),
                            fbtrace_id: r.get(12),
                            status: u16::try_from(r.get::<i64, _>(13)).unwrap_or_default(),
                            details: details.and_then(|d| serde_json::from_str(&d).ok()),
                        },
                    },
                )
            })
            .collect();
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let next = if more {
            records.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        Ok(AuditPage {
            records: records.into_iter().map(|(_, r)| r).collect(),
            next,
        })
    }
    async fn prune_audit(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM audit_log WHERE seq IN (
               SELECT seq FROM audit_log WHERE occurred_at < $1 ORDER BY seq LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}
