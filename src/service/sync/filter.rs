//! Sync filters: the parts of a filter definition Hearth applies, and stored filters
//! (`POST/GET /user/{userId}/filter`).

use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use crate::{
    error::Result,
    service::rooms::read::EventFilter,
    storage::{Table, tables},
};

/// The parts of a sync filter Hearth applies.
#[derive(Clone, Debug)]
pub struct SyncFilter {
    pub timeline_limit: usize,
    pub timeline: EventFilter,
    pub state: EventFilter,
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    /// `room.timeline.unread_thread_notifications`: count threads separately.
    pub unread_thread_notifications: bool,
    pub account_data: EventFilter,
    pub room_account_data: EventFilter,
    pub ephemeral: EventFilter,
    pub presence: EventFilter,
}

/// Default number of timeline events per room.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// Most timeline events per room a filter may ask for.
const MAX_TIMELINE_LIMIT: usize = 1000;

impl SyncFilter {
    /// Reads a filter definition (JSON).
    pub fn from_json(filter: &Value) -> Self {
        let room = &filter["room"];
        let strings = |value: &Value| -> Option<Vec<String>> {
            value.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        Self {
            timeline_limit: room["timeline"]["limit"].as_u64().map_or(
                DEFAULT_TIMELINE_LIMIT,
                |l| {
                    // 0 is allowed: rooms with their state and no events (Synapse too).
                    (l as usize).min(MAX_TIMELINE_LIMIT)
                },
            ),
            timeline: EventFilter::from_json(&room["timeline"]),
            state: EventFilter::from_json(&room["state"]),
            rooms: strings(&room["rooms"]),
            not_rooms: strings(&room["not_rooms"]).unwrap_or_default(),
            include_leave: room["include_leave"].as_bool().unwrap_or(false),
            unread_thread_notifications: room["timeline"]["unread_thread_notifications"]
                .as_bool()
                .unwrap_or(false),
            account_data: EventFilter::from_json(&filter["account_data"]),
            room_account_data: EventFilter::from_json(&room["account_data"]),
            ephemeral: EventFilter::from_json(&room["ephemeral"]),
            presence: EventFilter::from_json(&filter["presence"]),
        }
    }

    pub(super) fn wants_room(&self, room_id: &RoomId) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room_id.as_str()))
            && !self.not_rooms.iter().any(|r| r == room_id.as_str())
    }
}

impl Default for SyncFilter {
    fn default() -> Self {
        Self::from_json(&json!({}))
    }
}

/// Owns the `filters` table.
pub struct FilterStore {
    db: crate::storage::Db,
    filters: Table<(String, String), Value>,
}

impl FilterStore {
    pub fn new(db: crate::storage::Db) -> Self {
        Self {
            filters: db.open_table(tables::FILTERS),
            db,
        }
    }

    /// Stores a filter; returns its id.
    pub fn create(&self, user: &UserId, filter: &Value) -> Result<String> {
        let id = self.db.next_count()?.to_string();
        let mut batch = self.db.batch();
        self.filters
            .put(&mut batch, &(user.to_string(), id.clone()), filter);
        self.db.write(batch)?;
        Ok(id)
    }

    /// A stored filter of the user.
    pub fn get(&self, user: &UserId, id: &str) -> Result<Option<Value>> {
        Ok(self.filters.get(&(user.to_string(), id.to_owned()))?)
    }
}
