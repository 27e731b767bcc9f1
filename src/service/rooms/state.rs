//! Room state: short ids for (type, state key) pairs, state snapshots stored as deltas against
//! a parent snapshot, and the materialized current state of each room.
//!
//! A snapshot is `parent + added − removed`. Every [`FULL_SNAPSHOT_EVERY`]th link in a chain is
//! stored whole, so loading one never walks more than that many deltas, while a room with a
//! million members does not copy its state on every state event.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use ruma::events::StateEventType;
use serde::{Deserialize, Serialize};

use crate::{
    error::Result,
    service::cache::{Cache, NumberKeys},
    storage::{Batch, Db, KeyCodec, Table, tables},
};

/// How many deltas may chain before a snapshot is stored whole.
pub const FULL_SNAPSHOT_EVERY: u32 = 32;

/// Full state: short state key → short event id.
pub type StateMap = HashMap<u64, u64>;

/// One stored snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StateDelta {
    pub parent: Option<u64>,
    /// Number of deltas between this snapshot and a whole one.
    pub chain: u32,
    pub added: Vec<(u64, u64)>,
    pub removed: Vec<u64>,
}

/// Owns short state keys, snapshots and current state.
pub struct StateStore {
    db: Db,
    short_by_key: Table<(String, String), u64>,
    key_by_short: Table<u64, (String, String)>,
    snapshots: Table<u64, StateDelta>,
    current: Table<(u64, u64), u64>,
    /// Short state keys are shared by all rooms: creating one is serialized, and the lock is
    /// held until the batch that writes it has landed (see [`StateStore::short_state_key_in`]).
    short_key_lock: Mutex<()>,
    /// Recently loaded snapshots (they never change).
    cache: Cache<u64, Arc<StateMap>, NumberKeys>,
    /// `(type, state key)` → short id; assigned once, never changed.
    short_keys: Cache<(String, String), u64>,
}

/// Snapshots kept in memory: a few per active room (current state, the start of recent
/// timelines).
const SNAPSHOTS_CACHED: usize = 1024;
/// Short state keys kept in memory (one per member of every busy room, and a few more).
const SHORT_KEYS_CACHED: usize = 16_384;

/// Held while a new short state key is being written: see [`StateStore::short_state_key_in`].
pub type NewShortKeyGuard<'a> = std::sync::MutexGuard<'a, ()>;

impl StateStore {
    pub fn new(db: Db) -> Self {
        Self {
            short_by_key: db.open_table(tables::STATE_KEY_SHORT_IDS),
            key_by_short: db.open_table(tables::STATE_KEYS_BY_SHORT),
            snapshots: db.open_table(tables::STATE_SNAPSHOTS),
            current: db.open_table(tables::CURRENT_STATE),
            db,
            short_key_lock: Mutex::new(()),
            cache: Cache::new(SNAPSHOTS_CACHED),
            short_keys: Cache::new(SHORT_KEYS_CACHED),
        }
    }

    /// The short id of `(event_type, state_key)`, if one was ever assigned.
    pub fn short_state_key(&self, event_type: &str, state_key: &str) -> Result<Option<u64>> {
        Ok(self
            .short_keys
            .get_or_load((event_type.to_owned(), state_key.to_owned()), |key| {
                self.short_by_key.get(key)
            })?)
    }

    /// The short id of `(event_type, state_key)`. A new one is written into `batch`, the
    /// event's own, so a crash never leaves an id behind without its event; the returned guard
    /// must then be held until that batch is written (or dropped), so that no other room assigns
    /// the same pair a second id in the meantime.
    pub fn short_state_key_in(
        &self,
        batch: &mut Batch,
        event_type: &str,
        state_key: &str,
    ) -> Result<(u64, Option<NewShortKeyGuard<'_>>)> {
        if let Some(short) = self.short_state_key(event_type, state_key)? {
            return Ok((short, None));
        }
        let key = (event_type.to_owned(), state_key.to_owned());
        let guard = self
            .short_key_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(short) = self.short_by_key.get(&key)? {
            return Ok((short, None));
        }
        let short = self.db.next_count()?;
        self.short_by_key.put(batch, &key, &short);
        self.key_by_short.put(batch, &short, &key);
        Ok((short, Some(guard)))
    }

    /// [`StateStore::short_state_key_in`] for many pairs at once: the lock is taken once for
    /// all the new keys, and the guard must be held until `batch` is written.
    pub fn short_state_keys_in(
        &self,
        batch: &mut Batch,
        pairs: &[(String, String)],
    ) -> Result<(Vec<u64>, Option<NewShortKeyGuard<'_>>)> {
        let mut shorts = Vec::with_capacity(pairs.len());
        let mut guard = None;
        let mut assigned: HashMap<&(String, String), u64> = HashMap::new();
        for pair in pairs {
            if let Some(short) = self.short_state_key(&pair.0, &pair.1)? {
                shorts.push(short);
                continue;
            }
            if guard.is_none() {
                guard = Some(
                    self.short_key_lock
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                );
            }
            if let Some(short) = assigned.get(pair) {
                shorts.push(*short);
                continue;
            }
            if let Some(short) = self.short_by_key.get(pair)? {
                shorts.push(short);
                continue;
            }
            let short = self.db.next_count()?;
            self.short_by_key.put(batch, pair, &short);
            self.key_by_short.put(batch, &short, pair);
            assigned.insert(pair, short);
            shorts.push(short);
        }
        Ok((shorts, guard))
    }

    /// `(event type, state key)` of a short state key.
    pub fn state_key_of(&self, short: u64) -> Result<Option<(StateEventType, String)>> {
        Ok(self
            .key_by_short
            .get(&short)?
            .map(|(t, k)| (StateEventType::from(t), k)))
    }

    /// Loads a whole snapshot.
    pub fn load(&self, hash: u64) -> Result<Arc<StateMap>> {
        let lookup = self.cache.get(&hash);
        if let Some(hit) = lookup.value {
            return Ok(hit);
        }
        let mut chain = Vec::new();
        let mut next = Some(hash);
        while let Some(current) = next {
            let delta = self.snapshots.get(&current)?.ok_or_else(|| {
                crate::error::Error::internal(format!("state snapshot {current} is missing"))
            })?;
            next = delta.parent;
            chain.push(delta);
        }
        let mut state = StateMap::new();
        for delta in chain.into_iter().rev() {
            for removed in delta.removed {
                state.remove(&removed);
            }
            state.extend(delta.added);
        }
        let state = Arc::new(state);
        self.cache.insert(hash, state.clone(), lookup.epoch);
        Ok(state)
    }

    /// Writes a snapshot equal to `parent` with `changes` applied (`None` event: removed) and
    /// returns its hash.
    pub fn derive(
        &self,
        batch: &mut Batch,
        parent: Option<u64>,
        changes: &[(u64, Option<u64>)],
    ) -> Result<u64> {
        let hash = self.db.next_count()?;
        let parent_delta = match parent {
            Some(p) => Some(self.snapshots.get(&p)?.unwrap_or_default()),
            None => None,
        };
        let delta = match (parent, parent_delta) {
            (Some(p), Some(parent_delta)) if parent_delta.chain + 1 < FULL_SNAPSHOT_EVERY => {
                StateDelta {
                    parent: Some(p),
                    chain: parent_delta.chain + 1,
                    added: changes
                        .iter()
                        .filter_map(|(k, v)| v.map(|v| (*k, v)))
                        .collect(),
                    removed: changes
                        .iter()
                        .filter(|(_, v)| v.is_none())
                        .map(|(k, _)| *k)
                        .collect(),
                }
            }
            _ => {
                let mut full = match parent {
                    Some(p) => (*self.load(p)?).clone(),
                    None => StateMap::new(),
                };
                for (key, event) in changes {
                    match event {
                        Some(event) => full.insert(*key, *event),
                        None => full.remove(key),
                    };
                }
                let mut added: Vec<(u64, u64)> = full.into_iter().collect();
                added.sort_unstable();
                StateDelta {
                    parent: None,
                    chain: 0,
                    added,
                    removed: Vec::new(),
                }
            }
        };
        self.snapshots.put(batch, &hash, &delta);
        Ok(hash)
    }

    /// The current state event (short id) of a room for a short state key.
    pub fn current_event(&self, short_room: u64, short_key: u64) -> Result<Option<u64>> {
        Ok(self.current.get(&(short_room, short_key))?)
    }

    /// Sets a current-state entry.
    pub fn set_current(
        &self,
        batch: &mut Batch,
        short_room: u64,
        short_key: u64,
        short_event: u64,
    ) {
        self.current
            .put(batch, &(short_room, short_key), &short_event);
    }

    /// The whole current state of a room: (short state key, short event id) pairs.
    pub fn current_state(&self, short_room: u64) -> Result<Vec<(u64, u64)>> {
        let prefix = short_room.encode();
        Ok(self
            .current
            .scan_prefix(&prefix)?
            .into_iter()
            .map(|((_, key), event)| (key, event))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;

    #[test]
    fn deltas_chain_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let store = StateStore::new(db.clone());
        let mut parent = None;
        for i in 0..(FULL_SNAPSHOT_EVERY as u64 * 2 + 3) {
            let mut batch = db.batch();
            let changes = [(i % 5, Some(100 + i)), (1000 + i, Some(i))];
            parent = Some(store.derive(&mut batch, parent, &changes).unwrap());
            db.write(batch).unwrap();
        }
        let mut batch = db.batch();
        let last = store.derive(&mut batch, parent, &[(1000, None)]).unwrap();
        db.write(batch).unwrap();
        store.cache.invalidate_all();
        let state = store.load(last).unwrap();
        let n = FULL_SNAPSHOT_EVERY as u64 * 2 + 3;
        assert_eq!(state.len(), 5 + (n as usize) - 1);
        assert_eq!(state.get(&((n - 1) % 5)), Some(&(100 + n - 1)));
        assert_eq!(state.get(&1000), None, "removed");
        assert_eq!(state.get(&1001), Some(&1));
    }

    /// Assigns (or finds) a short key in a batch of its own and writes it.
    fn short_key(store: &StateStore, db: &Db, event_type: &str, state_key: &str) -> u64 {
        let mut batch = db.batch();
        let (short, guard) = store
            .short_state_key_in(&mut batch, event_type, state_key)
            .unwrap();
        db.write(batch).unwrap();
        drop(guard);
        short
    }

    #[test]
    fn short_state_keys_are_stable() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let store = StateStore::new(db.clone());
        let a = short_key(&store, &db, "m.room.member", "@a:x");
        assert_eq!(short_key(&store, &db, "m.room.member", "@a:x"), a);
        assert_ne!(short_key(&store, &db, "m.room.member", "@b:x"), a);
        assert_eq!(store.state_key_of(a).unwrap().unwrap().1, "@a:x");
    }

    #[test]
    fn pairs_that_join_to_the_same_text_get_different_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let store = StateStore::new(db.clone());
        let first = short_key(&store, &db, "a\u{ff}", "b");
        let second = short_key(&store, &db, "a", "\u{ff}b");
        assert_ne!(first, second);
        let fresh = StateStore::new(db);
        assert_eq!(fresh.short_state_key("a\u{ff}", "b").unwrap(), Some(first));
        assert_eq!(fresh.short_state_key("a", "\u{ff}b").unwrap(), Some(second));
    }

    #[test]
    fn a_new_key_exists_only_once_its_batch_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &StorageConfig::default()).unwrap();
        let store = StateStore::new(db.clone());
        let mut batch = db.batch();
        let (short, guard) = store
            .short_state_key_in(&mut batch, "m.room.topic", "")
            .unwrap();
        assert!(guard.is_some(), "a new key holds the lock until written");
        // The event's batch is never written (a crash or a refused event): nothing is left.
        drop(batch);
        drop(guard);
        assert_eq!(store.short_state_key("m.room.topic", "").unwrap(), None);
        assert_eq!(store.state_key_of(short).unwrap(), None);
        let again = short_key(&store, &db, "m.room.topic", "");
        assert_eq!(store.state_key_of(again).unwrap().unwrap().1, "");
    }
}
