//! Unread counts of a room for a user: the events their push rules said `notify` for (see
//! `push::evaluate`) after what their read receipts cover, and those with a highlight tweak.
//! Unthreaded receipts cover everything; `main` and thread receipts cover their own timeline.
//!
//! Counting scans the user's push marks after the read position. What a scan found is
//! cached per (user, room), so the next sync only scans events newer than the last one counted. A new receipt
//! (the cache entry is invalidated), a new membership or any redaction (both compared on
//! lookup) starts the count over.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use ruma::{RoomId, UserId};

use crate::{error::Result, service::Services};

/// How many (user, room) counts are kept in memory (a few hundred bytes each).
pub const CACHED_ROOMS: usize = 16_384;

/// Unread counts of a room: (notifications, highlights) for the main timeline and per thread.
#[derive(Clone, Debug, Default)]
pub struct UnreadCounts {
    pub main: (u64, u64),
    pub threads: BTreeMap<String, (u64, u64)>,
}

/// A count and what it was derived from.
#[derive(Clone, Debug)]
pub struct UnreadState {
    /// The membership position the count started from.
    since_join: u64,
    /// `RoomService::redaction_count` when the count started.
    redactions: u64,
    /// Read position of unthreaded receipts.
    base: u64,
    /// Read position of the main timeline.
    main_read: u64,
    /// Read positions of threads met so far.
    thread_read: HashMap<String, u64>,
    /// Every event up to here is counted.
    scanned_to: u64,
    counts: UnreadCounts,
}

impl Services {
    /// Unread counts of `room` (short id `short_room`) for `user`, joined at position `since_join`, counting events
    /// up to position `until` (the sync's watermark: positions above it may still be in
    /// flight, so counting them now could skip one that lands later). Blocking.
    pub fn unread_counts(
        &self,
        room: &RoomId,
        short_room: u64,
        user: &UserId,
        since_join: u64,
        until: u64,
    ) -> Result<UnreadCounts> {
        let key = (user.to_owned(), room.to_owned());
        // Read before scanning: a redaction landing during the scan then forces a recount.
        let redactions = self.rooms.timeline.redaction_count();
        let lookup = self.ephemeral.unread.get(&key);
        let mut state = match lookup.value {
            Some(cached)
                if cached.since_join == since_join
                    && cached.redactions == redactions
                    && cached.scanned_to <= until =>
            {
                if cached.scanned_to == until {
                    return Ok(cached.counts.clone());
                }
                (*cached).clone()
            }
            _ => {
                let base = self.read_position(room, user, "", since_join)?;
                let main_read = base.max(self.read_position(room, user, "main", since_join)?);
                UnreadState {
                    since_join,
                    redactions,
                    base,
                    main_read,
                    thread_read: HashMap::new(),
                    scanned_to: base,
                    counts: UnreadCounts::default(),
                }
            }
        };
        self.count_unread(room, user, short_room, until, &mut state)?;
        let counts = state.counts.clone();
        self.ephemeral
            .unread
            .insert(key, Arc::new(state), lookup.epoch);
        Ok(counts)
    }

    /// Whether the user's receipts cover the event at `count` (in `thread`, if any).
    pub fn is_read(
        &self,
        room: &RoomId,
        user: &UserId,
        count: u64,
        thread: Option<&str>,
    ) -> Result<bool> {
        let base = self.read_position(room, user, "", 0)?;
        let own = self.read_position(room, user, thread.unwrap_or("main"), 0)?;
        Ok(count <= base.max(own))
    }

    /// Deletes the user's push marks in `room` that their receipts now cover (after a new
    /// receipt): counting never reads them again, so they need not be kept. Blocking.
    pub fn prune_read_marks(&self, room: &RoomId, user: &UserId) -> Result<()> {
        let Some((short_room, _)) = self.rooms.registry.room(room)? else {
            return Ok(());
        };
        let base = self.read_position(room, user, "", 0)?;
        let main_read = base.max(self.read_position(room, user, "main", 0)?);
        let mut thread_read: HashMap<String, u64> = HashMap::new();
        let notifications = &self.push.notifications;
        let mut batch = self.db.batch();
        let mut dead = 0usize;
        for (count, mark) in notifications.marks(user, short_room, 0, u64::MAX - 1)? {
            let read = match &mark.thread {
                None => main_read,
                Some(root) => match thread_read.get(root) {
                    Some(read) => *read,
                    None => {
                        let read = base.max(self.read_position(room, user, root, 0)?);
                        thread_read.insert(root.clone(), read);
                        read
                    }
                },
            };
            if count <= read {
                notifications.forget_mark_into(&mut batch, user, short_room, count);
                dead += 1;
            }
        }
        if dead > 0 {
            self.db.write(batch)?;
        }
        Ok(())
    }

    /// The newest position the user's receipts for `thread` ("" = unthreaded) cover.
    fn read_position(
        &self,
        room: &RoomId,
        user: &UserId,
        thread: &str,
        since_join: u64,
    ) -> Result<u64> {
        let mut position = since_join;
        for event in self.ephemeral.read_receipts(room, user, thread)? {
            if let Some(location) = self.rooms.timeline.location(&event)? {
                position = position.max(location.count);
            }
        }
        Ok(position)
    }

    /// Counts the notifications in `(state.scanned_to, until]` into `state`: the events the
    /// user's push rules said `notify` for (a highlight tweak makes them highlights too).
    fn count_unread(
        &self,
        room: &RoomId,
        user: &UserId,
        short_room: u64,
        until: u64,
        state: &mut UnreadState,
    ) -> Result<()> {
        let marks = self
            .push
            .notifications
            .marks(user, short_room, state.scanned_to, until)?;
        for (count, mark) in marks {
            let already_read = match &mark.thread {
                Some(root) => {
                    let read = match state.thread_read.get(root) {
                        Some(read) => *read,
                        None => {
                            let read = state.base.max(self.read_position(
                                room,
                                user,
                                root,
                                state.since_join,
                            )?);
                            state.thread_read.insert(root.clone(), read);
                            read
                        }
                    };
                    count <= read
                }
                None => count <= state.main_read,
            };
            if already_read {
                continue;
            }
            let slot = match mark.thread {
                Some(root) => state.counts.threads.entry(root).or_default(),
                None => &mut state.counts.main,
            };
            slot.0 += 1;
            if mark.highlight {
                slot.1 += 1;
            }
        }
        state.scanned_to = until;
        Ok(())
    }
}
