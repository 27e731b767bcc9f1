//! Room timelines for `/sync`: a room's events between two positions (the newest from memory,
//! see `rooms::recent`, older ones from RocksDB) and what `unsigned` adds for the viewer.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::{
    SyncContext,
    render::{Timeline, TimelineEvent},
};
use crate::{error::Result, service::rooms::event_cache::CachedEvent};

impl SyncContext<'_> {
    /// Timeline events of a room in `(since, until]` that pass the timeline filter, the
    /// newest `timeline_limit`, oldest first; and whether more matching events were left out.
    /// The room's newest events come from memory (see `rooms::recent`); older ones, when
    /// needed, from RocksDB.
    pub(super) fn timeline(
        &self,
        short_room: u64,
        since: u64,
        until: u64,
    ) -> Result<(Vec<Arc<CachedEvent>>, bool)> {
        let rooms = &self.services.rooms;
        let filter = &self.filter.timeline;
        let limit = self.filter.timeline_limit;
        let mut events = Vec::new();
        let mut visibility = FxHashMap::default();
        // Takes an event (newest first); answers whether the walk is over: `Some(limited)`.
        let mut take = |event: Arc<CachedEvent>| -> Result<Option<bool>> {
            if !filter.matches(&event.pdu)
                || !rooms.user_can_see_cached(
                    &self.session.user_id,
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
        let recent = rooms.timeline.recent_events(short_room)?;
        let mut limited = None;
        for &(position, short_event) in recent.events.iter().rev() {
            if position > until {
                continue;
            }
            if position <= since {
                limited = Some(false);
                break;
            }
            if let Some(event) = rooms.timeline.cached_event(short_event)?
                && let Some(done) = take(event)?
            {
                limited = Some(done);
                break;
            }
        }
        // Not decided by the newest events and the room has older ones: read on below them.
        if limited.is_none() && recent.floor > since.saturating_add(1) {
            let range = (
                since.saturating_add(1),
                recent.floor.min(until.saturating_add(1)),
            );
            for row in rooms.timeline.rows_newest_first(short_room, range) {
                let (position, raw) = row?;
                if let Some(event) = rooms.timeline.cached_event_from_row(position, &raw)?
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

    /// A room's `timeline` section: the events with what `unsigned` adds for the viewer —
    /// their membership at the event, their transaction id on their own events and, with
    /// `aggregations` (joined rooms), aggregations — and `prev_batch`, just before the first event (`from` with none).
    pub(super) fn timeline_section(
        &self,
        events: Vec<Arc<CachedEvent>>,
        limited: bool,
        from: u64,
        aggregations: bool,
    ) -> Result<Timeline> {
        let rooms = &self.services.rooms;
        let prev_batch = events
            .first()
            .map_or(from, |e| e.location.count.saturating_sub(1));
        let mut timeline = Vec::with_capacity(events.len());
        let mut memberships = FxHashMap::default();
        for event in events {
            let mut unsigned = Map::new();
            let membership = rooms.membership_at(
                &self.session.user_id,
                &event.pdu,
                &event.location,
                &mut memberships,
            )?;
            unsigned.insert("membership".into(), Value::String(membership));
            if let Some(txn) = rooms.transaction_id_for(&event.pdu, &event.location, self.session) {
                unsigned.insert("transaction_id".into(), Value::String(txn.to_owned()));
            }
            if aggregations
                && let Some(relations) = rooms.aggregations(&event.pdu, Some(self.session))?
            {
                unsigned.insert("m.relations".into(), relations);
            }
            timeline.push(TimelineEvent { event, unsigned });
        }
        Ok(Timeline {
            events: timeline,
            limited,
            prev_batch,
        })
    }
}
