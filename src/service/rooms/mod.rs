//! The room event graph: building, signing, authorizing and storing events, and reading them
//! back. Every local event goes through [`RoomService::append`]; federation will feed remote
//! events through the same authorization and persistence steps.
//!
//! [`RoomService`] composes parts that each own their tables and caches: the
//! [`timeline`] (events and their indexes), the [`registry`] (known rooms), [`state`],
//! [`members`], [`relations`] and [`search`]. [`persist`] writes every event into each of them
//! in one batch.

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
pub mod registry;
pub mod relations;
pub mod remote;
pub mod search;
pub mod state;
pub mod timeline;
pub mod upgrade;
pub mod visibility;

use std::sync::Arc;

use ruma::{
    OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::RoomVersionRules,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use pdu::Pdu;
pub use registry::RoomRecord;
pub use timeline::EventLocation;

use crate::{
    error::{Error, Result},
    service::server_keys::ServerKeys,
    storage::Db,
};

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

/// The largest PDU the spec allows, in bytes.
pub const MAX_PDU_BYTES: usize = 65_536;

/// The room core: the parts that own the room tables (each with its caches), composed.
/// `persist` writes every event into each of them, in one batch.
pub struct RoomService {
    db: Db,
    keys: Arc<ServerKeys>,
    /// Events, their positions and indexes, and the caches in front of them.
    pub timeline: timeline::Timeline,
    /// Known rooms: short ids and room records.
    pub registry: registry::RoomRegistry,
    pub state: state::StateStore,
    /// Push rules, notifications and the push queue: every event is evaluated for them.
    push: Arc<crate::service::push::PushService>,
    /// Who is in which room.
    pub members: members::Members,
    relation_index: relations::RelationIndex,
    search: search::SearchIndex,
    pub notifier: Arc<crate::service::notifier::Notifier>,
    /// One lock per room: event creation in a room is serialized so `prev_events`, depth and
    /// state stay consistent; rooms proceed in parallel. Held only on blocking threads.
    room_locks: crate::service::keyed_locks::KeyedLocks<OwnedRoomId>,
    /// Local members and their display names per room, for push evaluation.
    push_recipients_cache: push_index::RecipientCache,
    /// Events on their way to other servers.
    pub outbound: Arc<crate::service::federation::queue::OutboundQueue>,
    /// Per room: the other servers with joined members (dropped on every member event).
    room_servers: std::sync::Mutex<std::collections::HashMap<u64, Arc<Vec<ruma::OwnedServerName>>>>,
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
        outbound: Arc<crate::service::federation::queue::OutboundQueue>,
        event_cache_entries: usize,
    ) -> Self {
        Self {
            timeline: timeline::Timeline::new(&db, event_cache_entries),
            registry: registry::RoomRegistry::new(&db, event_cache_entries),
            state: state::StateStore::new(db.clone()),
            push,
            members: members::Members::new(&db, event_cache_entries),
            relation_index: relations::RelationIndex::new(&db, event_cache_entries),
            search: search::SearchIndex::new(&db),
            notifier,
            room_locks: Default::default(),
            push_recipients_cache: Default::default(),
            outbound,
            room_servers: Default::default(),
            keys,
            db,
        }
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.keys.server_name
    }

    /// The current state event of a room for `(event_type, state_key)`.
    pub fn current_state_event(
        &self,
        room_id: &RoomId,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        let Some(short_room) = self.registry.short_room(room_id)? else {
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
            Some(short) => self.timeline.cached_event(short),
            None => Ok(None),
        }
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
}
