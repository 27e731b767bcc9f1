//! Building local events: what only our own server does for its users — choosing
//! `prev_events`, depth and auth events, hashing and signing — before the event enters the
//! [`pipeline`](super::pipeline) that every event, local or federated, goes through.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedRoomId, RoomId,
    RoomVersionId, UserId,
    events::TimelineEventType,
    room_version_rules::{RoomIdFormatVersion, RoomVersionRules},
};
use serde_json::Value;

use super::{
    MAX_PDU_BYTES, NewEvent, Pdu, RoomRecord, RoomService, Txn, TxnEndpoint, pipeline::Accepted,
    rules_for,
};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

impl RoomService {
    /// Builds and signs a local event, then hands it to the pipeline. Idempotent per
    /// transaction id. Blocking: call from a blocking task.
    pub fn append(&self, room_id: &RoomId, sender: &UserId, new: NewEvent) -> Result<Pdu> {
        let _guard = self.room_locks.lock(room_id);
        self.append_locked(room_id, sender, new)
    }

    /// Like [`RoomService::append`], but the event is made by `make` while the room's lock is
    /// held, so what `make` reads of the room (a membership, a state event) cannot change
    /// before the event is stored. `make` returns `None` when there is nothing to send.
    /// Blocking.
    pub fn append_from_current(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        make: impl FnOnce(&Self) -> Result<Option<NewEvent>>,
    ) -> Result<Option<Pdu>> {
        let _guard = self.room_locks.lock(room_id);
        match make(self)? {
            Some(new) => self.append_locked(room_id, sender, new).map(Some),
            None => Ok(None),
        }
    }

    /// [`RoomService::append`] for a caller that holds the room's lock.
    fn append_locked(&self, room_id: &RoomId, sender: &UserId, mut new: NewEvent) -> Result<Pdu> {
        let txn_key = new.txn.as_ref().map(|txn| txn_key(txn, room_id));
        if let Some(key) = &txn_key
            && let Some(existing) = self.timeline.event_for_txn(sender, key)?
        {
            return self
                .timeline
                .get_pdu(&existing)?
                .ok_or_else(|| Error::internal("txn points to a missing event"));
        }
        let (short_room, room) = self.registry.known_room(room_id)?;
        if let Some(current) = self.unchanged_state(short_room, sender, &new)? {
            return Ok(current);
        }
        let rules = rules_for(&room.version)?;
        super::pipeline::check_local_content(&new.kind, &new.content)?;
        if new.kind == TimelineEventType::RoomRedaction {
            self.prepare_local_redaction(room_id, sender, &rules, &mut new)?;
        }
        let content = serde_json::value::to_raw_value(&new.content).map_err(Error::internal)?;
        let auth_events = self.auth_events_for(
            short_room,
            &rules,
            &new.kind,
            sender,
            new.state_key.as_deref(),
            &content,
        )?;
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
        let state_before = room.state_hash;
        self.accept(Accepted {
            batch: self.db.batch(),
            short_room,
            room,
            rules: &rules,
            object: &mut object,
            pdu,
            state_before,
            txn: new.txn.map(|txn| (txn.device_id, txn.txn_id)),
            txn_key: txn_key.as_deref(),
            relay: false,
        })
    }

    /// Signs an event made from another server's template (a join through `make_join`) and
    /// returns its id. Blocking.
    pub fn sign_template(
        &self,
        object: &mut CanonicalJsonObject,
        rules: &RoomVersionRules,
    ) -> Result<OwnedEventId> {
        object.remove("event_id");
        object.remove("signatures");
        object.remove("hashes");
        object.remove("unsigned");
        object.insert(
            "origin_server_ts".into(),
            CanonicalJsonValue::Integer(ruma::Int::new(now_millis() as i64).unwrap_or_default()),
        );
        self.sign_and_id(object, rules)
    }

    /// The auth events a new event of this kind needs from the current state of the room.
    pub fn auth_events_for(
        &self,
        short_room: u64,
        rules: &RoomVersionRules,
        kind: &TimelineEventType,
        sender: &UserId,
        state_key: Option<&str>,
        content: &serde_json::value::RawValue,
    ) -> Result<Vec<OwnedEventId>> {
        let auth_types = ruma::state_res::auth_types_for_event(
            kind,
            sender,
            state_key,
            content,
            &rules.authorization,
        )
        .map_err(Error::bad_json)?;
        let mut auth_events = Vec::new();
        for (event_type, state_key) in &auth_types {
            if let Some(pdu) = self.state_event_in(short_room, None, event_type, state_key)? {
                auth_events.push(pdu.event_id);
            }
        }
        Ok(auth_events)
    }

    /// The current state event that `new` would only repeat: same type, state key, sender and
    /// content. Setting state twice is idempotent (sytest, Synapse): the second request gets
    /// the first event instead of a new one. Memberships are left to their own rules (a
    /// second join with the same content is handled by the membership service).
    fn unchanged_state(
        &self,
        short_room: u64,
        sender: &UserId,
        new: &NewEvent,
    ) -> Result<Option<Pdu>> {
        let Some(state_key) = new.state_key.as_deref() else {
            return Ok(None);
        };
        if new.kind == TimelineEventType::RoomMember {
            return Ok(None);
        }
        let event_type = ruma::events::StateEventType::from(new.kind.to_string());
        Ok(self
            .state_event_in(short_room, None, &event_type, state_key)?
            .filter(|current| current.sender == sender && current.content_value() == new.content))
    }

    /// The unsigned JSON object of a new event, without hashes and signatures.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build_object(
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
        let ids = |ids: &[OwnedEventId]| -> Result<CanonicalJsonValue> {
            let mut references = Vec::with_capacity(ids.len());
            for id in ids {
                references.push(if rules.event_format.require_event_id {
                    // Room versions 1 and 2 name each earlier event with its reference hash.
                    let mut hashes = CanonicalJsonObject::new();
                    hashes.insert("sha256".into(), string(&self.reference_hash_of(id, rules)?));
                    CanonicalJsonValue::Array(vec![
                        string(id.as_str()),
                        CanonicalJsonValue::Object(hashes),
                    ])
                } else {
                    string(id.as_str())
                });
            }
            Ok(CanonicalJsonValue::Array(references))
        };
        object.insert("prev_events".into(), ids(prev_events)?);
        object.insert("auth_events".into(), ids(auth_events)?);
        object.insert(
            "depth".into(),
            CanonicalJsonValue::Integer(ruma::Int::new(depth as i64).unwrap_or_default()),
        );
        Ok(object)
    }

    /// The reference hash of a stored event (room versions 1 and 2 put it beside every event
    /// id an event refers to).
    fn reference_hash_of(&self, event_id: &EventId, rules: &RoomVersionRules) -> Result<String> {
        let location = self
            .timeline
            .location(event_id)?
            .ok_or_else(|| Error::internal(format!("referenced event {event_id} is missing")))?;
        let raw = self
            .timeline
            .raw_of(&location)?
            .ok_or_else(|| Error::internal(format!("referenced event {event_id} is missing")))?;
        let object: CanonicalJsonObject =
            serde_json::from_str(raw.get()).map_err(Error::internal)?;
        ruma::signatures::reference_hash(&object, rules)
            .map_err(|e| Error::internal(format!("hashing {event_id}: {e}")))
    }

    /// Adds the content hash and our signature; returns the event id (reference hash).
    fn sign_and_id(
        &self,
        object: &mut CanonicalJsonObject,
        rules: &RoomVersionRules,
    ) -> Result<OwnedEventId> {
        // Room versions 1 and 2: the event carries a random id of ours, signed with it.
        let random_id = if rules.event_format.require_event_id {
            let event_id = EventId::parse(format!(
                "${}:{}",
                crate::util::random_alphanumeric(18),
                self.keys.server_name
            ))
            .map_err(Error::internal)?;
            object.insert(
                "event_id".into(),
                CanonicalJsonValue::String(event_id.to_string()),
            );
            Some(event_id)
        } else {
            None
        };
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
        if let Some(event_id) = random_id {
            return Ok(event_id);
        }
        let hash = ruma::signatures::reference_hash(object, rules).map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => Error::too_large(MAX_PDU_BYTES),
            other => Error::internal(format!("hashing event: {other}")),
        })?;
        EventId::parse(format!("${hash}")).map_err(Error::internal)
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
        let _guard = self.room_locks.lock(&room_id);
        if self.registry.room(&room_id)?.is_some() {
            return Err(Error::unknown(
                http::StatusCode::BAD_REQUEST,
                "Room already exists",
            ));
        }
        let pdu = finish_pdu(&mut object, &event_id, &room_id)?;
        // A create event has no auth events: nothing is read from storage here.
        let fetch_event = |_: &EventId| None::<Pdu>;
        ruma::state_res::check_state_independent_auth_rules(
            &rules.authorization,
            &pdu,
            fetch_event,
        )
        .map_err(|reason| Error::bad_json(format!("Invalid create event: {reason}")))?;
        let short_room = self.db.next_count()?;
        let mut batch = self.db.batch();
        // The room's first event: there is no state before it, and nothing to authorize it
        // against beyond the checks above.
        self.registry.register(&mut batch, &room_id, short_room);
        let record = RoomRecord {
            room_id: room_id.clone(),
            version,
            state_hash: 0,
            extremities: vec![],
            depth: 0,
            joined_members: 0,
            invited_members: 0,
        };
        self.persist(Accepted {
            batch,
            short_room,
            room: record,
            rules: &rules,
            object: &mut object,
            pdu,
            state_before: 0,
            txn: None,
            txn_key: None,
            relay: false,
        })
    }
}

/// Storage key of a transaction id: scoped to the device, the room and the endpoint. `/send`
/// keys keep their original three-part layout; other endpoints add their name in front, so the
/// id spaces never meet.
fn txn_key(txn: &Txn, room_id: &RoomId) -> String {
    let (device, room, id) = (
        txn.device_id.as_str(),
        room_id.as_str(),
        txn.txn_id.as_str(),
    );
    match txn.endpoint {
        TxnEndpoint::Send => serde_json::to_string(&[device, room, id]),
        TxnEndpoint::Redact => serde_json::to_string(&["redact", device, room, id]),
    }
    .unwrap_or_default()
}

/// Adds our bookkeeping fields to a signed object and parses it.
fn finish_pdu(
    object: &mut CanonicalJsonObject,
    event_id: &EventId,
    room_id: &RoomId,
) -> Result<Pdu> {
    add_bookkeeping(object, event_id, room_id);
    Pdu::from_object(object)
}

/// The fields every stored event carries beside what was signed: its id and its room (room
/// versions from 3 derive the id, version 12's create event derives the room).
pub(super) fn add_bookkeeping(
    object: &mut CanonicalJsonObject,
    event_id: &EventId,
    room_id: &RoomId,
) {
    object.insert(
        "event_id".into(),
        CanonicalJsonValue::String(event_id.to_string()),
    );
    object.insert(
        "room_id".into(),
        CanonicalJsonValue::String(room_id.to_string()),
    );
}
