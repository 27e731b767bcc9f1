//! Typing notifications (in memory: they expire within seconds and mean nothing after a
//! restart) and read receipts (stored), each change stamped with a stream position for
//! `/sync`, and unread counts derived from the read receipts.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    service::Services,
    storage::{Db, Table, codec, keys::ReceiptKey, tables},
    util::now_millis,
};

/// Longest typing timeout honoured.
pub const MAX_TYPING_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct RoomTyping {
    users: HashMap<OwnedUserId, Instant>,
    position: u64,
}

/// One stored receipt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptRecord {
    pub user_id: OwnedUserId,
    pub receipt_type: String,
    pub event_id: ruma::OwnedEventId,
    pub thread_id: Option<String>,
    pub ts: u64,
    pub position: u64,
}

/// Typing state and receipts.
pub struct EphemeralService {
    db: Db,
    typing: Mutex<HashMap<OwnedRoomId, RoomTyping>>,
    receipts: Table<ReceiptKey, ReceiptRecord>,
    /// Per room: the stream position of its newest receipt (0: none).
    latest_receipt: crate::service::cache::Cache<OwnedRoomId, u64>,
    /// Unread counts per (user, room); a receipt invalidates its user's entry.
    pub(crate) unread: crate::service::cache::Cache<
        (OwnedUserId, OwnedRoomId),
        std::sync::Arc<crate::service::unread::UnreadState>,
    >,
}

impl EphemeralService {
    pub fn new(db: Db) -> Self {
        Self {
            receipts: db.open_table(tables::RECEIPTS),
            db,
            typing: Mutex::new(HashMap::new()),
            unread: crate::service::cache::Cache::new(crate::service::unread::CACHED_ROOMS),
            latest_receipt: crate::service::cache::Cache::new(crate::service::unread::CACHED_ROOMS),
        }
    }

    fn typing(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedRoomId, RoomTyping>> {
        self.typing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts (`Some(timeout)`) or stops typing. Returns whether anything changed.
    fn set_typing(&self, room: &RoomId, user: &UserId, timeout: Option<Duration>) -> Result<bool> {
        let position = self.db.next_count()?;
        let mut rooms = self.typing();
        let entry = rooms.entry(room.to_owned()).or_default();
        let changed = match timeout {
            Some(timeout) => entry
                .users
                .insert(user.to_owned(), Instant::now() + timeout)
                .is_none(),
            None => entry.users.remove(user).is_some(),
        };
        entry.position = position;
        Ok(changed || timeout.is_some())
    }

    /// Drops typing entries whose time is up; returns whether any was dropped.
    fn expire(&self, room: &RoomId) -> Result<bool> {
        let now = Instant::now();
        let mut rooms = self.typing();
        let Some(entry) = rooms.get_mut(room) else {
            return Ok(false);
        };
        let before = entry.users.len();
        entry.users.retain(|_, until| *until > now);
        if entry.users.len() == before {
            return Ok(false);
        }
        drop(rooms);
        let position = self.db.next_count()?;
        if let Some(entry) = self.typing().get_mut(room) {
            entry.position = position;
        }
        Ok(true)
    }

    /// The `m.typing` event of a room if it changed after `since` (initial syncs get it only
    /// when someone is typing).
    pub fn typing_event(&self, room: &RoomId, since: Option<u64>) -> Option<Value> {
        let now = Instant::now();
        let rooms = self.typing();
        let entry = rooms.get(room)?;
        let mut users: Vec<&OwnedUserId> = entry
            .users
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(u, _)| u)
            .collect();
        users.sort();
        let relevant = match since {
            Some(since) => entry.position > since,
            None => !users.is_empty(),
        };
        relevant.then(|| json!({ "type": "m.typing", "content": { "user_ids": users } }))
    }

    /// Stores a receipt.
    fn put_receipt(&self, room: &RoomId, record: &ReceiptRecord) -> Result<()> {
        let key = ReceiptKey {
            room: room.to_string(),
            user: record.user_id.to_string(),
            receipt_type: record.receipt_type.clone(),
            thread: record.thread_id.clone().unwrap_or_default(),
        };
        let mut batch = self.db.batch();
        self.receipts.put(&mut batch, &key, record);
        self.db.write(batch)?;
        self.unread
            .invalidate(&(record.user_id.clone(), room.to_owned()));
        self.latest_receipt
            .update(&room.to_owned(), |latest| (*latest).max(record.position));
        Ok(())
    }

    /// The `m.receipt` event of a room with receipts changed after `since`, as `viewer` may
    /// see them (private receipts only their own).
    pub fn receipt_event(
        &self,
        room: &RoomId,
        since: Option<u64>,
        viewer: &UserId,
    ) -> Result<Option<Value>> {
        // Most rooms in most syncs have no new receipt: known without reading any.
        let lookup = self.latest_receipt.get(&room.to_owned());
        if let Some(latest) = lookup.value
            && (latest == 0 || since.is_some_and(|s| latest <= s))
        {
            return Ok(None);
        }
        let mut content: Map<String, Value> = Map::new();
        let mut latest = 0;
        for (_, record) in self.receipts.scan_prefix(&codec::prefix(room.as_str()))? {
            latest = latest.max(record.position);
            if since.is_some_and(|s| record.position <= s) {
                continue;
            }
            if record.receipt_type == "m.read.private" && record.user_id != viewer {
                continue;
            }
            let mut receipt = json!({ "ts": record.ts });
            if let Some(thread) = &record.thread_id {
                receipt["thread_id"] = json!(thread);
            }
            let by_event = content
                .entry(record.event_id.to_string())
                .or_insert_with(|| json!({}));
            by_event[&record.receipt_type][record.user_id.as_str()] = receipt;
        }
        if lookup.value.is_none() {
            self.latest_receipt
                .insert(room.to_owned(), latest, lookup.epoch);
        }
        Ok((!content.is_empty()).then(|| json!({ "type": "m.receipt", "content": content })))
    }

    /// The receipts of a user in a room for one thread (`""` for unthreaded receipts):
    /// the events they point at.
    pub fn read_receipts(
        &self,
        room: &RoomId,
        user: &UserId,
        thread: &str,
    ) -> Result<Vec<ruma::OwnedEventId>> {
        let mut events = Vec::new();
        for receipt_type in ["m.read", "m.read.private"] {
            let key = ReceiptKey {
                room: room.to_string(),
                user: user.to_string(),
                receipt_type: receipt_type.to_owned(),
                thread: thread.to_owned(),
            };
            if let Some(record) = self.receipts.get(&key)? {
                events.push(record.event_id);
            }
        }
        Ok(events)
    }
}

impl Services {
    /// `PUT /rooms/{roomId}/typing/{userId}`. Blocking.
    pub fn set_typing(
        &self,
        room: &RoomId,
        user: &UserId,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if !self.rooms.members.is_joined(user, room)? {
            return Err(Error::forbidden("You are not in this room"));
        }
        if self
            .ephemeral
            .set_typing(room, user, timeout.map(|t| t.min(MAX_TYPING_TIMEOUT)))?
        {
            self.wake_members(room)?;
        }
        Ok(())
    }

    /// Ends typing notifications whose timeout passed, waking the room if one ended.
    pub fn expire_typing(&self, room: &RoomId) -> Result<()> {
        if self.ephemeral.expire(room)? {
            self.wake_members(room)?;
        }
        Ok(())
    }

    fn wake_members(&self, room: &RoomId) -> Result<()> {
        let members: Vec<OwnedUserId> = self
            .rooms
            .members
            .members_with_membership(room)?
            .into_iter()
            .filter(|(_, m)| m == "join")
            .map(|(user, _)| user)
            .collect();
        self.notifier.wake(members.iter().map(|u| &**u));
        Ok(())
    }

    /// `POST /rooms/{roomId}/receipt/{type}/{eventId}` (and read markers). Blocking.
    pub fn send_receipt(
        &self,
        room: &RoomId,
        user: &UserId,
        receipt_type: &str,
        event_id: &ruma::EventId,
        thread_id: Option<String>,
    ) -> Result<()> {
        if !self.rooms.members.is_joined(user, room)? {
            return Err(Error::forbidden("You are not in this room"));
        }
        if self
            .rooms
            .timeline
            .get_pdu(event_id)?
            .is_none_or(|pdu| pdu.room_id != room)
        {
            return Err(Error::not_found("Event not found in this room"));
        }
        match receipt_type {
            "m.fully_read" => {
                self.account_data.set(
                    user,
                    Some(room),
                    "m.fully_read",
                    json!({ "event_id": event_id }),
                )?;
                return Ok(());
            }
            "m.read" | "m.read.private" => {}
            other => {
                return Err(Error::invalid_param(format!(
                    "Unknown receipt type {other}"
                )));
            }
        }
        // A user with pushers gets a badge update when the receipt changes the badge.
        let badge_before = match self.push.pushers.may_have_pushers(user) {
            true => Some(self.badge_count(user)?),
            false => None,
        };
        let stream = self.db.next_stream_position()?;
        let record = ReceiptRecord {
            user_id: user.to_owned(),
            receipt_type: receipt_type.to_owned(),
            event_id: event_id.to_owned(),
            thread_id,
            ts: now_millis(),
            position: stream.position,
        };
        self.ephemeral.put_receipt(room, &record)?;
        drop(stream);
        self.prune_read_marks(room, user)?;
        if receipt_type == "m.read.private" {
            self.notifier.wake([user]);
        } else {
            self.wake_members(room)?;
        }
        if let Some(before) = badge_before
            && self.badge_count(user)? != before
        {
            self.push.queue_badge_update(&self.db, user)?;
        }
        Ok(())
    }
}
