//! The newest events of each room, by timeline position, kept in memory: syncs read a room's
//! latest events on every request, and a RocksDB reverse scan per room (iterator, seek,
//! steps back through memtable and files) was most of an initial sync's cost.
//!
//! An entry lists every event of its room from `floor` up. Appends extend it in place (under
//! the room lock, after the write and before the position is released to sync tokens, so a
//! sync whose token covers an event finds it listed); a cold entry is read from RocksDB.

use std::sync::Arc;

use super::timeline::Timeline;
use crate::error::Result;

/// Events read when an entry is built, and the least kept when it is trimmed.
pub const RECENT_KEPT: usize = 50;

/// Every event of a room at or after `floor`, oldest first, as (position, short event id).
#[derive(Clone, Debug, Default)]
pub struct RecentEvents {
    pub floor: u64,
    pub events: Vec<(u64, u64)>,
}

impl RecentEvents {
    /// The entry with one more event (trimmed back to [`RECENT_KEPT`] when it doubled).
    fn with(&self, position: u64, short_event: u64) -> Self {
        // Already listed: the entry was read from RocksDB after the event's write.
        if self
            .events
            .last()
            .is_some_and(|(last, _)| *last >= position)
        {
            return self.clone();
        }
        let mut events = self.events.clone();
        events.push((position, short_event));
        let mut floor = self.floor;
        if events.len() >= 2 * RECENT_KEPT {
            events.drain(..events.len() - RECENT_KEPT);
            floor = events[0].0;
        }
        Self { floor, events }
    }
}

impl Timeline {
    /// The newest events of a room (see the module documentation).
    pub fn recent_events(&self, short_room: u64) -> Result<Arc<RecentEvents>> {
        let lookup = self.recent.get(&short_room);
        if let Some(recent) = lookup.value {
            return Ok(recent);
        }
        let rows = self.rows_newest_first(short_room, (0, u64::MAX));
        let mut events = Vec::new();
        for row in rows.take(RECENT_KEPT) {
            let (position, raw) = row?;
            if let Some(event) = self.cached_event_from_row(position, &raw)? {
                events.push((position.1, event.location.short_event));
            }
        }
        events.reverse();
        // Fewer than asked for: that is the whole room.
        let floor = match events.first() {
            Some((oldest, _)) if events.len() >= RECENT_KEPT => *oldest,
            _ => 0,
        };
        let recent = Arc::new(RecentEvents { floor, events });
        self.recent.insert(short_room, recent.clone(), lookup.epoch);
        Ok(recent)
    }

    /// Records an appended event. Call after its write, before its stream position is
    /// released.
    pub(super) fn note_appended(&self, short_room: u64, position: u64, short_event: u64) {
        self.recent.update(&short_room, |recent| {
            Arc::new(recent.with(position, short_event))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_extend_and_trim_keeps_a_complete_suffix() {
        let mut recent = RecentEvents::default();
        for n in 1..=(2 * RECENT_KEPT as u64) {
            recent = recent.with(n * 10, n);
        }
        assert_eq!(recent.events.len(), RECENT_KEPT);
        let newest = 2 * RECENT_KEPT as u64;
        assert_eq!(recent.events.last(), Some(&(newest * 10, newest)));
        // Everything from the floor up is listed.
        assert_eq!(recent.floor, recent.events[0].0);
        assert_eq!(recent.floor, (RECENT_KEPT as u64 + 1) * 10);
        let again = recent.with(newest * 10, newest);
        assert_eq!(
            again.events.len(),
            RECENT_KEPT,
            "an event already listed is not added twice"
        );
    }
}
