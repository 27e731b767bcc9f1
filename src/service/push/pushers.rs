//! Pushers: where a user's devices want their notifications sent. A pusher belongs to the
//! device whose access token created it, and goes when that device goes (logout, deletion,
//! password change).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use ruma::{
    DeviceId, OwnedUserId, UserId,
    api::client::push::{Pusher, PusherIds, PusherKind},
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    service::users::sessions::DeviceHook,
    storage::{Batch, Db, Table, codec::prefix, tables},
};

/// The path every HTTP pusher's URL must end with (the Push Gateway API's endpoint).
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// A stored pusher.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PusherRecord {
    pub pusher: Pusher,
    /// The device whose token created it.
    pub device_id: String,
    /// When it was created or last updated (milliseconds since the epoch): `pushkey_ts`.
    pub updated_ms: u64,
}

/// Owns the pushers table.
pub struct Pushers {
    db: Db,
    table: Table<(String, String, String), PusherRecord>,
    /// Users who may have a pusher: a superset (a user is added before their first pusher is
    /// written and dropped only at the next start), so event evaluation skips the table for
    /// everyone else without ever missing a pusher.
    users: RwLock<HashSet<OwnedUserId>>,
    /// One writer at a time: `append: false` looks at other users' pushers.
    write_lock: std::sync::Mutex<()>,
}

fn key(user: &UserId, ids: &PusherIds) -> (String, String, String) {
    (
        user.as_str().to_owned(),
        ids.app_id.clone(),
        ids.pushkey.clone(),
    )
}

impl Pushers {
    pub fn new(db: &Db) -> Result<Arc<Self>> {
        let table = db.open_table(tables::PUSHERS);
        let users = table
            .scan_all()?
            .into_iter()
            .filter_map(|((user, _, _), _)| UserId::parse(user).ok())
            .collect();
        Ok(Arc::new(Self {
            db: db.clone(),
            table,
            users: RwLock::new(users),
            write_lock: Default::default(),
        }))
    }

    /// Whether `user` may have a pusher (see `users`).
    pub fn may_have_pushers(&self, user: &UserId) -> bool {
        self.users
            .read()
            .map(|users| users.contains(user))
            .unwrap_or(true)
    }

    /// The user's pushers.
    pub fn of(&self, user: &UserId) -> Result<Vec<PusherRecord>> {
        Ok(self
            .table
            .scan_prefix(&prefix(user.as_str()))?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    /// One pusher of the user.
    pub fn get(&self, user: &UserId, ids: &PusherIds) -> Result<Option<PusherRecord>> {
        Ok(self.table.get(&key(user, ids))?)
    }

    /// Creates or replaces a pusher. Without `append`, pushers of other users with the same
    /// app id and pushkey are removed (the spec: one pushkey, one user, unless appended).
    pub fn set(
        &self,
        user: &UserId,
        device: &DeviceId,
        pusher: Pusher,
        append: bool,
        now_ms: u64,
    ) -> Result<()> {
        check(&pusher)?;
        let _guard = self.write_lock.lock().map_err(Error::internal)?;
        let mut batch = self.db.batch();
        if !append {
            for ((owner, app_id, pushkey), _) in self.table.scan_all()? {
                if owner != user.as_str()
                    && app_id == pusher.ids.app_id
                    && pushkey == pusher.ids.pushkey
                {
                    self.table.delete(&mut batch, &(owner, app_id, pushkey));
                }
            }
        }
        let record = PusherRecord {
            device_id: device.to_string(),
            updated_ms: now_ms,
            pusher,
        };
        self.users
            .write()
            .map_err(Error::internal)?
            .insert(user.to_owned());
        self.table
            .put(&mut batch, &key(user, &record.pusher.ids), &record);
        self.db.write(batch)?;
        Ok(())
    }

    /// Removes one pusher (unknown ones are ignored, as the spec's delete is idempotent).
    pub fn remove(&self, user: &UserId, ids: &PusherIds) -> Result<()> {
        let _guard = self.write_lock.lock().map_err(Error::internal)?;
        let mut batch = self.db.batch();
        self.table.delete(&mut batch, &key(user, ids));
        self.db.write(batch)?;
        Ok(())
    }
}

impl DeviceHook for Pushers {
    fn remove_device_into(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<()> {
        for (key, record) in self.table.scan_prefix(&prefix(user.as_str()))? {
            if record.device_id == device.as_str() {
                self.table.delete(batch, &key);
            }
        }
        Ok(())
    }
}

/// The spec's rules for a pusher a client sets.
fn check(pusher: &Pusher) -> Result<()> {
    if pusher.ids.app_id.is_empty() || pusher.ids.app_id.len() > 64 {
        return Err(Error::invalid_param("app_id must be 1 to 64 characters"));
    }
    if pusher.ids.pushkey.is_empty() || pusher.ids.pushkey.len() > 512 {
        return Err(Error::invalid_param("pushkey must be 1 to 512 bytes"));
    }
    match &pusher.kind {
        PusherKind::Http(http) => {
            let url = reqwest::Url::parse(&http.url)
                .map_err(|e| Error::invalid_param(format!("data.url is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.path() != NOTIFY_PATH {
                return Err(Error::invalid_param(format!(
                    "data.url must be an http(s) URL ending in {NOTIFY_PATH}"
                )));
            }
            Ok(())
        }
        PusherKind::Email(_) => Err(Error::invalid_param(
            "Email pushers are not supported by this server",
        )),
        _ => Err(Error::invalid_param("Unknown pusher kind")),
    }
}
