//! The SQL backends: one implementation of every storage trait, run through sqlx's `Any`
//! driver on SQLite (one file, or memory) or PostgreSQL (shared by several replicas). The
//! statements are written once, in the SQL both databases accept (`$N` placeholders, `RETURNING`,
//! row values); where they must differ, `Dialect` says how: SQLite takes its write lock up
//! front, PostgreSQL skips rows another replica holds and hides events of transactions still
//! running. Each backend has its own embedded migrations.

mod audit;
mod deferred;
mod endpoints;
mod events;
mod expiry;
mod groups;
mod guardrails;
mod idempotency;
mod inbox;
mod registry;
mod rows;
mod tokens;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Executor, FromRow, Transaction};

use super::{
    Backend, BillableMessage, CreationOutcome, CreationWatcher, GroupChange, GroupOwner,
    GroupWatcher, NewTeamEvent, PendingCreation, PlatformWatcher, RegistryTx, Result, SeenGroup,
};
use crate::clock::now;
use crate::domain::RequestId;
use crate::domain::events::{Completion, NewWebhookEvent};
use crate::supervisor::Supervisor;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL channel on which a completed creation is announced to every replica.
const CREATIONS_CHANNEL: &str = "wagw_creations";
/// The PostgreSQL channel on which a changed group record is announced to every replica.
const GROUPS_CHANNEL: &str = "wagw_groups";

/// What the catch-up of racing events looks for, written once for the look without the write
/// lock (`GroupStore::has_stragglers`) and the reads in its unit of work. Pending creations
/// (alias `c`) that know Meta's request id while Meta's `group_create` event for it is stored.
const OVERTAKEN_CREATIONS: &str = "FROM create_requests c
     WHERE c.status = 'pending' AND c.meta_request_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM webhook_events we
                   WHERE we.meta_request_id = c.meta_request_id
                     AND we.event_type = 'group_create')";
/// Ownerless team events (`te`) stored since `$1` of groups a creation (`c`) made.
const HELD_EVENTS: &str = "FROM team_events te JOIN create_requests c ON c.group_id = te.group_id
     WHERE te.team IS NULL AND te.group_id IS NOT NULL AND te.created_at >= $1
       AND c.status = 'created' AND c.meta_request_id IS NOT NULL";

/// Who is told of group changes committed here (the ownership cache).
type GroupWatcherCell = Arc<std::sync::RwLock<Option<GroupWatcher>>>;

fn tell(watcher: &GroupWatcherCell, change: GroupChange) {
    if let Some(on_change) = watcher.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        on_change(change);
    }
}

/// Every SQLite connection: write-ahead log, foreign keys, a wait for the write lock, and
/// checkpoints in the background (`checkpoint_wal`), never inside a commit, where copying the
/// log back would hold every writer up.
const SQLITE_SETUP: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
     PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;";

/// Where the two databases differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect `storage.url` names by its scheme.
    pub fn of(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// The SQLite or the PostgreSQL form of one thing.
    fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }

    /// SQLite: take the write lock up front rather than fail to upgrade a read later.
    fn begin(self) -> &'static str {
        self.pick("BEGIN IMMEDIATE", "BEGIN")
    }

    /// A unit of work whose commit need not wait for the disk (`Backend::begin_derived`).
    /// SQLite's setting outlives the transaction: the writer pool sets it back when the
    /// connection is released (`sqlite_writer`).
    fn begin_derived(self) -> &'static str {
        self.pick(
            "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
            "BEGIN; SET LOCAL synchronous_commit = off",
        )
    }

    /// Rows another replica is working on are passed over, not waited for (SQLite has one
    /// writer at a time: nothing to skip).
    fn skip_locked(self) -> &'static str {
        self.pick("", "FOR UPDATE SKIP LOCKED")
    }

    /// Only events of transactions older than every transaction still running: a reader
    /// following the feed never passes an event that is yet to be committed.
    fn committed_events(self) -> &'static str {
        self.pick(
            "",
            "AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
        )
    }

    /// The text of `field` in the JSON object stored as text in `column`.
    fn json_text(self, column: &str, field: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract({column}, '$.{field}')"),
            Dialect::Postgres => format!("({column}::json ->> '{field}')"),
        }
    }

    fn migrator(self) -> &'static sqlx::migrate::Migrator {
        self.pick(&SQLITE_MIGRATOR, &POSTGRES_MIGRATOR)
    }
}

/// `$from, $from+1, …`: `count` numbered placeholders for a list of values.
pub(super) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `VALUES` rows of a multi-row `INSERT`: each row starts with the placeholders `shared`
/// (values bound once for all rows, numbered before `first`) and goes on with `per_row`
/// placeholders of its own, numbered from `first` row after row.
pub(super) fn value_rows(shared: &str, first: usize, per_row: usize, rows: usize) -> String {
    (0..rows)
        .map(|i| format!("({shared}, {})", placeholders(first + per_row * i, per_row)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Announces `payload` on a PostgreSQL channel (inside a transaction, once it commits);
/// nothing on SQLite, which one process uses.
async fn notify<'e, E>(dialect: Dialect, executor: E, channel: &str, payload: &str) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(executor)
            .await?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct SqlStorage {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. SQLite has one writer at a time: its writes queue here, in this process, for
    /// one connection, instead of waking up by turns inside SQLite's busy handler (which
    /// sleeps up to 100 ms between tries).
    writer: AnyPool,
    /// Set while SQLite's writer connection commits without waiting for the disk (a derived
    /// unit of work); the writer pool raises it back when the connection is released.
    lowered: Arc<AtomicBool>,
    dialect: Dialect,
    url: String,
    group_watcher: GroupWatcherCell,
}

impl SqlStorage {
    async fn begin_with(&self, begin: &'static str) -> Result<Box<dyn RegistryTx>> {
        let tx = self.writer.begin_with(begin).await?;
        Ok(Box::new(SqlTx {
            tx,
            dialect: self.dialect,
            touched: Vec::new(),
            group_watcher: self.group_watcher.clone(),
            deferred: Default::default(),
        }))
    }

    /// Opens the database `url` names and brings its schema up to date. PostgreSQL pools hold
    /// up to `max_connections`; replicas starting together take turns at the migrations
    /// (sqlx holds an advisory lock while it migrates).
    pub async fn connect(url: &str, max_connections: u32) -> Result<SqlStorage> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url).ok_or_else(|| {
            sqlx::Error::Configuration("storage.url must start with sqlite: or postgres://".into())
        })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut url = url.to_owned();
        if dialect == Dialect::Sqlite && !in_memory {
            if let Some(path) = url.strip_prefix("sqlite://") {
                let path = path.split('?').next().unwrap_or(path);
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
                }
            }
            if !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
        }
        // An in-memory database lives only as long as its one connection.
        let single = dialect == Dialect::Sqlite && in_memory;
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                _ if single => 1,
                Dialect::Sqlite => 8,
                Dialect::Postgres => max_connections.max(2),
            })
            .min_connections(u32::from(single))
            .idle_timeout((!single).then_some(Duration::from_secs(600)))
            .max_lifetime((!single).then_some(Duration::from_secs(3600)))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute(SQLITE_SETUP).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        dialect
            .migrator()
            .run(&pool)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        let lowered = Arc::new(AtomicBool::new(false));
        let writer = if dialect == Dialect::Sqlite && !in_memory {
            tokio::spawn(checkpoint_wal(pool.clone()));
            sqlite_writer(&url, lowered.clone()).await?
        } else {
            pool.clone()
        };
        Ok(SqlStorage {
            pool,
            writer,
            lowered,
            dialect,
            url,
            group_watcher: GroupWatcherCell::default(),
        })
    }

    /// The pool, for tests that look at the tables directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The writer pool, for tests that look at how writes are made.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Tells this process's watcher, and on PostgreSQL every other replica, that a group's
    /// record changed (after a change made outside a unit of work).
    pub(super) async fn announce_group(&self, group_id: &str) -> Result<()> {
        notify(self.dialect, &self.writer, GROUPS_CHANNEL, group_id).await?;
        tell(&self.group_watcher, GroupChange::One(group_id.to_owned()));
        Ok(())
    }
}

#[async_trait]
impl Backend for SqlStorage {
    async fn begin(&self) -> Result<Box<dyn RegistryTx>> {
        self.begin_with(self.dialect.begin()).await
    }

    async fn begin_derived(&self) -> Result<Box<dyn RegistryTx>> {
        let begun = self.begin_with(self.dialect.begin_derived()).await;
        if self.dialect == Dialect::Sqlite {
            // Set once the connection is this unit of work's, so its release raises the
            // setting again. A failed begin may have lowered it already: one release of the
            // connection raises it.
            self.lowered.store(true, Ordering::SeqCst);
            if begun.is_err() {
                drop(self.writer.acquire().await);
            }
        }
        begun
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn watch_creations(&self, on_done: CreationWatcher, supervisor: &Supervisor) {
        if self.dialect == Dialect::Postgres {
            let done = on_done.clone();
            let on_payload = move |payload: &str| done(Some(payload));
            // A completion announced while the connection was down would leave its waiters
            // waiting to their deadline: every waiter reads its creation again.
            let on_connect = move || on_done(None);
            let url = self.url.clone();
            supervisor.spawn("notifications-creations", move || {
                listen(
                    url.clone(),
                    CREATIONS_CHANNEL,
                    on_payload.clone(),
                    on_connect.clone(),
                )
            });
        }
    }

    fn watch_groups(&self, on_change: GroupWatcher, supervisor: &Supervisor) {
        *self
            .group_watcher
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(on_change.clone());
        if self.dialect == Dialect::Postgres {
            let changed = on_change.clone();
            let on_payload = move |group_id: &str| changed(GroupChange::One(group_id.to_owned()));
            // Whatever was announced while the connection was down is unknown.
            let on_connect = move || on_change(GroupChange::All);
            let url = self.url.clone();
            supervisor.spawn("notifications-groups", move || {
                listen(
                    url.clone(),
                    GROUPS_CHANNEL,
                    on_payload.clone(),
                    on_connect.clone(),
                )
            });
        }
    }

    fn watch_platform(&self, on_change: PlatformWatcher, supervisor: &Supervisor) {
        if self.dialect == Dialect::Postgres {
            let changed = on_change.clone();
            let on_payload = move |_: &str| changed(true);
            let on_connect = move || on_change(false);
            let url = self.url.clone();
            supervisor.spawn("notifications-platform", move || {
                listen(
                    url.clone(),
                    registry::PLATFORM_CHANNEL,
                    on_payload.clone(),
                    on_connect.clone(),
                )
            });
        }
    }
}

/// The one connection SQLite's writes go through (see `SqlStorage::writer`).
async fn sqlite_writer(url: &str, lowered: Arc<AtomicBool>) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(SQLITE_SETUP).await?;
                Ok(())
            })
        })
        // Every write waits for the disk, except inside a derived unit of work, which
        // lowers this for itself (`Dialect::begin_derived`); other writes pay nothing for it.
        .after_release(move |conn, _| {
            let lowered = lowered.clone();
            Box::pin(async move {
                if lowered.swap(false, Ordering::SeqCst) {
                    conn.execute("PRAGMA synchronous = FULL").await?;
                }
                Ok(true)
            })
        })
        .connect(url)
        .await?)
}

/// Copies SQLite's write-ahead log back into the database every second, without waiting
/// for readers or writers (PASSIVE), so the log stays small and no commit pays for it.
async fn checkpoint_wal(pool: AnyPool) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

/// Follows one PostgreSQL notification channel for good: what other replicas announce (a
/// creation completed, a group changed) reaches this one. A lost connection is opened again;
/// `on_connect` runs each time the channel is followed anew, since whatever was announced
/// while it was down is lost.
async fn listen(
    url: String,
    channel: &'static str,
    on_payload: impl Fn(&str) + Send + 'static,
    on_connect: impl Fn() + Send + 'static,
) {
    loop {
        let listened = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(channel).await?;
            on_connect();
            loop {
                // Not `recv`: it reconnects by itself and never says so, and what was
                // announced in between would stay unknown here for good. `try_recv` answers
                // None once it has reconnected (eagerly, the default).
                match listener.try_recv().await? {
                    Some(notification) => on_payload(notification.payload()),
                    None => {
                        tracing::warn!(
                            channel,
                            "the notification connection dropped and is back: forgetting what was cached"
                        );
                        metrics::counter!(crate::metrics::NOTIFICATION_RECONNECTS, "channel" => channel)
                            .increment(1);
                        on_connect();
                    }
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        if let Err(e) = listened.await {
            tracing::warn!(error = %e, channel, "cannot follow what other replicas announce; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A unit of work on one connection; dropped without `commit`, it rolls back.
struct SqlTx {
    tx: Transaction<'static, Any>,
    dialect: Dialect,
    /// Groups whose record this unit of work changed, announced once it commits.
    touched: Vec<String>,
    group_watcher: GroupWatcherCell,
    deferred: deferred::Deferred,
}

impl SqlTx {
    /// Makes the writes held back so far, before a statement that might see them.
    async fn flush(&mut self) -> Result<()> {
        self.deferred.flush(&mut self.tx).await
    }

    /// One column of a group's record (`set_group_column`), announced at commit.
    async fn change_group<'q, T>(
        &mut self,
        group_id: &'q str,
        assignment: &'static str,
        value: T,
    ) -> Result<()>
    where
        T: sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + 'q,
    {
        self.flush().await?;
        self.touched.push(group_id.to_owned());
        set_group_column(&mut self.tx, assignment, value, group_id).await
    }
}

#[async_trait]
impl RegistryTx for SqlTx {
    async fn claim_posts(&mut self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, body FROM webhook_inbox WHERE processed_at IS NULL AND failed_at IS NULL
             ORDER BY id LIMIT $1 {}",
            self.dialect.skip_locked()
        )))
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows.into_iter().map(|r: PostRow| (r.id, r.body)).collect())
    }

    async fn claim_post(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT body FROM webhook_inbox WHERE id = $1 AND processed_at IS NULL {}",
            self.dialect.skip_locked()
        )))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn insert_webhook_events(
        &mut self,
        events: &[(i64, &NewWebhookEvent)],
    ) -> Result<Vec<Option<i64>>> {
        let mut stored = std::collections::HashMap::with_capacity(events.len());
        for chunk in events.chunks(events::ROWS_PER_INSERT) {
            // Only numbered placeholders are formatted in; the values are bound.
            let values = value_rows("$1", 2, 9, chunk.len());
            let mut insert = sqlx::query_as::<_, StoredEventRow>(sqlx::AssertSqlSafe(format!(
                "INSERT INTO webhook_events (received_at, event_key, inbox_id, field, event_type,
                   phone_number_id, group_id, meta_request_id, occurred_at, payload)
                 VALUES {values} ON CONFLICT (event_key) DO NOTHING RETURNING id, event_key"
            )))
            .bind(now());
            for (inbox_id, event) in chunk {
                insert = insert
                    .bind(&event.event_key)
                    .bind(*inbox_id)
                    .bind(&event.field)
                    .bind(&event.event_type)
                    .bind(&event.phone_number_id)
                    .bind(&event.group_id)
                    .bind(&event.meta_request_id)
                    .bind(&event.occurred_at)
                    .bind(event.payload.to_string());
            }
            for row in insert.fetch_all(&mut *self.tx).await? {
                stored.insert(row.event_key, row.id);
            }
        }
        // The same event twice among them is stored once: the first one is new.
        Ok(events
            .iter()
            .map(|(_, event)| stored.remove(&event.event_key))
            .collect())
    }

    async fn mark_inbox_processed(&mut self, inbox_id: i64) -> Result<()> {
        self.deferred.processed(inbox_id);
        Ok(())
    }

    async fn attach_meta_request_id(
        &mut self,
        request_id: &RequestId,
        meta_id: &str,
    ) -> Result<()> {
        self.flush().await?;
        sqlx::query(
            "UPDATE create_requests SET meta_request_id = $1, updated_at = $2 WHERE request_id = $3",
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
        self.flush().await?;
        let early: Option<EarlyEventRow> = sqlx::query_as(
            "SELECT payload, phone_number_id FROM webhook_events
             WHERE meta_request_id = $1 AND event_type = 'group_create' ORDER BY id LIMIT 1",
        )
        .bind(meta_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(early.and_then(|row| {
            let value = serde_json::from_str::<Value>(&row.payload).ok()?;
            Some((row.phone_number_id, value))
        }))
    }

    async fn pending_creation(&mut self, meta_id: &str) -> Result<Option<PendingCreation>> {
        self.flush().await?;
        let row: Option<PendingRow> = sqlx::query_as(
            "SELECT request_id, team, phone_number_id, subject FROM create_requests
             WHERE meta_request_id = $1 AND status = 'pending'",
        )
        .bind(meta_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(PendingRow::into_record))
    }

    async fn finish_creation(
        &mut self,
        pending: &PendingCreation,
        outcome: &CreationOutcome,
    ) -> Result<()> {
        self.flush().await?;
        let now = now();
        match outcome {
            CreationOutcome::Created {
                group_id,
                phone_number_id,
                subject,
                invite_link,
            } => {
                self.touched.push(group_id.clone());
                sqlx::query(
                    "UPDATE create_requests SET status = 'created', group_id = $1, invite_link = $2, updated_at = $3
                     WHERE request_id = $4",
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
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $7)
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
                    "UPDATE create_requests SET status = 'failed', error = $1, updated_at = $2 WHERE request_id = $3",
                )
                .bind(error.to_string())
                .bind(&now)
                .bind(&pending.request_id)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        // Replicas with a caller waiting for this creation wake once the transaction commits.
        notify(
            self.dialect,
            &mut *self.tx,
            CREATIONS_CHANNEL,
            &pending.request_id,
        )
        .await
    }

    async fn note_group(&mut self, group: &SeenGroup<'_>) -> Result<()> {
        self.flush().await?;
        self.touched.push(group.group_id.to_owned());
        let now = now();
        sqlx::query(
            "INSERT INTO groups (group_id, phone_number_id, subject, invite_link, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
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
        self.change_group(group_id, "status = $1", status).await
    }

    async fn set_group_subject(&mut self, group_id: &str, subject: &str) -> Result<()> {
        self.change_group(group_id, "subject = $1", subject).await
    }

    async fn set_group_suspended(&mut self, group_id: &str, suspended: bool) -> Result<()> {
        self.change_group(group_id, "suspended = $1", i64::from(suspended))
            .await
    }

    async fn adjust_participants(&mut self, group_id: &str, delta: i64) -> Result<()> {
        self.deferred.participants(group_id, delta);
        Ok(())
    }

    async fn record_billable(&mut self, message: &BillableMessage<'_>) -> Result<()> {
        self.flush().await?;
        sqlx::query(
            "INSERT INTO message_usage (message_id, team, phone_number_id, day, category, pricing_model, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(message.message_id)
        .bind(message.team)
        .bind(message.phone_number_id)
        .bind(message.day)
        .bind(message.category)
        .bind(message.pricing_model)
        .bind(now())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn group_owner(&mut self, group_id: &str) -> Result<Option<GroupOwner>> {
        if let Some(owner) = self.deferred.owners.get(group_id) {
            return Ok(owner.clone());
        }
        let row: Option<OwnerRow> =
            sqlx::query_as("SELECT owner_team, phone_number_id FROM groups WHERE group_id = $1")
                .bind(group_id)
                .fetch_optional(&mut *self.tx)
                .await?;
        let owner = row.map(|r| GroupOwner {
            team: r.owner_team,
            phone_number_id: r.phone_number_id,
        });
        self.deferred
            .owners
            .insert(group_id.to_owned(), owner.clone());
        Ok(owner)
    }

    async fn insert_team_event(&mut self, row: &NewTeamEvent<'_>) -> Result<()> {
        self.deferred.team_event(row.source, row.team, row.event);
        Ok(())
    }

    async fn claim_for_creation(&mut self, done: &Completion) -> Result<()> {
        self.flush().await?;
        let rows: Vec<OwnerlessEventRow> = sqlx::query_as(
            "SELECT te.seq, te.id, te.type, te.occurred_at, te.phone_number_id, te.group_id,
                    te.request_id, te.data, te.webhook_event_id,
                    CASE WHEN we.meta_request_id = $1 AND we.event_type = 'group_create'
                         THEN 1 ELSE 0 END AS is_creation
             FROM team_events te JOIN webhook_events we ON we.id = te.webhook_event_id
             WHERE te.team IS NULL
               AND ((we.meta_request_id = $1 AND we.event_type = 'group_create') OR te.group_id = $2)
             ORDER BY te.seq",
        )
        .bind(&done.meta_request_id)
        .bind(&done.group_id)
        .fetch_all(&mut *self.tx)
        .await?;
        for row in rows {
            let Some((seq, mut event)) = row.event.into_event() else {
                continue;
            };
            let webhook_event_id = row.webhook_event_id;
            if row.is_creation == 1 && event.event_type.is_creation() {
                event.request_id = Some(done.request_id.clone());
            }
            sqlx::query("DELETE FROM team_events WHERE seq = $1")
                .bind(seq)
                .execute(&mut *self.tx)
                .await?;
            events::insert(&mut self.tx, webhook_event_id, Some(&done.team), &event).await?;
        }
        Ok(())
    }

    async fn completions_with_ownerless_events(&mut self, since: &str) -> Result<Vec<Completion>> {
        self.flush().await?;
        let rows: Vec<CompletionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT c.request_id, c.team, c.phone_number_id, c.meta_request_id, c.group_id
             {HELD_EVENTS}"
        )))
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Completion {
                request_id: r.request_id,
                team: r.team,
                phone_number_id: r.phone_number_id,
                meta_request_id: r.meta_request_id,
                group_id: r.group_id,
            })
            .collect())
    }

    async fn creations_overtaken_by_their_webhook(
        &mut self,
        limit: i64,
    ) -> Result<Vec<(String, String)>> {
        self.flush().await?;
        let rows: Vec<OvertakenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT c.request_id, c.meta_request_id {OVERTAKEN_CREATIONS}
             ORDER BY c.created_at LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.request_id, r.meta_request_id))
            .collect())
    }

    async fn mark_outcome_unknown(&mut self, request_id: &str) -> Result<Option<PendingCreation>> {
        self.flush().await?;
        let row: Option<PendingRow> = sqlx::query_as(
            "UPDATE create_requests SET outcome_unknown = 1, updated_at = $1
             WHERE request_id = $2 AND status = 'pending' AND meta_request_id IS NULL
             RETURNING request_id, team, phone_number_id, subject",
        )
        .bind(now())
        .bind(request_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(PendingRow::into_record))
    }

    async fn waiting_creation(
        &mut self,
        phone_number_id: &str,
        subject: &str,
        meta_request_id: &str,
    ) -> Result<Option<PendingCreation>> {
        self.flush().await?;
        let row: Option<PendingRow> = sqlx::query_as(
            "SELECT request_id, team, phone_number_id, subject FROM create_requests
             WHERE status = 'pending' AND meta_request_id IS NULL AND outcome_unknown = 1
               AND phone_number_id = $1 AND subject = $2
               AND NOT EXISTS (SELECT 1 FROM create_requests c WHERE c.meta_request_id = $3)
             ORDER BY created_at, request_id LIMIT 1",
        )
        .bind(phone_number_id)
        .bind(subject)
        .bind(meta_request_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.map(PendingRow::into_record))
    }

    async fn unclaimed_creation_event(
        &mut self,
        creation: &PendingCreation,
    ) -> Result<Option<(String, Value)>> {
        self.flush().await?;
        let row: Option<UnclaimedEventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT we.meta_request_id, we.payload FROM webhook_events we
             WHERE we.event_type = 'group_create' AND we.phone_number_id = $1
               AND we.meta_request_id IS NOT NULL
               AND {subject} = $2
               AND we.received_at >= (SELECT created_at FROM create_requests WHERE request_id = $3)
               AND NOT EXISTS (SELECT 1 FROM create_requests c
                               WHERE c.meta_request_id = we.meta_request_id)
             ORDER BY we.id LIMIT 1",
            subject = self.dialect.json_text("we.payload", "subject"),
        )))
        .bind(&creation.phone_number_id)
        .bind(&creation.subject)
        .bind(&creation.request_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(row.and_then(|r| Some((r.meta_request_id, serde_json::from_str(&r.payload).ok()?))))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush().await?;
        self.touched.sort_unstable();
        self.touched.dedup();
        // Delivered to the other replicas when (and only if) the transaction commits.
        for group_id in &self.touched {
            notify(self.dialect, &mut *self.tx, GROUPS_CHANNEL, group_id).await?;
        }
        self.tx.commit().await?;
        for group_id in self.touched {
            tell(&self.group_watcher, GroupChange::One(group_id));
        }
        Ok(())
    }
}

/// `UPDATE groups SET <assignment>, updated_at = now WHERE group_id = …`, binding `value` to
/// the assignment's placeholder `$1`.
pub(super) async fn set_group_column<'q, T>(
    conn: &mut AnyConnection,
    assignment: &'static str,
    value: T,
    group_id: &'q str,
) -> Result<()>
where
    T: sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + 'q,
{
    // Only the fixed assignments above are spliced in; every value is bound.
    let sql = format!("UPDATE groups SET {assignment}, updated_at = $2 WHERE group_id = $3");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(value)
        .bind(now())
        .bind(group_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// ---- the rows the unit of work reads -----------------------------------------------------

/// A creation still waiting (`create_requests`).
#[derive(FromRow)]
struct PendingRow {
    request_id: String,
    team: String,
    phone_number_id: String,
    subject: String,
}

impl PendingRow {
    fn into_record(self) -> PendingCreation {
        PendingCreation {
            request_id: self.request_id,
            team: self.team,
            phone_number_id: self.phone_number_id,
            subject: self.subject,
        }
    }
}

/// A stored POST to process.
#[derive(FromRow)]
struct PostRow {
    id: i64,
    body: Vec<u8>,
}

/// One of Meta's events just stored.
#[derive(FromRow)]
struct StoredEventRow {
    id: i64,
    event_key: String,
}

/// Meta's `group_create` event stored before its creation knew Meta's request id.
#[derive(FromRow)]
struct EarlyEventRow {
    /// JSON.
    payload: String,
    phone_number_id: Option<String>,
}

/// A `group_create` event no creation claimed yet.
#[derive(FromRow)]
struct UnclaimedEventRow {
    meta_request_id: String,
    /// JSON.
    payload: String,
}

#[derive(FromRow)]
struct OwnerRow {
    owner_team: Option<String>,
    phone_number_id: String,
}

/// An ownerless team event, and whether it is the creation's own.
#[derive(FromRow)]
struct OwnerlessEventRow {
    #[sqlx(flatten)]
    event: events::EventRow,
    webhook_event_id: i64,
    is_creation: i64,
}

/// A created group's creation (`completions_with_ownerless_events`).
#[derive(FromRow)]
struct CompletionRow {
    request_id: String,
    team: String,
    phone_number_id: String,
    meta_request_id: String,
    group_id: Option<String>,
}

/// A pending creation whose webhook was processed before Meta's id was attached.
#[derive(FromRow)]
struct OvertakenRow {
    request_id: String,
    meta_request_id: String,
}
