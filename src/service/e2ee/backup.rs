//! Server-side key backup (`/room_keys/…`): versions of a user's backup and the encrypted
//! room keys in them. Only the newest version takes new keys; a key replaces a stored one
//! only if it is better (verified first, then a lower first message index, then fewer
//! forwarding hops), as the spec says.

use std::collections::BTreeMap;

use ruma::UserId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    error::{Error, Result},
    storage::{Db, KeyCodec, Table, codec::SEPARATOR, tables},
};

/// A backup version (key: user ‖ version).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupVersion {
    /// `{"algorithm": …, "auth_data": …}` as the client gave it.
    pub algorithm: Box<RawValue>,
    /// Changes whenever the keys in the version change.
    pub etag: u64,
}

/// The parts of a backed-up key the replacement rules compare.
#[derive(Deserialize)]
struct KeyRank {
    #[serde(default)]
    is_verified: bool,
    #[serde(default)]
    first_message_index: u64,
    #[serde(default)]
    forwarded_count: u64,
}

/// Whether `new` should replace `current` (the spec's rules; equal keys stay).
fn better(new: &KeyRank, current: &KeyRank) -> bool {
    if new.is_verified != current.is_verified {
        return new.is_verified;
    }
    if new.first_message_index != current.first_message_index {
        return new.first_message_index < current.first_message_index;
    }
    new.forwarded_count < current.forwarded_count
}

/// Room id → session id → key data.
pub type BackedUpKeys = BTreeMap<String, BTreeMap<String, Box<RawValue>>>;

/// Owns the backup tables.
pub struct KeyBackup {
    db: Db,
    versions: Table<(String, u64), BackupVersion>,
    keys: Table<(String, u64, String, String), Box<RawValue>>,
    lock: std::sync::Mutex<()>,
}

/// A version string as a number; unknown strings name no version.
pub fn parse_version(version: &str) -> Result<u64> {
    version
        .parse()
        .map_err(|_| Error::not_found("Unknown backup version"))
}

/// The prefix of every key of one version (user ‖ 0xFF ‖ version).
fn version_prefix(user: &UserId, version: u64) -> Vec<u8> {
    (user.as_str().to_owned(), version).encode()
}

impl KeyBackup {
    pub fn new(db: &Db) -> Self {
        Self {
            db: db.clone(),
            versions: db.open_table(tables::BACKUP_VERSIONS),
            keys: db.open_table(tables::BACKUP_KEYS),
            lock: Default::default(),
        }
    }

    fn guard(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.lock.lock().map_err(Error::internal)
    }

    /// Creates a new version (the newest); returns its number.
    pub fn create_version(&self, user: &UserId, algorithm: Box<RawValue>) -> Result<u64> {
        check_algorithm(&algorithm)?;
        let _guard = self.guard()?;
        let next = self.latest_number(user)?.map_or(1, |v| v + 1);
        let mut batch = self.db.batch();
        self.versions.put(
            &mut batch,
            &(user.as_str().to_owned(), next),
            &BackupVersion { algorithm, etag: 0 },
        );
        self.db.write(batch)?;
        Ok(next)
    }

    fn latest_number(&self, user: &UserId) -> Result<Option<u64>> {
        let prefix = crate::storage::codec::prefix(user.as_str());
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xFF; 9]);
        Ok(self
            .versions
            .range(&prefix, &end, true, 1)?
            .into_iter()
            .next()
            .map(|((_, version), _)| version))
    }

    /// A version and how many keys it holds (the newest when `None`).
    pub fn version(
        &self,
        user: &UserId,
        version: Option<u64>,
    ) -> Result<(u64, BackupVersion, u64)> {
        let number = match version {
            Some(number) => number,
            None => self
                .latest_number(user)?
                .ok_or_else(|| Error::not_found("No current backup version"))?,
        };
        let record = self
            .versions
            .get(&(user.as_str().to_owned(), number))?
            .ok_or_else(|| Error::not_found("Unknown backup version"))?;
        let count = self.keys.scan_prefix(&version_prefix(user, number))?.len() as u64;
        Ok((number, record, count))
    }

    /// Replaces a version's `auth_data`; its algorithm may not change.
    pub fn update_version(
        &self,
        user: &UserId,
        version: u64,
        algorithm: Box<RawValue>,
    ) -> Result<()> {
        check_algorithm(&algorithm)?;
        let _guard = self.guard()?;
        let key = (user.as_str().to_owned(), version);
        let mut record = self
            .versions
            .get(&key)?
            .ok_or_else(|| Error::not_found("Unknown backup version"))?;
        let name = |raw: &RawValue| {
            serde_json::from_str::<serde_json::Value>(raw.get())
                .ok()
                .and_then(|v| v.get("algorithm").cloned())
        };
        if name(&record.algorithm) != name(&algorithm) {
            return Err(Error::invalid_param(
                "The algorithm of a backup version cannot change",
            ));
        }
        record.algorithm = algorithm;
        let mut batch = self.db.batch();
        self.versions.put(&mut batch, &key, &record);
        self.db.write(batch)?;
        Ok(())
    }

    /// Deletes a version and its keys.
    pub fn delete_version(&self, user: &UserId, version: u64) -> Result<()> {
        let _guard = self.guard()?;
        let key = (user.as_str().to_owned(), version);
        if self.versions.get(&key)?.is_none() {
            return Err(Error::not_found("Unknown backup version"));
        }
        let mut batch = self.db.batch();
        self.versions.delete(&mut batch, &key);
        for (key, _) in self.keys.scan_prefix(&version_prefix(user, version))? {
            self.keys.delete(&mut batch, &key);
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Adds keys to the newest version (the only one that takes keys); returns etag and count.
    pub fn put_keys(&self, user: &UserId, version: u64, keys: BackedUpKeys) -> Result<(u64, u64)> {
        let _guard = self.guard()?;
        let version_key = (user.as_str().to_owned(), version);
        let mut record = self
            .versions
            .get(&version_key)?
            .ok_or_else(|| Error::not_found("Unknown backup version"))?;
        let latest = self.latest_number(user)?;
        if latest != Some(version) {
            return Err(Error::wrong_room_keys_version(
                latest.map(|v| v.to_string()),
            ));
        }
        let mut batch = self.db.batch();
        let mut changed = false;
        for (room, sessions) in keys {
            for (session, data) in sessions {
                let new: KeyRank = serde_json::from_str(data.get())
                    .map_err(|e| Error::bad_json(format!("Invalid key backup data: {e}")))?;
                let key = (user.as_str().to_owned(), version, room.clone(), session);
                let replace = match self.keys.get(&key)? {
                    None => true,
                    Some(current) => serde_json::from_str::<KeyRank>(current.get())
                        .map_or(true, |current| better(&new, &current)),
                };
                if replace {
                    self.keys.put(&mut batch, &key, &data);
                    changed = true;
                }
            }
        }
        if changed {
            record.etag += 1;
            self.versions.put(&mut batch, &version_key, &record);
            self.db.write(batch)?;
        }
        let count = self.keys.scan_prefix(&version_prefix(user, version))?.len() as u64;
        Ok((record.etag, count))
    }

    /// Keys of a version: all, one room's, or one session's.
    pub fn keys(
        &self,
        user: &UserId,
        version: u64,
        room: Option<&str>,
        session: Option<&str>,
    ) -> Result<BackedUpKeys> {
        self.version(user, Some(version))?;
        let mut prefix = version_prefix(user, version);
        if let Some(room) = room {
            prefix.extend_from_slice(room.as_bytes());
            prefix.push(SEPARATOR);
            if let Some(session) = session {
                let key = (
                    user.as_str().to_owned(),
                    version,
                    room.to_owned(),
                    session.to_owned(),
                );
                let mut out = BackedUpKeys::new();
                if let Some(data) = self.keys.get(&key)? {
                    out.entry(room.to_owned())
                        .or_default()
                        .insert(session.to_owned(), data);
                }
                return Ok(out);
            }
        }
        let mut out = BackedUpKeys::new();
        for ((_, _, room, session), data) in self.keys.scan_prefix(&prefix)? {
            out.entry(room).or_default().insert(session, data);
        }
        Ok(out)
    }

    /// Deletes keys of a version (all, a room's or a session's); returns etag and count.
    pub fn delete_keys(
        &self,
        user: &UserId,
        version: u64,
        room: Option<&str>,
        session: Option<&str>,
    ) -> Result<(u64, u64)> {
        let doomed = self.keys(user, version, room, session)?;
        let _guard = self.guard()?;
        let version_key = (user.as_str().to_owned(), version);
        let mut record = self
            .versions
            .get(&version_key)?
            .ok_or_else(|| Error::not_found("Unknown backup version"))?;
        let mut batch = self.db.batch();
        let mut changed = false;
        for (room, sessions) in doomed {
            for session in sessions.into_keys() {
                self.keys.delete(
                    &mut batch,
                    &(user.as_str().to_owned(), version, room.clone(), session),
                );
                changed = true;
            }
        }
        if changed {
            record.etag += 1;
            self.versions.put(&mut batch, &version_key, &record);
            self.db.write(batch)?;
        }
        let count = self.keys.scan_prefix(&version_prefix(user, version))?.len() as u64;
        Ok((record.etag, count))
    }
}

/// A version's algorithm must be `{"algorithm": "<name>", "auth_data": {…}}`: it is handed
/// back to every device of the user, which must be able to read it.
fn check_algorithm(algorithm: &RawValue) -> Result<()> {
    let value: serde_json::Value = serde_json::from_str(algorithm.get())
        .map_err(|e| Error::bad_json(format!("Invalid backup algorithm: {e}")))?;
    match (value.get("algorithm"), value.get("auth_data")) {
        (None, _) => Err(Error::missing_param("Missing algorithm")),
        (_, None) => Err(Error::missing_param("Missing auth_data")),
        (Some(name), Some(auth_data)) if name.is_string() && auth_data.is_object() => Ok(()),
        _ => Err(Error::bad_json(
            "algorithm must be a string and auth_data an object",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(is_verified: bool, first_message_index: u64, forwarded_count: u64) -> KeyRank {
        KeyRank {
            is_verified,
            first_message_index,
            forwarded_count,
        }
    }

    #[test]
    fn the_better_key_wins() {
        assert!(
            better(&rank(true, 9, 9), &rank(false, 0, 0)),
            "verified first"
        );
        assert!(!better(&rank(false, 0, 0), &rank(true, 9, 9)));
        assert!(
            better(&rank(false, 1, 9), &rank(false, 2, 0)),
            "then the lower index"
        );
        assert!(
            better(&rank(false, 1, 0), &rank(false, 1, 1)),
            "then fewer hops"
        );
        assert!(
            !better(&rank(false, 1, 1), &rank(false, 1, 1)),
            "equal keys stay"
        );
    }
}
