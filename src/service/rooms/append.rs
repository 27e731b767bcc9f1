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
    EventLocation, MAX_PDU_BYTES, Membership, NewEvent, Pdu, RoomRecord, RoomService, Txn,
    TxnEndpoint, rules_for,
};
use crate::{
    error::{Error, Result},
    storage::Batch,
    util::now_millis,
};

impl RoomService {
    /// Builds, signs, authorizes and stores a local event. Blocking: call from a blocking task.
    pub fn append(&self, room_id: &RoomId, sender: &UserId, mut new: NewEvent) -> Result<Pdu> {
        let _guard = self.room_locks.lock(room_id);
        let txn_key = new.txn.as_ref().map(|txn| txn_key(txn, room_id));
        if let Some(key) = &txn_key
            && let Some(existing) = self.event_for_txn(sender, key)?
        {
            return self
                .get_pdu(&existing)?
                .ok_or_else(|| Error::internal("txn points to a missing event"));
        }
        let (short_room, room) = self.known_room(room_id)?;
        let rules = rules_for(&room.version)?;
        if new.kind == TimelineEventType::RoomRedaction {
            self.prepare_local_redaction(room_id, sender, &rules, &mut new)?;
        }
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
            new.txn.map(|txn| (txn.device_id, txn.txn_id)),
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
        authorize_with(
            rules,
            pdu,
            |id| self.get_pdu(id),
            |event_type, state_key| {
                self.state_event_in(short_room, snapshot, event_type, state_key)
            },
        )
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
        // Held until the batch is written when the event needs a new short state key.
        let mut short_key_guard = None;

        if let Some(state_key) = stored.state_key.clone() {
            let (short_key, new_key_guard) =
                self.state
                    .short_state_key_in(&mut batch, &stored.kind.to_string(), &state_key)?;
            short_key_guard = new_key_guard;
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
        let redacted = self.apply_redaction(&mut batch, &stored, rules)?;

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
        drop(short_key_guard);
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
        if self.room(&room_id)?.is_some() {
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

/// Runs the room version's authorization rules over `pdu`, reading its auth events and the
/// state through the given (fallible) lookups. A failed read is an internal error, never a
/// refusal: the rules only judge what could really be read.
fn authorize_with(
    rules: &RoomVersionRules,
    pdu: &Pdu,
    fetch_event: impl Fn(&EventId) -> Result<Option<Pdu>>,
    fetch_state: impl Fn(&StateEventType, &str) -> Result<Option<Pdu>>,
) -> Result<()> {
    let read_failure = std::cell::RefCell::new(None::<Error>);
    let keep_failure = |result: Result<Option<Pdu>>| {
        result.unwrap_or_else(|e| {
            read_failure.borrow_mut().get_or_insert(e);
            None
        })
    };
    let refused = |reason: String| Error::forbidden(format!("Event not authorized: {reason}"));
    let independent = ruma::state_res::check_state_independent_auth_rules(
        &rules.authorization,
        pdu,
        |id: &EventId| keep_failure(fetch_event(id)),
    );
    if let Some(e) = read_failure.borrow_mut().take() {
        return Err(e);
    }
    independent.map_err(refused)?;
    let dependent = ruma::state_res::check_state_dependent_auth_rules(
        &rules.authorization,
        pdu,
        |event_type: &StateEventType, state_key: &str| {
            keep_failure(fetch_state(event_type, state_key))
        },
    );
    if let Some(e) = read_failure.borrow_mut().take() {
        return Err(e);
    }
    dependent.map_err(refused)
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
pub(super) fn raw_object(object: &CanonicalJsonObject) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(object).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Pdu {
        serde_json::from_value(serde_json::json!({
            "event_id": "$m",
            "room_id": "!room:x",
            "sender": "@a:x",
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": { "msgtype": "m.text", "body": "hi" },
            "prev_events": ["$p"],
            "auth_events": ["$create"],
            "depth": 2,
        }))
        .expect("valid test event")
    }

    #[test]
    fn a_failed_read_is_an_internal_error_not_a_refusal() {
        let rules = RoomVersionRules::V10;
        let broken = || Err(Error::internal("disk on fire"));
        let result = authorize_with(&rules, &message(), |_| broken(), |_, _| broken());
        assert!(
            matches!(result, Err(Error::Internal(_))),
            "auth event unreadable: {result:?}"
        );
        let result = authorize_with(&rules, &message(), |_| Ok(None), |_, _| Ok(None));
        assert!(
            matches!(
                result,
                Err(Error::Matrix {
                    errcode: "M_FORBIDDEN",
                    ..
                })
            ),
            "really missing auth events are a refusal: {result:?}"
        );
    }
}
