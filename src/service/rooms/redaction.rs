//! Redactions: the one rule that decides whether a redaction may be created and whether it is
//! applied, and the rewrite of its target. Every path that makes a redaction — `/redact`,
//! `/send/m.room.redaction`, and federation later — goes through [`RoomService::append`] or
//! [`RoomService::persist`], which call in here; no handler decides anything about one.
//!
//! Two checks, as the spec splits them:
//! - creating a local redaction (client API): the target must exist in the same room, and the
//!   sender must be its sender or have the room's `redact` power level; otherwise the request
//!   is refused and nothing is stored;
//! - applying a stored redaction to its target (any origin): the target must be in the same
//!   room, and the redaction's sender must share the target sender's server or have the
//!   `redact` level (room versions 3+ leave this to the server; 1 and 2 also check it in the
//!   authorization rules). A redaction that fails this check is kept as an event and changes
//!   nothing.
//!
//! Which field names the target depends on the room version: top-level `redacts` before v11,
//! `content.redacts` from v11 on. The other field is ignored, so a crafted `content.redacts`
//! in an old room redacts nothing.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, RoomId, UserId,
    events::TimelineEventType, room_version_rules::RoomVersionRules,
};
use serde_json::{Value, json};

use super::{NewEvent, Pdu, RoomService};
use crate::{
    error::{Error, Result},
    storage::Batch,
    util::now_millis,
};

/// The event a redaction names under its room version's rules.
pub fn redaction_target(rules: &RoomVersionRules, pdu: &Pdu) -> Option<OwnedEventId> {
    if pdu.kind != TimelineEventType::RoomRedaction {
        return None;
    }
    if rules.redaction.content_field_redacts {
        let content: Value = serde_json::from_str(pdu.content.get()).ok()?;
        content.get("redacts")?.as_str()?.try_into().ok()
    } else {
        pdu.redacts.clone()
    }
}

impl RoomService {
    /// Checks a local redaction before it is built and puts its target where the room version
    /// wants it. The target comes from the `/redact` path (`new.redacts`) or, for
    /// `/send/m.room.redaction`, from `content.redacts`.
    pub(super) fn prepare_local_redaction(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        rules: &RoomVersionRules,
        new: &mut NewEvent,
    ) -> Result<()> {
        let from_content = new
            .content
            .get("redacts")
            .map(|value| {
                value
                    .as_str()
                    .and_then(|id| EventId::parse(id).ok())
                    .ok_or_else(|| Error::bad_json("`redacts` must be an event id"))
            })
            .transpose()?;
        let target =
            new.redacts.clone().or(from_content).ok_or_else(|| {
                Error::bad_json("A redaction needs `redacts`: the event to redact")
            })?;
        let target_event = self
            .timeline
            .get_pdu(&target)?
            .filter(|pdu| pdu.room_id == room_id)
            .ok_or_else(|| Error::not_found("Event not found"))?;
        if !self.user_can_redact(room_id, sender, &target_event)? {
            return Err(Error::forbidden("You may not redact this event"));
        }
        if rules.redaction.content_field_redacts {
            new.content["redacts"] = json!(target);
        }
        new.redacts = Some(target);
        Ok(())
    }

    /// Whether a stored redaction may rewrite `target`, an event of the same room (see the
    /// module documentation).
    fn may_apply_redaction(&self, redaction: &Pdu, target: &Pdu) -> Result<bool> {
        if target.sender.server_name() == redaction.sender.server_name() {
            return Ok(true);
        }
        self.user_can_redact(&redaction.room_id, &redaction.sender, target)
    }

    /// Applies a stored redaction to its target, if the rules allow: replaces the target by its
    /// redacted form (content really removed) in `batch`. Returns the short id of the event it
    /// rewrote, or `None` when it changed nothing. `short_room` is the redaction's room.
    pub(super) fn apply_redaction(
        &self,
        batch: &mut Batch,
        short_room: u64,
        redaction: &Pdu,
        rules: &RoomVersionRules,
    ) -> Result<Option<u64>> {
        let Some(target) = redaction_target(rules, redaction) else {
            return Ok(None);
        };
        let Some(location) = self.timeline.location(&target)? else {
            return Ok(None);
        };
        if location.short_room != short_room {
            return Ok(None);
        }
        let Some(raw) = self.timeline.raw_of(&location)? else {
            return Ok(None);
        };
        let target_event = Pdu::from_raw(&raw)?;
        if !self.may_apply_redaction(redaction, &target_event)? {
            tracing::info!(
                redaction = %redaction.event_id,
                target = %target,
                "redaction not applied: its sender may not redact the target"
            );
            return Ok(None);
        }
        self.search.unindex(batch, &target_event, location.count);
        // A redacted event notifies nobody any more (as in Synapse: its push actions go).
        for user in self.push_recipients(&target_event)? {
            self.push
                .notifications
                .forget_into(batch, &user, short_room, location.count);
        }
        let object: CanonicalJsonObject = serde_json::from_str(raw.get())
            .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))?;
        let mut redacted = ruma::canonical_json::redact(object.clone(), &rules.redaction, None)
            .map_err(|e| Error::internal(format!("redacting: {e}")))?;
        // `redact` keeps only PDU fields: our stored bookkeeping fields come back as they were
        // (the target's own `event_id` and `room_id`, never the redaction's).
        for field in ["event_id", "room_id"] {
            if let Some(value) = object.get(field) {
                redacted.insert(field.into(), value.clone());
            }
        }
        let because = serde_json::to_value(redaction.to_client_format(now_millis()))
            .map_err(Error::internal)?;
        let because = ruma::canonical_json::to_canonical_value(because).map_err(Error::internal)?;
        let unsigned = CanonicalJsonObject::from_iter([("redacted_because".to_owned(), because)]);
        redacted.insert("unsigned".into(), CanonicalJsonValue::Object(unsigned));
        self.timeline
            .rewrite(batch, &location, super::persist::raw_object(&redacted)?);
        Ok(Some(location.short_event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redaction(content: Value, redacts: Option<&str>) -> Pdu {
        let mut event = json!({
            "event_id": "$r",
            "room_id": "!room:x",
            "sender": "@a:x",
            "origin_server_ts": 1,
            "type": "m.room.redaction",
            "content": content,
            "depth": 1,
        });
        if let Some(redacts) = redacts {
            event["redacts"] = json!(redacts);
        }
        serde_json::from_value(event).expect("valid test event")
    }

    #[test]
    fn the_target_field_follows_the_room_version() {
        let in_content = redaction(json!({ "redacts": "$c" }), None);
        let top_level = redaction(json!({}), Some("$t"));
        let v10 = RoomVersionRules::V10;
        let v11 = RoomVersionRules::V11;
        assert_eq!(redaction_target(&v10, &in_content), None);
        let target = |rules, pdu| redaction_target(rules, pdu).map(|id| id.to_string());
        assert_eq!(target(&v10, &top_level).as_deref(), Some("$t"));
        assert_eq!(target(&v11, &in_content).as_deref(), Some("$c"));
        assert_eq!(redaction_target(&v11, &top_level), None);
    }
}
