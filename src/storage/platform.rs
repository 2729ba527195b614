//! Teams and phone numbers made through the admin API (DESIGN §11).

use async_trait::async_trait;

use super::Result;

/// A team as stored.
#[derive(Debug, Clone)]
pub struct StoredTeam {
    pub name: String,
    /// In the order given.
    pub phone_numbers: Vec<String>,
    pub admin: bool,
    /// (per_second, burst).
    pub rate_limit: Option<(u32, u32)>,
    pub max_groups: Option<u32>,
    /// RFC 3339.
    pub updated_at: String,
}

/// A phone number as stored: its access token only sealed.
#[derive(Debug, Clone)]
pub struct StoredNumber {
    pub phone_number_id: String,
    pub sealed_token: String,
    pub token_fingerprint: String,
    pub rate_limit: Option<(u32, u32)>,
    pub max_groups: Option<u32>,
    pub updated_at: String,
}

/// What a `PUT` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamPut {
    Done(Put),
    /// This number, expected in storage, is not (deleted meanwhile); nothing was written.
    UnknownNumber(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberDelete {
    Deleted,
    Absent,
    /// Still granted to these teams; nothing was deleted.
    Granted(Vec<String>),
}

/// Every change is announced to the other replicas once it commits.
#[async_trait]
pub trait PlatformStore: Send + Sync {
    async fn stored_teams(&self) -> Result<Vec<StoredTeam>>;
    async fn stored_numbers(&self) -> Result<Vec<StoredNumber>>;
    /// Creates or replaces the team, provided each of `stored_numbers` (those of its numbers
    /// that are not configuration's) is still stored: checked and written in one transaction,
    /// so a number deleted meanwhile cannot end up granted.
    async fn put_team(&self, team: &StoredTeam, stored_numbers: &[String]) -> Result<TeamPut>;
    /// True when the team was stored.
    async fn delete_team(&self, name: &str) -> Result<bool>;
    async fn put_number(&self, number: &StoredNumber) -> Result<Put>;
    /// Deletes the number unless a stored team is still granted it.
    async fn delete_number(&self, phone_number_id: &str) -> Result<NumberDelete>;
    /// Replaces sealed tokens (phone number id, as read, sealed anew), each only if it is
    /// still the value read; answers how many were replaced.
    async fn reseal_numbers(&self, resealed: &[(String, String, String)]) -> Result<u64>;
}
