//! The gateway's memory: groups and their owners, pending creations, Meta's webhook inbox.
//! All SQL lives here.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::domain::{GroupId, PhoneNumberId, RequestId};
use crate::graph::ItemError;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Clone)]
pub struct Registry {
    pool: SqlitePool,
    waiters: Waiters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Created,
    Failed,
}

impl RequestStatus {
    fn parse(s: &str) -> Self {
        match s {
            "created" => RequestStatus::Created,
            "failed" => RequestStatus::Failed,
            _ => RequestStatus::Pending,
        }
    }
}

/// A group creation as the caller sees it (`GET /v1/group-requests/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "request_id": "req_3f1c2a7e0d1b4a559a439b2f4f9f3c10",
    "status": "created",
    "phone_number_id": "12784358810",
    "subject": "New Purchase Inquiry",
    "group_id": "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD",
    "invite_link": "https://chat.whatsapp.com/LINK_ID"
}))]
pub struct CreateRequest {
    pub request_id: String,
    pub status: RequestStatus,
    pub phone_number_id: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    #[serde(skip)]
    pub team: String,
}

#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub group_id: GroupId,
    pub phone_number_id: PhoneNumberId,
    pub owner_team: Option<String>,
    pub subject: Option<String>,
    pub active: bool,
    pub suspended: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupSummary {
    #[schema(example = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD")]
    pub id: String,
    #[schema(example = "New Purchase Inquiry")]
    pub subject: Option<String>,
    /// RFC 3339.
    #[schema(example = "2026-11-26T10:15:00.000Z")]
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct GroupPage {
    pub groups: Vec<GroupSummary>,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// Which way a listing page goes from its cursor.
#[derive(Debug, Clone, Copy)]
pub enum PageCursor {
    First,
    After(i64),
    Before(i64),
}

/// Cursors are opaque to callers so their form can change without breaking them.
pub fn encode_cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

pub fn decode_cursor(raw: &str) -> Result<i64, String> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("seq:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| "is not a cursor this gateway issued".to_owned())
}

/// Wakes callers waiting (`wait_seconds`) for a creation to complete.
#[derive(Clone, Default)]
pub struct Waiters {
    inner: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Waiters {
    pub fn subscribe(&self, request_id: &str) -> Arc<Notify> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(request_id.to_owned()).or_default().clone()
    }

    pub fn wake(&self, request_id: &str) {
        let notify = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(request_id);
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Drops the entry once nobody else holds it, so abandoned waits do not accumulate.
    pub fn release(&self, request_id: &str, notify: Arc<Notify>) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&notify) <= 2 {
            map.remove(request_id);
        }
    }
}

/// Outcome of storing a webhook POST.
#[derive(Debug, PartialEq, Eq)]
pub enum InboxOutcome {
    Stored(i64),
    Duplicate,
}

/// A pending creation that a `group_create` event completed or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The gateway's request id, as answered by `create_group`.
    pub request_id: String,
    pub team: String,
    pub phone_number_id: String,
}

/// Who owns a group, as the registry knows it.
#[derive(Debug, Clone)]
pub struct GroupOwner {
    pub team: Option<String>,
    pub phone_number_id: String,
}

/// One group event read out of a webhook POST, ready to store.
#[derive(Debug, Clone)]
pub struct NewWebhookEvent {
    pub event_key: String,
    pub field: String,
    pub event_type: String,
    pub phone_number_id: Option<String>,
    pub group_id: Option<String>,
    pub meta_request_id: Option<String>,
    pub occurred_at: Option<String>,
    pub payload: Value,
}

impl Registry {
    pub async fn connect(url: &str) -> Result<Registry, sqlx::Error> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory && let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
            }
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // An in-memory database lives only as long as its one connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(options)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(Registry {
            pool,
            waiters: Waiters::default(),
        })
    }

    /// The pool, for stores of other modules that keep their own tables here.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn waiters(&self) -> &Waiters {
        &self.waiters
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    // ---- create requests -------------------------------------------------------------

    pub async fn insert_create_request(
        &self,
        request_id: &RequestId,
        team: &str,
        pn: &PhoneNumberId,
        subject: &str,
    ) -> Result<(), sqlx::Error> {
        let now = now();
        sqlx::query(
            "INSERT INTO create_requests (request_id, team, phone_number_id, subject, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(request_id.as_ref())
        .bind(team)
        .bind(pn.as_ref())
        .bind(subject)
        .bind(&now)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records Meta's request id, then applies a creation webhook that may have overtaken
    /// Meta's own answer (its team event, kept ownerless until now, becomes the team's).
    pub async fn attach_meta_request_id(
        &self,
        request_id: &RequestId,
        meta_request_id: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE create_requests SET meta_request_id = ?, updated_at = ? WHERE request_id = ?",
        )
        .bind(meta_request_id)
        .bind(now())
        .bind(request_id.as_ref())
        .execute(&mut *tx)
        .await?;
        let early = sqlx::query(
            "SELECT payload, phone_number_id FROM webhook_events
             WHERE meta_request_id = ? AND event_type = 'group_create' ORDER BY id LIMIT 1",
        )
        .bind(meta_request_id)
        .fetch_optional(&mut *tx)
        .await?;
        let mut completed = None;
        if let Some(row) = early {
            let payload: String = row.get(0);
            let pn: Option<String> = row.get(1);
            if let Ok(value) = serde_json::from_str::<Value>(&payload) {
                completed =
                    complete_creation_in(&mut tx, meta_request_id, pn.as_deref(), &value).await?;
                if let Some(done) = &completed {
                    let group_id = value.get("group_id").and_then(Value::as_str);
                    crate::events::claim_for_creation(&mut tx, meta_request_id, done, group_id)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        if let Some(done) = completed {
            self.waiters.wake(&done.request_id);
        }
        Ok(())
    }

    pub async fn fail_create_request(
        &self,
        request_id: &RequestId,
        error: &ItemError,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE create_requests SET status = 'failed', error = ?, updated_at = ? WHERE request_id = ? AND status = 'pending'",
        )
        .bind(serde_json::to_string(error).unwrap_or_default())
        .bind(now())
        .bind(request_id.as_ref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn create_request(
        &self,
        request_id: &str,
    ) -> Result<Option<CreateRequest>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT request_id, status, phone_number_id, subject, group_id, invite_link, error, team
             FROM create_requests WHERE request_id = ?",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| CreateRequest {
            request_id: r.get(0),
            status: RequestStatus::parse(r.get::<String, _>(1).as_str()),
            phone_number_id: r.get(2),
            subject: r.get(3),
            group_id: r.get(4),
            invite_link: r.get(5),
            error: r
                .get::<Option<String>, _>(6)
                .and_then(|e| serde_json::from_str::<Value>(&e).ok())
                .map(|v| ItemError::from_meta(&v)),
            team: r.get(7),
        }))
    }

    // ---- groups ------------------------------------------------------------------------

    pub async fn group(&self, group_id: &GroupId) -> Result<Option<GroupRecord>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT group_id, phone_number_id, owner_team, subject, status, suspended FROM groups WHERE group_id = ?",
        )
        .bind(group_id.as_ref())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            Some(GroupRecord {
                group_id: GroupId::parse(r.get::<String, _>(0).as_str()).ok()?,
                phone_number_id: PhoneNumberId::parse(r.get::<String, _>(1).as_str()).ok()?,
                owner_team: r.get(2),
                subject: r.get(3),
                active: r.get::<String, _>(4) == "active",
                suspended: r.get::<i64, _>(5) != 0,
            })
        }))
    }

    /// Records a group seen in an event for a group the gateway did not create, so that an
    /// administrator can adopt it later.
    pub async fn note_group(
        &self,
        group_id: &str,
        pn: &str,
        subject: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        note_group_in(&mut conn, group_id, pn, subject, None).await
    }

    pub async fn set_group_active(&self, group_id: &str, active: bool) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        set_group_active_in(&mut conn, group_id, active).await
    }

    pub async fn set_invite_link(&self, group_id: &str, link: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE groups SET invite_link = ?, updated_at = ? WHERE group_id = ?")
            .bind(link)
            .bind(now())
            .bind(group_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The team's active groups on a number, in creation order, one page at a time.
    pub async fn list_groups(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        limit: u32,
        cursor: PageCursor,
    ) -> Result<GroupPage, sqlx::Error> {
        const BASE: &str = "SELECT seq, group_id, subject, created_at FROM groups
             WHERE owner_team = ? AND phone_number_id = ? AND status = 'active'";
        let fetch = i64::from(limit) + 1;
        let (sql, bound) = match cursor {
            PageCursor::First => (format!("{BASE} ORDER BY seq ASC LIMIT ?"), None),
            PageCursor::After(seq) => (
                format!("{BASE} AND seq > ? ORDER BY seq ASC LIMIT ?"),
                Some(seq),
            ),
            PageCursor::Before(seq) => (
                format!("{BASE} AND seq < ? ORDER BY seq DESC LIMIT ?"),
                Some(seq),
            ),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(team)
            .bind(pn.as_ref());
        if let Some(seq) = bound {
            query = query.bind(seq);
        }
        let mut rows: Vec<(i64, GroupSummary)> = query
            .bind(fetch)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.get(0),
                    GroupSummary {
                        id: r.get(1),
                        subject: r.get(2),
                        created_at: r.get(3),
                    },
                )
            })
            .collect();
        let overflow = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        if let PageCursor::Before(_) = cursor {
            rows.reverse();
        }
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => {
                return Ok(GroupPage {
                    groups: Vec::new(),
                    after: None,
                    before: None,
                });
            }
        };
        let (has_before, has_after) = match cursor {
            PageCursor::First => (false, overflow),
            PageCursor::After(_) => (self.exists_beyond(team, pn, first, false).await?, overflow),
            PageCursor::Before(_) => (overflow, self.exists_beyond(team, pn, last, true).await?),
        };
        Ok(GroupPage {
            groups: rows.into_iter().map(|(_, g)| g).collect(),
            after: has_after.then(|| encode_cursor(last)),
            before: has_before.then(|| encode_cursor(first)),
        })
    }

    async fn exists_beyond(
        &self,
        team: &str,
        pn: &PhoneNumberId,
        seq: i64,
        later: bool,
    ) -> Result<bool, sqlx::Error> {
        let sql = if later {
            "SELECT EXISTS (SELECT 1 FROM groups WHERE owner_team = ? AND phone_number_id = ? AND status = 'active' AND seq > ?)"
        } else {
            "SELECT EXISTS (SELECT 1 FROM groups WHERE owner_team = ? AND phone_number_id = ? AND status = 'active' AND seq < ?)"
        };
        let found: i64 = sqlx::query_scalar(sql)
            .bind(team)
            .bind(pn.as_ref())
            .bind(seq)
            .fetch_one(&self.pool)
            .await?;
        Ok(found != 0)
    }

    // ---- webhook inbox -------------------------------------------------------------------

    /// Stores a verified POST body before Meta is told 200.
    pub async fn store_inbox(
        &self,
        body_sha256: &str,
        body: &[u8],
    ) -> Result<InboxOutcome, sqlx::Error> {
        let result = sqlx::query(
            "INSERT INTO webhook_inbox (body_sha256, body, received_at) VALUES (?, ?, ?)
             ON CONFLICT (body_sha256) DO NOTHING",
        )
        .bind(body_sha256)
        .bind(body)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(if result.rows_affected() == 1 {
            InboxOutcome::Stored(result.last_insert_rowid())
        } else {
            InboxOutcome::Duplicate
        })
    }

    /// Inbox rows not yet processed, oldest first (a restart resumes from here).
    pub async fn unprocessed_inbox(&self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, body FROM webhook_inbox WHERE processed_at IS NULL AND failed_at IS NULL
             ORDER BY id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Counts a failed attempt at processing a stored POST; after `max_attempts` the POST is
    /// set aside (answers true). Needs a working database: when the database itself fails,
    /// nothing is counted and nothing is set aside.
    pub async fn record_inbox_failure(
        &self,
        id: i64,
        error: &str,
        max_attempts: i64,
    ) -> Result<bool, sqlx::Error> {
        let now = now();
        let set_aside: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_inbox SET attempts = attempts + 1, last_error = ?,
               failed_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE NULL END
             WHERE id = ? RETURNING failed_at IS NOT NULL",
        )
        .bind(error)
        .bind(max_attempts)
        .bind(&now)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(set_aside == Some(1))
    }

    /// Stores one event; false when the same event was already stored (a redelivery).
    pub async fn insert_event(
        &self,
        inbox_id: i64,
        event: &NewWebhookEvent,
    ) -> Result<bool, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        Ok(insert_event_in(&mut conn, inbox_id, event).await?.is_some())
    }
}

// ---- inside a caller's transaction ---------------------------------------------------------
//
// Processing one webhook POST is one transaction (events, registry effects, team events,
// delivery rows, the inbox row marked processed), so a crash never half-applies it. These
// take the transaction's connection; waking waiters is the caller's job, after the commit.

/// Applies a `group_create` event: the group now exists and belongs to the team that asked,
/// or the request failed with Meta's error. Returns the creation when one was pending.
pub async fn complete_creation_in(
    conn: &mut SqliteConnection,
    meta_request_id: &str,
    event_pn: Option<&str>,
    event: &Value,
) -> Result<Option<Completion>, sqlx::Error> {
    let group_id = event.get("group_id").and_then(crate::graph::lenient::as_id);
    let errors = event
        .get("errors")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty());
    let pending = sqlx::query(
        "SELECT request_id, team, phone_number_id, subject FROM create_requests
         WHERE meta_request_id = ? AND status = 'pending'",
    )
    .bind(meta_request_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = pending else {
        return Ok(None);
    };
    let request_id: String = row.get(0);
    let team: String = row.get(1);
    let pn: String = row.get(2);
    let requested_subject: String = row.get(3);
    let now = now();
    match (errors, group_id) {
        (None, Some(group_id)) => {
            let invite_link = event.get("invite_link").and_then(Value::as_str);
            let subject = event
                .get("subject")
                .and_then(Value::as_str)
                .unwrap_or(&requested_subject);
            sqlx::query(
                "UPDATE create_requests SET status = 'created', group_id = ?, invite_link = ?, updated_at = ?
                 WHERE request_id = ?",
            )
            .bind(&group_id)
            .bind(invite_link)
            .bind(&now)
            .bind(&request_id)
            .execute(&mut *conn)
            .await?;
            // A new group has only the business in it: its participant count is known (0).
            sqlx::query(
                "INSERT INTO groups (group_id, phone_number_id, owner_team, subject, invite_link,
                   participant_count, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, 0, ?, ?)
                 ON CONFLICT (group_id) DO UPDATE SET owner_team = excluded.owner_team,
                   subject = excluded.subject, invite_link = excluded.invite_link, status = 'active',
                   updated_at = excluded.updated_at",
            )
            .bind(&group_id)
            .bind(event_pn.unwrap_or(&pn))
            .bind(&team)
            .bind(subject)
            .bind(invite_link)
            .bind(&now)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
        }
        (errors, _) => {
            let error = errors.and_then(|e| e.first().cloned()).unwrap_or_else(
                || serde_json::json!({"code": 0, "message": "Meta reported no group id"}),
            );
            sqlx::query(
                "UPDATE create_requests SET status = 'failed', error = ?, updated_at = ? WHERE request_id = ?",
            )
            .bind(error.to_string())
            .bind(&now)
            .bind(&request_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(Some(Completion {
        request_id,
        team,
        phone_number_id: pn,
    }))
}

/// Records a group the gateway did not create (ownerless until an administrator adopts it).
pub async fn note_group_in(
    conn: &mut SqliteConnection,
    group_id: &str,
    pn: &str,
    subject: Option<&str>,
    invite_link: Option<&str>,
) -> Result<(), sqlx::Error> {
    let now = now();
    sqlx::query(
        "INSERT INTO groups (group_id, phone_number_id, subject, invite_link, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (group_id) DO NOTHING",
    )
    .bind(group_id)
    .bind(pn)
    .bind(subject)
    .bind(invite_link)
    .bind(&now)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn set_group_active_in(
    conn: &mut SqliteConnection,
    group_id: &str,
    active: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE groups SET status = ?, updated_at = ? WHERE group_id = ?")
        .bind(if active { "active" } else { "deleted" })
        .bind(now())
        .bind(group_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_group_subject_in(
    conn: &mut SqliteConnection,
    group_id: &str,
    subject: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE groups SET subject = ?, updated_at = ? WHERE group_id = ?")
        .bind(subject)
        .bind(now())
        .bind(group_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_group_suspended_in(
    conn: &mut SqliteConnection,
    group_id: &str,
    suspended: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE groups SET suspended = ?, updated_at = ? WHERE group_id = ?")
        .bind(suspended as i64)
        .bind(now())
        .bind(group_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds `delta` to the participant count, only where the count is known (groups the gateway
/// created start at 0; groups seen only through events have no count).
pub async fn adjust_participants_in(
    conn: &mut SqliteConnection,
    group_id: &str,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE groups SET participant_count = MAX(0, participant_count + ?), updated_at = ?
         WHERE group_id = ? AND participant_count IS NOT NULL",
    )
    .bind(delta)
    .bind(now())
    .bind(group_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn group_owner_in(
    conn: &mut SqliteConnection,
    group_id: &str,
) -> Result<Option<GroupOwner>, sqlx::Error> {
    let row = sqlx::query("SELECT owner_team, phone_number_id FROM groups WHERE group_id = ?")
        .bind(group_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| GroupOwner {
        team: r.get(0),
        phone_number_id: r.get(1),
    }))
}

pub async fn mark_inbox_processed_in(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE webhook_inbox SET processed_at = ? WHERE id = ?")
        .bind(now())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores one event; its row id, or None when the same event was already stored.
pub async fn insert_event_in(
    conn: &mut SqliteConnection,
    inbox_id: i64,
    event: &NewWebhookEvent,
) -> Result<Option<i64>, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO webhook_events (event_key, inbox_id, field, event_type, phone_number_id, group_id,
           meta_request_id, occurred_at, payload, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING",
    )
    .bind(&event.event_key)
    .bind(inbox_id)
    .bind(&event.field)
    .bind(&event.event_type)
    .bind(&event.phone_number_id)
    .bind(&event.group_id)
    .bind(&event.meta_request_id)
    .bind(&event.occurred_at)
    .bind(event.payload.to_string())
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok((result.rows_affected() == 1).then(|| result.last_insert_rowid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_event_is_stored_once_across_posts() {
        let registry = Registry::connect("sqlite::memory:").await.unwrap();
        let event = NewWebhookEvent {
            event_key: "k1".into(),
            field: "group_status_update".into(),
            event_type: "group_suspend".into(),
            phone_number_id: Some("1".into()),
            group_id: Some("G".into()),
            meta_request_id: None,
            occurred_at: None,
            payload: serde_json::json!({}),
        };
        let InboxOutcome::Stored(first) = registry.store_inbox("a", b"{}").await.unwrap() else {
            panic!("first POST is new");
        };
        assert_eq!(
            registry.store_inbox("a", b"{}").await.unwrap(),
            InboxOutcome::Duplicate
        );
        let InboxOutcome::Stored(second) = registry.store_inbox("b", b"{ }").await.unwrap() else {
            panic!("another body is new");
        };
        assert!(registry.insert_event(first, &event).await.unwrap());
        assert!(!registry.insert_event(second, &event).await.unwrap());
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        assert!(decode_cursor("42").is_err());
        assert!(decode_cursor("").is_err());
    }
}
