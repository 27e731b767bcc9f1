//! End-to-end encryption support: the server stores and routes keys, never plaintext.
//!
//! - `device_keys`: identity keys, one-time keys and fallback keys of each device, and
//!   claiming them (`/keys/upload`, `/keys/claim`);
//! - `cross_signing`: master, self-signing and user-signing keys and the signatures between
//!   keys (`/keys/device_signing/upload`, `/keys/signatures/upload`);
//! - `query`: what `/keys/query` shows to whom;
//! - `changes`: the key-change stream behind `device_lists` in `/sync` and `/keys/changes`;
//! - `backup`: server-side key backup (`/room_keys/…`).
//!
//! Keys are keyed by full user id (not localpart) so devices of remote users can be cached in
//! the same tables once federation arrives.

pub mod backup;
pub mod changes;
pub mod cross_signing;
pub mod device_keys;
pub mod query;
mod signatures;

use std::sync::Arc;

use ruma::{DeviceId, OwnedUserId, UserId};
use serde_json::value::RawValue;

use crate::{
    error::Result,
    service::{keyed_locks::KeyedLocks, users::sessions::DeviceHook},
    storage::{Batch, Db, Table, codec::prefix, tables},
};

pub use device_keys::{FallbackKey, StoredOneTimeKey};

/// Owns the E2EE tables.
pub struct E2eeService {
    db: Db,
    /// Device identity keys as uploaded. Key: (user id, device id).
    device_keys: Table<(String, String), Box<RawValue>>,
    /// One-time keys in upload order. Key: (user id, device id, algorithm, upload count).
    one_time_keys: Table<(String, String, String, u64), StoredOneTimeKey>,
    /// Which one-time key ids a device has (for idempotent re-uploads). Key: (user id, device
    /// id, full key id). Value: the upload count under which the key is stored.
    one_time_key_ids: Table<(String, String, String), u64>,
    /// Key: (user id, device id, algorithm).
    fallback_keys: Table<(String, String, String), FallbackKey>,
    /// Cross-signing keys. Key: (user id, `master` | `self_signing` | `user_signing`).
    cross_signing_keys: Table<(String, String), Box<RawValue>>,
    /// Signatures uploaded for others' keys. Key: (target user, target key id, signer).
    /// Value: the signer's signatures of that key (key id → signature).
    signatures: Table<(String, String, String), std::collections::BTreeMap<String, String>>,
    /// The key-change stream. Key: stream position. Value: the user whose keys changed.
    key_changes: Table<u64, String>,
    /// Claims and uploads of one device are serialized: two claims never get the same key.
    device_locks: KeyedLocks<(OwnedUserId, String)>,
    /// Cross-signing and signature uploads of one user are serialized.
    user_locks: KeyedLocks<OwnedUserId>,
    /// The newest key-change position written or about to be (see `changes`).
    pending_change: std::sync::atomic::AtomicU64,
    /// Wakes the task that wakes syncs for key changes.
    changed: tokio::sync::Notify,
    pub backup: backup::KeyBackup,
}

fn device_key(user: &UserId, device: &DeviceId) -> (String, String) {
    (user.as_str().to_owned(), device.as_str().to_owned())
}

impl E2eeService {
    pub fn new(db: &Db) -> Arc<Self> {
        Arc::new(Self {
            device_keys: db.open_table(tables::DEVICE_KEYS),
            one_time_keys: db.open_table(tables::ONE_TIME_KEYS),
            one_time_key_ids: db.open_table(tables::ONE_TIME_KEY_IDS),
            fallback_keys: db.open_table(tables::FALLBACK_KEYS),
            cross_signing_keys: db.open_table(tables::CROSS_SIGNING_KEYS),
            signatures: db.open_table(tables::KEY_SIGNATURES),
            key_changes: db.open_table(tables::KEY_CHANGES),
            device_locks: KeyedLocks::default(),
            user_locks: KeyedLocks::default(),
            pending_change: Default::default(),
            changed: tokio::sync::Notify::new(),
            backup: backup::KeyBackup::new(db),
            db: db.clone(),
        })
    }
}

/// A new device is a key change of its user (others must refetch the device list); a
/// removed device takes its keys with it, and is a key change too.
impl DeviceHook for E2eeService {
    fn device_added_into(
        &self,
        batch: &mut Batch,
        user: &UserId,
        _device: &DeviceId,
    ) -> Result<()> {
        self.note_change_into(batch, user)?;
        self.announce();
        Ok(())
    }

    fn remove_device_into(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<()> {
        let key = device_key(user, device);
        self.device_keys.delete(batch, &key);
        let mut device_prefix = prefix(user.as_str());
        device_prefix.extend_from_slice(device.as_str().as_bytes());
        device_prefix.push(crate::storage::codec::SEPARATOR);
        for (key, _) in self.one_time_keys.scan_prefix(&device_prefix)? {
            self.one_time_keys.delete(batch, &key);
        }
        for (key, _) in self.one_time_key_ids.scan_prefix(&device_prefix)? {
            self.one_time_key_ids.delete(batch, &key);
        }
        for (key, _) in self.fallback_keys.scan_prefix(&device_prefix)? {
            self.fallback_keys.delete(batch, &key);
        }
        // The batch holds the change's stream position until it lands with the removal.
        self.note_change_into(batch, user)?;
        self.announce();
        Ok(())
    }
}
