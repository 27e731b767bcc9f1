//! Unread counts of a room for a user: messages (and encrypted messages) from others after
//! what their read receipts cover, and those of them that mention the user — per the default
//! push rules for messages and mentions (custom push rules come with push support).
//! Unthreaded receipts cover everything; `main` and thread receipts cover their own timeline.
//!
//! Counting scans the events after the read position. What a scan found is cached per (user,
//! room), so the next sync only scans events newer than the last one counted. A new receipt
//! (the cache entry is invalidated), a new membership or any redaction (both compared on
//! lookup) starts the count over.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use ruma::{RoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use crate::{
    error::{Error, Result},
    service::{Services, rooms::relations::relation_in},
};

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

/// What unread counting reads of a stored event; everything else is skipped unparsed.
#[derive(Deserialize)]
struct UnreadProbe<'a> {
    #[serde(borrow)]
    sender: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    content: &'a RawValue,
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

    /// Counts the events in `(state.scanned_to, until]` into `state`.
    fn count_unread(
        &self,
        room: &RoomId,
        user: &UserId,
        short_room: u64,
        until: u64,
        state: &mut UnreadState,
    ) -> Result<()> {
        let rows = self.rooms.timeline.rows_newest_first(
            short_room,
            (state.scanned_to.saturating_add(1), until.saturating_add(1)),
        );
        for row in rows {
            let ((_, count), raw) = row?;
            let event: UnreadProbe = serde_json::from_slice(&raw)
                .map_err(|e| Error::internal(format!("stored event unreadable: {e}")))?;
            if event.sender == user.as_str()
                || (event.kind != "m.room.message" && event.kind != "m.room.encrypted")
            {
                continue;
            }
            let content: Value = serde_json::from_str(event.content.get()).unwrap_or_default();
            let thread = relation_in(&content)
                .filter(|(rel_type, _)| rel_type == "m.thread")
                .map(|(_, root)| root.to_string());
            let already_read = match &thread {
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
            let mentions = &content["m.mentions"];
            let mentioned = mentions["room"] == true
                || mentions["user_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|id| id == user.as_str()));
            let slot = match thread {
                Some(root) => state.counts.threads.entry(root).or_default(),
                None => &mut state.counts.main,
            };
            slot.0 += 1;
            if mentioned {
                slot.1 += 1;
            }
        }
        state.scanned_to = until;
        Ok(())
    }
}
