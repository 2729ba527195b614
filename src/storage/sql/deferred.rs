//! Writes a unit of work holds back while it processes stored POSTs, so that fifty POSTs
//! cost a handful of statements instead of several each: SQLite is reached through one
//! worker thread, and every statement is a round trip to it. Held-back writes are made
//! before any other statement of the unit of work (which might read or change what they
//! touch) and before it commits, so nothing in the unit of work sees the difference.

use std::collections::HashMap;

use sqlx::AnyConnection;

use super::{events, placeholders};
use crate::clock::now;
use crate::domain::events::TeamEvent;
use crate::storage::{GroupOwner, Result};

#[derive(Default)]
pub(super) struct Deferred {
    /// Stored POSTs processed.
    processed: Vec<i64>,
    /// Team events to store: (stored Meta event, team, event), in order.
    team_events: Vec<(i64, Option<String>, TeamEvent)>,
    /// Participant count changes, per group, in order of their first change.
    participants: Vec<(String, CountChange)>,
    /// Owners read in this unit of work; the writes held back never change one.
    pub(super) owners: HashMap<String, Option<GroupOwner>>,
}

impl Deferred {
    pub(super) fn processed(&mut self, inbox_id: i64) {
        self.processed.push(inbox_id);
    }

    pub(super) fn team_event(&mut self, source: i64, team: Option<&str>, event: &TeamEvent) {
        self.team_events
            .push((source, team.map(str::to_owned), event.clone()));
    }

    pub(super) fn participants(&mut self, group_id: &str, delta: i64) {
        match self.participants.iter_mut().find(|(g, _)| g == group_id) {
            Some((_, change)) => *change = change.then(delta),
            None => self
                .participants
                .push((group_id.to_owned(), CountChange::by(delta))),
        }
    }

    /// Makes the held-back writes; forgets the owners read (what comes next may change them).
    pub(super) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<()> {
        self.owners.clear();
        for (group_id, change) in std::mem::take(&mut self.participants) {
            // Only where the count is known: groups the gateway created start at 0, groups
            // seen only through events have none.
            sqlx::query(
                "UPDATE groups SET participant_count = CASE
                   WHEN participant_count + $1 < $2 THEN $2 ELSE participant_count + $1 END,
                   updated_at = $3
                 WHERE group_id = $4 AND participant_count IS NOT NULL",
            )
            .bind(change.delta)
            .bind(change.floor)
            .bind(now())
            .bind(&group_id)
            .execute(&mut *conn)
            .await?;
        }
        events::insert_many(conn, &std::mem::take(&mut self.team_events)).await?;
        let processed = std::mem::take(&mut self.processed);
        if !processed.is_empty() {
            let ids = placeholders(2, processed.len());
            // Only numbered placeholders are formatted in; the values are bound.
            let mut update = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE webhook_inbox SET processed_at = $1 WHERE id IN ({ids})"
            )))
            .bind(now());
            for id in processed {
                update = update.bind(id);
            }
            update.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Several participant count changes in a row, as one: each change adds its delta and
/// stops at zero, so together they are `count → max(floor, count + delta)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CountChange {
    pub(super) floor: i64,
    pub(super) delta: i64,
}

impl CountChange {
    pub(super) fn by(delta: i64) -> Self {
        CountChange { floor: 0, delta }
    }

    pub(super) fn then(self, delta: i64) -> Self {
        CountChange {
            floor: (self.floor + delta).max(0),
            delta: self.delta + delta,
        }
    }

    #[cfg(test)]
    fn apply(self, count: i64) -> i64 {
        (count + self.delta).max(self.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::CountChange;

    /// Each change on its own, as the unit of work would have made them one by one.
    fn one_by_one(count: i64, deltas: &[i64]) -> i64 {
        deltas.iter().fold(count, |c, d| (c + d).max(0))
    }

    #[test]
    fn changes_folded_into_one_end_where_one_by_one_would() {
        let cases: &[&[i64]] = &[
            &[3],
            &[-5],
            &[-1, 1],
            &[2, -5, 1],
            &[-3, 4, -2, 7, -10, 1],
            &[10, -1, -1, -1],
        ];
        for deltas in cases {
            let folded = deltas[1..]
                .iter()
                .fold(CountChange::by(deltas[0]), |c, d| c.then(*d));
            for start in 0..12 {
                assert_eq!(
                    folded.apply(start),
                    one_by_one(start, deltas),
                    "{deltas:?} from {start}"
                );
            }
        }
    }
}
