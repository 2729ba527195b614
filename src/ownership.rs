//! Group ownership as administrators change it (`PUT /v1/admin/groups/{group_id}/owner`) and
//! see it beside Meta's listing. The webhook processor sets owners on creation (registry.rs);
//! this is the only other writer of `groups.owner_team`.

use std::collections::HashMap;

use sqlx::Row;

use crate::domain::{GroupId, PhoneNumberId};
use crate::registry::{Registry, now};

impl Registry {
    /// Makes `team` the owner of a group Meta confirmed on `pn`, adding it to the registry
    /// when the gateway never saw it (a group created outside the gateway). Answers the
    /// previous owner.
    pub async fn set_owner(
        &self,
        group_id: &GroupId,
        pn: &PhoneNumberId,
        team: &str,
        subject: Option<&str>,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let previous: Option<String> =
            sqlx::query("SELECT owner_team FROM groups WHERE group_id = ?")
                .bind(group_id.as_ref())
                .fetch_optional(&mut *tx)
                .await?
                .and_then(|r| r.get(0));
        let now = now();
        // Meta just confirmed it exists: it is active, whatever the registry believed.
        sqlx::query(
            "INSERT INTO groups (group_id, phone_number_id, owner_team, subject, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
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
        Ok(previous)
    }

    /// The owning team of each of these groups the registry knows (absent: no owner).
    pub async fn owners(
        &self,
        group_ids: &[String],
    ) -> Result<HashMap<String, String>, sqlx::Error> {
        if group_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders = vec!["?"; group_ids.len()].join(", ");
        // Only placeholders are spliced in; the ids are bound.
        let sql = format!(
            "SELECT group_id, owner_team FROM groups
             WHERE owner_team IS NOT NULL AND group_id IN ({placeholders})"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in group_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn adopting_then_moving_a_group() {
        let registry = Registry::connect("sqlite::memory:").await.unwrap();
        let g = GroupId::parse("Gadopt").unwrap();
        let pn = PhoneNumberId::parse("1").unwrap();
        assert_eq!(
            registry.owners(&["Gadopt".into()]).await.unwrap(),
            HashMap::new()
        );
        let previous = registry
            .set_owner(&g, &pn, "sales", Some("Found"))
            .await
            .unwrap();
        assert_eq!(previous, None);
        let previous = registry.set_owner(&g, &pn, "support", None).await.unwrap();
        assert_eq!(previous.as_deref(), Some("sales"));
        let record = registry.group(&g).await.unwrap().unwrap();
        assert_eq!(record.owner_team.as_deref(), Some("support"));
        assert_eq!(record.subject.as_deref(), Some("Found"));
        assert!(record.active);
        let owners = registry
            .owners(&["Gadopt".into(), "Gother".into()])
            .await
            .unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners["Gadopt"], "support");
    }
}
