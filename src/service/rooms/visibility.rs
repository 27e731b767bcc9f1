//! Who may see what: power levels and history visibility, evaluated at the event.

use ruma::{RoomId, UserId, events::StateEventType};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::rooms::{EventLocation, Pdu, RoomService, rules_for},
};

/// Power levels as the authorization rules read them.
pub struct PowerLevels {
    content: Value,
    /// Creators of a v12+ room: more powerful than any level.
    creators: Vec<String>,
}

impl PowerLevels {
    /// The power-levels content in force (the room-version defaults when there is none).
    pub fn content(&self) -> &Value {
        &self.content
    }

    /// The privileged creators of a v12+ room.
    pub fn creators(&self) -> &[String] {
        &self.creators
    }

    fn int(value: Option<&Value>, default: i64) -> i64 {
        match value {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
            Some(Value::String(s)) => s.parse().unwrap_or(default),
            _ => default,
        }
    }

    /// A user's level (`i64::MAX` for privileged creators).
    pub fn user(&self, user: &UserId) -> i64 {
        if self.creators.iter().any(|c| c == user.as_str()) {
            return i64::MAX;
        }
        let default = Self::int(self.content.get("users_default"), 0);
        Self::int(
            self.content.get("users").and_then(|u| u.get(user.as_str())),
            default,
        )
    }

    /// The level needed to send an event of `event_type`.
    pub fn for_event(&self, event_type: &str, is_state: bool) -> i64 {
        let default = if is_state {
            Self::int(self.content.get("state_default"), 50)
        } else {
            Self::int(self.content.get("events_default"), 0)
        };
        Self::int(
            self.content.get("events").and_then(|e| e.get(event_type)),
            default,
        )
    }

    /// The level of a named action (`redact`, `kick`, `ban`, `invite`).
    pub fn action(&self, name: &str) -> i64 {
        let default = if name == "invite" { 0 } else { 50 };
        Self::int(self.content.get(name), default)
    }
}

impl RoomService {
    /// The room's current power levels (with the room-version defaults when there is no
    /// power-levels event yet: the creator has 100).
    pub fn power_levels(&self, room_id: &RoomId) -> Result<PowerLevels> {
        let (_, room) = self
            .registry
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let rules = rules_for(&room.version)?;
        let create = self
            .current_state_event(room_id, &StateEventType::RoomCreate, "")?
            .ok_or_else(|| Error::internal("room without create event"))?;
        let mut creators = Vec::new();
        if rules.authorization.explicitly_privilege_room_creators {
            creators.push(create.sender.to_string());
            if let Some(extra) = create
                .content_value()
                .get("additional_creators")
                .and_then(Value::as_array)
            {
                creators.extend(extra.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        let content =
            match self.current_state_event(room_id, &StateEventType::RoomPowerLevels, "")? {
                Some(event) => event.content_value(),
                None => serde_json::json!({ "users": { create.sender.as_str(): 100 } }),
            };
        Ok(PowerLevels { content, creators })
    }

    /// Whether `user` has the power to send state of `event_type`.
    pub fn user_can_send_state(
        &self,
        room_id: &RoomId,
        user: &UserId,
        event_type: &str,
    ) -> Result<bool> {
        let levels = self.power_levels(room_id)?;
        Ok(levels.user(user) >= levels.for_event(event_type, true))
    }

    /// Whether `user` may redact `target` (own events, or with the `redact` level).
    pub fn user_can_redact(&self, room_id: &RoomId, user: &UserId, target: &Pdu) -> Result<bool> {
        if target.sender == user {
            return Ok(true);
        }
        let levels = self.power_levels(room_id)?;
        Ok(levels.user(user) >= levels.action("redact"))
    }

    /// A state value before an event (`None` snapshot means the empty state of a create event).
    fn state_content_before(
        &self,
        location: &EventLocation,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Value>> {
        match self
            .timeline
            .state_hash_before(location.short_event)?
            .filter(|hash| *hash != 0)
        {
            Some(hash) => Ok(self
                .cached_state_event_in(location.short_room, Some(hash), event_type, state_key)?
                .map(|event| event.pdu.content_value())),
            None => Ok(None),
        }
    }

    /// History visibility and the user's membership at an event.
    fn visibility_at(
        &self,
        user: &UserId,
        pdu: &Pdu,
        location: &EventLocation,
    ) -> Result<(String, String)> {
        let visibility = self
            .state_content_before(location, &StateEventType::RoomHistoryVisibility, "")?
            .and_then(|c| {
                c.get("history_visibility")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "shared".to_owned());
        let membership = if pdu.kind.to_string() == "m.room.member"
            && pdu.state_key.as_deref() == Some(user.as_str())
        {
            pdu.content_value()
                .get("membership")
                .and_then(Value::as_str)
                .unwrap_or("leave")
                .to_owned()
        } else {
            self.state_content_before(location, &StateEventType::RoomMember, user.as_str())?
                .and_then(|c| {
                    c.get("membership")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "leave".to_owned())
        };
        Ok((visibility, membership))
    }

    /// Whether `user` may see `pdu`, per the spec's history visibility rules.
    pub fn user_can_see(&self, user: &UserId, pdu: &Pdu, location: &EventLocation) -> Result<bool> {
        // Users always see their own membership changes (so a leave or a rejected invite
        // reaches their clients).
        if pdu.kind.to_string() == "m.room.member"
            && pdu.state_key.as_deref() == Some(user.as_str())
        {
            return Ok(true);
        }
        let (visibility, membership) = self.visibility_at(user, pdu, location)?;
        if visibility == "world_readable" || membership == "join" {
            return Ok(true);
        }
        if visibility == "invited" && membership == "invite" {
            return Ok(true);
        }
        if visibility != "shared" {
            return Ok(false);
        }
        // `shared`: visible if the user was joined at any point after the event.
        let Some(current) = self.members.membership(user, &pdu.room_id)? else {
            return Ok(false);
        };
        if current.membership == "join" {
            return Ok(true);
        }
        if current.count <= location.count {
            return Ok(false);
        }
        let Some(last) = self.timeline.location(&current.event_id)? else {
            return Ok(false);
        };
        let before =
            self.state_content_before(&last, &StateEventType::RoomMember, user.as_str())?;
        Ok(before
            .and_then(|c| {
                c.get("membership")
                    .and_then(Value::as_str)
                    .map(|m| m == "join")
            })
            .unwrap_or(false))
    }

    /// [`RoomService::user_can_see`] for many events of one room in one request. The answer
    /// depends only on the state before the event (the user's current membership is fixed for
    /// the request), except for the user's own membership events, so it is cached per snapshot.
    pub fn user_can_see_cached(
        &self,
        user: &UserId,
        pdu: &Pdu,
        location: &EventLocation,
        cache: &mut rustc_hash::FxHashMap<u64, bool>,
    ) -> Result<bool> {
        if pdu.state_key.as_deref() == Some(user.as_str()) {
            return self.user_can_see(user, pdu, location);
        }
        let snapshot = self
            .timeline
            .state_hash_before(location.short_event)?
            .unwrap_or(0);
        if let Some(visible) = cache.get(&snapshot) {
            return Ok(*visible);
        }
        let visible = self.user_can_see(user, pdu, location)?;
        cache.insert(snapshot, visible);
        Ok(visible)
    }

    /// The user's membership at an event, for `unsigned.membership` (MSC4115, stable in
    /// spec v1.11): after the event for the user's own membership events, otherwise the state
    /// before it; `leave` when there was none. Cached per state snapshot, as the answer depends
    /// only on it.
    pub fn membership_at(
        &self,
        user: &UserId,
        pdu: &Pdu,
        location: &EventLocation,
        cache: &mut rustc_hash::FxHashMap<u64, String>,
    ) -> Result<String> {
        if pdu.state_key.as_deref() == Some(user.as_str())
            && pdu.kind.to_string() == "m.room.member"
        {
            return Ok(membership_of(Some(pdu.content_value())));
        }
        let snapshot = self
            .timeline
            .state_hash_before(location.short_event)?
            .unwrap_or(0);
        if let Some(membership) = cache.get(&snapshot) {
            return Ok(membership.clone());
        }
        let membership = membership_of(self.state_content_before(
            location,
            &StateEventType::RoomMember,
            user.as_str(),
        )?);
        cache.insert(snapshot, membership.clone());
        Ok(membership)
    }

    /// Whether the room's current history visibility is `world_readable`.
    pub fn is_world_readable(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .current_state_event(room_id, &StateEventType::RoomHistoryVisibility, "")?
            .is_some_and(|e| {
                e.content_value()
                    .get("history_visibility")
                    .and_then(Value::as_str)
                    == Some("world_readable")
            }))
    }
}

/// The `membership` of a member event's content (`leave` without one).
fn membership_of(content: Option<Value>) -> String {
    content
        .as_ref()
        .and_then(|c| c.get("membership"))
        .and_then(Value::as_str)
        .unwrap_or("leave")
        .to_owned()
}
