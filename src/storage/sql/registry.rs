//! Teams and phone numbers made through the admin API (tables `platform_teams`,
//! `platform_team_numbers`, `platform_phone_numbers`). Each change is announced on
//! `wagw_platform` inside its transaction, so other replicas reload once it commits.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Any, Transaction};

use super::rows::narrow;
use super::{SqlStorage, notify};
use crate::storage::{NumberDelete, PlatformStore, Put, Result, StoredNumber, StoredTeam, TeamPut};

/// The PostgreSQL channel on which a change of the stored teams or numbers is announced.
pub(super) const PLATFORM_CHANNEL: &str = "wagw_platform";

impl SqlStorage {
    /// Row locks that make concurrent writers of the same rows take turns (SQLite has one
    /// writer at a time already).
    fn for_update(&self) -> &'static str {
        self.dialect.pick("", "FOR UPDATE")
    }

    async fn begin_platform(&self) -> Result<Transaction<'static, Any>> {
        Ok(self.writer.begin_with(self.dialect.begin()).await?)
    }

    async fn announce_platform(&self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        notify(self.dialect, &mut **tx, PLATFORM_CHANNEL, "").await
    }
}

fn rate_columns(rate: Option<(u32, u32)>) -> (Option<i64>, Option<i64>) {
    match rate {
        Some((per_second, burst)) => (Some(per_second.into()), Some(burst.into())),
        None => (None, None),
    }
}

fn rate_of(per_second: Option<i64>, burst: Option<i64>) -> sqlx::Result<Option<(u32, u32)>> {
    match (per_second, burst) {
        (Some(p), Some(b)) => Ok(Some((
            narrow("rate_per_second", p)?,
            narrow("rate_burst", b)?,
        ))),
        _ => Ok(None),
    }
}

#[async_trait]
impl PlatformStore for SqlStorage {
    async fn stored_teams(&self) -> Result<Vec<StoredTeam>> {
        let teams: Vec<TeamRow> = sqlx::query_as(
            "SELECT name, admin, rate_per_second, rate_burst, max_groups, updated_at
             FROM platform_teams ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        let grants: Vec<GrantRow> = sqlx::query_as(
            "SELECT team, phone_number_id FROM platform_team_numbers ORDER BY team, position",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut numbers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for grant in grants {
            numbers
                .entry(grant.team)
                .or_default()
                .push(grant.phone_number_id);
        }
        let mut stored = Vec::with_capacity(teams.len());
        for row in teams {
            stored.push(StoredTeam {
                phone_numbers: numbers.remove(&row.name).unwrap_or_default(),
                admin: super::rows::flag("admin", row.admin)?,
                rate_limit: rate_of(row.rate_per_second, row.rate_burst)?,
                max_groups: row
                    .max_groups
                    .map(|m| narrow("max_groups", m))
                    .transpose()?,
                updated_at: row.updated_at,
                name: row.name,
            });
        }
        Ok(stored)
    }

    async fn stored_numbers(&self) -> Result<Vec<StoredNumber>> {
        let rows: Vec<NumberRow> = sqlx::query_as(
            "SELECT phone_number_id, sealed_token, token_fingerprint, rate_per_second, rate_burst,
                    max_groups, updated_at
             FROM platform_phone_numbers ORDER BY phone_number_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in rows {
            stored.push(StoredNumber {
                rate_limit: rate_of(row.rate_per_second, row.rate_burst)?,
                max_groups: row
                    .max_groups
                    .map(|m| narrow("max_groups", m))
                    .transpose()?,
                phone_number_id: row.phone_number_id,
                sealed_token: row.sealed_token,
                token_fingerprint: row.token_fingerprint,
                updated_at: row.updated_at,
            });
        }
        Ok(stored)
    }

    async fn put_team(&self, team: &StoredTeam, stored_numbers: &[String]) -> Result<TeamPut> {
        let mut tx = self.begin_platform().await?;
        for pn in stored_numbers {
            let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT phone_number_id FROM platform_phone_numbers WHERE phone_number_id = $1 {}",
                self.for_update()
            )))
            .bind(pn)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Ok(TeamPut::UnknownNumber(pn.clone()));
            }
        }
        let (per_second, burst) = rate_columns(team.rate_limit);
        let existed: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM platform_teams WHERE name = $1 {}",
            self.for_update()
        )))
        .bind(&team.name)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO platform_teams
               (name, admin, rate_per_second, rate_burst, max_groups, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (name) DO UPDATE SET admin = excluded.admin,
               rate_per_second = excluded.rate_per_second, rate_burst = excluded.rate_burst,
               max_groups = excluded.max_groups, updated_at = excluded.updated_at",
        )
        .bind(&team.name)
        .bind(i64::from(team.admin))
        .bind(per_second)
        .bind(burst)
        .bind(team.max_groups.map(i64::from))
        .bind(&team.updated_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM platform_team_numbers WHERE team = $1")
            .bind(&team.name)
            .execute(&mut *tx)
            .await?;
        for (position, pn) in team.phone_numbers.iter().enumerate() {
            sqlx::query(
                "INSERT INTO platform_team_numbers (team, phone_number_id, position)
                 VALUES ($1, $2, $3)",
            )
            .bind(&team.name)
            .bind(pn)
            .bind(position as i64)
            .execute(&mut *tx)
            .await?;
        }
        self.announce_platform(&mut tx).await?;
        tx.commit().await?;
        Ok(TeamPut::Done(match existed {
            Some(_) => Put::Replaced,
            None => Put::Created,
        }))
    }

    async fn delete_team(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin_platform().await?;
        let deleted = sqlx::query("DELETE FROM platform_teams WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted > 0 {
            // SQLite enforces the cascade only with foreign keys on; said explicitly.
            sqlx::query("DELETE FROM platform_team_numbers WHERE team = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // Its webhook endpoints go with it: a team made again later under the same name
            // starts without them.
            for table in ["webhook_deliveries", "webhook_attempts"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE team = $1"
                )))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("DELETE FROM webhook_endpoints WHERE team = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            self.announce_platform(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn put_number(&self, number: &StoredNumber) -> Result<Put> {
        let mut tx = self.begin_platform().await?;
        let existed: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT phone_number_id FROM platform_phone_numbers WHERE phone_number_id = $1 {}",
            self.for_update()
        )))
        .bind(&number.phone_number_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (per_second, burst) = rate_columns(number.rate_limit);
        sqlx::query(
            "INSERT INTO platform_phone_numbers
               (phone_number_id, sealed_token, token_fingerprint, rate_per_second, rate_burst,
                max_groups, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (phone_number_id) DO UPDATE SET sealed_token = excluded.sealed_token,
               token_fingerprint = excluded.token_fingerprint,
               rate_per_second = excluded.rate_per_second, rate_burst = excluded.rate_burst,
               max_groups = excluded.max_groups, updated_at = excluded.updated_at",
        )
        .bind(&number.phone_number_id)
        .bind(&number.sealed_token)
        .bind(&number.token_fingerprint)
        .bind(per_second)
        .bind(burst)
        .bind(number.max_groups.map(i64::from))
        .bind(&number.updated_at)
        .execute(&mut *tx)
        .await?;
        self.announce_platform(&mut tx).await?;
        tx.commit().await?;
        Ok(match existed {
            Some(_) => Put::Replaced,
            None => Put::Created,
        })
    }

    async fn delete_number(&self, phone_number_id: &str) -> Result<NumberDelete> {
        let mut tx = self.begin_platform().await?;
        // Locked first, as `put_team` does: a team granted it meanwhile waits, then finds
        // it gone.
        let found: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT phone_number_id FROM platform_phone_numbers WHERE phone_number_id = $1 {}",
            self.for_update()
        )))
        .bind(phone_number_id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(NumberDelete::Absent);
        }
        let teams: Vec<String> = sqlx::query_scalar(
            "SELECT team FROM platform_team_numbers WHERE phone_number_id = $1 ORDER BY team",
        )
        .bind(phone_number_id)
        .fetch_all(&mut *tx)
        .await?;
        if !teams.is_empty() {
            return Ok(NumberDelete::Granted(teams));
        }
        sqlx::query("DELETE FROM platform_phone_numbers WHERE phone_number_id = $1")
            .bind(phone_number_id)
            .execute(&mut *tx)
            .await?;
        self.announce_platform(&mut tx).await?;
        tx.commit().await?;
        Ok(NumberDelete::Deleted)
    }

    async fn reseal_numbers(&self, resealed: &[(String, String, String)]) -> Result<u64> {
        let mut tx = self.begin_platform().await?;
        let mut replaced = 0;
        for (pn, read, sealed) in resealed {
            replaced += sqlx::query(
                "UPDATE platform_phone_numbers SET sealed_token = $1
                 WHERE phone_number_id = $2 AND sealed_token = $3",
            )
            .bind(sealed)
            .bind(pn)
            .bind(read)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        self.announce_platform(&mut tx).await?;
        tx.commit().await?;
        Ok(replaced)
    }
}

#[derive(sqlx::FromRow)]
struct TeamRow {
    name: String,
    admin: i64,
    rate_per_second: Option<i64>,
    rate_burst: Option<i64>,
    max_groups: Option<i64>,
    updated_at: String,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    team: String,
    phone_number_id: String,
}

#[derive(sqlx::FromRow)]
struct NumberRow {
    phone_number_id: String,
    sealed_token: String,
    token_fingerprint: String,
    rate_per_second: Option<i64>,
    rate_burst: Option<i64>,
    max_groups: Option<i64>,
    updated_at: String,
}
