//! A bounded in-memory cache of values derived from stored data, safe against stale fills.
//!
//! Eviction is by generations: when the current map is full it becomes the previous one and
//! the old previous one is dropped; a hit in the previous map moves the entry forward. That is
//! close to LRU at the cost of one hash lookup, with memory bounded by twice the generation.
//!
//! Staleness: a writer that changes what an entry was derived from calls
//! [`Cache::invalidate`] *after* its write lands; that bumps an epoch. A reader takes the epoch
//! with its lookup and passes it back to [`Cache::insert`], which drops the value if any
//! invalidation happened in between — the value may have been read before the write.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, RandomState},
    sync::Mutex,
};

struct Generations<K, V, S> {
    current: HashMap<K, V, S>,
    previous: HashMap<K, V, S>,
    /// Bumped by every invalidation.
    epoch: u64,
}

/// See the module documentation. `S` hashes keys: the default resists chosen keys; caches
/// keyed by server-assigned numbers use [`NumberKeys`].
pub struct Cache<K, V, S = RandomState> {
    inner: Mutex<Generations<K, V, S>>,
    generation_size: usize,
}

/// Fast hashing for keys the server assigns itself (short ids, stream positions).
pub type NumberKeys = rustc_hash::FxBuildHasher;

/// A lookup's answer: the value if cached, and the epoch to insert a freshly derived one with.
pub struct Lookup<V> {
    pub value: Option<V>,
    pub epoch: u64,
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher + Default> Cache<K, V, S> {
    /// A cache holding between `capacity / 2` and `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Generations {
                current: HashMap::default(),
                previous: HashMap::default(),
                epoch: 0,
            }),
            generation_size: (capacity / 2).max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations<K, V, S>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &K) -> Lookup<V> {
        let mut generations = self.lock();
        let epoch = generations.epoch;
        if let Some(hit) = generations.current.get(key) {
            return Lookup {
                value: Some(hit.clone()),
                epoch,
            };
        }
        if let Some((key, hit)) = generations.previous.remove_entry(key) {
            self.put(&mut generations, key, hit.clone());
            return Lookup {
                value: Some(hit),
                epoch,
            };
        }
        Lookup { value: None, epoch }
    }

    /// The cached value, or what `load` reads (cached when found). For values that never
    /// change once stored (ids, locations, links), so nothing invalidates them.
    pub fn get_or_load<E>(
        &self,
        key: K,
        load: impl FnOnce(&K) -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E> {
        let lookup = self.get(&key);
        if lookup.value.is_some() {
            return Ok(lookup.value);
        }
        let value = load(&key)?;
        if let Some(value) = &value {
            self.insert(key, value.clone(), lookup.epoch);
        }
        Ok(value)
    }

    /// Caches a value derived after the lookup that returned `epoch`, unless an invalidation
    /// happened since.
    pub fn insert(&self, key: K, value: V, epoch: u64) {
        let mut generations = self.lock();
        if generations.epoch == epoch {
            self.put(&mut generations, key, value);
        }
    }

    fn put(&self, generations: &mut Generations<K, V, S>, key: K, value: V) {
        if generations.current.len() >= self.generation_size
            && !generations.current.contains_key(&key)
        {
            generations.previous = std::mem::take(&mut generations.current);
        }
        generations.current.insert(key, value);
    }

    /// Forgets an entry whose source changed. Call after the change is written.
    pub fn invalidate(&self, key: &K) {
        let mut generations = self.lock();
        generations.epoch += 1;
        generations.current.remove(key);
        generations.previous.remove(key);
    }

    /// Replaces an entry by `change(entry)` if it is cached, and — cached or not — stops
    /// inserts of values derived before this call, like [`Cache::invalidate`]. For entries
    /// that follow appends (the change is applied here instead of being re-derived). Call after
    /// the change is written.
    pub fn update(&self, key: &K, change: impl FnOnce(&V) -> V) {
        let mut generations = self.lock();
        generations.epoch += 1;
        if let Some(value) = generations.current.get_mut(key) {
            *value = change(value);
        } else if let Some(value) = generations.previous.get_mut(key) {
            *value = change(value);
        }
    }

    /// Forgets everything. Call after the change is written.
    pub fn invalidate_all(&self) {
        let mut generations = self.lock();
        generations.epoch += 1;
        generations.current.clear();
        generations.previous.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.current.len() + generations.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_bound_the_size_and_keep_recent_hits() {
        let cache: Cache<u64, &str, NumberKeys> = Cache::new(4);
        cache.insert(0, "a", 0);
        cache.insert(1, "b", 0);
        // The first generation is full: 2 starts a new one, 0 and 1 become the previous one.
        cache.insert(2, "c", 0);
        assert_eq!(
            cache.get(&0).value,
            Some("a"),
            "a previous hit moves forward"
        );
        // Current {2, 0} is full: it becomes previous, 3 starts a new one, 1 is dropped.
        cache.insert(3, "d", 0);
        assert_eq!(cache.get(&1).value, None);
        assert_eq!(cache.get(&2).value, Some("c"));
        assert!(cache.len() <= 4);
    }

    #[test]
    fn an_invalidation_stops_a_stale_insert() {
        let cache: Cache<u64, &str> = Cache::new(8);
        let lookup = cache.get(&7);
        assert_eq!(lookup.value, None);
        cache.invalidate(&7);
        cache.insert(7, "stale", lookup.epoch);
        assert_eq!(
            cache.get(&7).value,
            None,
            "read before the change: not cached"
        );
        let lookup = cache.get(&7);
        cache.insert(7, "fresh", lookup.epoch);
        assert_eq!(cache.get(&7).value, Some("fresh"));
        cache.invalidate_all();
        assert_eq!(cache.get(&7).value, None);
    }

    #[test]
    fn get_or_load_reads_once_and_never_caches_absence() {
        let cache: Cache<u64, u32, NumberKeys> = Cache::new(8);
        let mut reads = 0;
        let mut load = |found: Option<u32>| {
            reads += 1;
            Ok::<_, ()>(found)
        };
        assert_eq!(cache.get_or_load(1, |_| load(None)), Ok(None));
        assert_eq!(cache.get_or_load(1, |_| load(Some(5))), Ok(Some(5)));
        assert_eq!(cache.get_or_load(1, |_| load(Some(6))), Ok(Some(5)));
        assert_eq!(reads, 2);
    }

    #[test]
    fn an_update_changes_a_cached_entry_and_stops_stale_inserts() {
        let cache: Cache<u64, u32, NumberKeys> = Cache::new(8);
        let lookup = cache.get(&1);
        cache.update(&1, |n| n + 1);
        cache.insert(1, 10, lookup.epoch);
        assert_eq!(
            cache.get(&1).value,
            None,
            "derived before the update: dropped"
        );
        let lookup = cache.get(&1);
        cache.insert(1, 10, lookup.epoch);
        cache.update(&1, |n| n + 1);
        assert_eq!(cache.get(&1).value, Some(11));
    }
}
