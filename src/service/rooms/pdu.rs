//! A stored room event (PDU) and its views: the `ruma::state_res::Event` view used by the
//! authorization rules, and the client format served by the client-server API.

use ruma::{
    CanonicalJsonObject, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId,
    RoomId, UInt, UserId, events::TimelineEventType,
};
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};

use crate::error::{Error, Result};

/// A room event as stored: the signed PDU with `event_id` and `room_id` added.
#[derive(Clone, Debug, Deserialize)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    #[serde(default)]
    pub state_key: Option<String>,
    #[serde(default, deserialize_with = "event_references")]
    pub prev_events: Vec<OwnedEventId>,
    #[serde(default, deserialize_with = "event_references")]
    pub auth_events: Vec<OwnedEventId>,
    #[serde(default)]
    pub redacts: Option<OwnedEventId>,
    pub depth: UInt,
    #[serde(default)]
    pub unsigned: Option<serde_json::Map<String, Value>>,
}

/// `prev_events` / `auth_events`: event ids, or — in room versions 1 and 2 — pairs of an
/// event id and that event's hashes (`["$id:server", {"sha256": "…"}]`), of which only the id
/// is kept.
fn event_references<'de, D>(deserializer: D) -> Result<Vec<OwnedEventId>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Reference {
        Id(OwnedEventId),
        WithHashes(OwnedEventId, serde::de::IgnoredAny),
    }
    let references = Vec::<Reference>::deserialize(deserializer)?;
    Ok(references
        .into_iter()
        .map(|reference| match reference {
            Reference::Id(id) | Reference::WithHashes(id, _) => id,
        })
        .collect())
}

impl Pdu {
    /// Parses a stored event object.
    pub fn from_object(object: &CanonicalJsonObject) -> Result<Self> {
        let value = serde_json::to_value(object).map_err(Error::internal)?;
        serde_json::from_value(value)
            .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))
    }

    /// Parses a stored event (raw JSON).
    pub fn from_raw(raw: &RawValue) -> Result<Self> {
        serde_json::from_str(raw.get())
            .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))
    }

    /// Parses a stored event (raw JSON bytes).
    pub fn from_slice(raw: &[u8]) -> Result<Self> {
        serde_json::from_slice(raw)
            .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))
    }

    /// The content as JSON.
    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }

    /// The event a redaction names, for display to clients: top-level `redacts`, or
    /// `content.redacts` (room v11+). Which one counts for applying it depends on the room
    /// version: see [`super::redaction::redaction_target`].
    pub fn redacted_event(&self) -> Option<OwnedEventId> {
        if self.kind != TimelineEventType::RoomRedaction {
            return None;
        }
        self.redacts.clone().or_else(|| {
            let content = self.content_value();
            content.get("redacts")?.as_str()?.try_into().ok()
        })
    }

    /// The client-server API format. `unsigned` gets `age` (relative to `now`) and whatever the
    /// stored event carries (`redacted_because`, `prev_content`, `transaction_id` added by the
    /// caller).
    pub fn to_client_format(&self, now: u64) -> Value {
        let mut event = json!({
            "event_id": self.event_id,
            "room_id": self.room_id,
            "sender": self.sender,
            "origin_server_ts": self.origin_server_ts,
            "type": self.kind,
            "content": self.content_value(),
        });
        if let Some(state_key) = &self.state_key {
            event["state_key"] = json!(state_key);
        }
        if let Some(redacts) = self.redacted_event() {
            event["redacts"] = json!(redacts);
        }
        let mut unsigned = self.unsigned.clone().unwrap_or_default();
        let sent: u64 = self.origin_server_ts.get().into();
        unsigned.insert("age".into(), json!(now.saturating_sub(sent)));
        event["unsigned"] = Value::Object(unsigned);
        event
    }

    /// The stripped form used for invite and knock room state.
    pub fn to_stripped_state(&self) -> Value {
        json!({
            "type": self.kind,
            "state_key": self.state_key,
            "sender": self.sender,
            "content": self.content_value(),
        })
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        // From room v12 the room id is the create event's hash, so that event has none.
        let derived = !self.room_id.as_str().contains(':');
        (!(derived && self.kind == TimelineEventType::RoomCreate)).then_some(&*self.room_id)
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        false
    }
}
