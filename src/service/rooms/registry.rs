//! The rooms this server knows: each room's short id and its record (version, current state
//! snapshot, forward extremities, depth, member counts), with caches in front of both. A room
//! is registered by its create event; `persist`, the records' only writer, updates a record
//! with every event of its room.

use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, RoomId, RoomVersionId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    service::cache::{Cache, NumberKeys},
    storage::{Batch, Db, Table, tables},
};

/// Per-room bookkeeping (key: short room id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomRecord {
    pub room_id: OwnedRoomId,
    pub version: RoomVersionId,
    /// Snapshot of the current state.
    pub state_hash: u64,
    /// Events with no children yet: the `prev_events` of the next event.
    pub extremities: Vec<OwnedEventId>,
    pub depth: u64,
    /// Members currently joined (kept up to date with every membership event, so counts never
    /// scan the member list).
    #[serde(default)]
    pub joined_members: u64,
    /// Members currently invited (kept like `joined_members`).
    #[serde(default)]
    pub invited_members: u64,
}

/// Owns the room records and short room ids.
pub struct RoomRegistry {
    rooms: Table<u64, RoomRecord>,
    room_shorts: Table<String, u64>,
    /// Room records by short id, updated after each write of their room.
    records: Cache<u64, Arc<RoomRecord>, NumberKeys>,
    /// Room id → short room id (never changes).
    short_rooms: Cache<String, u64>,
}

impl RoomRegistry {
    pub fn new(db: &Db, cached: usize) -> Self {
        Self {
            rooms: db.open_table(tables::ROOMS),
            room_shorts: db.open_table(tables::ROOM_SHORT_IDS),
            records: Cache::new(cached),
            short_rooms: Cache::new(cached),
        }
    }

    /// The short id and record of a known room.
    pub fn room(&self, room_id: &RoomId) -> Result<Option<(u64, RoomRecord)>> {
        let Some(short) = self.short_room(room_id)? else {
            return Ok(None);
        };
        let lookup = self.records.get(&short);
        if let Some(record) = lookup.value {
            return Ok(Some((short, (*record).clone())));
        }
        let Some(record) = self.rooms.get(&short)? else {
            return Ok(None);
        };
        self.records
            .insert(short, Arc::new(record.clone()), lookup.epoch);
        Ok(Some((short, record)))
    }

    /// The record of a room by its short id.
    pub fn record(&self, short_room: u64) -> Result<Option<RoomRecord>> {
        if let Some(record) = self.records.get(&short_room).value {
            return Ok(Some((*record).clone()));
        }
        Ok(self.rooms.get(&short_room)?)
    }

    /// The short id of a known room.
    pub fn short_room(&self, room_id: &RoomId) -> Result<Option<u64>> {
        Ok(self
            .short_rooms
            .get_or_load(room_id.as_str().to_owned(), |key| self.room_shorts.get(key))?)
    }

    /// Like [`RoomRegistry::room`], with an unknown room a 404.
    pub fn known_room(&self, room_id: &RoomId) -> Result<(u64, RoomRecord)> {
        self.room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))
    }

    /// How many members are joined right now.
    pub fn joined_member_count(&self, short_room: u64) -> Result<usize> {
        Ok(self
            .rooms
            .get(&short_room)?
            .map_or(0, |room| room.joined_members as usize))
    }

    /// Gives a new room its short id (in the batch of its create event).
    pub(super) fn register(&self, batch: &mut Batch, room_id: &RoomId, short_room: u64) {
        self.room_shorts
            .put(batch, &room_id.as_str().to_owned(), &short_room);
    }

    /// Writes a room's record as it is after an event (in the event's batch).
    pub(super) fn index(&self, batch: &mut Batch, short_room: u64, room: &RoomRecord) {
        self.rooms.put(batch, &short_room, room);
    }

    /// Once the batch has landed: the cached record becomes the written one.
    pub(super) fn after_write(&self, short_room: u64, room: RoomRecord) {
        let room = Arc::new(room);
        self.records.update(&short_room, |_| room.clone());
    }
}
