//! The room event graph: building, signing, authorizing and storing events, and reading them
//! back. Every local event goes through [`RoomService::append`]; federation will feed remote
//! events through the same authorization and persistence steps.

pub mod aliases;
pub mod create;
pub mod membership;
pub mod pdu;
pub mod read;
pub mod relations;
pub mod search;
pub mod state;
pub mod upgrade;
pub mod visibility;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedRoomId, RoomId,
    RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::{RoomIdFormatVersion, RoomVersionRules},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

pub use pdu::Pdu;

use crate::{
    error::{Error, Result},
    service::keys::ServerKeys,
    storage::{Batch, Cf, Db, Table},
    util::now_millis,
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
    /// `(device id, transaction id)` for idempotent sends.
    pub txn: Option<(String, String)>,
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
    user_rooms: Table<(String, String), Membership>,
    txns: Table<(String, String), String>,
    relations: Table<(String, u64), relations::Relation>,
    threads: Table<(String, String), relations::ThreadRecord>,
    public_join_rule: Table<String, bool>,
    room_members: Table<(String, String), String>,
    pub notifier: Arc<crate::service::notifier::Notifier>,
    search_index: Table<(String, u64), Vec<String>>,
    /// One lock per room: event creation in a room is serialized so `prev_events`, depth and
    /// state stay consistent; rooms proceed in parallel. Held only on blocking threads.
    room_locks: Mutex<HashMap<OwnedRoomId, Arc<Mutex<()>>>>,
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
    ) -> Self {
        Self {
            state: state::StateStore::new(db.clone()),
            room_shorts: db.table(Cf::RoomShortIds),
            events: db.table(Cf::EventIndex),
            event_ids: db.table(Cf::EventIdsByShort),
            pdus: db.table(Cf::Pdus),
            state_before: db.table(Cf::EventStateBefore),
            rooms: db.table(Cf::Rooms),
            user_rooms: db.table(Cf::UserRooms),
            txns: db.table(Cf::TransactionIds),
            relations: db.table(Cf::Relations),
            threads: db.table(Cf::Threads),
            public_join_rule: db.table(Cf::PublicJoinRule),
            room_members: db.table(Cf::RoomMembers),
            notifier,
            search_index: db.table(Cf::SearchIndex),
            room_locks: Mutex::new(HashMap::new()),
            keys,
            db,
        }
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.keys.server_name
    }

    fn room_lock(&self, room_id: &RoomId) -> Arc<Mutex<()>> {
        let mut locks = self.room_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(room_id.to_owned()).or_default().clone()
    }

    /// The short id and record of a known room.
    pub fn room(&self, room_id: &RoomId) -> Result<Option<(u64, RoomRecord)>> {
        let Some(short) = self.room_shorts.get(&room_id.as_str().to_owned())? else {
            return Ok(None);
        };
        Ok(self.rooms.get(&short)?.map(|record| (short, record)))
    }

    fn known_room(&self, room_id: &RoomId) -> Result<(u64, RoomRecord)> {
        self.room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))
    }

    /// Where an event is stored.
    pub fn location(&self, event_id: &EventId) -> Result<Option<EventLocation>> {
        Ok(self.events.get(&event_id.as_str().to_owned())?)
    }

    /// An event by id.
    pub fn get_pdu(&self, event_id: &EventId) -> Result<Option<Pdu>> {
        let Some(location) = self.location(event_id)? else {
            return Ok(None);
        };
        self.pdu_at(location.short_room, location.count)
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
        match self.event_ids.get(&short_event)? {
            Some(id) => match EventId::parse(&id) {
                Ok(id) => self.get_pdu(&id),
                Err(_) => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The current state event of a room for `(event_type, state_key)`.
    pub fn current_state_event(
        &self,
        room_id: &RoomId,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        let Some(short_room) = self.room_shorts.get(&room_id.as_str().to_owned())? else {
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
            Some(short) => self.pdu_by_short(short),
            None => Ok(None),
        }
    }

    /// The state snapshot before an event.
    pub fn state_hash_before(&self, short_event: u64) -> Result<Option<u64>> {
        Ok(self.state_before.get(&short_event)?)
    }

    /// A user's membership record in a room.
    pub fn membership(&self, user_id: &UserId, room_id: &RoomId) -> Result<Option<Membership>> {
        Ok(self
            .user_rooms
            .get(&(user_id.as_str().to_owned(), room_id.as_str().to_owned()))?)
    }

    /// Whether the user is joined to the room right now.
    pub fn is_joined(&self, user_id: &UserId, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .membership(user_id, room_id)?
            .is_some_and(|m| m.membership == "join"))
    }

    /// Every room a user has a membership record in.
    pub fn rooms_of(&self, user_id: &UserId) -> Result<Vec<(OwnedRoomId, Membership)>> {
        let prefix = crate::storage::codec::prefix(user_id.as_str());
        Ok(self
            .user_rooms
            .scan_prefix(&prefix)?
            .into_iter()
            .filter_map(|((_, room), membership)| Some((RoomId::parse(room).ok()?, membership)))
            .collect())
    }

    /// Rooms anyone may join (current join rule `public`).
    pub fn rooms_with_public_join_rule(&self) -> Result<Vec<OwnedRoomId>> {
        Ok(self
            .public_join_rule
            .scan_all()?
            .into_iter()
            .filter_map(|(room, _)| RoomId::parse(room).ok())
            .collect())
    }

    /// Local users with a membership in the room, and what it is.
    pub fn members_with_membership(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<(ruma::OwnedUserId, String)>> {
        Ok(self
            .room_members
            .scan_prefix(&crate::storage::codec::prefix(room_id.as_str()))?
            .into_iter()
            .filter_map(|((_, user), membership)| Some((UserId::parse(user).ok()?, membership)))
            .collect())
    }

    /// Up to `limit` local or remote users joined to or invited into the room other than
    /// `except`, in user id order (sync heroes), without reading the whole member list.
    pub fn some_members(
        &self,
        room_id: &RoomId,
        except: &UserId,
        limit: usize,
    ) -> Result<Vec<ruma::OwnedUserId>> {
        let prefix = crate::storage::codec::prefix(room_id.as_str());
        let mut end = prefix.clone();
        end.push(0xFF);
        let mut found = Vec::new();
        let mut start = prefix.clone();
        // Page through the member index a few rows at a time until enough heroes are found.
        loop {
            let rows = self.room_members.range(&start, &end, false, 32)?;
            let exhausted = rows.len() < 32;
            for ((_, user), membership) in &rows {
                if (membership == "join" || membership == "invite")
                    && user != except.as_str()
                    && let Ok(user) = UserId::parse(user)
                {
                    found.push(user);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
            match rows.last() {
                Some(((_, last), _)) if !exhausted => {
                    start = crate::storage::KeyCodec::encode(&(
                        room_id.to_string(),
                        format!("{last}\u{0}"),
                    ));
                }
                _ => return Ok(found),
            }
        }
    }

    /// Wakes the syncs of everyone a new event concerns: the room's joined and invited members,
    /// and the target of a membership change.
    fn wake_room(&self, pdu: &Pdu) -> Result<()> {
        let mut users: Vec<ruma::OwnedUserId> = self
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

    /// Marks a left room as forgotten for the user.
    pub fn forget(&self, user_id: &UserId, room_id: &RoomId) -> Result<()> {
        let key = (user_id.as_str().to_owned(), room_id.as_str().to_owned());
        let Some(mut membership) = self.user_rooms.get(&key)? else {
            return Err(Error::not_found("You have no membership in this room"));
        };
        if membership.membership == "join"
            || membership.membership == "invite"
            || membership.membership == "knock"
        {
            return Err(Error::unknown(
                http::StatusCode::BAD_REQUEST,
                "Leave the room before forgetting it",
            ));
        }
        membership.forgotten = true;
        let mut batch = self.db.batch();
        self.user_rooms.put(&mut batch, &key, &membership);
        self.db.write(batch)?;
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

    /// Builds, signs, authorizes and stores a local event. Blocking: call from a blocking task.
    pub fn append(&self, room_id: &RoomId, sender: &UserId, new: NewEvent) -> Result<Pdu> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let txn_key = new
            .txn
            .as_ref()
            .map(|(device, txn)| txn_key(device, room_id, txn));
        if let Some(key) = &txn_key
            && let Some(existing) = self.event_for_txn(sender, key)?
        {
            return self
                .get_pdu(&existing)?
                .ok_or_else(|| Error::internal("txn points to a missing event"));
        }
        let (short_room, room) = self.known_room(room_id)?;
        let rules = rules_for(&room.version)?;
        let content = serde_json::value::to_raw_value(&new.content).map_err(Error::internal)?;
        let auth_types = ruma::state_res::auth_types_for_event(
            &new.kind,
            sender,
            new.state_key.as_deref(),
            &content,
            &rules.authorization,
        )
        .map_err(Error::bad_json)?;
        let mut auth_events = Vec::new();
        for (event_type, state_key) in &auth_types {
            if let Some(pdu) = self.state_event_in(short_room, None, event_type, state_key)? {
                auth_events.push(pdu.event_id);
            }
        }
        let mut object = self.build_object(
            Some(room_id),
            sender,
            &new,
            &rules,
            &room.extremities,
            &auth_events,
            room.depth + 1,
        )?;
        let event_id = self.sign_and_id(&mut object, &rules)?;
        let pdu = finish_pdu(&mut object, &event_id, room_id)?;
        self.authorize(&rules, &pdu, short_room, None)?;
        self.persist(
            self.db.batch(),
            short_room,
            room,
            &rules,
            &mut object,
            pdu,
            new.txn,
            txn_key.as_deref(),
        )
    }

    /// The unsigned JSON object of a new event, without hashes and signatures.
    #[allow(clippy::too_many_arguments)]
    fn build_object(
        &self,
        room_id: Option<&RoomId>,
        sender: &UserId,
        new: &NewEvent,
        rules: &RoomVersionRules,
        prev_events: &[OwnedEventId],
        auth_events: &[OwnedEventId],
        depth: u64,
    ) -> Result<CanonicalJsonObject> {
        let mut object = CanonicalJsonObject::new();
        let string = |s: &str| CanonicalJsonValue::String(s.to_owned());
        if let Some(room_id) = room_id {
            object.insert("room_id".into(), string(room_id.as_str()));
        }
        object.insert("sender".into(), string(sender.as_str()));
        object.insert(
            "origin_server_ts".into(),
            CanonicalJsonValue::Integer(ruma::Int::new(now_millis() as i64).unwrap_or_default()),
        );
        object.insert("type".into(), string(&new.kind.to_string()));
        let content = ruma::canonical_json::to_canonical_value(&new.content)
            .map_err(|e| Error::bad_json(format!("Event content is not canonical JSON: {e}")))?;
        if !matches!(content, CanonicalJsonValue::Object(_)) {
            return Err(Error::bad_json("Event content must be a JSON object"));
        }
        object.insert("content".into(), content);
        if let Some(state_key) = &new.state_key {
            object.insert("state_key".into(), string(state_key));
        }
        if let Some(redacts) = &new.redacts
            && !rules.redaction.content_field_redacts
        {
            object.insert("redacts".into(), string(redacts.as_str()));
        }
        let ids = |ids: &[OwnedEventId]| {
            CanonicalJsonValue::Array(ids.iter().map(|id| string(id.as_str())).collect())
        };
        object.insert("prev_events".into(), ids(prev_events));
        object.insert("auth_events".into(), ids(auth_events));
        object.insert(
            "depth".into(),
            CanonicalJsonValue::Integer(ruma::Int::new(depth as i64).unwrap_or_default()),
        );
        Ok(object)
    }

    /// Adds the content hash and our signature; returns the event id (reference hash).
    fn sign_and_id(
        &self,
        object: &mut CanonicalJsonObject,
        rules: &RoomVersionRules,
    ) -> Result<OwnedEventId> {
        ruma::signatures::hash_and_sign_event(
            self.keys.server_name.as_str(),
            &self.keys.key_pair,
            object,
            &rules.redaction,
        )
        .map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => Error::too_large(MAX_PDU_BYTES),
            other => Error::internal(format!("signing event: {other}")),
        })?;
        let hash = ruma::signatures::reference_hash(object, rules).map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => Error::too_large(MAX_PDU_BYTES),
            other => Error::internal(format!("hashing event: {other}")),
        })?;
        EventId::parse(format!("${hash}")).map_err(Error::internal)
    }

    /// Checks the event against its auth events and against the state it applies to
    /// (current state, or the given snapshot).
    fn authorize(
        &self,
        rules: &RoomVersionRules,
        pdu: &Pdu,
        short_room: u64,
        snapshot: Option<u64>,
    ) -> Result<()> {
        let fetch_event = |id: &EventId| self.get_pdu(id).ok().flatten();
        ruma::state_res::check_state_independent_auth_rules(&rules.authorization, pdu, fetch_event)
            .map_err(|reason| Error::forbidden(format!("Event not authorized: {reason}")))?;
        let fetch_state = |event_type: &StateEventType, state_key: &str| {
            self.state_event_in(short_room, snapshot, event_type, state_key)
                .ok()
                .flatten()
        };
        ruma::state_res::check_state_dependent_auth_rules(&rules.authorization, pdu, fetch_state)
            .map_err(|reason| Error::forbidden(format!("Event not authorized: {reason}")))
    }

    /// Stores an authorized event and everything that follows from it in one batch.
    #[allow(clippy::too_many_arguments)]
    fn persist(
        &self,
        mut batch: Batch,
        short_room: u64,
        mut room: RoomRecord,
        rules: &RoomVersionRules,
        object: &mut CanonicalJsonObject,
        pdu: Pdu,
        txn: Option<(String, String)>,
        txn_key: Option<&str>,
    ) -> Result<Pdu> {
        // Held until the write lands, so sync tokens never pass an unwritten event.
        let stream = self.db.next_stream_position()?;
        let count = stream.position;
        let short_event = self.db.next_count()?;
        let state_before = room.state_hash;
        let mut stored = pdu;

        if let Some(state_key) = stored.state_key.clone() {
            let short_key = self
                .state
                .ensure_short_state_key(&stored.kind.to_string(), &state_key)?;
            if let Some(previous) = self.state.current_event(short_room, short_key)?
                && let Some(previous) = self.pdu_by_short(previous)?
            {
                let unsigned = object
                    .entry("unsigned".into())
                    .or_insert_with(|| CanonicalJsonValue::Object(CanonicalJsonObject::new()));
                if let CanonicalJsonValue::Object(unsigned) = unsigned {
                    let prev = ruma::canonical_json::to_canonical_value(previous.content_value())
                        .map_err(Error::internal)?;
                    unsigned.insert("prev_content".into(), prev);
                    unsigned.insert(
                        "replaces_state".into(),
                        CanonicalJsonValue::String(previous.event_id.to_string()),
                    );
                    unsigned.insert(
                        "prev_sender".into(),
                        CanonicalJsonValue::String(previous.sender.to_string()),
                    );
                }
                stored = Pdu::from_object(object)?;
            }
            room.state_hash = self.state.derive(
                &mut batch,
                Some(room.state_hash).filter(|h| *h != 0),
                &[(short_key, Some(short_event))],
            )?;
            self.state
                .set_current(&mut batch, short_room, short_key, short_event);
            if stored.kind == TimelineEventType::RoomJoinRules && state_key.is_empty() {
                let key = stored.room_id.to_string();
                if stored.content_value()["join_rule"] == "public" {
                    self.public_join_rule.put(&mut batch, &key, &true);
                } else {
                    self.public_join_rule.delete(&mut batch, &key);
                }
            }
            if stored.kind == TimelineEventType::RoomMember {
                let membership = stored.content_value()["membership"]
                    .as_str()
                    .unwrap_or("leave")
                    .to_owned();
                let key = (state_key.clone(), stored.room_id.to_string());
                self.room_members.put(
                    &mut batch,
                    &(stored.room_id.to_string(), state_key.clone()),
                    &membership,
                );
                let previous = self.user_rooms.get(&key)?.map(|m| m.membership);
                let was = |state: &str| previous.as_deref() == Some(state);
                match (was("join"), membership == "join") {
                    (false, true) => room.joined_members += 1,
                    (true, false) => room.joined_members = room.joined_members.saturating_sub(1),
                    _ => {}
                }
                match (was("invite"), membership == "invite") {
                    (false, true) => room.invited_members += 1,
                    (true, false) => room.invited_members = room.invited_members.saturating_sub(1),
                    _ => {}
                }
                self.user_rooms.put(
                    &mut batch,
                    &key,
                    &Membership {
                        membership,
                        event_id: stored.event_id.clone(),
                        count,
                        forgotten: false,
                    },
                );
            }
        }
        if stored.kind == TimelineEventType::RoomRedaction
            && let Some(target) = stored.redacted_event()
        {
            self.redact_into(&mut batch, &target, &stored, rules)?;
        }

        self.index_relation(&mut batch, &stored, count)?;
        self.index_for_search(&mut batch, &stored, count);
        self.pdus
            .put(&mut batch, &(short_room, count), &raw_object(object)?);
        self.events.put(
            &mut batch,
            &stored.event_id.to_string(),
            &EventLocation {
                short_event,
                short_room,
                count,
                txn,
            },
        );
        self.event_ids
            .put(&mut batch, &short_event, &stored.event_id.to_string());
        self.state_before
            .put(&mut batch, &short_event, &state_before);
        if let Some(key) = txn_key {
            self.txns.put(
                &mut batch,
                &(stored.sender.to_string(), key.to_owned()),
                &stored.event_id.to_string(),
            );
        }
        room.extremities = vec![stored.event_id.clone()];
        room.depth = stored.depth.into();
        self.rooms.put(&mut batch, &short_room, &room);
        self.db.write(batch)?;
        drop(stream);
        self.wake_room(&stored)?;
        Ok(stored)
    }

    /// Replaces a stored event by its redacted form (content really removed).
    fn redact_into(
        &self,
        batch: &mut Batch,
        target: &EventId,
        redaction: &Pdu,
        rules: &RoomVersionRules,
    ) -> Result<()> {
        let Some(location) = self.location(target)? else {
            return Ok(());
        };
        let Some(raw) = self.pdus.get(&(location.short_room, location.count))? else {
            return Ok(());
        };
        self.unindex_for_search(batch, &Pdu::from_raw(&raw)?, location.count);
        let object: CanonicalJsonObject = serde_json::from_str(raw.get())
            .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))?;
        let mut redacted = ruma::canonical_json::redact(object, &rules.redaction, None)
            .map_err(|e| Error::internal(format!("redacting: {e}")))?;
        // `redact` keeps only PDU fields; our stored extras come back.
        redacted.insert(
            "event_id".into(),
            CanonicalJsonValue::String(target.to_string()),
        );
        redacted.insert(
            "room_id".into(),
            CanonicalJsonValue::String(redaction.room_id.to_string()),
        );
        let because = serde_json::to_value(redaction.to_client_format(now_millis()))
            .map_err(Error::internal)?;
        let because = ruma::canonical_json::to_canonical_value(because).map_err(Error::internal)?;
        let unsigned = CanonicalJsonObject::from_iter([("redacted_because".to_owned(), because)]);
        redacted.insert("unsigned".into(), CanonicalJsonValue::Object(unsigned));
        self.pdus.put(
            batch,
            &(location.short_room, location.count),
            &raw_object(&redacted)?,
        );
        Ok(())
    }

    /// Stores a brand-new room: the create event and the room records. Blocking.
    pub fn create_room(
        &self,
        sender: &UserId,
        version: RoomVersionId,
        content: Value,
        room_id: Option<OwnedRoomId>,
    ) -> Result<Pdu> {
        let rules = rules_for(&version)?;
        let new = NewEvent::state(TimelineEventType::RoomCreate, "", content);
        let derived_id = rules.room_id_format == RoomIdFormatVersion::V2;
        let room_id_in_event = if derived_id { None } else { room_id.clone() };
        let mut object = self.build_object(
            room_id_in_event.as_deref(),
            sender,
            &new,
            &rules,
            &[],
            &[],
            1,
        )?;
        let event_id = self.sign_and_id(&mut object, &rules)?;
        let room_id = match (derived_id, room_id) {
            (true, _) => {
                RoomId::parse(format!("!{}", &event_id.as_str()[1..])).map_err(Error::internal)?
            }
            (false, Some(room_id)) => room_id,
            (false, None) => return Err(Error::internal("room id missing for a pre-v12 room")),
        };
        let lock = self.room_lock(&room_id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.room(&room_id)?.is_some() {
            return Err(Error::unknown(
                http::StatusCode::BAD_REQUEST,
                "Room already exists",
            ));
        }
        let pdu = finish_pdu(&mut object, &event_id, &room_id)?;
        let fetch_event = |id: &EventId| self.get_pdu(id).ok().flatten();
        ruma::state_res::check_state_independent_auth_rules(
            &rules.authorization,
            &pdu,
            fetch_event,
        )
        .map_err(|reason| Error::bad_json(format!("Invalid create event: {reason}")))?;
        let short_room = self.db.next_count()?;
        let mut batch = self.db.batch();
        self.room_shorts
            .put(&mut batch, &room_id.to_string(), &short_room);
        let record = RoomRecord {
            room_id: room_id.clone(),
            version,
            state_hash: 0,
            extremities: vec![],
            depth: 0,
            joined_members: 0,
            invited_members: 0,
        };
        self.persist(
            batch,
            short_room,
            record,
            &rules,
            &mut object,
            pdu,
            None,
            None,
        )
    }
}

/// Storage key of a transaction id: scoped to the device and the room.
fn txn_key(device: &str, room_id: &RoomId, txn: &str) -> String {
    serde_json::to_string(&[device, room_id.as_str(), txn]).unwrap_or_default()
}

/// Adds our bookkeeping fields to a signed object and parses it.
fn finish_pdu(
    object: &mut CanonicalJsonObject,
    event_id: &EventId,
    room_id: &RoomId,
) -> Result<Pdu> {
    object.insert(
        "event_id".into(),
        CanonicalJsonValue::String(event_id.to_string()),
    );
    object.insert(
        "room_id".into(),
        CanonicalJsonValue::String(room_id.to_string()),
    );
    Pdu::from_object(object)
}

/// The stored form of an event object.
fn raw_object(object: &CanonicalJsonObject) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(object).map_err(Error::internal)
}

/// Serialize raw content for ruma APIs that take `&RawValue`.
pub fn raw(value: &Value) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(Error::internal)
}
