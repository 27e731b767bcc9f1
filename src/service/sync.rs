//! `/sync`: what changed for a user between two stream positions, built from the timeline
//! index, state snapshots and membership records — never by replaying room histories.
//!
//! A sync token is a stream position (see `Db::stream_watermark`): everything at or below it
//! has been written, so two consecutive syncs neither miss nor repeat an event.

use std::collections::{HashMap, HashSet};

use ruma::{RoomId, UserId, events::StateEventType};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{Membership, Pdu, read::EventFilter},
        sessions::Session,
    },
    storage::{Cf, KeyCodec, Table},
    util::now_millis,
};

/// The parts of a sync filter Hearth applies.
#[derive(Clone, Debug)]
pub struct SyncFilter {
    pub timeline_limit: usize,
    pub timeline: EventFilter,
    pub state: EventFilter,
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub include_leave: bool,
    /// `room.timeline.unread_thread_notifications`: count threads separately.
    pub unread_thread_notifications: bool,
    pub account_data: EventFilter,
    pub room_account_data: EventFilter,
    pub ephemeral: EventFilter,
    pub presence: EventFilter,
}

/// Default number of timeline events per room.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// Most timeline events per room a filter may ask for.
const MAX_TIMELINE_LIMIT: usize = 1000;

impl SyncFilter {
    /// Reads a filter definition (JSON).
    pub fn from_json(filter: &Value) -> Self {
        let room = &filter["room"];
        let strings = |value: &Value| -> Option<Vec<String>> {
            value.as_array().map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        Self {
            timeline_limit: room["timeline"]["limit"]
                .as_u64()
                .map_or(DEFAULT_TIMELINE_LIMIT, |l| {
                    (l as usize).clamp(1, MAX_TIMELINE_LIMIT)
                }),
            timeline: EventFilter::from_json(&room["timeline"]),
            state: EventFilter::from_json(&room["state"]),
            rooms: strings(&room["rooms"]),
            not_rooms: strings(&room["not_rooms"]).unwrap_or_default(),
            include_leave: room["include_leave"].as_bool().unwrap_or(false),
            unread_thread_notifications: room["timeline"]["unread_thread_notifications"]
                .as_bool()
                .unwrap_or(false),
            account_data: EventFilter::from_json(&filter["account_data"]),
            room_account_data: EventFilter::from_json(&room["account_data"]),
            ephemeral: EventFilter::from_json(&room["ephemeral"]),
            presence: EventFilter::from_json(&filter["presence"]),
        }
    }

    fn wants_room(&self, room_id: &RoomId) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room_id.as_str()))
            && !self.not_rooms.iter().any(|r| r == room_id.as_str())
    }
}

impl Default for SyncFilter {
    fn default() -> Self {
        Self::from_json(&json!({}))
    }
}

/// A built sync response and whether it carries anything.
pub struct SyncResponse {
    pub body: Value,
    pub has_updates: bool,
}

/// Owns the `filters` table.
pub struct FilterStore {
    db: crate::storage::Db,
    filters: Table<(String, String), Value>,
}

impl FilterStore {
    pub fn new(db: crate::storage::Db) -> Self {
        Self {
            filters: db.table(Cf::Filters),
            db,
        }
    }

    /// Stores a filter; returns its id.
    pub fn create(&self, user: &UserId, filter: &Value) -> Result<String> {
        let id = self.db.next_count()?.to_string();
        let mut batch = self.db.batch();
        self.filters
            .put(&mut batch, &(user.to_string(), id.clone()), filter);
        self.db.write(batch)?;
        Ok(id)
    }

    /// A stored filter of the user.
    pub fn get(&self, user: &UserId, id: &str) -> Result<Option<Value>> {
        Ok(self.filters.get(&(user.to_string(), id.to_owned()))?)
    }
}

/// State event types shown in invite and knock previews.
const STRIPPED_STATE: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

impl Services {
    /// Builds the sync response for `since` (exclusive) up to the current watermark.
    /// Blocking.
    pub fn build_sync(
        &self,
        session: &Session,
        since: Option<u64>,
        full_state: bool,
        filter: &SyncFilter,
    ) -> Result<SyncResponse> {
        let next_batch = self.db.stream_watermark();
        let to_device = self.to_device.take_for_sync(session, since, next_batch)?;
        let mut presence = self.presence_events(&session.user_id, since)?;
        filter.presence.retain_json(&mut presence);
        let mut global_data = Vec::new();
        let mut room_data: HashMap<String, Vec<Value>> = HashMap::new();
        for (room, kind, content) in
            self.account_data
                .changed_since(&session.user_id, since, next_batch)?
        {
            let wanted = match room {
                Some(_) => filter
                    .room_account_data
                    .matches_type_and_sender(&kind, None),
                None => filter.account_data.matches_type_and_sender(&kind, None),
            };
            if !wanted {
                continue;
            }
            let event = json!({ "type": kind, "content": content });
            match room {
                Some(room) => room_data.entry(room.to_string()).or_default().push(event),
                None => global_data.push(event),
            }
        }
        let ignored: HashSet<String> = self
            .account_data
            .ignored_users(&session.user_id)?
            .into_iter()
            .collect();
        let mut join = Map::new();
        let mut invite = Map::new();
        let mut leave = Map::new();
        let mut knock = Map::new();
        for (room_id, membership) in self.rooms.rooms_of(&session.user_id)? {
            if !filter.wants_room(&room_id) || membership.count > next_batch {
                continue;
            }
            let changed = since.is_none_or(|s| membership.count > s);
            match membership.membership.as_str() {
                "join" => {
                    let data = room_data.remove(room_id.as_str()).unwrap_or_default();
                    if let Some(entry) = self.joined_room(
                        session,
                        &room_id,
                        since,
                        next_batch,
                        full_state,
                        &membership,
                        filter,
                        data,
                        &ignored,
                    )? {
                        join.insert(room_id.to_string(), entry);
                    }
                }
                "invite" if changed => {
                    invite.insert(room_id.to_string(), json!({ "invite_state": { "events": self.stripped_state(&room_id, &membership)? } }));
                }
                "knock" if changed => {
                    knock.insert(room_id.to_string(), json!({ "knock_state": { "events": self.stripped_state(&room_id, &membership)? } }));
                }
                "leave" | "ban"
                    if changed
                        && !membership.forgotten
                        && (since.is_some() || filter.include_leave) =>
                {
                    let entry = self.left_room(session, &room_id, since, &membership, filter)?;
                    leave.insert(room_id.to_string(), entry);
                }
                _ => {}
            }
        }
        let has_updates = !(join.is_empty()
            && invite.is_empty()
            && leave.is_empty()
            && knock.is_empty()
            && global_data.is_empty()
            && to_device.is_empty()
            && presence.is_empty());
        let body = json!({
            "next_batch": next_batch.to_string(),
            "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
            "account_data": { "events": global_data },
            "to_device": { "events": to_device },
            "presence": { "events": presence },
        });
        Ok(SyncResponse { body, has_updates })
    }

    /// The stripped state of an invite or knock, ending with the membership event itself.
    fn stripped_state(&self, room_id: &RoomId, membership: &Membership) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        for kind in STRIPPED_STATE {
            if let Some(event) =
                self.rooms
                    .current_state_event(room_id, &StateEventType::from(*kind), "")?
            {
                events.push(event.to_stripped_state());
            }
        }
        if let Some(event) = self.rooms.get_pdu(&membership.event_id)? {
            events.push(event.to_stripped_state());
        }
        Ok(events)
    }

    /// Timeline events of a room in `(since, until]`, newest `limit`, oldest first; and whether
    /// more matching events were left out.
    fn timeline(
        &self,
        session: &Session,
        short_room: u64,
        since: u64,
        until: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<(Vec<(u64, Pdu)>, bool)> {
        let start = (short_room, since.saturating_add(1)).encode();
        let end = (short_room, until.saturating_add(1)).encode();
        let mut events = Vec::new();
        let mut limited = false;
        let mut visibility = HashMap::new();
        for ((_, count), raw) in self.rooms.timeline_range(&start, &end)? {
            let pdu = Pdu::from_raw(&raw)?;
            let Some(location) = self.rooms.location(&pdu.event_id)? else {
                continue;
            };
            if !filter.matches(&pdu)
                || !self.rooms.user_can_see_cached(
                    &session.user_id,
                    &pdu,
                    &location,
                    &mut visibility,
                )?
            {
                continue;
            }
            if events.len() >= limit {
                limited = true;
                break;
            }
            events.push((count, pdu));
        }
        events.reverse();
        Ok((events, limited))
    }

    /// State at the start of a timeline: before its first event, or — with no events — just
    /// after `position`.
    fn state_at_timeline_start(
        &self,
        short_room: u64,
        events: &[(u64, Pdu)],
        position: u64,
    ) -> Result<HashMap<u64, u64>> {
        match events.first() {
            Some((_, first)) => {
                let location = self
                    .rooms
                    .location(&first.event_id)?
                    .ok_or_else(|| Error::internal("event index missing"))?;
                self.rooms.state_map_before(location.short_event)
            }
            None => self.rooms.state_map_after(short_room, position),
        }
    }

    /// Client-format state events for the given entries, honouring the state filter and
    /// lazy-loading (members only for `senders`, plus the user).
    fn state_events(
        &self,
        session: &Session,
        entries: impl IntoIterator<Item = u64>,
        filter: &SyncFilter,
        senders: &HashSet<String>,
    ) -> Result<Vec<Value>> {
        let lazy = filter.state.lazy_load_members || filter.timeline.lazy_load_members;
        let mut events = Vec::new();
        for short_event in entries {
            let Some(pdu) = self.rooms.pdu_by_short(short_event)? else {
                continue;
            };
            if !filter.state.matches(&pdu) {
                continue;
            }
            if lazy
                && pdu.kind.to_string() == "m.room.member"
                && pdu
                    .state_key
                    .as_deref()
                    .is_some_and(|k| k != session.user_id.as_str() && !senders.contains(k))
            {
                continue;
            }
            events.push(pdu.to_client_format(now_millis()));
        }
        Ok(events)
    }

    #[allow(clippy::too_many_arguments)]
    fn joined_room(
        &self,
        session: &Session,
        room_id: &RoomId,
        since: Option<u64>,
        next_batch: u64,
        full_state: bool,
        membership: &Membership,
        filter: &SyncFilter,
        account_data: Vec<Value>,
        ignored: &HashSet<String>,
    ) -> Result<Option<Value>> {
        let Some((short_room, _)) = self.rooms.room(room_id)? else {
            return Ok(None);
        };
        let from = since.unwrap_or(0);
        let (events, limited) = self.timeline(
            session,
            short_room,
            from,
            next_batch,
            &filter.timeline,
            filter.timeline_limit,
        )?;
        // Events of ignored users are hidden (spec: m.ignored_user_list).
        let events: Vec<(u64, Pdu)> = events
            .into_iter()
            .filter(|(_, e)| !ignored.contains(e.sender.as_str()))
            .collect();
        let newly_joined = since.is_some_and(|s| membership.count > s);
        let mut ephemeral = Vec::new();
        if let Some(typing) = self.ephemeral.typing_event(room_id, since) {
            ephemeral.push(typing);
        }
        if let Some(receipts) = self
            .ephemeral
            .receipt_event(room_id, since, &session.user_id)?
        {
            ephemeral.push(receipts);
        }
        filter.ephemeral.retain_json(&mut ephemeral);
        if since.is_some()
            && events.is_empty()
            && !full_state
            && !newly_joined
            && account_data.is_empty()
            && ephemeral.is_empty()
        {
            return Ok(None);
        }
        let unread = self.unread_counts(room_id, &session.user_id, membership.count)?;
        // Per-thread counts only when the client asks; otherwise threads count in the total.
        let (main, threads) = if filter.unread_thread_notifications {
            let threads: Map<String, Value> = unread
                .threads
                .iter()
                .map(|(root, (n, h))| {
                    (
                        root.clone(),
                        json!({ "notification_count": n, "highlight_count": h }),
                    )
                })
                .collect();
            (unread.main, Some(threads))
        } else {
            let total = unread
                .threads
                .values()
                .fold(unread.main, |acc, (n, h)| (acc.0 + n, acc.1 + h));
            (total, None)
        };
        let senders: HashSet<String> = events.iter().map(|(_, e)| e.sender.to_string()).collect();
        let timeline_ids: HashSet<String> =
            events.iter().map(|(_, e)| e.event_id.to_string()).collect();
        let start_state = self.state_at_timeline_start(short_room, &events, next_batch)?;
        let state_entries: Vec<u64> = if since.is_none() || full_state || newly_joined {
            start_state.into_values().collect()
        } else if limited {
            // A gap: send what changed between `since` and the start of the timeline.
            let before = self.rooms.state_map_after(short_room, from)?;
            start_state
                .into_iter()
                .filter(|(key, event)| before.get(key) != Some(event))
                .map(|(_, event)| event)
                .collect()
        } else {
            Vec::new()
        };
        let state: Vec<Value> = self
            .state_events(session, state_entries, filter, &senders)?
            .into_iter()
            .filter(|e| {
                e["event_id"]
                    .as_str()
                    .is_none_or(|id| !timeline_ids.contains(id))
            })
            .collect();
        let prev_batch = events
            .first()
            .map_or(from, |(count, _)| count.saturating_sub(1));
        let mut timeline = Vec::with_capacity(events.len());
        for (_, pdu) in &events {
            let location = self
                .rooms
                .location(&pdu.event_id)?
                .ok_or_else(|| Error::internal("event index missing"))?;
            timeline.push(self.rooms.client_event_with_aggregations(
                pdu,
                &location,
                Some(session),
            )?);
        }
        let mut entry = json!({
            "timeline": { "events": timeline, "limited": limited, "prev_batch": prev_batch.to_string() },
            "state": { "events": state },
            "summary": self.room_summary(room_id, &session.user_id)?,
            "account_data": { "events": account_data },
            "ephemeral": { "events": ephemeral },
            "unread_notifications": { "notification_count": main.0, "highlight_count": main.1 },
        });
        if let Some(threads) = threads {
            entry["unread_thread_notifications"] = Value::Object(threads);
        }
        Ok(Some(entry))
    }

    fn left_room(
        &self,
        session: &Session,
        room_id: &RoomId,
        since: Option<u64>,
        membership: &Membership,
        filter: &SyncFilter,
    ) -> Result<Value> {
        let Some((short_room, _)) = self.rooms.room(room_id)? else {
            return Ok(json!({}));
        };
        let from = since.unwrap_or(0);
        let (events, limited) = self.timeline(
            session,
            short_room,
            from,
            membership.count,
            &filter.timeline,
            filter.timeline_limit,
        )?;
        let senders: HashSet<String> = events.iter().map(|(_, e)| e.sender.to_string()).collect();
        let start_state = self.state_at_timeline_start(short_room, &events, membership.count)?;
        let state = self.state_events(session, start_state.into_values(), filter, &senders)?;
        let mut timeline = Vec::with_capacity(events.len());
        for (_, pdu) in &events {
            let location = self
                .rooms
                .location(&pdu.event_id)?
                .ok_or_else(|| Error::internal("event index missing"))?;
            timeline.push(self.rooms.client_event(pdu, &location, Some(session)));
        }
        let prev_batch = events
            .first()
            .map_or(from, |(count, _)| count.saturating_sub(1));
        Ok(json!({
            "timeline": { "events": timeline, "limited": limited, "prev_batch": prev_batch.to_string() },
            "state": { "events": state },
        }))
    }

    /// `summary`: heroes (up to five other members) and member counts.
    fn room_summary(&self, room_id: &RoomId, user: &UserId) -> Result<Value> {
        let (_, room) = self
            .rooms
            .room(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let heroes = self.rooms.some_members(room_id, user, 5)?;
        Ok(json!({
            "m.heroes": heroes,
            "m.joined_member_count": room.joined_members,
            "m.invited_member_count": room.invited_members,
        }))
    }
}

/// Parses a sync token.
pub fn parse_since(token: Option<&str>) -> Result<Option<u64>> {
    token
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| Error::invalid_param(format!("Invalid since token {t:?}")))
        })
        .transpose()
}
