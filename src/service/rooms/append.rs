//! The write path: building a local event for its room version, hashing, signing,
//! authorizing it against its auth events and the room state, and persisting it with all of
//! its indexes in one atomic batch. Federation will feed remote events through `authorize` and
//! `persist` too.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedRoomId, RoomId,
    RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::{RoomIdFormatVersion, RoomVersionRules},
};
use serde_json::{Value, value::RawValue};

use super::{
    EventLocation, MAX_PDU_BYTES, Membership, NewEvent, Pdu, RoomRecord, RoomService, rules_for,
};
use crate::{
    error::{Error, Result},
    storage::Batch,
    util::now_millis,
};

impl RoomService {
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
        let mut redacted = None;
        if stored.kind == TimelineEventType::RoomRedaction
            && let Some(target) = stored.redacted_event()
        {
            redacted = self.redact_into(&mut batch, &target, &stored, rules)?;
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
        if let Some((_, parent)) = super::relations::relation_of(&stored) {
            self.has_relations.invalidate(&parent.to_string());
        }
        if let Some(short_event) = redacted {
            // Only after the write: see the event cache's module documentation.
            self.event_cache.invalidate(&short_event);
            self.snapshot_events.invalidate_all();
            self.redactions
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.records
            .update(&short_room, |_| std::sync::Arc::new(room.clone()));
        self.note_appended(short_room, count, short_event);
        drop(stream);
        self.wake_room(&stored)?;
        Ok(stored)
    }

    /// Replaces a stored event by its redacted form (content really removed). Returns the
    /// short id of the event it rewrote.
    fn redact_into(
        &self,
        batch: &mut Batch,
        target: &EventId,
        redaction: &Pdu,
        rules: &RoomVersionRules,
    ) -> Result<Option<u64>> {
        let Some(location) = self.location(target)? else {
            return Ok(None);
        };
        let Some(raw) = self.pdus.get(&(location.short_room, location.count))? else {
            return Ok(None);
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
        Ok(Some(location.short_event))
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
