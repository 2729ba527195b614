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
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::{
    Backend, CreationOutcome, GroupOwner, PendingCreation, RegistryTx, Result, StorageError,
};
use crate::domain::RequestId;
use crate::domain::events::{Completion, NewWebhookEvent, TeamEvent};

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
        Ok(inbox::insert_event(&mut self.tx, inbox_id, event).await?)
    }

    async fn mark_inbox_processed(&mut self, inbox_id: i64) -> Result<()> {
        Ok(inbox::mark_processed(&mut self.tx, inbox_id).await?)
    }

    async fn attach_meta_request_id(
        &mut self,
        request_id: &RequestId,
        meta_request_id: &str,
    ) -> Result<()> {
        Ok(groups::attach_meta_request_id(&mut self.tx, request_id, meta_request_id).await?)
    }

    async fn early_creation_event(
        &mut self,
        meta_request_id: &str,
    ) -> Result<Option<(Option<String>, Value)>> {
        Ok(inbox::early_creation_event(&mut self.tx, meta_request_id).await?)
    }

    async fn pending_creation(&mut self, meta_request_id: &str) -> Result<Option<PendingCreation>> {
        Ok(groups::pending_creation(&mut self.tx, meta_request_id).await?)
    }

    async fn finish_creation(
        &mut self,
        pending: &PendingCreation,
        outcome: &CreationOutcome,
    ) -> Result<()> {
        Ok(groups::finish_creation(&mut self.tx, pending, outcome).await?)
    }

    async fn note_group(
        &mut self,
        group_id: &str,
        pn: &str,
        subject: Option<&str>,
        invite_link: Option<&str>,
    ) -> Result<()> {
        Ok(groups::note_group(&mut self.tx, group_id, pn, subject, invite_link).await?)
    }

    async fn set_group_active(&mut self, group_id: &str, active: bool) -> Result<()> {
        Ok(groups::set_active(&mut self.tx, group_id, active).await?)
    }

    async fn set_group_subject(&mut self, group_id: &str, subject: &str) -> Result<()> {
        Ok(groups::set_subject(&mut self.tx, group_id, subject).await?)
    }

    async fn set_group_suspended(&mut self, group_id: &str, suspended: bool) -> Result<()> {
        Ok(groups::set_suspended(&mut self.tx, group_id, suspended).await?)
    }

    async fn adjust_participants(&mut self, group_id: &str, delta: i64) -> Result<()> {
        Ok(groups::adjust_participants(&mut self.tx, group_id, delta).await?)
    }

    async fn group_owner(&mut self, group_id: &str) -> Result<Option<GroupOwner>> {
        Ok(groups::owner(&mut self.tx, group_id).await?)
    }

    async fn insert_team_event(
        &mut self,
        webhook_event_id: i64,
        team: Option<&str>,
        event: &TeamEvent,
    ) -> Result<()> {
        Ok(events::insert(&mut self.tx, webhook_event_id, team, event).await?)
    }

    async fn claim_for_creation(
        &mut self,
        meta_request_id: &str,
        completion: &Completion,
        group_id: Option<&str>,
    ) -> Result<()> {
        Ok(events::claim_for_creation(&mut self.tx, meta_request_id, completion, group_id).await?)
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(StorageError::from)
    }
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
        let storage = SqliteStorage::connect("sqlite::memory:").await.unwrap();
        let g = GroupId::parse("Gadopt").unwrap();
        let pn = PhoneNumberId::parse("1").unwrap();
        assert!(storage.owners(&["Gadopt".into()]).await.unwrap().is_empty());
        let previous = storage
            .set_owner(&g, &pn, "sales", Some("Found"))
            .await
            .unwrap();
        assert_eq!(previous, None);
        let previous = storage.set_owner(&g, &pn, "support", None).await.unwrap();
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
