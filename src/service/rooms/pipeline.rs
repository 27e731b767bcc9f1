//! The pipeline every room event goes through, local or federated: content rules (local
//! events), authorization against its auth events and against the state before it, then
//! [`persist`](super::persist) with its indexes in one batch. Redaction rules live in
//! [`redaction`](super::redaction) and are applied by `persist`.
//!
//! Federation adds its steps in front of the same calls: signature and content-hash checks,
//! the state before the event from state resolution over its `prev_events`, and the soft-fail
//! check against the current state.

use ruma::{
    CanonicalJsonObject, EventId, events::StateEventType, events::TimelineEventType,
    room_version_rules::RoomVersionRules,
};
use serde_json::Value;

use super::{Pdu, RoomRecord, RoomService};
use crate::{
    error::{Error, Result},
    storage::Batch,
};

/// An event ready to be authorized and stored, with what `persist` needs to know about it.
pub(super) struct Accepted<'a> {
    pub batch: Batch,
    pub short_room: u64,
    /// The room's record as it is before the event.
    pub room: RoomRecord,
    pub rules: &'a RoomVersionRules,
    /// The signed event object, as it will be stored.
    pub object: &'a mut CanonicalJsonObject,
    pub pdu: Pdu,
    /// The state snapshot the event applies to (0: none, for a create event).
    pub state_before: u64,
    /// `(device id, transaction id)` of a local client's send.
    pub txn: Option<(String, String)>,
    pub txn_key: Option<&'a str>,
    /// Send the event on to the other servers in the room although it is not ours (a join
    /// that came in through `send_join`).
    pub relay: bool,
}

impl RoomService {
    /// Authorizes an event against its auth events and the state before it, and stores it.
    pub(super) fn accept(&self, event: Accepted<'_>) -> Result<Pdu> {
        // When the event applies to the current state (every local event does), the current
        // state table answers without loading the snapshot.
        let snapshot =
            Some(event.state_before).filter(|hash| *hash != 0 && *hash != event.room.state_hash);
        self.authorize(event.rules, &event.pdu, event.short_room, snapshot)?;
        self.persist(event)
    }

    /// Whether the current state of the room would allow `pdu` (a join template we are about
    /// to hand to another server, for one).
    pub fn current_state_allows(&self, short_room: u64, pdu: &Pdu) -> Result<()> {
        let rules = super::rules_for(
            &self
                .registry
                .record(short_room)?
                .ok_or_else(|| Error::not_found("Unknown room"))?
                .version,
        )?;
        self.authorize(&rules, pdu, short_room, None)
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
            |id| self.timeline.get_pdu(id),
            |event_type, state_key| {
                self.state_event_in(short_room, snapshot, event_type, state_key)
            },
        )
    }
}

/// Content rules the spec sets for events our users send, beyond the authorization rules.
/// Federated events are not held to them: another server's events are judged by the
/// authorization rules alone.
pub(super) fn check_local_content(kind: &TimelineEventType, content: &Value) -> Result<()> {
    if *kind == TimelineEventType::RoomMessage
        && (!content["msgtype"].is_string() || !content["body"].is_string())
    {
        return Err(Error::bad_json(
            "m.room.message needs string msgtype and body",
        ));
    }
    if *kind == TimelineEventType::RoomServerAcl {
        let string_list = |key: &str| match content.get(key) {
            None => true,
            Some(Value::Array(items)) => items.iter().all(Value::is_string),
            Some(_) => false,
        };
        let ip_flag_ok = content
            .get("allow_ip_literals")
            .is_none_or(Value::is_boolean);
        if !string_list("allow") || !string_list("deny") || !ip_flag_ok {
            return Err(Error::bad_json(
                "m.room.server_acl needs string lists allow/deny and a boolean allow_ip_literals",
            ));
        }
    }
    Ok(())
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
