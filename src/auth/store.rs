//! The bounded map of cached identities: least recently used entries are evicted beyond the
//! capacity, and entries unused for the idle TTL are dropped.
//!
//! Hand-written (a `HashMap` plus last-use instants): with at most a few thousand entries and one
//! lookup per mount, the linear eviction scan costs microseconds, and it avoids a dependency.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct LruStore<K, V> {
    capacity: usize,
    idle_ttl: Duration,
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash + Clone, V: Clone> LruStore<K, V> {
    pub(crate) fn new(capacity: usize, idle_ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            idle_ttl,
            entries: HashMap::new(),
        }
    }

    /// The entry for `key`, marked as just used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let now = Instant::now();
        self.expire(now);
        let (value, used) = self.entries.get_mut(key)?;
        *used = now;
        Some(value.clone())
    }

    /// Inserts (or replaces) `key`, evicting the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        let now = Instant::now();
        self.expire(now);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        self.entries.insert(key, (value, now));
    }

    /// Removes `key` if its value satisfies `predicate` (e.g. is still the value the caller saw).
    pub(crate) fn remove_if(&mut self, key: &K, predicate: impl FnOnce(&V) -> bool) {
        if self
            .entries
            .get(key)
            .is_some_and(|(value, _)| predicate(value))
        {
            self.entries.remove(key);
        }
    }

    pub(crate) fn len(&mut self) -> usize {
        self.expire(Instant::now());
        self.entries.len()
    }

    fn expire(&mut self, now: Instant) {
        let ttl = self.idle_ttl;
        self.entries
            .retain(|_, (_, used)| now.saturating_duration_since(*used) < ttl);
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut store = LruStore::new(2, Duration::from_secs(60));
        store.insert("a", 1);
        std::thread::sleep(Duration::from_millis(2));
        store.insert("b", 2);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(store.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(2));
        store.insert("c", 3);
        assert_eq!(store.get(&"b"), None);
        assert_eq!(store.get(&"a"), Some(1));
        assert_eq!(store.get(&"c"), Some(3));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn drops_idle_entries() {
        // Wide margins: a loaded machine may oversleep by hundreds of milliseconds.
        let mut store = LruStore::new(10, Duration::from_millis(1000));
        store.insert("a", 1);
        store.insert("b", 2);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(store.get(&"a"), Some(1));
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(store.get(&"b"), None);
        assert_eq!(store.get(&"a"), Some(1));
        store.remove_if(&"a", |v| *v == 2);
        assert_eq!(store.len(), 1);
        store.remove_if(&"a", |v| *v == 1);
        assert_eq!(store.len(), 0);
    }
}
