//! The room event graph: building, signing, authorizing and storing events, and reading them
//! back. Every local event goes through [`RoomService::append`]; federation will feed remote
//! events through the same authorization and persistence steps.

pub mod aliases;
mod builder;
pub mod create;
pub mod event_cache;
pub mod filter;
pub mod members;
pub mod membership;
pub mod pdu;
mod persist;
mod pipeline;
mod push_index;
pub mod read;
pub mod recent;
pub mod redaction;
pub mod relations;
pub mod search;
pub mod state;
pub mod upgrade;
pub mod visibility;

use std::sync::Arc;

use ruma::{
    EventId, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

pub use pdu::Pdu;

use crate::{
    error::{Error, Result},
    service::{
        cache::{Cache, NumberKeys},
        server_keys::ServerKeys,
    },
    storage::{Db, Table, tables},
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
}

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

/// A user's membership in a room (key: user id ‖ room id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Membership {
    pub membership: String,
    pub event_id: OwnedEventId,
    pub count: u64,
    #[serde(default)]
    pub forgotten: bool,
}

/// An event a local user wants to send.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub kind: TimelineEventType,
    pub content: Value,
    pub state_key: Option<String>,
    pub redacts: Option<OwnedEventId>,
    /// The transaction id of an idempotent send.
    pub txn: Option<Txn>,
}

/// A client's transaction id for an event it sends.
#[derive(Clone, Debug)]
pub struct Txn {
    pub device_id: String,
    pub txn_id: String,
    /// Each endpoint has its own id space: the same id sent to `/send` and to `/redact` names
    /// two requests.
    pub endpoint: TxnEndpoint,
}

/// Which endpoint a transaction id was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnEndpoint {
    Send,
    Redact,
}

impl NewEvent {
    pub fn state(
        kind: impl Into<TimelineEventType>,
        state_key: impl Into<String>,
        content: Value,
    ) -> Self {
        Self {
            kind: kind.into(),
            content,
            state_key: Some(state_key.into()),
            redacts: None,
            txn: None,
        }
    }
}

/// State snapshots whose event lists are kept (each holds its events in memory).
const SNAPSHOTS_CACHED: usize = 256;

/// The largest PDU the spec allows, in bytes.
pub const MAX_PDU_BYTES: usize = 65_536;

/// Owns the room tables.
pub struct RoomService {
    db: Db,
    keys: Arc<ServerKeys>,
    pub state: state::StateStore,
    room_shorts: Table<String, u64>,
    events: Table<String, EventLocation>,
    event_ids: Table<u64, String>,
    /// Stored as raw JSON so reads parse each event once, straight into a [`Pdu`].
    pdus: Table<(u64, u64), Box<RawValue>>,
    state_before: Table<u64, u64>,
    rooms: Table<u64, RoomRecord>,
    txns: Table<(String, String), String>,
    pub notifier: Arc<crate::service::notifier::Notifier>,
    /// Push rules, notifications and the push queue: every event is evaluated for them.
    push: Arc<crate::service::push::PushService>,
    search: search::SearchIndex,
    /// Who is in which room.
    pub members: members::Members,
    relation_index: relations::RelationIndex,
    /// One lock per room: event creation in a room is serialized so `prev_events`, depth and
    /// state stay consistent; rooms proceed in parallel. Held only on blocking threads.
    room_locks: crate::service::keyed_locks::KeyedLocks<OwnedRoomId>,
    event_cache: event_cache::EventCache,
    /// Event id → location, and event → state snapshot before it: both never change once
    /// written, so these caches need no invalidation.
    locations: Cache<String, EventLocation>,
    states_before: Cache<u64, u64, NumberKeys>,
    /// Timeline position (short room, count) → short event id (never changes either).
    positions: Cache<(u64, u64), u64, NumberKeys>,
    /// Snapshot → its state events, shared by the syncs of every member (a redaction clears
    /// it, like the event cache).
    snapshot_events: Cache<u64, Arc<event_cache::SnapshotEvents>, NumberKeys>,
    /// Per room: its newest events (see [`recent`]).
    recent: Cache<u64, Arc<recent::RecentEvents>, NumberKeys>,
    /// Room records by short id; `persist`, their only writer, updates them after each write.
    records: Cache<u64, Arc<RoomRecord>, NumberKeys>,
    /// Room id → short room id (never changes).
    short_rooms: Cache<String, u64>,
    /// Redactions applied since start: derived data (unread counts) compares it to notice one.
    redactions: std::sync::atomic::AtomicU64,
}

/// Looks up a room's rules, refusing versions ruma cannot handle.
pub fn rules_for(version: &RoomVersionId) -> Result<RoomVersionRules> {
    version.rules().ok_or_else(|| {
        Error::unsupported_room_version(format!("Room version {version} is not supported"))
    })
}

impl RoomService {
    pub fn new(
        db: Db,
        keys: Arc<ServerKeys>,
        notifier: Arc<crate::service::notifier::Notifier>,
        push: Arc<crate::service::push::PushService>,
        event_cache_entries: usize,
    ) -> Self {
        Self {
            state: state::StateStore::new(db.clone()),
            room_shorts: db.open_table(tables::ROOM_SHORT_IDS),
            events: db.open_table(tables::EVENT_INDEX),
            event_ids: db.open_table(tables::EVENT_IDS_BY_SHORT),
            pdus: db.open_table(tables::PDUS),
            state_before: db.open_table(tables::EVENT_STATE_BEFORE),
            rooms: db.open_table(tables::ROOMS),
            txns: db.open_table(tables::TRANSACTION_IDS),
            notifier,
            push,
            search: search::SearchIndex::new(&db),
            relation_index: relations::RelationIndex::new(&db, event_cache_entries),
            room_locks: Default::default(),
            event_cache: event_cache::EventCache::new(event_cache_entries),
            locations: Cache::new(event_cache_entries),
            states_before: Cache::new(event_cache_entries),
            positions: Cache::new(event_cache_entries),
            short_rooms: Cache::new(event_cache_entries),
            members: members::Members::new(&db, event_cache_entries),
            snapshot_events: Cache::new(SNAPSHOTS_CACHED),
            recent: Cache::new(event_cache_entries),
            records: Cache::new(event_cache_entries),
            redactions: std::sync::atomic::AtomicU64::new(0),
            keys,
            db,
        }
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.keys.server_name
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

    /// The short id of a known room.
    pub fn short_room(&self, room_id: &RoomId) -> Result<Option<u64>> {
        Ok(self
            .short_rooms
            .get_or_load(room_id.as_str().to_owned(), |key| self.room_shorts.get(key))?)
    }

    fn known_room(&self, room_id: &RoomId) -> Result<(u64, RoomRecord)> {
        self.room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))
    }

    /// Where an event is stored.
    pub fn location(&self, event_id: &EventId) -> Result<Option<EventLocation>> {
        Ok(self
            .locations
            .get_or_load(event_id.as_str().to_owned(), |key| self.events.get(key))?)
    }

    /// How many redactions were applied since the server started (bumped after each write).
    pub fn redaction_count(&self) -> u64 {
        self.redactions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An event by id.
    pub fn get_pdu(&self, event_id: &EventId) -> Result<Option<Pdu>> {
        let Some(location) = self.location(event_id)? else {
            return Ok(None);
        };
        Ok(self
            .cached_event_at(location)?
            .map(|cached| cached.pdu.clone()))
    }

    /// An event by its timeline position.
    pub fn pdu_at(&self, short_room: u64, count: u64) -> Result<Option<Pdu>> {
        match self.pdus.get(&(short_room, count))? {
            Some(raw) => Ok(Some(Pdu::from_raw(&raw)?)),
            None => Ok(None),
        }
    }

    /// An event by its short id.
    pub fn pdu_by_short(&self, short_event: u64) -> Result<Option<Pdu>> {
        Ok(self
            .cached_event(short_event)?
            .map(|cached| cached.pdu.clone()))
    }

    /// The current state event of a room for `(event_type, state_key)`.
    pub fn current_state_event(
        &self,
        room_id: &RoomId,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        let Some(short_room) = self.short_room(room_id)? else {
            return Ok(None);
        };
        self.state_event_in(short_room, None, event_type, state_key)
    }

    /// A state event from a snapshot (`Some(hash)`) or the current state (`None`).
    pub fn state_event_in(
        &self,
        short_room: u64,
        snapshot: Option<u64>,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        Ok(self
            .cached_state_event_in(short_room, snapshot, event_type, state_key)?
            .map(|event| event.pdu.clone()))
    }

    /// [`RoomService::state_event_in`] without copying the event out of the event cache.
    pub fn cached_state_event_in(
        &self,
        short_room: u64,
        snapshot: Option<u64>,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Arc<event_cache::CachedEvent>>> {
        let Some(short_key) = self
            .state
            .short_state_key(&event_type.to_string(), state_key)?
        else {
            return Ok(None);
        };
        let short_event = match snapshot {
            Some(hash) => self.state.load(hash)?.get(&short_key).copied(),
            None => self.state.current_event(short_room, short_key)?,
        };
        match short_event {
            Some(short) => self.cached_event(short),
            None => Ok(None),
        }
    }

    /// The state snapshot before an event.
    pub fn state_hash_before(&self, short_event: u64) -> Result<Option<u64>> {
        Ok(self
            .states_before
            .get_or_load(short_event, |short| self.state_before.get(short))?)
    }

    /// Wakes the syncs of everyone a new event concerns: the room's joined and invited members,
    /// and the target of a membership change.
    fn wake_room(&self, pdu: &Pdu) -> Result<()> {
        let mut users: Vec<ruma::OwnedUserId> = self
            .members
            .members_with_membership(&pdu.room_id)?
            .into_iter()
            .filter(|(_, m)| m == "join" || m == "invite" || m == "knock")
            .map(|(user, _)| user)
            .collect();
        if let Some(target) = pdu.state_key.as_deref().and_then(|k| UserId::parse(k).ok()) {
            users.push(target);
        }
        self.notifier.wake(users.iter().map(|u| &**u));
        Ok(())
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
}

/// Serialize raw content for ruma APIs that take `&RawValue`.
pub fn raw(value: &Value) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(Error::internal)
}
