//! What the guardrails of DESIGN §15 keep: Meta's 131208 backoff of a number, shared by every
//! replica.

use async_trait::async_trait;

use super::Result;

/// Until when a number's group operations are held back after Meta's 131208.
#[async_trait]
pub trait BackoffStore: Send + Sync {
    /// Holds the number's group operations back until `until_ms` (Unix ms); an earlier time
    /// never shortens a hold already stored.
    async fn hold_group_operations(&self, phone_number_id: &str, until_ms: i64) -> Result<()>;
    /// The end of the number's hold (Unix ms), if one was ever stored.
    async fn group_operations_held_until(&self, phone_number_id: &str) -> Result<Option<i64>>;
}
