//! The audit log (table `audit_log`).

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;

use super::SqliteStorage;
use crate::storage::{
    AuditFilter, AuditPage, AuditRecord, AuditStore, NewAuditEntry, PruneBatch, Result,
};

#[async_trait]
impl AuditStore for SqliteStorage {
    async fn insert(&self, e: &NewAuditEntry) -> Result<()> {
        // A creation that completed while the caller waited already knows its group.
        sqlx::query(
            "INSERT INTO audit_log (occurred_at, team, jti, method, route, phone_number_id, group_id,
               create_request_id, request_id, upstream_status, upstream_code, fbtrace_id, status, details)
             VALUES (?, ?, ?, ?, ?, ?,
               COALESCE(?, (SELECT group_id FROM create_requests WHERE request_id = ?)),
               ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first, `limit` at most.
    async fn list(&self, filter: &AuditFilter, limit: u32) -> Result<AuditPage> {
        let mut sql = String::from(
            "SELECT seq, occurred_at, team, jti, method, route, phone_number_id, group_id,
               create_request_id, request_id, upstream_status, upstream_code, fbtrace_id, status, details
             FROM audit_log WHERE 1 = 1",
        );
        if filter.team.is_some() {
            sql.push_str(" AND team = ?");
        }
        if filter.group_id.is_some() {
            sql.push_str(
                " AND (group_id = ? OR create_request_id IN
                   (SELECT request_id FROM create_requests WHERE group_id = ?))",
            );
        }
        if filter.since.is_some() {
            sql.push_str(" AND occurred_at >= ?");
        }
        if filter.before_seq.is_some() {
            sql.push_str(" AND seq < ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        // Only fixed fragments above; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(team) = &filter.team {
            query = query.bind(team);
        }
        if let Some(group) = &filter.group_id {
            query = query.bind(group).bind(group);
        }
        if let Some(since) = &filter.since {
            query = query.bind(since);
        }
        if let Some(seq) = filter.before_seq {
            query = query.bind(seq);
        }
        let rows = query
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut records: Vec<(i64, AuditRecord)> = rows
            .into_iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let details: Option<String> = r.get(14);
                (
                    seq,
                    AuditRecord {
                        id: seq.to_string(),
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
               SELECT seq FROM audit_log WHERE occurred_at < ? ORDER BY seq LIMIT ?)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
