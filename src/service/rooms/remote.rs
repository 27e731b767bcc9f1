//! Events from and for other servers: the federation front of the [`pipeline`](super::pipeline)
//! (signature and content-hash checks, the state before a remote event, outliers from a
//! join's state), the form an event takes on the wire, and which servers each new event
//! must reach.

use std::{collections::HashSet, sync::Arc};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedServerName, RoomId,
    RoomVersionId,
    events::TimelineEventType,
    room_version_rules::RoomVersionRules,
    signatures::{PublicKeyMap, Verified},
};
use serde_json::value::RawValue;

use super::{
    EventLocation, MAX_PDU_BYTES, Pdu, RoomRecord, RoomService, pipeline::Accepted, rules_for,
};
use crate::{
    error::{Error, Result},
    storage::Batch,
};

/// A remote event whose signatures and hashes were checked.
pub struct CheckedPdu {
    pub event_id: OwnedEventId,
    /// With `event_id` and `room_id` added; redacted when its content hash did not match.
    pub object: CanonicalJsonObject,
}

/// The `(server, key id)` pairs an event's signatures name: the keys to fetch before
/// checking it.
pub fn signature_keys(object: &CanonicalJsonObject) -> Vec<(OwnedServerName, Option<String>)> {
    let Some(CanonicalJsonValue::Object(signatures)) = object.get("signatures") else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for (server, by_key) in signatures {
        let Ok(server) = OwnedServerName::try_from(server.as_str()) else {
            continue;
        };
        match by_key {
            CanonicalJsonValue::Object(by_key) => {
                for key_id in by_key.keys() {
                    keys.push((server.clone(), Some(key_id.clone())));
                }
            }
            _ => keys.push((server, None)),
        }
    }
    keys
}

/// Checks a PDU received from another server: size, event id, the signatures the room
/// version requires (the sender's server, and for restricted joins the authorising server's),
/// and the content hash — a mismatch keeps the event in its redacted form, as the spec says.
pub fn check_pdu(
    object: CanonicalJsonObject,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    keys: &PublicKeyMap,
) -> Result<CheckedPdu> {
    let event_id = event_id_of(&object, rules)?;
    check_pdu_with_id(object, event_id, room_id, rules, keys)
}

/// [`check_pdu`] for a caller that already computed the event's id with [`event_id_of`].
pub fn check_pdu_with_id(
    mut object: CanonicalJsonObject,
    event_id: OwnedEventId,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    keys: &PublicKeyMap,
) -> Result<CheckedPdu> {
    let size = serde_json::to_vec(&object).map_err(Error::internal)?.len();
    if size > MAX_PDU_BYTES {
        return Err(Error::too_large(MAX_PDU_BYTES));
    }
    // Fields another server must not decide for us.
    object.remove("unsigned");
    if !rules.event_format.require_event_id {
        object.remove("event_id");
    }
    let verified = ruma::signatures::verify_event(keys, &object, rules)
        .map_err(|e| Error::forbidden(format!("Event {event_id} failed signature checks: {e}")))?;
    if verified == Verified::Signatures {
        tracing::info!(%event_id, "content hash mismatch: keeping the redacted event");
        object = ruma::canonical_json::redact(object, &rules.redaction, None)
            .map_err(|e| Error::bad_json(format!("The event cannot be redacted: {e}")))?;
    }
    match object.get("room_id").and_then(CanonicalJsonValue::as_str) {
        Some(id) if id == room_id.as_str() => {}
        // Room version 12's create event names no room: its id is derived from the event.
        None if object.get("type").and_then(CanonicalJsonValue::as_str)
            == Some("m.room.create") => {}
        _ => return Err(Error::bad_json("The event belongs to another room")),
    }
    super::builder::add_bookkeeping(&mut object, &event_id, room_id);
    Ok(CheckedPdu { event_id, object })
}

/// The id of a PDU: its `event_id` field in room versions 1 and 2, its reference hash after.
pub fn event_id_of(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<OwnedEventId> {
    if rules.event_format.require_event_id {
        let id = object
            .get("event_id")
            .and_then(CanonicalJsonValue::as_str)
            .ok_or_else(|| Error::bad_json("The event has no event_id"))?;
        return EventId::parse(id).map_err(|e| Error::bad_json(format!("Bad event_id: {e}")));
    }
    // The reference hash leaves `unsigned` out itself; an `event_id` field must go first.
    let object = if object.contains_key("event_id") {
        let mut without_id = object.clone();
        without_id.remove("event_id");
        std::borrow::Cow::Owned(without_id)
    } else {
        std::borrow::Cow::Borrowed(object)
    };
    let hash = ruma::signatures::reference_hash(&object, rules)
        .map_err(|e| Error::bad_json(format!("The event cannot be hashed: {e}")))?;
    EventId::parse(format!("${hash}")).map_err(Error::internal)
}

impl RoomService {
    /// Accepts a checked remote event into a room we know: authorized against its auth events
    /// and the state before it, then stored like a local event. An event we already have is
    /// returned as stored. `relay`: send it on to the room's other servers (a join that came
    /// through our `send_join`). Blocking.
    pub fn accept_remote(&self, room_id: &RoomId, checked: CheckedPdu, relay: bool) -> Result<Pdu> {
        let _guard = self.room_locks.lock(room_id);
        if let Some(existing) = self.timeline.get_pdu(&checked.event_id)? {
            return Ok(existing);
        }
        let CheckedPdu {
            event_id,
            mut object,
        } = checked;
        let (short_room, room) = self.registry.known_room(room_id)?;
        let rules = rules_for(&room.version)?;
        let pdu = Pdu::from_object(&object)
            .map_err(|e| Error::bad_json(format!("Event {event_id} is malformed: {e}")))?;
        for auth in &pdu.auth_events {
            if self.timeline.location(auth)?.is_none() {
                return Err(Error::forbidden(format!(
                    "Event {event_id} names an auth event we do not have: {auth}"
                )));
            }
        }
        let mut batch = self.db.batch();
        let state_before = self.state_before_remote(&mut batch, &room, &pdu)?;
        // Events that do not build on the current state must also be allowed by it (the
        // soft-fail check): this server does not yet resolve forks, so it refuses them.
        if state_before != room.state_hash {
            return Err(Error::forbidden(format!(
                "Event {event_id} does not build on the room's current state"
            )));
        }
        self.accept(Accepted {
            batch,
            short_room,
            room,
            rules: &rules,
            object: &mut object,
            pdu,
            state_before,
            txn: None,
            txn_key: None,
            relay,
        })
    }

    /// The state a remote event applies to: the current state when it builds on every
    /// forward extremity (the usual case), else the state after its one known parent.
    fn state_before_remote(&self, batch: &mut Batch, room: &RoomRecord, pdu: &Pdu) -> Result<u64> {
        let prevs: HashSet<&OwnedEventId> = pdu.prev_events.iter().collect();
        let extremities: HashSet<&OwnedEventId> = room.extremities.iter().collect();
        if prevs == extremities {
            return Ok(room.state_hash);
        }
        let [parent] = pdu.prev_events.as_slice() else {
            return Err(Error::forbidden(format!(
                "Event {} joins branches of the room this server does not have",
                pdu.event_id
            )));
        };
        self.state_after(batch, parent).and_then(|state| {
            state.ok_or_else(|| {
                Error::forbidden(format!(
                    "Event {} builds on an event this server does not have: {parent}",
                    pdu.event_id
                ))
            })
        })
    }

    /// The snapshot after a stored timeline event (written into `batch` when the event
    /// changed state).
    fn state_after(&self, batch: &mut Batch, event_id: &EventId) -> Result<Option<u64>> {
        let Some(location) = self.timeline.location(event_id)? else {
            return Ok(None);
        };
        if location.outlier {
            return Ok(None);
        }
        let Some(before) = self.timeline.state_hash_before(location.short_event)? else {
            return Ok(None);
        };
        let Some(event) = self.timeline.pdu_of(&location)? else {
            return Ok(None);
        };
        let Some(state_key) = &event.state_key else {
            return Ok(Some(before));
        };
        let (short_key, _guard) =
            self.state
                .short_state_key_in(batch, &event.kind.to_string(), state_key)?;
        let parent = Some(before).filter(|hash| *hash != 0);
        Ok(Some(self.state.derive(
            batch,
            parent,
            &[(short_key, Some(location.short_event))],
        )?))
    }

    /// Stores a room we joined through another server: the state and auth chain its
    /// `send_join` returned (checked events, stored as outliers), then our join event on top
    /// of that state. Every event must pass the authorization rules against its own auth
    /// events. Blocking.
    pub fn store_joined_room(
        &self,
        room_id: &RoomId,
        version: RoomVersionId,
        auth_chain: Vec<CheckedPdu>,
        state: Vec<CheckedPdu>,
        join: CheckedPdu,
    ) -> Result<Pdu> {
        let rules = rules_for(&version)?;
        let _guard = self.room_locks.lock(room_id);
        let (short_room, room, fresh) = match self.registry.room(room_id)? {
            Some((short_room, room)) => (short_room, room, false),
            None => {
                let short_room = self.db.next_count()?;
                let record = RoomRecord {
                    room_id: room_id.to_owned(),
                    version: version.clone(),
                    state_hash: 0,
                    extremities: vec![],
                    depth: 0,
                    joined_members: 0,
                    invited_members: 0,
                };
                (short_room, record, true)
            }
        };
        let mut batch = self.db.batch();
        if fresh {
            self.registry.register(&mut batch, room_id, short_room);
        }
        // Every event of the auth chain and state, parsed once, each authorized against its
        // own auth events (all among them, or stored already).
        let state_ids: Vec<OwnedEventId> = state.iter().map(|s| s.event_id.clone()).collect();
        let mut events: std::collections::HashMap<OwnedEventId, (Pdu, CanonicalJsonObject)> =
            std::collections::HashMap::new();
        for checked in auth_chain.into_iter().chain(state) {
            if events.contains_key(&checked.event_id) {
                continue;
            }
            let pdu = Pdu::from_object(&checked.object).map_err(|e| {
                Error::remote_failure(format!("the join's state holds a malformed event: {e}"))
            })?;
            events.insert(checked.event_id, (pdu, checked.object));
        }
        let fetch = |id: &EventId| -> Result<Option<Pdu>> {
            match events.get(id) {
                Some((pdu, _)) => Ok(Some(pdu.clone())),
                None => self.timeline.get_pdu(id),
            }
        };
        for (pdu, _) in events.values() {
            let independent = ruma::state_res::check_state_independent_auth_rules(
                &rules.authorization,
                pdu,
                |id: &EventId| fetch(id).ok().flatten(),
            );
            if let Err(reason) = independent {
                return Err(Error::remote_failure(format!(
                    "the join's state holds an unauthorized event {}: {reason}",
                    pdu.event_id
                )));
            }
        }
        // Outliers: stored once, with a short id each.
        let mut short_of = std::collections::HashMap::new();
        for (pdu, object) in events.values() {
            if let Some(location) = self.timeline.location(&pdu.event_id)? {
                short_of.insert(pdu.event_id.clone(), location.short_event);
                continue;
            }
            let short_event = self.db.next_count()?;
            let location = EventLocation {
                short_event,
                short_room,
                count: short_event,
                txn: None,
                outlier: true,
            };
            let json = super::persist::raw_object(object)?;
            self.timeline
                .index_outlier(&mut batch, pdu.event_id.as_str(), &json, &location);
            short_of.insert(pdu.event_id.clone(), short_event);
        }
        // The state before our join: the returned state, as a snapshot and as current state.
        let state_events: Vec<&Pdu> = state_ids
            .iter()
            .filter_map(|id| events.get(id).map(|(pdu, _)| pdu))
            .filter(|pdu| pdu.state_key.is_some())
            .collect();
        let pairs: Vec<(String, String)> = state_events
            .iter()
            .map(|pdu| {
                (
                    pdu.kind.to_string(),
                    pdu.state_key.clone().unwrap_or_default(),
                )
            })
            .collect();
        let (short_keys, guard) = self.state.short_state_keys_in(&mut batch, &pairs)?;
        let mut changes = Vec::with_capacity(state_events.len());
        let mut room = room;
        for (pdu, short_key) in state_events.iter().zip(short_keys) {
            let short_event = short_of[&pdu.event_id];
            changes.push((short_key, Some(short_event)));
            self.state
                .set_current(&mut batch, short_room, short_key, short_event);
            if pdu.kind == TimelineEventType::RoomMember
                && let Some(state_key) = &pdu.state_key
            {
                self.members
                    .index_state_event(&mut batch, &mut room, pdu, state_key, 0)?;
            }
        }
        let state_hash = self.state.derive(&mut batch, None, &changes)?;
        room.state_hash = state_hash;
        room.extremities = join.object_prev_events();
        room.depth = 0;
        // The join's batch cannot hold the outliers (they must be readable while it is
        // authorized), so they land first; without the join the room stays unjoined.
        self.registry.index(&mut batch, short_room, &room);
        self.db.write(batch)?;
        drop(guard);
        self.registry.after_write(short_room, room.clone());
        let CheckedPdu { mut object, .. } = join;
        let pdu = Pdu::from_object(&object)?;
        self.accept(Accepted {
            batch: self.db.batch(),
            short_room,
            room,
            rules: &rules,
            object: &mut object,
            pdu,
            state_before: state_hash,
            txn: None,
            txn_key: None,
            relay: false,
        })
    }

    /// A join template for `user` (another server's user, through `make_join`): the event
    /// our state would allow, unsigned. Refused when the room's rules would refuse the join.
    /// Blocking.
    pub fn join_template(
        &self,
        room_id: &RoomId,
        user: &ruma::UserId,
        content: serde_json::Value,
    ) -> Result<(RoomVersionId, CanonicalJsonObject)> {
        let _guard = self.room_locks.lock(room_id);
        let (short_room, room) = self.registry.known_room(room_id)?;
        let rules = rules_for(&room.version)?;
        let new = super::NewEvent::state(TimelineEventType::RoomMember, user.as_str(), content);
        let raw_content = serde_json::value::to_raw_value(&new.content).map_err(Error::internal)?;
        let auth_events = self.auth_events_for(
            short_room,
            &rules,
            &new.kind,
            user,
            Some(user.as_str()),
            &raw_content,
        )?;
        let mut object = self.build_object(
            Some(room_id),
            user,
            &new,
            &rules,
            &room.extremities,
            &auth_events,
            room.depth + 1,
        )?;
        let mut probe = object.clone();
        probe.insert(
            "event_id".into(),
            CanonicalJsonValue::String("$template".into()),
        );
        let pdu = Pdu::from_object(&probe)?;
        self.current_state_allows(short_room, &pdu)?;
        object.insert(
            "origin".into(),
            CanonicalJsonValue::String(user.server_name().to_string()),
        );
        Ok((room.version, object))
    }

    /// Every event in the auth chains of `events` (their auth events, recursively), each
    /// once.
    pub fn auth_chain(&self, events: &[OwnedEventId]) -> Result<Vec<OwnedEventId>> {
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        let mut todo: Vec<OwnedEventId> = Vec::new();
        for id in events {
            if let Some(pdu) = self.timeline.get_pdu(id)? {
                todo.extend(pdu.auth_events);
            }
        }
        let mut chain = Vec::new();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(pdu) = self.timeline.get_pdu(&id)? {
                todo.extend(
                    pdu.auth_events
                        .iter()
                        .filter(|a| !seen.contains(*a))
                        .cloned(),
                );
                chain.push(id);
            }
        }
        Ok(chain)
    }

    /// The ids of the state events before a stored event.
    pub fn state_ids_before(&self, event_id: &EventId) -> Result<Vec<OwnedEventId>> {
        let location = self
            .timeline
            .location(event_id)?
            .ok_or_else(|| Error::not_found("Unknown event"))?;
        let hash = self
            .timeline
            .state_hash_before(location.short_event)?
            .unwrap_or(0);
        if hash == 0 {
            return Ok(Vec::new());
        }
        let state = self.state.load(hash)?;
        let mut ids = Vec::with_capacity(state.len());
        for short_event in state.values() {
            if let Some(id) = self.timeline.event_id(*short_event)? {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// An event in the form other servers expect: without what this server added
    /// (`unsigned`, and `event_id`/`room_id` where the room version derives them).
    pub fn federation_form(&self, event_id: &EventId) -> Result<Option<Box<RawValue>>> {
        let Some(location) = self.timeline.location(event_id)? else {
            return Ok(None);
        };
        let Some(raw) = self.timeline.raw_of(&location)? else {
            return Ok(None);
        };
        let Some(room) = self.registry.record(location.short_room)? else {
            return Ok(None);
        };
        let rules = rules_for(&room.version)?;
        let mut object: CanonicalJsonObject =
            serde_json::from_str(raw.get()).map_err(Error::internal)?;
        object.remove("unsigned");
        if !rules.event_format.require_event_id {
            object.remove("event_id");
        }
        let derived_room_id = rules.room_id_format
            == ruma::room_version_rules::RoomIdFormatVersion::V2
            && object.get("type").and_then(CanonicalJsonValue::as_str) == Some("m.room.create");
        if derived_room_id {
            object.remove("room_id");
        }
        Ok(Some(super::persist::raw_object(&object)?))
    }

    /// Queues a new event for the other servers of its room, in the event's batch: ours go to
    /// every server with a joined member (and a membership's target), relayed ones to all
    /// but their origin. Returns the destinations.
    pub(super) fn queue_for_federation(
        &self,
        batch: &mut Batch,
        event: &Pdu,
        short_room: u64,
        position: u64,
        relay: bool,
    ) -> Result<Vec<OwnedServerName>> {
        let ours = self.server_name();
        let origin = event.sender.server_name();
        if origin != ours && !relay {
            return Ok(Vec::new());
        }
        let mut destinations: Vec<OwnedServerName> =
            self.room_servers(short_room, &event.room_id)?.to_vec();
        if event.kind == TimelineEventType::RoomMember
            && let Some(target) = event.state_key.as_deref()
            && let Ok(target) = ruma::UserId::parse(target)
        {
            destinations.push(target.server_name().to_owned());
        }
        destinations.retain(|server| server != ours && server != origin);
        destinations.sort();
        destinations.dedup();
        for destination in &destinations {
            self.outbound
                .enqueue(batch, destination, position, event.event_id.as_str());
        }
        Ok(destinations)
    }

    /// The servers (ours included) with a member joined to the room.
    pub fn room_servers(
        &self,
        short_room: u64,
        room_id: &RoomId,
    ) -> Result<Arc<Vec<OwnedServerName>>> {
        if let Some(hit) = self.lock_room_servers().get(&short_room) {
            return Ok(hit.clone());
        }
        let mut servers: Vec<OwnedServerName> = self
            .members
            .members_with_membership(room_id)?
            .into_iter()
            .filter(|(_, membership)| membership == "join")
            .map(|(user, _)| user.server_name().to_owned())
            .collect();
        servers.sort();
        servers.dedup();
        let servers = Arc::new(servers);
        self.lock_room_servers().insert(short_room, servers.clone());
        Ok(servers)
    }

    /// Keeps the room's server list right after a member event: a local user joining a room
    /// this server is already in changes nothing (so a thousand local joins do not rescan the
    /// members a thousand times); anything else drops the list, to be read again.
    pub(super) fn note_member_change(&self, short_room: u64, member: &Pdu) {
        let ours = self.server_name();
        let local_join = member
            .state_key
            .as_deref()
            .and_then(|key| ruma::UserId::parse(key).ok())
            .is_some_and(|target| target.server_name() == ours)
            && member.content_value()["membership"] == "join";
        let mut servers = self.lock_room_servers();
        let unchanged = local_join
            && servers
                .get(&short_room)
                .is_some_and(|list| list.iter().any(|server| server == ours));
        if !unchanged {
            servers.remove(&short_room);
        }
    }

    fn lock_room_servers(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<Vec<OwnedServerName>>>> {
        self.room_servers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CheckedPdu {
    /// The event's `prev_events`.
    fn object_prev_events(&self) -> Vec<OwnedEventId> {
        Pdu::from_object(&self.object)
            .map(|pdu| pdu.prev_events)
            .unwrap_or_default()
    }
}
