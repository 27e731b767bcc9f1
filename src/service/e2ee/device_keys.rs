//! A device's keys: its identity keys (a new upload replaces them and is a key change),
//! one-time keys (handed out in upload order, each once) and fallback
//! keys (one per algorithm, reused when one-time keys run out, marked used when claimed).

use std::collections::BTreeMap;

use ruma::{
    DeviceId, OneTimeKeyAlgorithm, OwnedOneTimeKeyId, UserId, encryption::DeviceKeys, serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{E2eeService, device_key};
use crate::{
    error::{Error, Result},
    storage::{Batch, codec::SEPARATOR, codec::prefix},
};

/// A fallback key (key: user ‖ device ‖ algorithm).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FallbackKey {
    pub key_id: String,
    pub key: Box<RawValue>,
    /// Claimed since it was uploaded (clients then upload a new one).
    pub used: bool,
}

/// A one-time key (key: user ‖ device ‖ algorithm ‖ upload count).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredOneTimeKey {
    pub key_id: String,
    pub key: Box<RawValue>,
}

/// What `/keys/upload` was given.
pub struct KeyUpload {
    pub device_keys: Option<Raw<DeviceKeys>>,
    pub one_time_keys: BTreeMap<OwnedOneTimeKeyId, Raw<ruma::encryption::OneTimeKey>>,
    pub fallback_keys: BTreeMap<OwnedOneTimeKeyId, Raw<ruma::encryption::OneTimeKey>>,
}

fn device_prefix(user: &UserId, device: &DeviceId) -> Vec<u8> {
    let mut out = prefix(user.as_str());
    out.extend_from_slice(device.as_str().as_bytes());
    out.push(SEPARATOR);
    out
}

impl E2eeService {
    /// Stores what a device uploads; returns its one-time key counts per algorithm. Checks
    /// everything before writing anything.
    pub fn upload_keys(
        &self,
        user: &UserId,
        device: &DeviceId,
        upload: KeyUpload,
    ) -> Result<BTreeMap<OneTimeKeyAlgorithm, u64>> {
        let _guard = self
            .device_locks
            .lock(&(user.to_owned(), device.to_string()));
        let mut batch = self.db.batch();
        let mut changed = false;
        if let Some(raw) = upload.device_keys {
            let keys: DeviceKeys = raw
                .deserialize()
                .map_err(|e| Error::bad_json(format!("Invalid device_keys: {e}")))?;
            if keys.user_id != user || keys.device_id != device {
                return Err(Error::invalid_param(
                    "device_keys must be for the device of the access token",
                ));
            }
            // New identity keys for a known device replace the old ones and are announced as a
            // change, as in Synapse (Complement's device-list tests rely on it); clients that
            // verified the old keys see the change through cross-signing.
            let key = device_key(user, device);
            let unchanged = self
                .device_keys
                .get(&key)?
                .is_some_and(|stored| stored.get() == raw.json().get());
            if !unchanged {
                self.device_keys.put(&mut batch, &key, &raw.into_json());
                changed = true;
            }
        }
        self.add_one_time_keys(&mut batch, user, device, upload.one_time_keys)?;
        for (key_id, key) in upload.fallback_keys {
            let record = FallbackKey {
                key_id: key_id.to_string(),
                key: key.into_json(),
                used: false,
            };
            let table_key = (
                user.as_str().to_owned(),
                device.as_str().to_owned(),
                key_id.algorithm().to_string(),
            );
            self.fallback_keys.put(&mut batch, &table_key, &record);
        }
        if changed {
            self.note_change_into(&mut batch, user)?;
        }
        self.db.write(batch)?;
        if changed {
            self.announce();
        }
        self.one_time_key_counts(user, device)
    }

    /// Adds new one-time keys to `batch`; an id already stored must come with the same key.
    fn add_one_time_keys(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device: &DeviceId,
        keys: BTreeMap<OwnedOneTimeKeyId, Raw<ruma::encryption::OneTimeKey>>,
    ) -> Result<()> {
        for (key_id, key) in keys {
            let id_key = (
                user.as_str().to_owned(),
                device.as_str().to_owned(),
                key_id.to_string(),
            );
            let algorithm = key_id.algorithm().to_string();
            if let Some(count) = self.one_time_key_ids.get(&id_key)? {
                let stored = self.one_time_keys.get(&(
                    id_key.0.clone(),
                    id_key.1.clone(),
                    algorithm,
                    count,
                ))?;
                let same = stored.is_some_and(|stored| {
                    serde_json::from_str::<serde_json::Value>(stored.key.get()).ok()
                        == serde_json::from_str::<serde_json::Value>(key.json().get()).ok()
                });
                if !same {
                    return Err(Error::invalid_param(format!(
                        "One-time key {key_id} already exists with a different key"
                    )));
                }
                continue;
            }
            let count = self.db.next_count()?;
            self.one_time_keys.put(
                batch,
                &(id_key.0.clone(), id_key.1.clone(), algorithm, count),
                &StoredOneTimeKey {
                    key_id: key_id.to_string(),
                    key: key.into_json(),
                },
            );
            self.one_time_key_ids.put(batch, &id_key, &count);
        }
        Ok(())
    }

    /// How many unclaimed one-time keys the device has, per algorithm.
    pub fn one_time_key_counts(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<BTreeMap<OneTimeKeyAlgorithm, u64>> {
        let mut counts = BTreeMap::new();
        for ((_, _, algorithm, _), _) in self
            .one_time_keys
            .scan_prefix(&device_prefix(user, device))?
        {
            *counts
                .entry(OneTimeKeyAlgorithm::from(algorithm.as_str()))
                .or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The algorithms of the device's fallback keys that were not claimed yet.
    pub fn unused_fallback_key_types(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Vec<String>> {
        Ok(self
            .fallback_keys
            .scan_prefix(&device_prefix(user, device))?
            .into_iter()
            .filter(|(_, key)| !key.used)
            .map(|((_, _, algorithm), _)| algorithm)
            .collect())
    }

    /// Claims one key of `algorithm` for a device: the oldest one-time key, else its fallback
    /// key (marked used). `None` when it has neither.
    pub fn claim_key(
        &self,
        user: &UserId,
        device: &DeviceId,
        algorithm: &str,
    ) -> Result<Option<(String, Box<RawValue>)>> {
        let _guard = self
            .device_locks
            .lock(&(user.to_owned(), device.to_string()));
        let mut algorithm_prefix = device_prefix(user, device);
        algorithm_prefix.extend_from_slice(algorithm.as_bytes());
        algorithm_prefix.push(SEPARATOR);
        let oldest = self.one_time_keys.first_with_prefix(&algorithm_prefix)?;
        let mut batch = self.db.batch();
        if let Some((key, stored)) = oldest {
            self.one_time_keys.delete(&mut batch, &key);
            self.one_time_key_ids
                .delete(&mut batch, &(key.0, key.1, stored.key_id.clone()));
            self.db.write(batch)?;
            return Ok(Some((stored.key_id, stored.key)));
        }
        let fallback_key = (
            user.as_str().to_owned(),
            device.as_str().to_owned(),
            algorithm.to_owned(),
        );
        let Some(mut fallback) = self.fallback_keys.get(&fallback_key)? else {
            return Ok(None);
        };
        if !fallback.used {
            fallback.used = true;
            self.fallback_keys.put(&mut batch, &fallback_key, &fallback);
            self.db.write(batch)?;
        }
        Ok(Some((fallback.key_id, fallback.key)))
    }

    /// The device's identity keys as uploaded.
    pub fn device_keys_of(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Option<Box<RawValue>>> {
        Ok(self.device_keys.get(&device_key(user, device))?)
    }

    /// Every device of the user with uploaded identity keys.
    pub fn all_device_keys(&self, user: &UserId) -> Result<Vec<(String, Box<RawValue>)>> {
        Ok(self
            .device_keys
            .scan_prefix(&prefix(user.as_str()))?
            .into_iter()
            .map(|((_, device), keys)| (device, keys))
            .collect())
    }
}
