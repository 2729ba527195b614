//! Revoked token ids (README, "Revoking tokens"; docs/architecture.md, "Caches"). Checking
//! a token costs no storage round trip: every replica keeps the revoked ids in memory, loaded
//! at start, updated at once when it revokes one itself, and refreshed from storage in the
//! background so that revocations made by other replicas (or by `token revoke`) take effect
//! within a second.
//!
//! Sequence numbers are handed out when a row is inserted but become visible when its
//! transaction commits, so a revocation can appear below the highest `seq` already read. Each
//! refresh therefore reads again everything above the highest `seq` known `GAP_WINDOW` ago: a
//! revocation committed late (within that window of its number) is still seen at the next
//! refresh, not at the next full reload.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::domain::TokenId;
use crate::storage::{Result, TokenStore};
use crate::supervisor::Supervisor;

/// How often storage is asked for revocations made elsewhere.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);
/// Every this many refreshes, the whole table is read again: a last guard against a row
/// whose `seq` was allocated long before it became visible.
const FULL_RELOAD_EVERY: u32 = 120;
/// The `seq` of a revocation made here and not read back from storage yet: newer than any.
const LOCAL: i64 = i64::MAX;
/// How long after its number was handed out a revocation may still commit and be seen at
/// the next refresh (a revocation is one INSERT: milliseconds, with room for a slow disk).
const GAP_WINDOW: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    /// Each revoked id with its `seq` (`LOCAL` until the row is read back).
    jtis: HashMap<String, i64>,
    /// The highest `seq` read so far.
    last_seq: i64,
    /// `last_seq` as it stood at each refresh of the last `GAP_WINDOW`, oldest first.
    recent: VecDeque<(Instant, i64)>,
}

impl State {
    /// Where the next refresh starts: the highest `seq` known `GAP_WINDOW` ago (0 until the
    /// list is that old), so numbers handed out since then are read again.
    fn read_from(&mut self, now: Instant) -> i64 {
        let mut from = 0;
        while let Some(&(at, seq)) = self.recent.front() {
            if now.duration_since(at) < GAP_WINDOW {
                break;
            }
            from = seq;
            self.recent.pop_front();
        }
        // The newest of the entries old enough stays as the floor of the next refreshes.
        if from > 0 {
            self.recent.push_front((now - GAP_WINDOW, from));
        }
        from
    }
}

/// The revoked ids of this replica, shared by its workers.
#[derive(Clone)]
pub struct RevocationList {
    store: Arc<dyn TokenStore>,
    state: Arc<RwLock<State>>,
}

impl RevocationList {
    /// Reads every revoked id; the gateway does not serve before this succeeded.
    pub async fn load(store: Arc<dyn TokenStore>) -> Result<Self> {
        let list = RevocationList {
            store,
            state: Arc::default(),
        };
        list.refresh().await?;
        Ok(list)
    }

    pub fn is_revoked(&self, jti: &TokenId) -> bool {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .jtis
            .contains_key(jti.as_str())
    }

    /// Stores the revocation, then applies it here at once. Revoking twice is not an error.
    pub async fn revoke(&self, jti: &TokenId, by: &str) -> Result<()> {
        self.store.revoke(jti.as_str(), by).await?;
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .jtis
            .entry(jti.to_string())
            .or_insert(LOCAL);
        Ok(())
    }

    /// Reads the revocations stored since the last look (and those of the last `GAP_WINDOW`
    /// again, in case one committed after a higher number).
    pub async fn refresh(&self) -> Result<()> {
        let since = self
            .state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .read_from(Instant::now());
        self.read_since(since).await
    }

    async fn read_since(&self, since: i64) -> Result<()> {
        let rows = self.store.revoked_since(since).await?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        for (seq, jti) in rows {
            state.jtis.insert(jti, seq);
            state.last_seq = state.last_seq.max(seq);
        }
        let last_seq = state.last_seq;
        state.recent.push_back((Instant::now(), last_seq));
        Ok(())
    }

    /// Reads every stored revocation again and forgets those storage no longer holds
    /// (retention prunes a revocation once every token it could refuse has expired), so the
    /// list is as bounded as the table. Revocations newer than what was read (made here
    /// meanwhile) stay.
    async fn reload(&self) -> Result<()> {
        let rows = self.store.revoked_since(0).await?;
        let newest_read = rows.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut jtis: HashMap<String, i64> = state
            .jtis
            .drain()
            .filter(|(_, seq)| *seq > newest_read)
            .collect();
        for (seq, jti) in rows {
            jtis.insert(jti, seq);
        }
        state.jtis = jtis;
        state.last_seq = state.last_seq.max(newest_read);
        Ok(())
    }

    /// Revoked ids held in memory.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .jtis
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refreshes every `every` until the list is dropped (the gateway stopped).
    pub fn spawn_refresher(&self, every: Duration, supervisor: &Supervisor) {
        let weak = Arc::downgrade(&self.state);
        let store = self.store.clone();
        supervisor.spawn("revocations", move || {
            refresh_until_dropped(weak.clone(), store.clone(), every)
        });
    }
}

/// The refresher's loop: ends once the list it refreshes is gone.
async fn refresh_until_dropped(
    weak: std::sync::Weak<RwLock<State>>,
    store: Arc<dyn TokenStore>,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u32 = 0;
    loop {
        ticker.tick().await;
        let Some(state) = weak.upgrade() else { return };
        let list = RevocationList {
            store: store.clone(),
            state,
        };
        round = round.wrapping_add(1);
        let result = if round.is_multiple_of(FULL_RELOAD_EVERY) {
            list.reload().await
        } else {
            list.refresh().await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot refresh revoked tokens; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_reads_again_the_numbers_handed_out_within_the_gap_window() {
        let start = Instant::now();
        let mut state = State::default();
        assert_eq!(state.read_from(start), 0, "a young list reads everything");
        state.recent.push_back((start, 10));
        state.recent.push_back((start + Duration::from_secs(2), 20));
        assert_eq!(state.read_from(start + Duration::from_secs(3)), 0);
        // Once 10 is older than the window it is the floor; 20 is not yet.
        assert_eq!(state.read_from(start + GAP_WINDOW), 10);
        assert_eq!(
            state.read_from(start + GAP_WINDOW + Duration::from_secs(1)),
            10
        );
        assert_eq!(
            state.read_from(start + GAP_WINDOW + Duration::from_secs(3)),
            20
        );
        // The window does not grow with refreshes: one floor and the young entries.
        assert!(state.recent.len() <= 2, "{:?}", state.recent);
    }

    /// Retention forgets a revocation once the longest-lived token it could refuse has
    /// expired; the next full reload forgets it in memory too, but keeps what is newer.
    #[tokio::test]
    async fn pruned_revocations_leave_memory_at_the_next_reload() {
        let storage = crate::storage::Storage::connect("sqlite::memory:", 1)
            .await
            .unwrap();
        let list = RevocationList::load(storage.tokens.clone()).await.unwrap();
        let id = |raw: &str| TokenId::parse(raw).unwrap();
        list.revoke(&id("old"), "platform").await.unwrap();
        list.refresh().await.unwrap();
        // Every revocation so far is older than the cut-off (times are kept to the
        // millisecond: the cut-off is taken a few milliseconds later).
        std::thread::sleep(Duration::from_millis(5));
        let cutoff = crate::clock::now();
        std::thread::sleep(Duration::from_millis(5));
        let pruned = storage
            .tokens
            .prune_revocations(&crate::storage::PruneBatch {
                before: &cutoff,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        list.revoke(&id("new"), "platform").await.unwrap();
        assert!(list.is_revoked(&id("old")), "kept until the reload");
        list.reload().await.unwrap();
        assert!(!list.is_revoked(&id("old")));
        assert!(list.is_revoked(&id("new")));
        assert_eq!(list.len(), 1);
    }

    #[tokio::test]
    async fn another_replicas_revocation_is_seen_after_a_refresh() {
        let storage = crate::storage::Storage::connect("sqlite::memory:", 1)
            .await
            .unwrap();
        let here = RevocationList::load(storage.tokens.clone()).await.unwrap();
        let there = RevocationList::load(storage.tokens.clone()).await.unwrap();
        let id = |raw: &str| TokenId::parse(raw).unwrap();
        here.revoke(&id("j1"), "platform").await.unwrap();
        assert!(
            here.is_revoked(&id("j1")),
            "at once on the replica that revoked"
        );
        assert!(!there.is_revoked(&id("j1")));
        there.refresh().await.unwrap();
        assert!(there.is_revoked(&id("j1")));
        // Revoking again is harmless.
        here.revoke(&id("j1"), "platform").await.unwrap();
        // As `token revoke` does, without a running list.
        storage.tokens.clone().revoke("j2", "cli").await.unwrap();
        there.refresh().await.unwrap();
        assert!(there.is_revoked(&id("j2")));
        assert!(!there.is_revoked(&id("j3")));
    }
}
