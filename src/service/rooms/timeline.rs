//! The timeline: every stored event (by room and stream position), its indexes (event id →
//! location, short id → event id, the state snapshot before it, transaction ids), and the
//! caches in front of them. `persist` writes an event into it with [`Timeline::index`];
//! reading through the caches lives in [`event_cache`](super::event_cache) and
//! [`recent`](super::recent).
//!
//! Locations, positions and states-before never change once written, so their caches need no
//! invalidation; stored events change only by redaction, after which
//! [`Timeline::after_write`] drops what it cached of the rewritten event.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use ruma::{EventId, OwnedEventId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    Pdu,
    event_cache::{EventCache, SnapshotEvents},
    recent::RecentEvents,
};
use crate::{
    error::Result,
    service::cache::{Cache, NumberKeys},
    storage::{Batch, Db, KeyCodec, Table, tables},
};

/// Where an event lives (key: event id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventLocation {
    pub short_event: u64,
    pub short_room: u64,
    /// Stream position: the event's place in the room timeline and in sync.
    pub count: u64,
    /// `(device id, transaction id)` when a local client sent it with a txn id.
    #[serde(default)]
    pub txn: Option<(String, String)>,
    /// An event known only as part of a room's state or auth chain (received from another
    /// server when joining): stored outside the timeline, at [`EventLocation::row`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outlier: bool,
}

/// Outliers live in the events table under their room's short id with this bit set, so no
/// timeline scan of the room ever meets them.
const OUTLIER_ROWS: u64 = 1 << 63;

impl EventLocation {
    /// The event's key in the events table.
    pub fn row(&self) -> (u64, u64) {
        if self.outlier {
            (self.short_room | OUTLIER_ROWS, self.count)
        } else {
            (self.short_room, self.count)
        }
    }
}

/// A raw timeline row: ((short room id, position), the stored event's JSON bytes).
pub type TimelineRow = ((u64, u64), Box<[u8]>);

/// A timeline row read whole: ((short room id, position), the stored event).
pub type StoredRow = ((u64, u64), Box<RawValue>);

/// State snapshots whose event lists are kept (each holds its events in memory).
const SNAPSHOTS_CACHED: usize = 256;

/// Most events scanned for one page of a timeline walk (filters may skip many).
pub const MAX_SCAN: usize = 1000;

/// Owns the timeline tables and their caches.
pub struct Timeline {
    /// Stored as raw JSON so reads parse each event once, straight into a [`Pdu`].
    pdus: Table<(u64, u64), Box<RawValue>>,
    events: Table<String, EventLocation>,
    event_ids: Table<u64, String>,
    state_before: Table<u64, u64>,
    txns: Table<(String, String), String>,
    /// Event id → location, and event → state snapshot before it.
    locations: Cache<String, EventLocation>,
    states_before: Cache<u64, u64, NumberKeys>,
    /// Timeline position (short room, count) → short event id.
    pub(super) positions: Cache<(u64, u64), u64, NumberKeys>,
    pub(super) event_cache: EventCache,
    /// Snapshot → its state events, shared by the syncs of every member (a redaction clears
    /// it, like the event cache).
    pub(super) snapshot_events: Cache<u64, Arc<SnapshotEvents>, NumberKeys>,
    /// Per room: its newest events (see [`recent`](super::recent)).
    pub(super) recent: Cache<u64, Arc<RecentEvents>, NumberKeys>,
    /// Redactions applied since start: derived data (unread counts) compares it to notice one.
    redactions: AtomicU64,
}

impl Timeline {
    pub fn new(db: &Db, cached: usize) -> Self {
        Self {
            pdus: db.open_table(tables::PDUS),
            events: db.open_table(tables::EVENT_INDEX),
            event_ids: db.open_table(tables::EVENT_IDS_BY_SHORT),
            state_before: db.open_table(tables::EVENT_STATE_BEFORE),
            txns: db.open_table(tables::TRANSACTION_IDS),
            locations: Cache::new(cached),
            states_before: Cache::new(cached),
            positions: Cache::new(cached),
            event_cache: EventCache::new(cached),
            snapshot_events: Cache::new(SNAPSHOTS_CACHED),
            recent: Cache::new(cached),
            redactions: AtomicU64::new(0),
        }
    }

    /// Writes a new event and its indexes into its batch: the event (`json`, its stored form)
    /// at its position, its location, its short id, the state before it and the transaction
    /// id it was sent with.
    pub(super) fn index(
        &self,
        batch: &mut Batch,
        stored: &Pdu,
        json: Box<RawValue>,
        location: &EventLocation,
        state_before: u64,
        txn_key: Option<&str>,
    ) {
        let event_id = stored.event_id.to_string();
        self.pdus
            .put(batch, &(location.short_room, location.count), &json);
        self.events.put(batch, &event_id, location);
        self.event_ids.put(batch, &location.short_event, &event_id);
        self.state_before
            .put(batch, &location.short_event, &state_before);
        if let Some(key) = txn_key {
            self.txns.put(
                batch,
                &(stored.sender.to_string(), key.to_owned()),
                &event_id,
            );
        }
    }

    /// Writes an outlier (see [`EventLocation::outlier`]): the event and its id indexes, no
    /// timeline position and no state before it.
    pub(super) fn index_outlier(
        &self,
        batch: &mut Batch,
        event_id: &str,
        json: &RawValue,
        location: &EventLocation,
    ) {
        self.pdus.put(batch, &location.row(), &json.to_owned());
        self.events.put(batch, &event_id.to_owned(), location);
        self.event_ids
            .put(batch, &location.short_event, &event_id.to_owned());
    }

    /// Replaces a stored event by a new form of it (its redaction) in `batch`.
    pub(super) fn rewrite(&self, batch: &mut Batch, location: &EventLocation, json: Box<RawValue>) {
        self.pdus.put(batch, &location.row(), &json);
    }

    /// What follows a written event in memory, once its batch has landed (never before: see
    /// the event cache's module documentation): the room's newest events gain it, and the
    /// event it redacted (`redacted`, a short event id) is dropped from the caches.
    pub(super) fn after_write(&self, location: &EventLocation, redacted: Option<u64>) {
        if let Some(redacted) = redacted {
            self.event_cache.invalidate(&redacted);
            self.snapshot_events.invalidate_all();
            self.redactions.fetch_add(1, Ordering::SeqCst);
        }
        self.note_appended(location.short_room, location.count, location.short_event);
    }

    /// How many redactions were applied since the server started (bumped after each write).
    pub fn redaction_count(&self) -> u64 {
        self.redactions.load(Ordering::SeqCst)
    }

    /// Where an event is stored.
    pub fn location(&self, event_id: &EventId) -> Result<Option<EventLocation>> {
        Ok(self
            .locations
            .get_or_load(event_id.as_str().to_owned(), |key| self.events.get(key))?)
    }

    /// The event id of a short event id.
    pub(super) fn event_id(&self, short_event: u64) -> Result<Option<OwnedEventId>> {
        Ok(self
            .event_ids
            .get(&short_event)?
            .and_then(|id| EventId::parse(id).ok()))
    }

    /// The stored JSON of the event at a timeline position.
    pub(super) fn raw_at(&self, short_room: u64, count: u64) -> Result<Option<Box<RawValue>>> {
        Ok(self.pdus.get(&(short_room, count))?)
    }

    /// The stored JSON of the event at `location` (timeline event or outlier).
    pub(super) fn raw_of(&self, location: &EventLocation) -> Result<Option<Box<RawValue>>> {
        Ok(self.pdus.get(&location.row())?)
    }

    /// The event at `location` (timeline event or outlier).
    pub fn pdu_of(&self, location: &EventLocation) -> Result<Option<Pdu>> {
        match self.raw_of(location)? {
            Some(raw) => Ok(Some(Pdu::from_raw(&raw)?)),
            None => Ok(None),
        }
    }

    /// An event by its timeline position.
    pub fn pdu_at(&self, short_room: u64, count: u64) -> Result<Option<Pdu>> {
        match self.raw_at(short_room, count)? {
            Some(raw) => Ok(Some(Pdu::from_raw(&raw)?)),
            None => Ok(None),
        }
    }

    /// The state snapshot before an event.
    pub fn state_hash_before(&self, short_event: u64) -> Result<Option<u64>> {
        Ok(self
            .states_before
            .get_or_load(short_event, |short| self.state_before.get(short))?)
    }

    /// The event a device already sent with this transaction id in this room.
    pub fn event_for_txn(
        &self,
        user_id: &UserId,
        device_txn: &str,
    ) -> Result<Option<OwnedEventId>> {
        let key = (user_id.as_str().to_owned(), device_txn.to_owned());
        Ok(self.txns.get(&key)?.and_then(|id| EventId::parse(id).ok()))
    }

    /// Up to `limit` events of a room with `start <= position < end`, oldest first, or newest
    /// first when `backward`.
    pub fn rows(
        &self,
        short_room: u64,
        (start, end): (u64, u64),
        backward: bool,
        limit: usize,
    ) -> Result<Vec<StoredRow>> {
        Ok(self.pdus.range(
            &(short_room, start).encode(),
            &(short_room, end).encode(),
            backward,
            limit,
        )?)
    }

    /// The first event of a room at or after timeline position `position`.
    pub fn first_at_or_after(&self, short_room: u64, position: u64) -> Result<Option<(u64, Pdu)>> {
        self.one_row(short_room, (position, u64::MAX), false)
    }

    /// The newest event at or before timeline position `position`.
    pub fn last_event_at_or_before(&self, short_room: u64, position: u64) -> Result<Option<Pdu>> {
        Ok(self
            .one_row(short_room, (0, position.saturating_add(1)), true)?
            .map(|(_, pdu)| pdu))
    }

    fn one_row(
        &self,
        short_room: u64,
        range: (u64, u64),
        backward: bool,
    ) -> Result<Option<(u64, Pdu)>> {
        self.rows(short_room, range, backward, 1)?
            .into_iter()
            .next()
            .map(|((_, count), raw)| Ok((count, Pdu::from_raw(&raw)?)))
            .transpose()
    }

    /// The newest timeline position of a room (0 when it has no events).
    pub fn latest_count(&self, short_room: u64) -> Result<u64> {
        Ok(self
            .rows(short_room, (0, u64::MAX), true, 1)?
            .first()
            .map(|((_, count), _)| *count)
            .unwrap_or(0))
    }

    /// Raw timeline rows of a room with `start <= position < end`, newest first (at most a
    /// scan's worth), read as the caller consumes them. The stored JSON of each event is left
    /// for the caller to parse (once, into what it needs).
    pub fn rows_newest_first(
        &self,
        short_room: u64,
        (start, end): (u64, u64),
    ) -> impl Iterator<Item = Result<TimelineRow>> + '_ {
        self.pdus
            .iter_range_raw(
                &(short_room, start).encode(),
                &(short_room, end).encode(),
                true,
            )
            .take(MAX_SCAN)
            .map(|row| row.map_err(Into::into))
    }
}
