//! Storing an authorized event: the event, its indexes (state, membership, relations,
//! search, transaction id, redaction of its target) and the room record, in one atomic batch,
//! then the caches and wake-ups that follow. A new index on every event is one more call here.

use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedEventId};
use serde_json::value::RawValue;

use super::{EventLocation, Pdu, RoomRecord, RoomService, pipeline::Accepted};
use crate::error::{Error, Result};

impl RoomService {
    /// Stores an authorized event and everything that follows from it in one batch.
    pub(super) fn persist(&self, event: Accepted<'_>) -> Result<Pdu> {
        let Accepted {
            mut batch,
            short_room,
            mut room,
            rules,
            object,
            pdu,
            state_before,
            txn,
            txn_key,
            relay,
        } = event;
        // The snapshot the stored members and state are at (this event's changes are not).
        let stored_state = room.state_hash;
        // Held until the write lands, so sync tokens never pass an unwritten event.
        let stream = self.db.next_stream_position()?;
        let count = stream.position;
        let short_event = self.db.next_count()?;
        let mut stored = pdu;
        // Held until the batch is written when the event needs a new short state key.
        let mut short_key_guard = None;

        if let Some(state_key) = stored.state_key.clone() {
            let (short_key, new_key_guard) =
                self.state
                    .short_state_key_in(&mut batch, &stored.kind.to_string(), &state_key)?;
            short_key_guard = new_key_guard;
            if let Some(replaced) = self.note_replaced_state(short_room, short_key, object)? {
                stored = replaced;
            }
            room.state_hash = self.state.derive(
                &mut batch,
                Some(state_before).filter(|h| *h != 0),
                &[(short_key, Some(short_event))],
            )?;
            self.state
                .set_current(&mut batch, short_room, short_key, short_event);
            self.members
                .index_state_event(&mut batch, &mut room, &stored, &state_key, count)?;
        }
        let redacted = self.apply_redaction(&mut batch, short_room, &stored, rules)?;
        let location = EventLocation {
            short_event,
            short_room,
            count,
            txn,
            outlier: false,
        };
        room.extremities = extremities_after(&room.extremities, &stored);
        room.depth = stored.depth.into();

        // Every index of every event: one call each, into the event's batch.
        let json = raw_object(object)?;
        self.relation_index.index(&mut batch, &stored, count)?;
        self.search.index(&mut batch, &stored, count);
        let pushed = self.index_push(
            &mut batch,
            &stored,
            &json,
            (short_room, count),
            (&room, stored_state),
            &rules.authorization,
        )?;
        self.timeline
            .index(&mut batch, &stored, json, &location, state_before, txn_key);
        self.registry.index(&mut batch, short_room, &room);
        let destinations =
            self.queue_for_federation(&mut batch, &stored, short_room, count, relay)?;
        self.db.write(batch)?;
        drop(short_key_guard);
        self.after_write(&stored, room, &location, redacted);
        drop(stream);
        if pushed.queued > 0 {
            self.push.queue.wake();
        }
        if !destinations.is_empty() {
            self.outbound
                .mark(destinations.iter().map(ToString::to_string));
        }
        self.wake_room(&stored)?;
        Ok(stored)
    }

    /// What follows a stored event in memory, once its batch has landed (never before: see
    /// the event cache's module documentation): caches it invalidates or extends.
    fn after_write(
        &self,
        stored: &Pdu,
        room: RoomRecord,
        location: &EventLocation,
        redacted: Option<u64>,
    ) {
        if stored.kind == ruma::events::TimelineEventType::RoomMember {
            self.note_member_change(location.short_room, stored);
        }
        if let Some((_, parent)) = super::relations::relation_of(stored) {
            self.relation_index.invalidate(&parent);
        }
        self.registry.after_write(location.short_room, room);
        self.timeline.after_write(location, redacted);
    }
}

impl RoomService {
    /// Records in the event's `unsigned` the state event it replaces (`prev_content`,
    /// `replaces_state`, `prev_sender`); returns the event re-read when there was one.
    fn note_replaced_state(
        &self,
        short_room: u64,
        short_key: u64,
        object: &mut CanonicalJsonObject,
    ) -> Result<Option<Pdu>> {
        let Some(previous) = self.state.current_event(short_room, short_key)? else {
            return Ok(None);
        };
        let Some(previous) = self.timeline.pdu_by_short(previous)? else {
            return Ok(None);
        };
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
        Ok(Some(Pdu::from_object(object)?))
    }
}

/// The room's forward extremities once `event` is stored: those it names as `prev_events` are
/// no longer extremities, and it is one. (A local event names them all, leaving just itself.)
fn extremities_after(before: &[OwnedEventId], event: &Pdu) -> Vec<OwnedEventId> {
    let mut after: Vec<OwnedEventId> = before
        .iter()
        .filter(|id| !event.prev_events.contains(id) && **id != event.event_id)
        .cloned()
        .collect();
    after.push(event.event_id.clone());
    after
}

/// The stored form of an event object.
pub(super) fn raw_object(object: &CanonicalJsonObject) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(object).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_replaces_the_extremities_it_builds_on() {
        let event: Pdu = serde_json::from_value(serde_json::json!({
            "event_id": "$new",
            "room_id": "!room:x",
            "sender": "@a:x",
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": {},
            "prev_events": ["$a"],
            "depth": 3,
        }))
        .expect("valid test event");
        let before: Vec<OwnedEventId> = vec![
            "$a".try_into().expect("event id"),
            "$b".try_into().expect("event id"),
        ];
        let after: Vec<String> = extremities_after(&before, &event)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(after, ["$b", "$new"]);
    }
}
