//! Room state for `/sync`: the state at the start of a timeline, whole or as changed since the
//! last sync, through the state filter and lazy-loading of members.

use std::{collections::HashMap, sync::Arc};

use ruma::events::TimelineEventType;
use rustc_hash::FxHashSet;

use super::SyncContext;
use crate::{error::Result, service::rooms::event_cache::CachedEvent};

impl SyncContext<'_> {
    /// State at the start of a timeline: before its first event, or — with no events — just
    /// after `position`.
    fn state_at_timeline_start(
        &self,
        short_room: u64,
        events: &[Arc<CachedEvent>],
        position: u64,
    ) -> Result<HashMap<u64, u64>> {
        match events.first() {
            Some(first) => self
                .services
                .rooms
                .state_map_before(first.location.short_event),
            None => self.services.rooms.state_map_after(short_room, position),
        }
    }

    /// Client-format state events for the given entries, honouring the state filter and
    /// lazy-loading (members only for `senders`, plus the user).
    fn state_events(
        &self,
        entries: impl IntoIterator<Item = u64>,
        senders: &FxHashSet<String>,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let mut events = Vec::new();
        for short_event in entries {
            if let Some(cached) = self.services.rooms.timeline.cached_event(short_event)?
                && self.wanted_state_event(&cached, senders)
            {
                events.push(cached);
            }
        }
        Ok(events)
    }

    /// The whole state at the start of a timeline (so none of the timeline's events), as
    /// [`Self::state_events`] filters it. With a timeline this is a stored snapshot, whose
    /// event list is cached and shared by every member's sync.
    pub(super) fn full_state_at_timeline_start(
        &self,
        short_room: u64,
        events: &[Arc<CachedEvent>],
        position: u64,
        senders: &FxHashSet<String>,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let rooms = &self.services.rooms;
        let Some(first) = events.first() else {
            let state = rooms.state_map_after(short_room, position)?;
            return self.state_events(state.into_values(), senders);
        };
        let hash = rooms
            .timeline
            .state_hash_before(first.location.short_event)?
            .unwrap_or(0);
        let snapshot = rooms.snapshot_events(hash)?;
        let filter = self.filter;
        let lazy = filter.state.lazy_load_members || filter.timeline.lazy_load_members;
        let members: Vec<&Arc<CachedEvent>> = if lazy {
            // Only the timeline's senders and the user: looked up, not searched for.
            senders
                .iter()
                .map(String::as_str)
                .chain([self.session.user_id.as_str()])
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
            .filter(|e| self.wanted_state_event(e, senders))
            .cloned()
            .collect())
    }

    /// A room's `state` for a timeline of `(from, until]`: with `whole` (an initial or
    /// full-state sync, or a new join) the whole state at the start of the timeline; after a
    /// gap (`limited`) what changed between position `from` and the start of the timeline;
    /// otherwise nothing (the timeline itself carries every change).
    pub(super) fn room_state(
        &self,
        short_room: u64,
        events: &[Arc<CachedEvent>],
        (from, until): (u64, u64),
        whole: bool,
        limited: bool,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let senders: FxHashSet<String> = events.iter().map(|e| e.pdu.sender.to_string()).collect();
        if whole {
            return self.full_state_at_timeline_start(short_room, events, until, &senders);
        }
        if !limited {
            return Ok(Vec::new());
        }
        // A gap: send what changed between `since` and the start of the timeline.
        let start_state = self.state_at_timeline_start(short_room, events, until)?;
        self.state_changes(short_room, from, start_state, &senders)
    }

    /// The entries of `state` that differ from the state just after position `from`, as
    /// [`Self::state_events`] filters them.
    fn state_changes(
        &self,
        short_room: u64,
        from: u64,
        state: HashMap<u64, u64>,
        senders: &FxHashSet<String>,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let before = self.services.rooms.state_map_after(short_room, from)?;
        let changed = state
            .into_iter()
            .filter(|(key, event)| before.get(key) != Some(event))
            .map(|(_, event)| event);
        self.state_events(changed, senders)
    }

    /// A room's `state_after` (MSC4222) for a timeline of `(from, until]`: with `whole` the
    /// whole state at `until`, the end of the timeline; otherwise what changed between
    /// positions `from` and `until`. Without a gap that is exactly the timeline's state events
    /// (the newest per key); after one, the two states are compared.
    pub(super) fn room_state_after(
        &self,
        short_room: u64,
        events: &[Arc<CachedEvent>],
        (from, until): (u64, u64),
        whole: bool,
        limited: bool,
    ) -> Result<Vec<Arc<CachedEvent>>> {
        let senders: FxHashSet<String> = events.iter().map(|e| e.pdu.sender.to_string()).collect();
        let rooms = &self.services.rooms;
        if whole {
            return self.full_state_at_timeline_start(short_room, &[], until, &senders);
        }
        if !limited {
            let mut newest: HashMap<(String, String), &Arc<CachedEvent>> = HashMap::new();
            for event in events {
                if let Some(state_key) = &event.pdu.state_key {
                    newest.insert((event.pdu.kind.to_string(), state_key.clone()), event);
                }
            }
            let mut changed: Vec<Arc<CachedEvent>> = newest
                .into_values()
                .filter(|e| self.wanted_state_event(e, &senders))
                .cloned()
                .collect();
            changed.sort_by_key(|e| e.location.count);
            return Ok(changed);
        }
        let end = rooms.state_map_after(short_room, until)?;
        self.state_changes(short_room, from, end, &senders)
    }

    /// Whether a state event passes the state filter and lazy-loading (members only for
    /// `senders`, plus the user).
    fn wanted_state_event(&self, event: &CachedEvent, senders: &FxHashSet<String>) -> bool {
        let pdu = &event.pdu;
        let filter = self.filter;
        if !filter.state.matches(pdu) {
            return false;
        }
        let lazy = filter.state.lazy_load_members || filter.timeline.lazy_load_members;
        !(lazy
            && pdu.kind == TimelineEventType::RoomMember
            && pdu
                .state_key
                .as_deref()
                .is_some_and(|k| k != self.session.user_id.as_str() && !senders.contains(k)))
    }
}
