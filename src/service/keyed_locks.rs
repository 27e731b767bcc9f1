//! Per-key mutexes (one per room, …) whose map entries live only while someone holds or waits
//! for them, so creating keys in a loop cannot grow the map forever.
//!
//! Why the removal is safe: an entry's `Arc` is cloned only under the map lock, and the guard
//! checks the count under the same lock after releasing its mutex. A count of two (the map's
//! and the guard's own) means nobody else holds or waits for it; a waiter that arrives later
//! creates a fresh entry, and since nobody holds the old one there is nothing to be excluded
//! from.

use std::{collections::HashMap, hash::Hash, sync::Arc};

use parking_lot::{ArcMutexGuard, Mutex, RawMutex};

/// A map of mutexes keyed by `K`.
pub struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Arc<Mutex<()>>>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// Holds the lock of one key; dropping it releases the lock and, when nobody else wants the
/// key, its map entry.
pub struct KeyedGuard<'a, K: Eq + Hash> {
    locks: &'a KeyedLocks<K>,
    key: Option<K>,
    guard: Option<ArcMutexGuard<RawMutex, ()>>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Blocks until the key's lock is ours. Call from blocking threads only.
    pub fn lock<Q>(&self, key: &Q) -> KeyedGuard<'_, K>
    where
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let key = key.to_owned();
        let lock = self.map.lock().entry(key.clone()).or_default().clone();
        KeyedGuard {
            locks: self,
            key: Some(key),
            guard: Some(Mutex::lock_arc(&lock)),
        }
    }
}

impl<K> KeyedLocks<K> {
    /// Keys with an entry (held or waited for).
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash> Drop for KeyedGuard<'_, K> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let lock = ArcMutexGuard::mutex(&guard).clone();
        drop(guard);
        let mut map = self.locks.map.lock();
        if let Some(key) = self.key.take()
            && Arc::strong_count(&lock) == 2
        {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_go_away_when_nobody_holds_them() {
        let locks: KeyedLocks<String> = KeyedLocks::default();
        for i in 0..100 {
            let _guard = locks.lock(format!("room{i}").as_str());
            assert_eq!(locks.len(), 1);
        }
        assert!(locks.is_empty());
    }

    #[test]
    fn one_holder_at_a_time_and_the_entry_stays_while_waited_for() {
        let locks: Arc<KeyedLocks<String>> = Arc::default();
        let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (locks, counter) = (locks.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        let _guard = locks.lock("room");
                        let seen = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let inside = counter.load(std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(inside, seen + 1, "nobody else got in");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no thread panicked");
        }
        assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), 2000);
        assert!(locks.is_empty());
    }
}
