//! Reading rooms back for clients: single events, state, members, and paginated timelines,
//! always through the history-visibility rules.

use ruma::{EventId, OwnedUserId, RoomId, UserId, events::StateEventType};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{
        rooms::{EventLocation, Pdu, RoomService},
        users::sessions::Session,
    },
    util::now_millis,
};

/// Direction of `/messages`, `/relations` and `/timestamp_to_event`: ruma's own.
pub use ruma::api::Direction;

pub use super::filter::EventFilter;

/// A page of `/messages`.
pub struct MessagesPage {
    pub chunk: Vec<Value>,
    pub start: u64,
    pub end: Option<u64>,
    pub state: Vec<Value>,
}

use super::timeline::MAX_SCAN;

impl RoomService {
    /// The client format of an event as `viewer` sees it (with `transaction_id` for the device
    /// that sent it).
    pub fn client_event(
        &self,
        pdu: &Pdu,
        location: &EventLocation,
        viewer: Option<&Session>,
    ) -> Value {
        let mut event = pdu.to_client_format(now_millis());
        if let Some(txn) = viewer.and_then(|viewer| self.transaction_id_for(pdu, location, viewer))
        {
            event["unsigned"]["transaction_id"] = json!(txn);
        }
        event
    }

    /// The transaction id of an event, shown only to the device that sent it.
    pub fn transaction_id_for<'a>(
        &self,
        pdu: &Pdu,
        location: &'a EventLocation,
        viewer: &Session,
    ) -> Option<&'a str> {
        let (device, txn) = location.txn.as_ref()?;
        (viewer.user_id == pdu.sender && viewer.device_id.as_str() == device).then_some(txn)
    }

    /// Refuses users who have never been in the room or have forgotten it, unless it is
    /// world-readable.
    fn ensure_may_read(&self, user: &UserId, room_id: &RoomId) -> Result<()> {
        if self.registry.room(room_id)?.is_none() {
            return Err(Error::forbidden("You are not in this room"));
        }
        let remembered = self
            .members
            .membership(user, room_id)?
            .is_some_and(|m| !m.forgotten);
        if remembered || self.is_world_readable(room_id)? {
            Ok(())
        } else {
            Err(Error::forbidden("You are not in this room"))
        }
    }

    /// `GET /rooms/{roomId}/event/{eventId}`: an event the user may not read is `404`, as if
    /// it did not exist (the spec asks for that, and it keeps the event's existence hidden).
    pub fn fetch_event_for_user(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<Value> {
        self.event_for_user(session, room_id, event_id)
            .map_err(|e| match e {
                Error::Matrix {
                    errcode: "M_FORBIDDEN",
                    ..
                } => Error::not_found("Event not found"),
                other => other,
            })
    }

    /// An event as `session` sees it: 403 outside the room, 404 for an event it cannot see.
    pub fn event_for_user(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<Value> {
        self.ensure_may_read(&session.user_id, room_id)?;
        let not_found = || Error::not_found("Event not found");
        let location = self.timeline.location(event_id)?.ok_or_else(not_found)?;
        let pdu = self.timeline.pdu_of(&location)?.ok_or_else(not_found)?;
        if pdu.room_id != room_id || !self.user_can_see(&session.user_id, &pdu, &location)? {
            return Err(not_found());
        }
        self.client_event_with_aggregations(&pdu, &location, Some(session))
    }

    /// The state a user may read: current state while joined (or world-readable), the state at
    /// their leave otherwise. `None` snapshot means current state.
    fn readable_state(&self, user: &UserId, room_id: &RoomId) -> Result<(u64, Option<u64>)> {
        let (short_room, _) = self
            .registry
            .room(room_id)?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        match self.members.membership(user, room_id)? {
            Some(m) if m.membership == "join" => Ok((short_room, None)),
            _ if self.is_world_readable(room_id)? => Ok((short_room, None)),
            Some(m) if m.membership == "leave" || m.membership == "ban" => {
                let location = self
                    .timeline
                    .location(&m.event_id)?
                    .ok_or_else(|| Error::internal("membership event missing"))?;
                // State at the leave: the state before it plus the leave itself.
                let before = self
                    .timeline
                    .state_hash_before(location.short_event)?
                    .unwrap_or(0);
                Ok((short_room, Some(before)))
            }
            _ => Err(Error::forbidden("You are not in this room")),
        }
    }

    /// All state events a user may read.
    pub fn state_for_user(&self, user: &UserId, room_id: &RoomId) -> Result<Vec<Value>> {
        let (short_room, snapshot) = self.readable_state(user, room_id)?;
        let entries: Vec<(u64, u64)> = match snapshot {
            None => self.state.current_state(short_room)?,
            Some(hash) => self
                .state
                .load(hash)?
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
        };
        let mut events = Vec::with_capacity(entries.len());
        for (_, short_event) in entries {
            if let Some(pdu) = self.timeline.pdu_by_short(short_event)? {
                events.push(pdu.to_client_format(now_millis()));
            }
        }
        if snapshot.is_some() {
            // Include the user's own leave, which is not in the state before it.
            if let Some(m) = self.members.membership(user, room_id)?
                && let Some(pdu) = self.timeline.get_pdu(&m.event_id)?
            {
                events.retain(|e| e["state_key"] != json!(user) || e["type"] != "m.room.member");
                events.push(pdu.to_client_format(now_millis()));
            }
        }
        Ok(events)
    }

    /// One state event a user may read.
    pub fn state_event_for_user(
        &self,
        user: &UserId,
        room_id: &RoomId,
        event_type: &StateEventType,
        state_key: &str,
    ) -> Result<Pdu> {
        let (short_room, snapshot) = self.readable_state(user, room_id)?;
        let snapshot = snapshot.filter(|h| *h != 0);
        self.state_event_in(short_room, snapshot, event_type, state_key)?
            .ok_or_else(|| Error::not_found("State event not found"))
    }

    /// Member events of a room, as `GET /members` filters them.
    pub fn members_for_user(
        &self,
        user: &UserId,
        room_id: &RoomId,
        membership: Option<&str>,
        not_membership: Option<&str>,
        at: Option<u64>,
    ) -> Result<Vec<Value>> {
        let state = match at {
            None => self.state_for_user(user, room_id)?,
            Some(position) => self.state_at_position(user, room_id, position)?,
        };
        Ok(state
            .into_iter()
            .filter(|e| e["type"] == "m.room.member")
            .filter(|e| {
                let m = e["content"]["membership"].as_str().unwrap_or("");
                membership.is_none_or(|want| want == m) && not_membership.is_none_or(|not| not != m)
            })
            .collect())
    }

    /// The room state just after timeline position `position` (never later than the point
    /// where the user left, for users no longer in the room).
    fn state_at_position(
        &self,
        user: &UserId,
        room_id: &RoomId,
        position: u64,
    ) -> Result<Vec<Value>> {
        let (short_room, snapshot) = self.readable_state(user, room_id)?;
        let limit = match snapshot {
            Some(_) => {
                let left = self
                    .members
                    .membership(user, room_id)?
                    .map_or(0, |m| m.count);
                position.min(left)
            }
            None => position,
        };
        let entries = self.state_map_after(short_room, limit)?;
        let mut events = Vec::with_capacity(entries.len());
        for short_event in entries.into_values() {
            if let Some(event) = self.timeline.pdu_by_short(short_event)? {
                events.push(event.to_client_format(now_millis()));
            }
        }
        Ok(events)
    }

    /// Currently joined members with their profile in the room (`GET /joined_members`).
    pub fn joined_members(
        &self,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<Vec<(OwnedUserId, Value)>> {
        if !self.members.is_joined(user, room_id)? {
            return Err(Error::forbidden("You are not in this room"));
        }
        let (short_room, _) = self
            .registry
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        Ok(self
            .joined_member_profiles(short_room)?
            .into_iter()
            .map(|(member, content)| {
                (member, json!({ "display_name": content["displayname"], "avatar_url": content["avatar_url"] }))
            })
            .collect())
    }

    /// Joined members of a room with their member-event content (display name, avatar).
    pub fn joined_member_profiles(&self, short_room: u64) -> Result<Vec<(OwnedUserId, Value)>> {
        let mut out = Vec::new();
        for (short_key, short_event) in self.state.current_state(short_room)? {
            let Some((kind, state_key)) = self.state.state_key_of(short_key)? else {
                continue;
            };
            if kind != StateEventType::RoomMember {
                continue;
            }
            let Some(pdu) = self.timeline.pdu_by_short(short_event)? else {
                continue;
            };
            let content = pdu.content_value();
            if content["membership"] == "join"
                && let Ok(user) = UserId::parse(state_key)
            {
                out.push((user, content));
            }
        }
        Ok(out)
    }

    /// State (short key → short event) before an event.
    pub fn state_map_before(
        &self,
        short_event: u64,
    ) -> Result<std::collections::HashMap<u64, u64>> {
        Ok(match self.timeline.state_hash_before(short_event)? {
            Some(hash) if hash != 0 => (*self.state.load(hash)?).clone(),
            _ => Default::default(),
        })
    }

    /// State (short key → short event) just after timeline position `position`.
    pub fn state_map_after(
        &self,
        short_room: u64,
        position: u64,
    ) -> Result<std::collections::HashMap<u64, u64>> {
        let Some(pdu) = self
            .timeline
            .last_event_at_or_before(short_room, position)?
        else {
            return Ok(Default::default());
        };
        let location = self
            .timeline
            .location(&pdu.event_id)?
            .ok_or_else(|| Error::internal("event index missing"))?;
        let mut state = self.state_map_before(location.short_event)?;
        if let Some(state_key) = &pdu.state_key
            && let Some(short_key) = self
                .state
                .short_state_key(&pdu.kind.to_string(), state_key)?
        {
            state.insert(short_key, location.short_event);
        }
        Ok(state)
    }

    /// The event closest to `ts` in the given direction (`GET /timestamp_to_event`): a binary
    /// search over timeline positions (local timestamps grow with positions), then a short
    /// walk to the nearest event the user may see.
    pub fn event_at_timestamp(
        &self,
        session: &Session,
        room_id: &RoomId,
        ts: u64,
        direction: Direction,
    ) -> Result<(ruma::OwnedEventId, ruma::MilliSecondsSinceUnixEpoch)> {
        self.ensure_may_read(&session.user_id, room_id)?;
        let (short_room, _) = self
            .registry
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        // Smallest position from which every event is on the far side of `ts`: `>= ts` going
        // forward, `> ts` going backward (events at exactly `ts` count as "before" then).
        let past = |sent: u64| match direction {
            Direction::Forward => sent >= ts,
            Direction::Backward => sent > ts,
        };
        let (mut low, mut high) = (
            0u64,
            self.timeline.latest_count(short_room)?.saturating_add(1),
        );
        while low < high {
            let mid = low + (high - low) / 2;
            match self.timeline.first_at_or_after(short_room, mid)? {
                // Every position in mid..=count starts at this same event, so skip past it.
                Some((count, pdu)) if !past(u64::from(pdu.origin_server_ts.get())) => {
                    low = count + 1
                }
                _ => high = mid,
            }
        }
        let boundary = low;
        let (range, backward) = match direction {
            Direction::Forward => ((boundary, u64::MAX), false),
            Direction::Backward => ((0, boundary), true),
        };
        for (_, object) in self.timeline.rows(short_room, range, backward, MAX_SCAN)? {
            let pdu = Pdu::from_raw(&object)?;
            let Some(location) = self.timeline.location(&pdu.event_id)? else {
                continue;
            };
            let sent = u64::from(pdu.origin_server_ts.get());
            let right_side = match direction {
                Direction::Forward => sent >= ts,
                Direction::Backward => sent <= ts,
            };
            if right_side && self.user_can_see(&session.user_id, &pdu, &location)? {
                return Ok((pdu.event_id.clone(), pdu.origin_server_ts));
            }
        }
        Err(Error::not_found("No event found in that direction"))
    }

    /// `GET /rooms/{roomId}/messages`. Tokens are timeline positions: a token `n` sits just
    /// after the event at position `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn messages(
        &self,
        session: &Session,
        room_id: &RoomId,
        from: Option<u64>,
        to: Option<u64>,
        direction: Direction,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<MessagesPage> {
        self.ensure_may_read(&session.user_id, room_id)?;
        let (short_room, _) = self
            .registry
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let from = match (from, direction) {
            (Some(from), _) => from,
            (None, Direction::Backward) => self.timeline.latest_count(short_room)?,
            (None, Direction::Forward) => 0,
        };
        let range = match direction {
            Direction::Backward => (to.unwrap_or(0).saturating_add(1), from.saturating_add(1)),
            Direction::Forward => (
                from.saturating_add(1),
                to.map_or(u64::MAX, |t| t.saturating_add(1)),
            ),
        };
        let rows = self.timeline.rows(
            short_room,
            range,
            direction == Direction::Backward,
            MAX_SCAN,
        )?;
        let mut chunk = Vec::new();
        let mut senders = std::collections::BTreeSet::new();
        let mut visibility = rustc_hash::FxHashMap::default();
        let mut memberships = rustc_hash::FxHashMap::default();
        let mut last_position = None;
        let scanned_all = rows.len() < MAX_SCAN;
        for ((_, count), object) in rows {
            if chunk.len() >= limit {
                break;
            }
            last_position = Some(count);
            let pdu = Pdu::from_raw(&object)?;
            let Some(location) = self.timeline.location(&pdu.event_id)? else {
                continue;
            };
            if !filter.matches(&pdu)
                || !self.user_can_see_cached(&session.user_id, &pdu, &location, &mut visibility)?
            {
                continue;
            }
            senders.insert(pdu.sender.clone());
            let mut event = self.client_event_with_aggregations(&pdu, &location, Some(session))?;
            event["unsigned"]["membership"] = Value::String(self.membership_at(
                &session.user_id,
                &pdu,
                &location,
                &mut memberships,
            )?);
            chunk.push(event);
        }
        // `end` is left out only when a page finds nothing more: like Synapse, a page that
        // reached the start (or the live end) but returned events still gives a token, and the
        // next request answers an empty chunk without one (Complement's
        // TestRoomImageRoundtrip wants `end` on the last page).
        let exhausted = scanned_all && chunk.is_empty();
        let end = match (exhausted, last_position, direction) {
            (true, _, _) => None,
            (false, Some(position), Direction::Backward) => Some(position.saturating_sub(1)),
            (false, Some(position), Direction::Forward) => Some(position),
            (false, None, _) => None,
        };
        let mut state = Vec::new();
        if filter.lazy_load_members {
            for sender in senders {
                if let Some(member) =
                    self.current_state_event(room_id, &StateEventType::RoomMember, sender.as_str())?
                {
                    state.push(member.to_client_format(now_millis()));
                }
            }
        }
        Ok(MessagesPage {
            chunk,
            start: from,
            end,
            state,
        })
    }
}

/// `GET /rooms/{roomId}/context/{eventId}`: the event, up to `limit` events around it, and the
/// room state (only the senders' member events with `lazy_load_members`).
pub struct Context {
    pub event: Value,
    pub before: MessagesPage,
    pub after: MessagesPage,
    pub state: Vec<Value>,
}

impl RoomService {
    pub fn context(
        &self,
        session: &Session,
        room_id: &RoomId,
        event_id: &EventId,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Context> {
        let event = self.event_for_user(session, room_id, event_id)?;
        let location = self
            .timeline
            .location(event_id)?
            .ok_or_else(|| Error::not_found("Event not found"))?;
        let before_limit = limit / 2;
        let after_limit = limit - before_limit;
        let position = location.count;
        let mut before = self.messages(
            session,
            room_id,
            Some(position.saturating_sub(1)),
            None,
            Direction::Backward,
            before_limit.max(1),
            filter,
        )?;
        if before_limit == 0 {
            before.chunk.clear();
            before.end = Some(position.saturating_sub(1));
        }
        let mut after = self.messages(
            session,
            room_id,
            Some(position),
            None,
            Direction::Forward,
            after_limit.max(1),
            filter,
        )?;
        if after_limit == 0 {
            after.chunk.clear();
            after.end = Some(position);
        }
        let state = if filter.lazy_load_members {
            let mut senders: Vec<&str> = before
                .chunk
                .iter()
                .chain(after.chunk.iter())
                .chain(std::iter::once(&event))
                .filter_map(|e| e["sender"].as_str())
                .collect();
            senders.sort_unstable();
            senders.dedup();
            let mut members = Vec::new();
            for sender in senders {
                if let Some(member) =
                    self.current_state_event(room_id, &StateEventType::RoomMember, sender)?
                {
                    members.push(member.to_client_format(now_millis()));
                }
            }
            members
        } else {
            self.state_for_user(&session.user_id, room_id)?
        };
        Ok(Context {
            event,
            before,
            after,
            state,
        })
    }
}
