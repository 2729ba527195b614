//! Groups, their owners and creations (tables `groups`, `create_requests`).

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::Value;

use super::rows::{flag, known, parsed};
use super::{
    Dialect, HELD_EVENTS, OVERTAKEN_CREATIONS, SqlStorage, placeholders, set_group_column,
};
use crate::clock::now;
use crate::domain::{
    GroupId, ItemError, PageCursor, Paging, PhoneNumberId, RequestId, encode_cursor,
};
use crate::storage::{
    CreateRequest, GroupPage, GroupQuota, GroupRecord, GroupStore, GroupSummary, GroupsPage,
    NewOwner, PendingCreation, PruneBatch, QuotaScope, Recorded, RequestStatus, Result,
};

#[async_trait]
impl GroupStore for SqlStorage {
    async fn record_creation(
        &self,
        creation: &PendingCreation,
        quota: GroupQuota,
    ) -> Result<Recorded> {
        let now = now();
        let mut tx = self.writer.begin_with(self.dialect.begin()).await?;
        if quota != GroupQuota::NONE {
            // SQLite's write lock is taken by BEGIN IMMEDIATE; PostgreSQL serialises the
            // creations of one number on an advisory lock held until the commit.
            if self.dialect == Dialect::Postgres {
                sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
                    .bind(quota_lock_key(&creation.phone_number_id))
                    .fetch_one(&mut *tx)
                    .await?;
            }
            let counts: QuotaCounts = sqlx::query_as(
                "SELECT
                   (SELECT COUNT(*) FROM groups WHERE phone_number_id = $1 AND status = 'active')
                   + (SELECT COUNT(*) FROM create_requests WHERE phone_number_id = $1 AND status = 'pending')
                     AS number_count,
                   (SELECT COUNT(*) FROM groups WHERE phone_number_id = $1 AND status = 'active' AND owner_team = $2)
                   + (SELECT COUNT(*) FROM create_requests WHERE phone_number_id = $1 AND status = 'pending' AND team = $2)
                     AS team_count",
            )
            .bind(&creation.phone_number_id)
            .bind(&creation.team)
            .fetch_one(&mut *tx)
            .await?;
            let over = [
                (QuotaScope::PhoneNumber, quota.number, counts.number_count),
                (QuotaScope::Team, quota.team, counts.team_count),
            ]
            .into_iter()
            .find_map(|(scope, limit, count)| {
                let limit = limit?;
                (count >= i64::from(limit)).then_some(Recorded::OverQuota {
                    scope,
                    limit,
                    count,
                })
            });
            if let Some(over) = over {
                tx.rollback().await?;
                return Ok(over);
            }
        }
        // The partial unique index create_requests_one_waiting_per_subject is what refuses a
        // second holder, atomically across replicas; DO NOTHING turns that into 0 rows.
        let inserted = sqlx::query(
            "INSERT INTO create_requests (request_id, team, phone_number_id, subject, status, created_at, updated_at, holds_subject)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, 1)
             ON CONFLICT DO NOTHING",
        )
        .bind(&creation.request_id)
        .bind(&creation.team)
        .bind(&creation.phone_number_id)
        .bind(&creation.subject)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(if inserted == 1 {
            Recorded::Yes
        } else {
            Recorded::SubjectBusy
        })
    }

    async fn fail_creation(&self, request_id: &RequestId, error: &ItemError) -> Result<()> {
        sqlx::query(
            "UPDATE create_requests SET status = 'failed', error = $1, updated_at = $2 WHERE request_id = $3 AND status = 'pending'",
        )
        .bind(serde_json::to_string(error).unwrap_or_default())
        .bind(now())
        .bind(request_id.as_ref())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn creation(&self, request_id: &str) -> Result<Option<CreateRequest>> {
        let row: Option<CreationRow> = sqlx::query_as(
            "SELECT request_id, status, phone_number_id, subject, group_id, invite_link, error, team
             FROM create_requests WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(CreationRow::into_record).transpose()?)
    }

    async fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>> {
        let row: Option<GroupRow> = sqlx::query_as(
            "SELECT group_id, phone_number_id, owner_team, subject, status, suspended FROM groups WHERE group_id = $1",
        )
        .bind(group_id.as_ref())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(GroupRow::into_record).transpose()?)
    }

    async fn set_group_active(&self, group_id: &str, active: bool) -> Result<()> {
        let status = if active { "active" } else { "deleted" };
        let mut conn = self.writer.acquire().await?;
        set_group_column(&mut conn, "status = $1", status, group_id).await?;
        self.announce_group(group_id).await
    }

    async fn set_invite_link(&self, group_id: &str, link: &str) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        set_group_column(&mut conn, "invite_link = $1", link, group_id).await
    }

    async fn list_groups(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        page: GroupsPage,
    ) -> Result<GroupPage> {
        let GroupsPage { limit, cursor } = page;
        const BASE: &str = "SELECT seq, group_id, subject, created_at FROM groups
             WHERE owner_team = $1 AND phone_number_id = $2 AND status = 'active'";
        // The first page starts before every seq (seqs start at 1).
        let (sql, from) = match cursor {
            PageCursor::First => ("AND seq > $3 ORDER BY seq ASC", 0),
            PageCursor::After(seq) => ("AND seq > $3 ORDER BY seq ASC", seq),
            PageCursor::Before(seq) => ("AND seq < $3 ORDER BY seq DESC", seq),
        };
        let mut rows: Vec<(i64, GroupSummary)> =
            sqlx::query_as::<_, SummaryRow>(sqlx::AssertSqlSafe(format!("{BASE} {sql} LIMIT $4")))
                .bind(team)
                .bind(pn.as_ref())
                .bind(from)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.writer)
                .await?
                .into_iter()
                .map(|r| {
                    (
                        r.seq,
                        GroupSummary {
                            id: r.group_id,
                            subject: r.subject,
                            created_at: r.created_at,
                        },
                    )
                })
                .collect();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let overflow = rows.len() > limit;
        rows.truncate(limit);
        if let PageCursor::Before(_) = cursor {
            rows.reverse();
        }
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => {
                return Ok(GroupPage {
                    groups: Vec::new(),
                    paging: Paging::default(),
                });
            }
        };
        let (has_before, has_after) = match cursor {
            PageCursor::First => (false, overflow),
            PageCursor::After(_) => (
                exists_beyond(&self.pool, team, pn, first, false).await?,
                overflow,
            ),
            PageCursor::Before(_) => (
                overflow,
                exists_beyond(&self.pool, team, pn, last, true).await?,
            ),
        };
        Ok(GroupPage {
            groups: rows.into_iter().map(|(_, g)| g).collect(),
            paging: Paging {
                after: has_after.then(|| encode_cursor(last)),
                before: has_before.then(|| encode_cursor(first)),
            },
        })
    }

    async fn set_owner(&self, assignment: &NewOwner<'_>) -> Result<Option<String>> {
        let NewOwner {
            group_id,
            phone_number_id: pn,
            team,
            subject,
        } = *assignment;
        let mut tx = self.writer.begin().await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT owner_team FROM groups WHERE group_id = $1")
                .bind(group_id.as_ref())
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
        let now = now();
        // Meta just confirmed it exists: it is active, whatever the registry believed.
        sqlx::query(
            "INSERT INTO groups (group_id, phone_number_id, owner_team, subject, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (group_id) DO UPDATE SET owner_team = excluded.owner_team,
               phone_number_id = excluded.phone_number_id,
               subject = COALESCE(excluded.subject, groups.subject),
               status = 'active', updated_at = excluded.updated_at",
        )
        .bind(group_id.as_ref())
        .bind(pn.as_ref())
        .bind(team)
        .bind(subject)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.announce_group(group_id.as_ref()).await?;
        Ok(previous)
    }

    async fn recent_owned_groups(&self, limit: i64) -> Result<Vec<GroupRecord>> {
        let rows: Vec<GroupRow> = sqlx::query_as(
            "SELECT group_id, phone_number_id, owner_team, subject, status, suspended FROM groups
             WHERE owner_team IS NOT NULL ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(GroupRow::into_record)
            .collect::<sqlx::Result<_>>()?)
    }

    /// The owning team of each of these groups the registry knows (absent: no owner).
    async fn owners(&self, group_ids: &[String]) -> Result<HashMap<String, String>> {
        if group_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders = placeholders(1, group_ids.len());
        // Only placeholders are spliced in; the ids are bound.
        let sql = format!(
            "SELECT group_id, owner_team FROM groups
             WHERE owner_team IS NOT NULL AND group_id IN ({placeholders})"
        );
        let mut query = sqlx::query_as::<_, OwnerRow>(sqlx::AssertSqlSafe(sql));
        for id in group_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.group_id, r.owner_team))
            .collect())
    }

    async fn has_stragglers(&self, since: &str) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 WHERE EXISTS (SELECT 1 {OVERTAKEN_CREATIONS})
                 OR EXISTS (SELECT 1 {HELD_EVENTS})"
        )))
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn stale_creations(&self, created_before: &str, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT request_id FROM create_requests
             WHERE status = 'pending' AND meta_request_id IS NULL AND outcome_unknown = 0
               AND created_at < $1
             ORDER BY created_at LIMIT $2",
        )
        .bind(created_before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn expire_creations(&self, created_before: &str, error: &Value) -> Result<Vec<String>> {
        self.fail_expired_creations(created_before, error).await
    }

    async fn prune_creations(&self, batch: &PruneBatch<'_>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM create_requests WHERE request_id IN (
               SELECT request_id FROM create_requests
               WHERE status IN ('created', 'failed') AND updated_at < $1 LIMIT $2)",
        )
        .bind(batch.before)
        .bind(i64::from(batch.limit))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

/// A creation as `create_requests` holds it.
#[derive(sqlx::FromRow)]
struct CreationRow {
    request_id: String,
    status: String,
    phone_number_id: String,
    subject: String,
    group_id: Option<String>,
    invite_link: Option<String>,
    /// Meta's error item, as JSON.
    error: Option<String>,
    team: String,
}

impl CreationRow {
    fn into_record(self) -> sqlx::Result<CreateRequest> {
        Ok(CreateRequest {
            status: known("status", &self.status, RequestStatus::parse)?,
            request_id: self.request_id,
            phone_number_id: self.phone_number_id,
            subject: self.subject,
            group_id: self.group_id,
            invite_link: self.invite_link,
            error: self
                .error
                .and_then(|e| serde_json::from_str::<Value>(&e).ok())
                .map(|v| ItemError::from_meta(&v)),
            team: self.team,
        })
    }
}

/// A group as `groups` holds it.
#[derive(sqlx::FromRow)]
struct GroupRow {
    group_id: String,
    phone_number_id: String,
    owner_team: Option<String>,
    subject: Option<String>,
    status: String,
    suspended: i64,
}

impl GroupRow {
    fn into_record(self) -> sqlx::Result<GroupRecord> {
        Ok(GroupRecord {
            group_id: parsed("group_id", &self.group_id, GroupId::parse)?,
            phone_number_id: parsed(
                "phone_number_id",
                &self.phone_number_id,
                PhoneNumberId::parse,
            )?,
            owner_team: self.owner_team,
            subject: self.subject,
            active: known("status", &self.status, |s| match s {
                "active" => Some(true),
                "deleted" => Some(false),
                _ => None,
            })?,
            suspended: flag("suspended", self.suspended)?,
        })
    }
}

/// A line of `list_groups`.
#[derive(sqlx::FromRow)]
struct SummaryRow {
    seq: i64,
    group_id: String,
    subject: Option<String>,
    created_at: String,
}

#[derive(sqlx::FromRow)]
struct OwnerRow {
    group_id: String,
    owner_team: String,
}

async fn exists_beyond(
    pool: &sqlx::AnyPool,
    team: &str,
    pn: &PhoneNumberId,
    seq: i64,
    later: bool,
) -> sqlx::Result<bool> {
    let sql = if later {
        "SELECT 1 FROM groups WHERE owner_team = $1 AND phone_number_id = $2 AND status = 'active' AND seq > $3 LIMIT 1"
    } else {
        "SELECT 1 FROM groups WHERE owner_team = $1 AND phone_number_id = $2 AND status = 'active' AND seq < $3 LIMIT 1"
    };
    let found = sqlx::query(sql)
        .bind(team)
        .bind(pn.as_ref())
        .bind(seq)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

// ---- inside a unit of work ------------------------------------------------------------

/// Active groups and pending creations on a number, of all teams and of the creating team.
#[derive(sqlx::FromRow)]
struct QuotaCounts {
    number_count: i64,
    team_count: i64,
}

/// The advisory lock serialising the creations of one phone number (PostgreSQL).
fn quota_lock_key(phone_number_id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("wagw:group-quota:{phone_number_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}
