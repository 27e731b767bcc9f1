//! What push-rule evaluation decided, stored with the event: a mark per (user, room, event)
//! for unread counts, and an entry in the user's notification list for `GET /notifications`.
//! Both are written in the event's own batch, so a notification is never lost or counted
//! twice across a crash.

use ruma::{UserId, push::Action};
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    storage::{Batch, Db, Encoded, KeyCodec, Table, tables},
};

/// One notifying event, for a user's counts (key: user ‖ short room ‖ stream count).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushMark {
    pub highlight: bool,
    /// The thread root when the event is in a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

/// One entry of a user's notification list (key: user ‖ stream count).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub short_room: u64,
    pub room_id: String,
    pub event_id: String,
    pub actions: Vec<Action>,
    pub highlight: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// When the notification was generated (milliseconds since the epoch).
    pub ts: u64,
}

/// A notification with its rows encoded, ready to be written for many users.
pub struct PreparedNotification {
    pub record: NotificationRecord,
    mark: Encoded<PushMark>,
    entry: Encoded<NotificationRecord>,
}

/// Owns the push-mark and notification-list tables.
pub struct Notifications {
    marks: Table<(String, u64, u64), PushMark>,
    list: Table<(String, u64), NotificationRecord>,
}

impl Notifications {
    pub fn new(db: &Db) -> Self {
        Self {
            marks: db.open_table(tables::PUSH_ACTIONS),
            list: db.open_table(tables::NOTIFICATIONS),
        }
    }

    /// `notification` encoded once, for every user who gets it.
    pub fn prepare(&self, notification: NotificationRecord) -> PreparedNotification {
        let mark = PushMark {
            highlight: notification.highlight,
            thread: notification.thread.clone(),
        };
        PreparedNotification {
            mark: Encoded::new(&mark),
            entry: Encoded::new(&notification),
            record: notification,
        }
    }

    /// Adds a notification for `user` at stream position `count` to `batch`.
    pub fn record_into(
        &self,
        batch: &mut Batch,
        user: &UserId,
        count: u64,
        notification: &PreparedNotification,
    ) {
        let user = user.as_str().to_owned();
        self.marks.put_encoded(
            batch,
            &(user.clone(), notification.record.short_room, count),
            &notification.mark,
        );
        self.list
            .put_encoded(batch, &(user, count), &notification.entry);
    }

    /// Adds the removal of the user's notification for the event at `count` to `batch` (the
    /// event was redacted). Nothing happens when there is none.
    pub fn forget_into(&self, batch: &mut Batch, user: &UserId, short_room: u64, count: u64) {
        let user = user.as_str().to_owned();
        self.marks.delete(batch, &(user.clone(), short_room, count));
        self.list.delete(batch, &(user, count));
    }

    /// Adds the removal of the user's mark for the event at `count` to `batch` (read: it
    /// counts no more), keeping its entry in the notification list.
    pub fn forget_mark_into(&self, batch: &mut Batch, user: &UserId, short_room: u64, count: u64) {
        self.marks
            .delete(batch, &(user.as_str().to_owned(), short_room, count));
    }

    /// The user's marks in a room at positions `(after, until]`, oldest first.
    pub fn marks(
        &self,
        user: &UserId,
        short_room: u64,
        after: u64,
        until: u64,
    ) -> Result<Vec<(u64, PushMark)>> {
        let user = user.as_str().to_owned();
        let start = (user.clone(), short_room, after.saturating_add(1)).encode();
        let end = (user, short_room, until.saturating_add(1)).encode();
        self.marks
            .iter_range(&start, &end, false)
            .map(|row| Ok(row.map(|((_, _, count), mark)| (count, mark))?))
            .collect()
    }

    /// Deletes every notification-list entry generated before `cutoff_ms` (milliseconds since
    /// the epoch); returns how many went. Blocking: one pass over the table.
    pub fn sweep_older_than(&self, db: &Db, cutoff_ms: u64) -> Result<usize> {
        /// Deletions per write, so one pass never builds a huge batch.
        const PER_BATCH: usize = 10_000;
        #[derive(Deserialize)]
        struct Age {
            ts: u64,
        }
        let mut batch = db.batch();
        let (mut pending, mut swept) = (0, 0);
        for row in self.list.iter_range_raw(&[], &[0xff], false) {
            let (key, value) = row?;
            let Ok(Age { ts }) = serde_json::from_slice::<Age>(&value) else {
                continue;
            };
            if ts >= cutoff_ms {
                continue;
            }
            self.list.delete(&mut batch, &key);
            pending += 1;
            if pending == PER_BATCH {
                db.write(std::mem::replace(&mut batch, db.batch()))?;
                swept += pending;
                pending = 0;
            }
        }
        if pending > 0 {
            db.write(batch)?;
            swept += pending;
        }
        Ok(swept)
    }

    /// Up to `limit` of the user's notifications below position `before` (from the newest
    /// when `None`) that `keep` accepts, newest first.
    pub fn newest_first(
        &self,
        user: &UserId,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&NotificationRecord) -> bool,
    ) -> Result<Vec<(u64, NotificationRecord)>> {
        let user = user.as_str().to_owned();
        let start = (user.clone(), 0).encode();
        let end = (user, before.unwrap_or(u64::MAX)).encode();
        let mut found = Vec::new();
        for row in self.list.iter_range(&start, &end, true) {
            let ((_, count), record) = row?;
            if keep(&record) {
                found.push((count, record));
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }
}
