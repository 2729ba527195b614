//! The team events feed (`GET /v1/events`) and what administrators see of events and
//! endpoints.

use std::sync::Arc;

use crate::domain::{FeedPosition, PhoneNumberId};
use crate::storage::{EventPage, EventStore, FeedPage, Result, Storage};

#[derive(Clone)]
pub struct Feed {
    store: Arc<dyn EventStore>,
}

impl Feed {
    pub fn new(storage: &Storage) -> Self {
        Feed {
            store: storage.events.clone(),
        }
    }

    /// A team's events on the numbers its token may use, after `after`, oldest first.
    pub async fn team_events(
        &self,
        team: &str,
        numbers: &[PhoneNumberId],
        after: FeedPosition,
        limit: u32,
    ) -> Result<EventPage> {
        let numbers: Vec<String> = numbers.iter().map(|n| n.as_ref().to_owned()).collect();
        self.store
            .list(team, &numbers, FeedPage { after, limit })
            .await
    }

    /// Events of groups no team owns, oldest first.
    pub async fn unowned(
        &self,
        numbers: Option<&[String]>,
        after: FeedPosition,
        limit: u32,
    ) -> Result<EventPage> {
        self.store
            .list_unowned(numbers, FeedPage { after, limit })
            .await
    }

    /// The feed position of one of the team's events.
    pub async fn position_of(&self, team: &str, event_id: &str) -> Result<Option<FeedPosition>> {
        self.store.position_of(team, event_id).await
    }
}
