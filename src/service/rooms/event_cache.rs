//! Recently read events, parsed once and pre-rendered in client format, keyed by short event
//! id. Initial syncs send every state event of every room; without this each of them would be
//! three RocksDB reads, a parse and a serialization per request.
//!
//! Stored events change only by redaction, which invalidates the entry after its write (see
//! [`crate::service::cache`] for why that order is safe).

use std::sync::Arc;

use ruma::EventId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{EventLocation, Pdu, RoomService, timeline::Timeline};
use crate::error::{Error, Result};

/// One cached event.
#[derive(Debug)]
pub struct CachedEvent {
    pub pdu: Pdu,
    pub location: EventLocation,
    /// The client format up to the `age` in `unsigned`: `{…,"unsigned":{…,` (see
    /// [`CachedEvent::write_client_json`]).
    client_head: String,
    /// Where `"room_id":"…",` sits in `client_head`: `/sync` leaves it out (its events are
    /// `ClientEventWithoutRoomID`).
    room_id_field: std::ops::Range<usize>,
}

/// The client-format fields before `room_id`, in the order serde_json's sorted maps write.
#[derive(Serialize)]
struct FieldsBeforeRoomId<'a> {
    content: &'a RawValue,
    event_id: &'a ruma::EventId,
    origin_server_ts: ruma::MilliSecondsSinceUnixEpoch,
    #[serde(skip_serializing_if = "Option::is_none")]
    redacts: Option<ruma::OwnedEventId>,
}

/// The client-format fields after `room_id`, `unsigned` aside.
#[derive(Serialize)]
struct FieldsAfterRoomId<'a> {
    sender: &'a ruma::UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_key: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'a ruma::events::TimelineEventType,
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(Error::internal)
}

impl CachedEvent {
    pub fn new(pdu: Pdu, location: EventLocation) -> Result<Self> {
        let before = to_json(&FieldsBeforeRoomId {
            content: &pdu.content,
            event_id: &pdu.event_id,
            origin_server_ts: pdu.origin_server_ts,
            redacts: pdu.redacted_event(),
        })?;
        let after = to_json(&FieldsAfterRoomId {
            sender: &pdu.sender,
            state_key: pdu.state_key.as_deref(),
            kind: &pdu.kind,
        })?;
        // `{before…,` then `"room_id":"…",` then `after…,` then `"unsigned":{…`
        let mut head = before[..before.len() - 1].to_owned();
        head.push(',');
        let room_id_start = head.len();
        head.push_str("\"room_id\":");
        head.push_str(&to_json(&pdu.room_id)?);
        head.push(',');
        let room_id_field = room_id_start..head.len();
        head.push_str(&after[1..after.len() - 1]);
        head.push_str(",\"unsigned\":");
        let unsigned = pdu.unsigned.clone().unwrap_or_default();
        let rendered = serde_json::to_string(&unsigned).map_err(Error::internal)?;
        head.push_str(&rendered[..rendered.len() - 1]);
        if !unsigned.is_empty() {
            head.push(',');
        }
        Ok(Self {
            pdu,
            location,
            client_head: head,
            room_id_field,
        })
    }

    /// Appends the event in client format with `unsigned.age` relative to `now` and the
    /// `extra` unsigned fields — the same document as [`Pdu::to_client_format`] with those
    /// fields added (and without `room_id` unless `with_room_id`), without building a JSON
    /// tree.
    pub fn write_client_json(
        &self,
        out: &mut Vec<u8>,
        now: u64,
        extra: Option<&serde_json::Map<String, serde_json::Value>>,
        with_room_id: bool,
    ) -> Result<()> {
        let head = self.client_head.as_bytes();
        if with_room_id {
            out.extend_from_slice(head);
        } else {
            out.extend_from_slice(&head[..self.room_id_field.start]);
            out.extend_from_slice(&head[self.room_id_field.end..]);
        }
        for (key, value) in extra.into_iter().flatten() {
            serde_json::to_writer(&mut *out, key).map_err(Error::internal)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, value).map_err(Error::internal)?;
            out.push(b',');
        }
        let sent: u64 = self.pdu.origin_server_ts.get().into();
        out.extend_from_slice(b"\"age\":");
        out.extend_from_slice(now.saturating_sub(sent).to_string().as_bytes());
        out.extend_from_slice(b"}}");
        Ok(())
    }

    /// About how many bytes [`CachedEvent::write_client_json`] writes (for buffer sizing).
    pub fn rendered_len_hint(&self) -> usize {
        self.client_head.len() + 24
    }
}

/// The state events of one snapshot, members apart so lazy-loading picks the few it needs
/// instead of testing every member.
#[derive(Debug, Default)]
pub struct SnapshotEvents {
    /// `m.room.member` events by state key.
    pub members: rustc_hash::FxHashMap<String, Arc<CachedEvent>>,
    /// Every other state event.
    pub others: Vec<Arc<CachedEvent>>,
}

/// Events by short event id.
pub type EventCache =
    crate::service::cache::Cache<u64, Arc<CachedEvent>, crate::service::cache::NumberKeys>;

/// Reading events through the cache.
impl Timeline {
    /// An event by id.
    pub fn get_pdu(&self, event_id: &EventId) -> Result<Option<Pdu>> {
        let Some(location) = self.location(event_id)? else {
            return Ok(None);
        };
        Ok(self
            .cached_event_at(location)?
            .map(|cached| cached.pdu.clone()))
    }

    /// An event by its short id.
    pub fn pdu_by_short(&self, short_event: u64) -> Result<Option<Pdu>> {
        Ok(self
            .cached_event(short_event)?
            .map(|cached| cached.pdu.clone()))
    }

    /// An event by its short id, parsed and ready to render, from the event cache.
    pub fn cached_event(&self, short_event: u64) -> Result<Option<Arc<CachedEvent>>> {
        let lookup = self.event_cache.get(&short_event);
        if let Some(hit) = lookup.value {
            return Ok(Some(hit));
        }
        let Some(id) = self.event_id(short_event)? else {
            return Ok(None);
        };
        let Some(location) = self.location(&id)? else {
            return Ok(None);
        };
        self.load_into_cache(location, lookup.epoch)
    }

    /// The event of a stored timeline row, through the event cache: a row seen before is not
    /// parsed at all, a new one only scanned for its event id.
    pub fn cached_event_from_row(
        &self,
        position: (u64, u64),
        raw: &[u8],
    ) -> Result<Option<Arc<CachedEvent>>> {
        #[derive(Deserialize)]
        struct EventIdOnly<'a> {
            #[serde(borrow)]
            event_id: std::borrow::Cow<'a, str>,
        }
        let lookup = self.positions.get(&position);
        if let Some(short_event) = lookup.value {
            return self.cached_event(short_event);
        }
        let probe: EventIdOnly = serde_json::from_slice(raw)
            .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))?;
        let Ok(event_id) = EventId::parse(probe.event_id.as_ref()) else {
            return Ok(None);
        };
        let Some(location) = self.location(&event_id)? else {
            return Ok(None);
        };
        self.positions
            .insert(position, location.short_event, lookup.epoch);
        self.cached_event_at(location)
    }

    /// The event stored at `location`, through the event cache.
    pub(super) fn cached_event_at(
        &self,
        location: EventLocation,
    ) -> Result<Option<Arc<CachedEvent>>> {
        let lookup = self.event_cache.get(&location.short_event);
        match lookup.value {
            Some(hit) => Ok(Some(hit)),
            None => self.load_into_cache(location, lookup.epoch),
        }
    }

    fn load_into_cache(
        &self,
        location: EventLocation,
        epoch: u64,
    ) -> Result<Option<Arc<CachedEvent>>> {
        let Some(pdu) = self.pdu_of(&location)? else {
            return Ok(None);
        };
        let short_event = location.short_event;
        let cached = Arc::new(CachedEvent::new(pdu, location)?);
        self.event_cache.insert(short_event, cached.clone(), epoch);
        Ok(Some(cached))
    }
}

impl RoomService {
    /// Every state event of a snapshot (0: the empty one), through the event cache: the
    /// snapshot's list comes from the state store, its events from the timeline.
    pub fn snapshot_events(&self, hash: u64) -> Result<Arc<SnapshotEvents>> {
        let lookup = self.timeline.snapshot_events.get(&hash);
        if let Some(events) = lookup.value {
            return Ok(events);
        }
        let mut events = SnapshotEvents::default();
        if hash != 0 {
            for short_event in self.state.load(hash)?.values() {
                let Some(event) = self.timeline.cached_event(*short_event)? else {
                    continue;
                };
                match (&event.pdu.kind, &event.pdu.state_key) {
                    (ruma::events::TimelineEventType::RoomMember, Some(user)) => {
                        events.members.insert(user.clone(), event);
                    }
                    _ => events.others.push(event),
                }
            }
        }
        let events = Arc::new(events);
        self.timeline
            .snapshot_events
            .insert(hash, events.clone(), lookup.epoch);
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pdu(unsigned: Option<Value>, state_key: Option<&str>) -> Pdu {
        let mut event = json!({
            "event_id": "$abc:example.org",
            "room_id": "!room:example.org",
            "sender": "@alice:example.org",
            "origin_server_ts": 1000,
            "type": "m.room.member",
            "content": { "membership": "join", "displayname": "Al \"ice\"" },
            "depth": 3,
            "prev_events": [],
            "auth_events": [],
            "hashes": { "sha256": "x" },
        });
        if let Some(unsigned) = unsigned {
            event["unsigned"] = unsigned;
        }
        if let Some(key) = state_key {
            event["state_key"] = json!(key);
        }
        serde_json::from_value(event).unwrap()
    }

    fn location(short_event: u64) -> EventLocation {
        EventLocation {
            short_event,
            short_room: 1,
            count: short_event,
            txn: None,
            outlier: false,
        }
    }

    #[test]
    fn client_json_equals_the_client_format() {
        for (unsigned, key) in [
            (None, Some("@alice:example.org")),
            (Some(json!({})), None),
            (
                Some(json!({ "prev_content": { "membership": "invite" }, "replaces_state": "$x" })),
                Some(""),
            ),
        ] {
            let pdu = pdu(unsigned, key);
            let expected = pdu.to_client_format(5000);
            let cached = CachedEvent::new(pdu, location(1)).unwrap();
            let mut out = Vec::new();
            cached
                .write_client_json(&mut out, 5000, None, true)
                .unwrap();
            let rendered: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(rendered, expected);
            assert_eq!(rendered["unsigned"]["age"], 4000);
            let extra = serde_json::Map::from_iter([("transaction_id".to_owned(), json!("t\"1"))]);
            let mut out = Vec::new();
            cached
                .write_client_json(&mut out, 5000, Some(&extra), true)
                .unwrap();
            let mut expected = expected;
            expected["unsigned"]["transaction_id"] = json!("t\"1");
            assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), expected);
            let mut out = Vec::new();
            cached
                .write_client_json(&mut out, 5000, Some(&extra), false)
                .unwrap();
            expected.as_object_mut().unwrap().remove("room_id");
            assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), expected);
        }
    }
}
