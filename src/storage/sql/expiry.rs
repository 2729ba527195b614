//! Creations that waited too long for Meta's webhook: failed, told to their team and to
//! every replica in one transaction after `webhooks.creation_timeout_seconds`
//! (docs/architecture.md, "The life of a group creation", Expiry).

use serde_json::{Value, json};
use sqlx::Row;

use super::{CREATIONS_CHANNEL, SqlStorage, events, notify};
use crate::clock::{now, now_secs};
use crate::domain::events::{EventType, TeamEvent, creation_expiry_key, event_id};
use crate::storage::Result;

/// The `field` of the stored event standing for an expiry: not one of Meta's.
const GATEWAY_FIELD: &str = "gateway";
/// The `event_type` of that stored event.
const EXPIRED_TYPE: &str = "group_create_expired";

impl SqlStorage {
    /// Marks failed the creations still pending that were made before `created_before`;
    /// each becomes a `group.create_failed` event of its team (with `data.errors` = [`error`])
    /// and is announced to the other replicas, whose waiters then read it. A creation is
    /// expired once even when several replicas look at the same moment (the UPDATE takes
    /// it). Answers their request ids.
    pub(super) async fn fail_expired_creations(
        &self,
        created_before: &str,
        error: &Value,
    ) -> Result<Vec<String>> {
        let mut tx = self.writer.begin().await?;
        let expired = sqlx::query(
            "UPDATE create_requests SET status = 'failed', error = $1, updated_at = $2
             WHERE status = 'pending' AND created_at < $3
             RETURNING request_id, team, phone_number_id",
        )
        .bind(error.to_string())
        .bind(now())
        .bind(created_before)
        .fetch_all(&mut *tx)
        .await?;
        let mut request_ids = Vec::with_capacity(expired.len());
        for row in &expired {
            let request_id: String = row.try_get(0)?;
            let team: String = row.try_get(1)?;
            let phone_number_id: String = row.try_get(2)?;
            let key = creation_expiry_key(&request_id);
            let data = json!({ "errors": [error] });
            // Team events hang off a stored event; this one stands for the gateway's verdict.
            let stored: Option<i64> = sqlx::query_scalar(
                "INSERT INTO webhook_events (event_key, inbox_id, field, event_type,
                   phone_number_id, occurred_at, payload, received_at)
                 VALUES ($1, 0, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (event_key) DO NOTHING RETURNING id",
            )
            .bind(&key)
            .bind(GATEWAY_FIELD)
            .bind(EXPIRED_TYPE)
            .bind(&phone_number_id)
            .bind(now_secs())
            .bind(data.to_string())
            .bind(now())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(stored) = stored {
                let event = TeamEvent {
                    id: event_id(&key),
                    event_type: EventType::CreateFailed,
                    occurred_at: now_secs(),
                    phone_number_id,
                    group_id: None,
                    request_id: Some(request_id.clone()),
                    data,
                };
                events::insert(&mut tx, stored, Some(&team), &event).await?;
            }
            notify(self.dialect, &mut *tx, CREATIONS_CHANNEL, &request_id).await?;
            request_ids.push(request_id);
        }
        tx.commit().await?;
        Ok(request_ids)
    }
}
