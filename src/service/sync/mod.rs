//! `/sync`: what changed for a user between two stream positions, built from the timeline
//! index, state snapshots and membership records — never by replaying room histories.
//!
//! A sync token is a stream position (see `Db::stream_watermark`): everything at or below it
//! has been written, so two consecutive syncs neither miss nor repeat an event.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use ruma::{RoomId, UserId, events::StateEventType};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value, json};

mod filter;
mod render;

pub use filter::{FilterStore, SyncFilter};
pub use render::SyncResponse;
use render::{JoinedRoom, LeftRoom, SyncBody, Timeline, TimelineEvent};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{Membership, RoomRecord, event_cache::CachedEvent, read::EventFilter},
        users::sessions::Session,
    },
    storage::KeyCodec,
    util::now_millis,
};

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
        let mut join = BTreeMap::new();
        let mut invite = Map::new();
        let mut leave = BTreeMap::new();
        let mut knock = Map::new();
        for (room_id, membership) in self.rooms.members.rooms_of(&session.user_id)? {
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
                    if let Some(entry) =
                        self.left_room(session, &room_id, since, &membership, filter)?
                    {
                        leave.insert(room_id.to_string(), entry);
                    }
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
        let body = SyncBody {
            next_batch,
            join,
            invite,
            leave,
            knock,
            account_data: global_data,
            to_device,
            presence,
        };
        Ok(SyncResponse {
            body: body.render(now_millis())?,
            next_batch,
            has_updates,
        })
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
    /// more matching events were left out. The room's newest events come from memory (see
    /// `rooms::recent`); older ones, when needed, from RocksDB.
    fn timeline(
        &self,
        session: &Session,
        short_room: u64,
        since: u64,
        until: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<(Vec<Arc<CachedEvent>>, bool)> {
        let mut events = Vec::new();
        let mut visibility = FxHashMap::default();
        // Takes an event (newest first); answers whether the walk is over: `Some(limited)`.
        let mut take = |event: Arc<CachedEvent>| -> Result<Option<bool>> {
            if !filter.matches(&event.pdu)
                || !self.rooms.user_can_see_cached(
                    &session.user_id,
                    &event.pdu,
                    &event.location,
                    &mut visibility,
                )?
            {
                return Ok(None);
            }
            if events.len() >= limit {
                return Ok(Some(true));
            }
            events.push(event);
            Ok(None)
        };
        let recent = self.rooms.recent_events(short_room)?;
        let mut limited = None;
        for &(position, short_event) in recent.events.iter().rev() {
            if position > until {
                continue;
            }
            if position <= since {
                limited = Some(false);
                break;
            }
            if let Some(event) = self.rooms.cached_event(short_event)?
                && let Some(done) = take(event)?
            {
                limited = Some(done);
                break;
            }
        }
        // Not decided by the newest events and the room has older ones: read on below them.
        if limited.is_none() && recent.floor > since.saturating_add(1) {
            let start = (short_room, since.saturating_add(1)).encode();
            let end = (short_room, recent.floor.min(until.saturating_add(1))).encode();
            for row in self.rooms.timeline_range(&start, &end) {
                let (position, raw) = row?;
                if let Some(event) = self.rooms.cached_event_from_row(position, &raw)?
                    && let Some(done) = take(event)?
                {
                    limited = Some(done);
                    break;
                }
            }
        }
        events.reverse();
        Ok((events, limited.unwrap_or(false)))
    }

    /// State at the start of a timeline: before its first event, or — with no events — just
    /// after `position`.
    fn state_at_timeline_start(
        &self,
        short_room: u64,
        events: &[Arc<CachedEvent>],
        position: u64,
    ) -> Result<HashMap<u64, u64>> {
        match events.first() {
            Some(first) => self.rooms.state_map_before(first.location.short_event),
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
        senders: &FxHashSet<String>,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let mut events = Vec::new();
        for short_event in entries {
            if let Some(cached) = self.rooms.cached_event(short_event)?
                && wanted_state_event(&cached, session, filter, senders)
            {
                events.push(cached);
            }
        }
        Ok(events)
    }

    /// The whole state at the start of a timeline (so none of the timeline's events), as
    /// [`Services::state_events`] filters it. With a timeline this is a stored snapshot, whose
    /// event list is cached and shared by every member's sync.
    fn full_state_at_timeline_start(
        &self,
        session: &Session,
        short_room: u64,
        events: &[Arc<CachedEvent>],
        position: u64,
        filter: &SyncFilter,
        senders: &FxHashSet<String>,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let Some(first) = events.first() else {
            let state = self.rooms.state_map_after(short_room, position)?;
            return self.state_events(session, state.into_values(), filter, senders);
        };
        let hash = self
            .rooms
            .state_hash_before(first.location.short_event)?
            .unwrap_or(0);
        let snapshot = self.rooms.snapshot_events(hash)?;
        let lazy = filter.state.lazy_load_members || filter.timeline.lazy_load_members;
        let members: Vec<&Arc<CachedEvent>> = if lazy {
            // Only the timeline's senders and the user: looked up, not searched for.
            senders
                .iter()
                .map(String::as_str)
                .chain([session.user_id.as_str()])
                .collect::<FxHashSet<&str>>()
                .into_iter()
                .filter_map(|user| snapshot.members.get(user))
                .collect()
        } else {
            snapshot.members.values().collect()
        };
        Ok(snapshot
            .others
            .iter()
            .chain(members)
            .filter(|e| wanted_state_event(e, session, filter, senders))
            .cloned()
            .collect())
    }

    /// Timeline events with what `unsigned` adds for the viewer: their transaction id on
    /// their own events and, for joined rooms, aggregations.
    fn timeline_events(
        &self,
        session: &Session,
        events: Vec<Arc<CachedEvent>>,
        aggregations: bool,
    ) -> Result<Vec<TimelineEvent>> {
        let mut timeline = Vec::with_capacity(events.len());
        for event in events {
            let mut unsigned = Map::new();
            if let Some(txn) = self
                .rooms
                .transaction_id_for(&event.pdu, &event.location, session)
            {
                unsigned.insert("transaction_id".into(), Value::String(txn.to_owned()));
            }
            if aggregations
                && let Some(relations) = self.rooms.aggregations(&event.pdu, Some(session))?
            {
                unsigned.insert("m.relations".into(), relations);
            }
            timeline.push(TimelineEvent { event, unsigned });
        }
        Ok(timeline)
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
    ) -> Result<Option<JoinedRoom>> {
        let Some((short_room, record)) = self.rooms.room(room_id)? else {
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
        let events: Vec<Arc<CachedEvent>> = events
            .into_iter()
            .filter(|e| !ignored.contains(e.pdu.sender.as_str()))
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
        let unread = self.unread_counts(
            room_id,
            short_room,
            &session.user_id,
            membership.count,
            next_batch,
        )?;
        // Per-thread counts only when the client asks; otherwise threads count in the total.
        let (main, unread_threads) = if filter.unread_thread_notifications {
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
        let senders: FxHashSet<String> = events.iter().map(|e| e.pdu.sender.to_string()).collect();
        let state = if since.is_none() || full_state || newly_joined {
            self.full_state_at_timeline_start(
                session, short_room, &events, next_batch, filter, &senders,
            )?
        } else if limited {
            // A gap: send what changed between `since` and the start of the timeline.
            let start_state = self.state_at_timeline_start(short_room, &events, next_batch)?;
            let before = self.rooms.state_map_after(short_room, from)?;
            let changed = start_state
                .into_iter()
                .filter(|(key, event)| before.get(key) != Some(event))
                .map(|(_, event)| event);
            self.state_events(session, changed, filter, &senders)?
        } else {
            Vec::new()
        };
        let prev_batch = events
            .first()
            .map_or(from, |e| e.location.count.saturating_sub(1));
        Ok(Some(JoinedRoom {
            timeline: Timeline {
                events: self.timeline_events(session, events, true)?,
                limited,
                prev_batch,
            },
            state,
            summary: self.room_summary(room_id, short_room, &record, &session.user_id)?,
            account_data,
            ephemeral,
            unread: main,
            unread_threads,
        }))
    }

    fn left_room(
        &self,
        session: &Session,
        room_id: &RoomId,
        since: Option<u64>,
        membership: &Membership,
        filter: &SyncFilter,
    ) -> Result<Option<LeftRoom>> {
        let Some((short_room, _)) = self.rooms.room(room_id)? else {
            return Ok(None);
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
        let senders: FxHashSet<String> = events.iter().map(|e| e.pdu.sender.to_string()).collect();
        let state = self.full_state_at_timeline_start(
            session,
            short_room,
            &events,
            membership.count,
            filter,
            &senders,
        )?;
        let prev_batch = events
            .first()
            .map_or(from, |e| e.location.count.saturating_sub(1));
        Ok(Some(LeftRoom {
            timeline: Timeline {
                events: self.timeline_events(session, events, false)?,
                limited,
                prev_batch,
            },
            state,
        }))
    }

    /// `summary`: heroes (up to five other members) and member counts.
    fn room_summary(
        &self,
        room_id: &RoomId,
        short_room: u64,
        room: &RoomRecord,
        user: &UserId,
    ) -> Result<Value> {
        let heroes = self
            .rooms
            .members
            .heroes(room_id, short_room, room.state_hash, user, 5)?;
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

/// Whether a state event passes the state filter and lazy-loading (members only for
/// `senders`, plus the user).
fn wanted_state_event(
    event: &CachedEvent,
    session: &Session,
    filter: &SyncFilter,
    senders: &FxHashSet<String>,
) -> bool {
    let pdu = &event.pdu;
    if !filter.state.matches(pdu) {
        return false;
    }
    let lazy = filter.state.lazy_load_members || filter.timeline.lazy_load_members;
    !(lazy
        && pdu.kind == ruma::events::TimelineEventType::RoomMember
        && pdu
            .state_key
            .as_deref()
            .is_some_and(|k| k != session.user_id.as_str() && !senders.contains(k)))
}
