//! The audit log (table `audit_log`).

use async_trait::async_trait;
use serde_json::Value;

use super::rows::narrow;
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
        let mut query = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(format!(
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
            .map(|r| Ok((r.seq, r.into_record()?)))
            .collect::<sqlx::Result<_>>()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = records.len() > limit;
        records.truncate(limit);
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

/// A record as `audit_log` holds it.
#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    occurred_at: String,
    team: Option<String>,
    jti: Option<String>,
    method: String,
    route: String,
    phone_number_id: Option<String>,
    group_id: Option<String>,
    create_request_id: Option<String>,
    request_id: String,
    upstream_status: Option<i64>,
    upstream_code: Option<i64>,
    fbtrace_id: Option<String>,
    status: i64,
    /// JSON.
    details: Option<String>,
}

impl AuditRow {
    fn into_record(self) -> sqlx::Result<AuditRecord> {
        Ok(AuditRecord {
            id: self.seq.to_string(),
            entry: AuditEntry {
                upstream_status: self
                    .upstream_status
                    .map(|s| narrow("upstream_status", s))
                    .transpose()?,
                status: narrow("status", self.status)?,
                occurred_at: self.occurred_at,
                team: self.team,
                jti: self.jti,
                method: self.method,
                route: self.route,
                phone_number_id: self.phone_number_id,
                group_id: self.group_id,
                create_request_id: self.create_request_id,
                request_id: self.request_id,
                upstream_code: self.upstream_code,
                fbtrace_id: self.fbtrace_id,
                details: self.details.and_then(|d| serde_json::from_str(&d).ok()),
            },
        })
    }
}
