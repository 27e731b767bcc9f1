//! The `/sync` response document, written straight into one buffer. State events come from
//! the event cache already rendered and are copied in as bytes: an initial sync of a large
//! account is megabytes of JSON, and building it as a tree, or parsing pre-rendered parts back
//! to embed them, costs more than everything else the sync does.

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    error::{Error, Result},
    service::rooms::event_cache::CachedEvent,
};

/// A built sync response and whether it carries anything.
pub struct SyncResponse {
    /// The response document (JSON, UTF-8).
    pub body: Vec<u8>,
    pub next_batch: u64,
    pub has_updates: bool,
}

/// A timeline event and what its `unsigned` gets for this viewer (transaction id,
/// aggregations).
pub(super) struct TimelineEvent {
    pub event: Arc<CachedEvent>,
    pub unsigned: Map<String, Value>,
}

pub(super) struct Timeline {
    pub events: Vec<TimelineEvent>,
    pub limited: bool,
    pub prev_batch: u64,
}

/// One room under `rooms.join`.
pub(super) struct JoinedRoom {
    pub timeline: Timeline,
    pub state: Vec<Arc<CachedEvent>>,
    /// `state` is the state at the end of the timeline, sent as `state_after` (MSC4222).
    pub state_after: bool,
    pub summary: Value,
    pub account_data: Vec<Value>,
    pub ephemeral: Vec<Value>,
    /// (notifications, highlights)
    pub unread: (u64, u64),
    pub unread_threads: Option<Map<String, Value>>,
}

/// One room under `rooms.leave`.
pub(super) struct LeftRoom {
    pub timeline: Timeline,
    pub state: Vec<Arc<CachedEvent>>,
    /// As [`JoinedRoom::state_after`].
    pub state_after: bool,
}

/// The whole response; each stream's provider writes its fields (see the `sync` module).
#[derive(Default)]
pub(super) struct SyncBody {
    pub next_batch: u64,
    pub join: BTreeMap<String, JoinedRoom>,
    pub invite: Map<String, Value>,
    pub leave: BTreeMap<String, LeftRoom>,
    pub knock: Map<String, Value>,
    pub account_data: Vec<Value>,
    pub to_device: Vec<Value>,
    pub presence: Vec<Value>,
    /// `device_lists`: users whose keys to refetch, and users no longer sharing a room.
    pub device_lists_changed: Vec<String>,
    pub device_lists_left: Vec<String>,
    /// The syncing device's unclaimed one-time keys per algorithm (always sent).
    pub one_time_key_counts: BTreeMap<String, u64>,
    /// The syncing device's fallback key algorithms not claimed yet (always sent).
    pub unused_fallback_key_types: Vec<String>,
}

/// Appends JSON pieces to a buffer.
struct Writer {
    out: Vec<u8>,
    /// `unsigned.age` of pre-rendered events is computed against this.
    now: u64,
}

impl Writer {
    fn raw(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    fn value(&mut self, value: &impl Serialize) -> Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(Error::internal)
    }

    /// `"key":` (escaped), preceded by a comma unless it is the first of its object.
    fn key(&mut self, key: &str, first: bool) -> Result<()> {
        if !first {
            self.raw(",");
        }
        self.value(&key)?;
        self.raw(":");
        Ok(())
    }

    /// `{"events":[…]}`
    fn events(&mut self, events: &[Value]) -> Result<()> {
        self.raw("{\"events\":");
        self.value(&events)?;
        self.raw("}");
        Ok(())
    }

    /// `{"events":[…]}` of pre-rendered events.
    fn cached_events(&mut self, events: &[Arc<CachedEvent>]) -> Result<()> {
        self.raw("{\"events\":[");
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            // Sync events are `ClientEventWithoutRoomID`: the room is the key they sit under.
            event.write_client_json(&mut self.out, self.now, None, false)?;
        }
        self.raw("]}");
        Ok(())
    }

    fn timeline(&mut self, timeline: &Timeline) -> Result<()> {
        self.raw("{\"events\":[");
        for (i, item) in timeline.events.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            let extra = (!item.unsigned.is_empty()).then_some(&item.unsigned);
            item.event
                .write_client_json(&mut self.out, self.now, extra, false)?;
        }
        self.raw("]");
        self.raw(if timeline.limited {
            ",\"limited\":true,\"prev_batch\":\""
        } else {
            ",\"limited\":false,\"prev_batch\":\""
        });
        self.raw(&timeline.prev_batch.to_string());
        self.raw("\"}");
        Ok(())
    }

    fn joined_room(&mut self, room: &JoinedRoom) -> Result<()> {
        self.raw("{\"timeline\":");
        self.timeline(&room.timeline)?;
        self.raw(state_key(room.state_after));
        self.cached_events(&room.state)?;
        self.raw(",\"summary\":");
        self.value(&room.summary)?;
        self.raw(",\"account_data\":");
        self.events(&room.account_data)?;
        self.raw(",\"ephemeral\":");
        self.events(&room.ephemeral)?;
        let (notifications, highlights) = room.unread;
        self.raw(&format!(
            ",\"unread_notifications\":{{\"notification_count\":{notifications},\"highlight_count\":{highlights}}}"
        ));
        // Left out when no thread has unread events, as Synapse does (Complement's
        // TestThreadedReceipts checks that a fully read thread disappears).
        if let Some(threads) = room.unread_threads.as_ref().filter(|t| !t.is_empty()) {
            self.raw(",\"unread_thread_notifications\":");
            self.value(threads)?;
        }
        self.raw("}");
        Ok(())
    }

    fn left_room(&mut self, room: &LeftRoom) -> Result<()> {
        self.raw("{\"timeline\":");
        self.timeline(&room.timeline)?;
        self.raw(state_key(room.state_after));
        self.cached_events(&room.state)?;
        self.raw("}");
        Ok(())
    }

    fn rooms<R>(
        &mut self,
        rooms: &BTreeMap<String, R>,
        mut write: impl FnMut(&mut Self, &R) -> Result<()>,
    ) -> Result<()> {
        self.raw("{");
        for (i, (room_id, room)) in rooms.iter().enumerate() {
            self.key(room_id, i == 0)?;
            write(self, room)?;
        }
        self.raw("}");
        Ok(())
    }
}

impl SyncBody {
    /// Whether any stream has something for the client (`next_batch` alone is no update).
    pub fn has_updates(&self) -> bool {
        !(self.join.is_empty()
            && self.invite.is_empty()
            && self.leave.is_empty()
            && self.knock.is_empty()
            && self.account_data.is_empty()
            && self.to_device.is_empty()
            && self.presence.is_empty()
            && self.device_lists_changed.is_empty()
            && self.device_lists_left.is_empty())
    }

    /// The response document; pre-rendered events get `unsigned.age` relative to `now`.
    pub fn render(&self, now: u64) -> Result<Vec<u8>> {
        // Sized up front: a large initial sync would otherwise be copied by a dozen regrowths.
        let events_len: usize = self
            .join
            .values()
            .flat_map(|room| {
                room.state
                    .iter()
                    .chain(room.timeline.events.iter().map(|e| &e.event))
            })
            .map(|event| event.rendered_len_hint())
            .sum();
        let mut w = Writer {
            out: Vec::with_capacity(4096 + events_len + 1024 * self.join.len()),
            now,
        };
        w.raw("{\"next_batch\":\"");
        w.raw(&self.next_batch.to_string());
        w.raw("\",\"rooms\":{\"join\":");
        w.rooms(&self.join, Writer::joined_room)?;
        w.raw(",\"invite\":");
        w.value(&self.invite)?;
        w.raw(",\"leave\":");
        w.rooms(&self.leave, Writer::left_room)?;
        w.raw(",\"knock\":");
        w.value(&self.knock)?;
        w.raw("},\"account_data\":");
        w.events(&self.account_data)?;
        w.raw(",\"to_device\":");
        w.events(&self.to_device)?;
        w.raw(",\"presence\":");
        w.events(&self.presence)?;
        w.raw(",\"device_lists\":{\"changed\":");
        w.value(&self.device_lists_changed)?;
        w.raw(",\"left\":");
        w.value(&self.device_lists_left)?;
        w.raw("},\"device_one_time_keys_count\":");
        w.value(&self.one_time_key_counts)?;
        w.raw(",\"device_unused_fallback_key_types\":");
        w.value(&self.unused_fallback_key_types)?;
        w.raw("}");
        Ok(w.out)
    }
}

/// The key a room's state goes under: `state` (at the start of the timeline) or, when the
/// client asked for `use_state_after`, `state_after` (at its end).
fn state_key(state_after: bool) -> &'static str {
    if state_after {
        ",\"state_after\":"
    } else {
        ",\"state\":"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::rooms::{EventLocation, Pdu};
    use serde_json::json;

    fn member_event(n: u64) -> Arc<CachedEvent> {
        let pdu: Pdu = serde_json::from_value(json!({
            "event_id": format!("$e{n}:example.org"),
            "room_id": "!r:example.org",
            "sender": "@a:example.org",
            "origin_server_ts": 1000,
            "type": "m.room.member",
            "state_key": "@a:example.org",
            "content": { "membership": "join" },
            "depth": 1,
        }))
        .unwrap();
        let location = EventLocation {
            short_event: n,
            short_room: 1,
            count: n,
            txn: None,
            outlier: false,
        };
        Arc::new(CachedEvent::new(pdu, location).unwrap())
    }

    /// The hand-written document parses and has the shape serde would give it.
    #[test]
    fn renders_valid_json_of_the_sync_shape() {
        let joined = JoinedRoom {
            timeline: Timeline {
                events: vec![TimelineEvent {
                    event: member_event(3),
                    unsigned: Map::from_iter([("transaction_id".to_owned(), json!("t1"))]),
                }],
                limited: true,
                prev_batch: 7,
            },
            state: vec![member_event(1), member_event(2)],
            state_after: false,
            summary: json!({ "m.joined_member_count": 1 }),
            account_data: vec![],
            ephemeral: vec![json!({ "type": "m.typing" })],
            unread: (3, 1),
            unread_threads: Some(Map::new()),
        };
        let body = SyncBody {
            next_batch: 42,
            join: BTreeMap::from([("!r:example.org".to_owned(), joined)]),
            invite: Map::new(),
            leave: BTreeMap::from([(
                "!\"odd\":example.org".to_owned(),
                LeftRoom {
                    timeline: Timeline {
                        events: vec![],
                        limited: false,
                        prev_batch: 0,
                    },
                    state: vec![],
                    state_after: true,
                },
            )]),
            knock: Map::new(),
            account_data: vec![],
            to_device: vec![json!({ "type": "x" })],
            presence: vec![],
            device_lists_changed: vec!["@b:example.org".into()],
            device_lists_left: vec![],
            one_time_key_counts: BTreeMap::from([("signed_curve25519".to_owned(), 3)]),
            unused_fallback_key_types: vec![],
        };
        let parsed: Value = serde_json::from_slice(&body.render(1500).unwrap()).unwrap();
        let room = &parsed["rooms"]["join"]["!r:example.org"];
        assert_eq!(parsed["next_batch"], "42");
        assert_eq!(room["timeline"]["limited"], true);
        assert_eq!(room["timeline"]["events"][0]["event_id"], "$e3:example.org");
        assert_eq!(
            room["timeline"]["events"][0]["unsigned"]["transaction_id"],
            "t1"
        );
        assert_eq!(room["timeline"]["events"][0]["unsigned"]["age"], 500);
        assert_eq!(room["timeline"]["prev_batch"], "7");
        assert_eq!(room["state"]["events"].as_array().unwrap().len(), 2);
        assert_eq!(room["state"]["events"][1]["event_id"], "$e2:example.org");
        assert_eq!(room["state"]["events"][0]["unsigned"]["age"], 500);
        assert!(
            room["state"]["events"][0].get("room_id").is_none()
                && room["timeline"]["events"][0].get("room_id").is_none(),
            "sync events are ClientEventWithoutRoomID"
        );
        assert_eq!(room["unread_notifications"]["notification_count"], 3);
        assert_eq!(room["unread_notifications"]["highlight_count"], 1);
        assert!(
            room.get("unread_thread_notifications").is_none(),
            "no unread thread, no field"
        );
        assert_eq!(room["ephemeral"]["events"][0]["type"], "m.typing");
        let left = &parsed["rooms"]["leave"]["!\"odd\":example.org"];
        assert_eq!(left["timeline"]["limited"], false);
        assert_eq!(left["state_after"]["events"], json!([]));
        assert!(left.get("state").is_none(), "state_after replaces state");
        assert_eq!(parsed["to_device"]["events"][0]["type"], "x");
        assert_eq!(parsed["presence"]["events"], json!([]));
        assert_eq!(parsed["rooms"]["invite"], json!({}));
        assert_eq!(
            parsed["device_lists"],
            json!({ "changed": ["@b:example.org"], "left": [] })
        );
        assert_eq!(parsed["device_one_time_keys_count"]["signed_curve25519"], 3);
        assert_eq!(parsed["device_unused_fallback_key_types"], json!([]));
    }
}
