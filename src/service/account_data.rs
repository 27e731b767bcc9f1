//! Account data, global and per room (`m.direct`, `m.ignored_user_list`, tags, `m.fully_read`,
//! client settings), each write stamped with a stream position for `/sync`.

use ruma::{OwnedRoomId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::notifier::Notifier,
    storage::{Db, Table, codec, keys::AccountDataKey, tables},
};

/// One stored value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountDataRecord {
    pub content: Value,
    pub position: u64,
}

/// Largest account data value accepted, in bytes of JSON.
pub const MAX_CONTENT_BYTES: usize = 65_536;

/// Owns the `account_data` table.
pub struct AccountDataService {
    db: Db,
    data: Table<AccountDataKey, AccountDataRecord>,
    notifier: std::sync::Arc<Notifier>,
}

fn key(user: &UserId, room: Option<&RoomId>, kind: &str) -> AccountDataKey {
    AccountDataKey {
        user: user.to_string(),
        room: room.map(|room| room.as_str().to_owned()),
        kind: kind.to_owned(),
    }
}

impl AccountDataService {
    pub fn new(db: Db, notifier: std::sync::Arc<Notifier>) -> Self {
        Self {
            data: db.open_table(tables::ACCOUNT_DATA),
            db,
            notifier,
        }
    }

    /// Stores a value and wakes the user's syncs.
    pub fn set(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
        kind: &str,
        content: Value,
    ) -> Result<()> {
        if !content.is_object() {
            return Err(Error::bad_json("Account data must be a JSON object"));
        }
        if serde_json::to_vec(&content).map_err(Error::internal)?.len() > MAX_CONTENT_BYTES {
            return Err(Error::too_large(MAX_CONTENT_BYTES));
        }
        let stream = self.db.next_stream_position()?;
        let mut batch = self.db.batch();
        self.data.put(
            &mut batch,
            &key(user, room, kind),
            &AccountDataRecord {
                content,
                position: stream.position,
            },
        );
        self.db.write(batch)?;
        drop(stream);
        self.notifier.wake([user]);
        Ok(())
    }

    /// One value. An empty object is a deleted value (MSC3391: deleting stores `{}`, so that
    /// incremental syncs carry the deletion), and reads as absent.
    pub fn get(&self, user: &UserId, room: Option<&RoomId>, kind: &str) -> Result<Option<Value>> {
        Ok(self
            .data
            .get(&key(user, room, kind))?
            .map(|record| record.content)
            .filter(|content| !is_deleted(content)))
    }

    /// Deletes a value (MSC3391): stored as `{}`, which incremental syncs show and initial
    /// syncs and reads leave out.
    pub fn delete(&self, user: &UserId, room: Option<&RoomId>, kind: &str) -> Result<()> {
        self.set(user, room, kind, Value::Object(Default::default()))
    }

    /// Users this user ignores (`m.ignored_user_list`): their events are hidden from them.
    pub fn ignored_users(&self, user: &UserId) -> Result<Vec<String>> {
        Ok(self
            .get(user, None, "m.ignored_user_list")?
            .and_then(|c| {
                c.get("ignored_users")
                    .and_then(Value::as_object)
                    .map(|m| m.keys().cloned().collect())
            })
            .unwrap_or_default())
    }

    /// Values changed after `since` (all when `None`): (room, type, content).
    pub fn changed_since(
        &self,
        user: &UserId,
        since: Option<u64>,
        until: u64,
    ) -> Result<Vec<(Option<OwnedRoomId>, String, Value)>> {
        Ok(self
            .data
            .scan_prefix(&codec::prefix(user.as_str()))?
            .into_iter()
            .filter(|(_, record)| {
                since.is_none_or(|s| record.position > s) && record.position <= until
            })
            // An initial sync has no earlier value to delete: deleted values are left out.
            .filter(|(_, record)| since.is_some() || !is_deleted(&record.content))
            .filter_map(|(key, record)| {
                let room = match key.room {
                    Some(room) => Some(RoomId::parse(room).ok()?),
                    None => None,
                };
                Some((room, key.kind, record.content))
            })
            .collect())
    }
}

/// Whether stored content is a deleted value (an empty object, MSC3391).
fn is_deleted(content: &Value) -> bool {
    content.as_object().is_some_and(|o| o.is_empty())
}
