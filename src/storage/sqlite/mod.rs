//! The SQLite backend: one file (or memory), WAL, embedded migrations.

mod audit;
mod events;
mod groups;
mod idempotency;
mod inbox;
mod tokens;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::{
    Backend, CreationOutcome, GroupOwner, NewTeamEvent, PendingCreation, RegistryTx, Result,
    SeenGroup, StorageError,
};
use crate::clock::now;
use crate::domain::RequestId;
use crate::domain::events::{Completion, NewWebhookEvent};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
}

impl SqliteStorage {
    pub async fn connect(url: &str) -> Result<SqliteStorage> {
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
        Ok(SqliteStorage { pool })
    }

    /// The pool, for tests that look at the tables directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Backend for SqliteStorage {
    async fn begin(&self) -> Result<Box<dyn RegistryTx>> {
        // IMMEDIATE: take SQLite's write lock up front rather than fail to upgrade a read later.
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A unit of work on one connection; dropped without `commit`, it rolls back.
struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl RegistryTx for SqliteTx {
    async fn insert_webhook_event(
        &mut self,
        inbox_id: i64,
        event: &NewWebhookEvent,
    ) -> Result<Option<i64>> {
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
        .execute(&mut *self.tx)
        .await?;
        Ok((result.rows_affected() == 1).then(|| result.last_insert_rowid()))
    }

    async fn mark_inbox_processed(&mut self, inbox_id: i64) -> Result<()> {
        sqlx::query("UPDATE webhook_inbox SET processed_at = ? WHERE id = ?")
            .bind(now())
            .bind(inbox_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn attach_meta_request_id(
        &mut self,
        request_id: &RequestId,
        meta_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE create_requests SET meta_request_id = ?, updated_at = ? WHERE request_id = ?",
        )
        .bind(meta_id)
        .bind(now())
        .bind(request_id.as_ref())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn early_creation_event(
        &mut self,
        meta_id: &str,
    ) -> Result<Option<(Option<String>, Value)>> {
        let early = sqlx::query(
            "SELECT payload, phone_number_id FROM webhook_events
             WHERE meta_request_id = ? AND event_type = 'group_create' ORDER BY id LIMIT 1",
        )
        .bind(meta_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(early.and_then(|row| {
            let payload: String = row.get(0);
            let value = serde_json::from_str::<Value>(&payload).ok()?;
            Some((row.get(1), value))
        }))
    }

    async fn pending_creation(&mut self, meta_id: &str) -> Result<Option<PendingCreation>> {
        let row = sqlx::query(
            "SELECT request_id, team, phone_number_id, subject FROM create_requests
             WHERE meta_request_id = ? AND status = 'pending'",
        )
        .bind(meta_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| PendingCreation {
            request_id: r.get(0),
            team: r.get(1),
            phone_number_id: r.get(2),
            subject: r.get(3),
        }))
    }

    async fn finish_creation(
        &mut self,
        pending: &PendingCreation,
        outcome: &CreationOutcome,
    ) -> Result<()> {
        let now = now();
        match outcome {
            CreationOutcome::Created {
                group_id,
                phone_number_id,
                subject,
                invite_link,
            } => {
                sqlx::query(
                    "UPDATE create_requests SET status = 'created', group_id = ?, invite_link = ?, updated_at = ?
                     WHERE request_id = ?",
                )
                .bind(group_id)
                .bind(invite_link)
                .bind(&now)
                .bind(&pending.request_id)
                .execute(&mut *self.tx)
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
                .bind(group_id)
                .bind(phone_number_id)
                .bind(&pending.team)
                .bind(subject)
                .bind(invite_link)
                .bind(&now)
                .bind(&now)
                .execute(&mut *self.tx)
                .await?;
            }
            CreationOutcome::Failed { error } => {
                sqlx::query(
                    "UPDATE create_requests SET status = 'failed', error = ?, updated_at = ? WHERE request_id = ?",
                )
                .bind(error.to_string())
                .bind(&now)
                .bind(&pending.request_id)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        Ok(())
    }

    async fn note_group(&mut self, group: &SeenGroup<'_>) -> Result<()> {
        let now = now();
        sqlx::query(
            "INSERT INTO groups (group_id, phone_number_id, subject, invite_link, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (group_id) DO NOTHING",
        )
        .bind(group.group_id)
        .bind(group.phone_number_id)
        .bind(group.subject)
        .bind(group.invite_link)
        .bind(&now)
        .bind(&now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn set_group_active(&mut self, group_id: &str, active: bool) -> Result<()> {
        let status = if active { "active" } else { "deleted" };
        set_group_column(&mut self.tx, "status = ?", status, group_id).await
    }

    async fn set_group_subject(&mut self, group_id: &str, subject: &str) -> Result<()> {
        set_group_column(&mut self.tx, "subject = ?", subject, group_id).await
    }

    async fn set_group_suspended(&mut self, group_id: &str, suspended: bool) -> Result<()> {
        set_group_column(
            &mut self.tx,
            "suspended = ?",
            i64::from(suspended),
            group_id,
        )
        .await
    }

    async fn adjust_participants(&mut self, group_id: &str, delta: i64) -> Result<()> {
        // Only where the count is known: groups the gateway created start at 0, groups seen
        // only through events have none.
        let assignment = "participant_count = MAX(0, participant_count + ?)";
        set_group_column(&mut self.tx, assignment, delta, group_id).await
    }

    async fn group_owner(&mut self, group_id: &str) -> Result<Option<GroupOwner>> {
        let row = sqlx::query("SELECT owner_team, phone_number_id FROM groups WHERE group_id = ?")
            .bind(group_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|r| GroupOwner {
            team: r.get(0),
            phone_number_id: r.get(1),
        }))
    }

    async fn insert_team_event(&mut self, row: &NewTeamEvent<'_>) -> Result<()> {
        Ok(events::insert(&mut self.tx, row.source, row.team, row.event).await?)
    }

    async fn claim_for_creation(&mut self, done: &Completion) -> Result<()> {
        let rows = sqlx::query(
            "SELECT te.seq, te.id, te.type, te.occurred_at, te.phone_number_id, te.group_id,
                    te.request_id, te.data, te.webhook_event_id,
                    COALESCE(we.meta_request_id = ? AND we.event_type = 'group_create', 0) AS is_creation
             FROM team_events te JOIN webhook_events we ON we.id = te.webhook_event_id
             WHERE te.team IS NULL
               AND ((we.meta_request_id = ? AND we.event_type = 'group_create') OR te.group_id = ?)
             ORDER BY te.seq",
        )
        .bind(&done.meta_request_id)
        .bind(&done.meta_request_id)
        .bind(&done.group_id)
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            let Some((seq, mut event)) = events::event_from_row(&row) else {
                continue;
            };
            let webhook_event_id: i64 = row.get(8);
            if row.try_get::<bool, _>(9).unwrap_or(false) && event.event_type.is_creation() {
                event.request_id = Some(done.request_id.clone());
            }
            sqlx::query("DELETE FROM team_events WHERE seq = ?")
                .bind(seq)
                .execute(&mut *self.tx)
                .await?;
            events::insert(&mut self.tx, webhook_event_id, Some(&done.team), &event).await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(StorageError::from)
    }
    async fn mark_outcome_unknown(&mut self, request_id: &str) -> Result<Option<PendingCreation>> {
        let row = sqlx::query(
            "UPDATE create_requests SET outcome_unknown = 1, updated_at = ?
             WHERE request_id = ? AND status = 'pending' AND meta_request_id IS NULL
             RETURNING request_id, team, phone_number_id, subject",
        )
        .bind(now())
        .bind(request_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| pending_from_row(&r)))
    }

    async fn waiting_creation(
        &mut self,
        phone_number_id: &str,
        subject: &str,
        meta_request_id: &str,
    ) -> Result<Option<PendingCreation>> {
        let row = sqlx::query(
            "SELECT request_id, team, phone_number_id, subject FROM create_requests
             WHERE status = 'pending' AND meta_request_id IS NULL AND outcome_unknown = 1
               AND phone_number_id = ? AND subject = ?
               AND NOT EXISTS (SELECT 1 FROM create_requests c WHERE c.meta_request_id = ?)
             ORDER BY created_at, rowid LIMIT 1",
        )
        .bind(phone_number_id)
        .bind(subject)
        .bind(meta_request_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(|r| pending_from_row(&r)))
    }

    async fn unclaimed_creation_event(
        &mut self,
        creation: &PendingCreation,
    ) -> Result<Option<(String, Value)>> {
        let row = sqlx::query(
            "SELECT we.meta_request_id, we.payload FROM webhook_events we
             WHERE we.event_type = 'group_create' AND we.phone_number_id = ?
               AND we.meta_request_id IS NOT NULL
               AND json_extract(we.payload, '$.subject') = ?
               AND we.received_at >= (SELECT created_at FROM create_requests WHERE request_id = ?)
               AND NOT EXISTS (SELECT 1 FROM create_requests c
                               WHERE c.meta_request_id = we.meta_request_id)
             ORDER BY we.id LIMIT 1",
        )
        .bind(&creation.phone_number_id)
        .bind(&creation.subject)
        .bind(&creation.request_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.and_then(|r| {
            let payload: String = r.get(1);
            Some((r.get(0), serde_json::from_str(&payload).ok()?))
        }))
    }
}

fn pending_from_row(r: &sqlx::sqlite::SqliteRow) -> PendingCreation {
    PendingCreation {
        request_id: r.get(0),
        team: r.get(1),
        phone_number_id: r.get(2),
        subject: r.get(3),
    }
}

/// `UPDATE groups SET <assignment>, updated_at = now WHERE group_id = ?`, binding `value` to
/// the assignment's one placeholder. `adjust_participants` also needs the count known.
pub(super) async fn set_group_column<'q, T>(
    conn: &mut SqliteConnection,
    assignment: &'static str,
    value: T,
    group_id: &'q str,
) -> Result<()>
where
    T: sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite> + Send + 'q,
{
    // Only the fixed assignments above are spliced in; every value is bound.
    let known_count = if assignment.starts_with("participant_count") {
        " AND participant_count IS NOT NULL"
    } else {
        ""
    };
    let sql =
        format!("UPDATE groups SET {assignment}, updated_at = ? WHERE group_id = ?{known_count}");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .bind(now())
        .bind(group_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{GroupStore, InboxOutcome, InboxStore};

    #[tokio::test]
    async fn the_same_event_is_stored_once_across_posts() {
        let storage = SqliteStorage::connect("sqlite::memory:").await.unwrap();
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
        let InboxOutcome::Stored(first) = storage.store_post("a", b"{}").await.unwrap() else {
            panic!("first POST is new");
        };
        assert_eq!(
            storage.store_post("a", b"{}").await.unwrap(),
            InboxOutcome::Duplicate
        );
        let InboxOutcome::Stored(second) = storage.store_post("b", b"{ }").await.unwrap() else {
            panic!("another body is new");
        };
        let mut tx = storage.begin().await.unwrap();
        assert!(
            tx.insert_webhook_event(first, &event)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            tx.insert_webhook_event(second, &event)
                .await
                .unwrap()
                .is_none()
        );
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn adopting_then_moving_a_group() {
        use crate::domain::{GroupId, PhoneNumberId};
        use crate::storage::NewOwner;
        let storage = SqliteStorage::connect("sqlite::memory:").await.unwrap();
        let g = GroupId::parse("Gadopt").unwrap();
        let pn = PhoneNumberId::parse("1").unwrap();
        assert!(storage.owners(&["Gadopt".into()]).await.unwrap().is_empty());
        let owner = |team, subject| NewOwner {
            group_id: &g,
            phone_number_id: &pn,
            team,
            subject,
        };
        let previous = storage
            .set_owner(&owner("sales", Some("Found")))
            .await
            .unwrap();
        assert_eq!(previous, None);
        let previous = storage.set_owner(&owner("support", None)).await.unwrap();
        assert_eq!(previous.as_deref(), Some("sales"));
        let record = storage.group(&g).await.unwrap().unwrap();
        assert_eq!(record.owner_team.as_deref(), Some("support"));
        assert_eq!(record.subject.as_deref(), Some("Found"));
        assert!(record.active);
        let owners = storage
            .owners(&["Gadopt".into(), "Gother".into()])
            .await
            .unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners["Gadopt"], "support");
    }
}
