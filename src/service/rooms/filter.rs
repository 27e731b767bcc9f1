//! Room event filters (`RoomEventFilter`): the parts `/messages`, `/context`, `/sync` and
//! `/search` apply — types and senders with wildcards, `contains_url`, lazy-loaded members.

use serde_json::Value;

use crate::service::rooms::Pdu;

/// The parts of a `RoomEventFilter` that `/messages` applies.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub contains_url: Option<bool>,
    pub lazy_load_members: bool,
}

fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

impl EventFilter {
    /// Builds the filter from a JSON `RoomEventFilter`.
    pub fn from_json(value: &Value) -> Self {
        let strings = |key: &str| -> Option<Vec<String>> {
            value.get(key)?.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        Self {
            types: strings("types"),
            not_types: strings("not_types").unwrap_or_default(),
            senders: strings("senders"),
            not_senders: strings("not_senders").unwrap_or_default(),
            contains_url: value.get("contains_url").and_then(Value::as_bool),
            lazy_load_members: value
                .get("lazy_load_members")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }

    pub fn matches(&self, pdu: &Pdu) -> bool {
        let restricts_events = self.types.is_some()
            || !self.not_types.is_empty()
            || self.senders.is_some()
            || !self.not_senders.is_empty();
        if restricts_events
            && !self.matches_type_and_sender(&pdu.kind.to_string(), Some(pdu.sender.as_str()))
        {
            return false;
        }
        if let Some(wanted) = self.contains_url {
            let has_url = pdu.content_value().get("url").is_some_and(Value::is_string);
            if has_url != wanted {
                return false;
            }
        }
        true
    }

    /// The type and sender parts of the filter, for events that are not room events
    /// (account data, presence, ephemeral events).
    pub fn matches_type_and_sender(&self, kind: &str, sender: Option<&str>) -> bool {
        if self.not_types.iter().any(|p| type_matches(p, kind)) {
            return false;
        }
        if self
            .types
            .as_ref()
            .is_some_and(|types| !types.iter().any(|p| type_matches(p, kind)))
        {
            return false;
        }
        if let Some(sender) = sender {
            if self.not_senders.iter().any(|s| s == sender) {
                return false;
            }
            if self
                .senders
                .as_ref()
                .is_some_and(|senders| !senders.iter().any(|s| s == sender))
            {
                return false;
            }
        }
        true
    }

    /// Keeps the JSON events (`type`, optional `sender`) this filter lets through.
    pub fn retain_json(&self, events: &mut Vec<Value>) {
        events.retain(|e| {
            self.matches_type_and_sender(e["type"].as_str().unwrap_or(""), e["sender"].as_str())
        });
    }
}
