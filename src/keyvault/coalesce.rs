//! Single-flight and a small TTL cache.
//!
//! [`SingleFlight`] runs one future per key at a time: callers asking for a key already in
//! flight wait for that run and get a clone of its result. The run is a spawned task, so it
//! finishes (and frees its key) even if the caller that started it gives up.
//! [`TtlCache`] keeps successful results for a fixed time.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

type Flight<V> = Shared<BoxFuture<'static, Option<V>>>;

/// Whether a caller started the run or joined one in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    Joined,
}

/// At most one run per key at a time.
pub struct SingleFlight<K, V> {
    flights: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            flights: Arc::default(),
        }
    }
}

impl<K, V> std::fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &lock(&self.flights).len())
            .finish()
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the run for `key`, or starts `start()` as a new one. `None` if the run panicked.
    pub async fn run<F>(&self, key: K, start: impl FnOnce() -> F) -> (Option<V>, Role)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, role) = {
            let mut flights = lock(&self.flights);
            match flights.get(&key) {
                Some(flight) => (flight.clone(), Role::Joined),
                None => {
                    let flight = self.spawn(key.clone(), start());
                    flights.insert(key, flight.clone());
                    (flight, Role::Leader)
                }
            }
        };
        (flight.await, role)
    }

    /// Runs `work` on its own task; the task removes its key when done. The key is inserted by
    /// the caller while it holds the lock, and the removal needs that lock, so it comes after.
    fn spawn<F>(&self, key: K, work: F) -> Flight<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let flights = self.flights.clone();
        let task = tokio::spawn(async move {
            let value = work.await;
            lock(&flights).remove(&key);
            value
        });
        async move { task.await.ok() }.boxed().shared()
    }
}

/// Successful results kept for `ttl` (zero disables it).
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> std::fmt::Debug for TtlCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = lock(&self.entries);
        entries
            .get(key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, v)| v.clone())
    }

    /// Stores `value`, dropping expired entries first so the map only holds live ones.
    pub fn put(&self, key: K, value: V) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        entries.retain(|_, (expires, _)| *expires > now);
        entries.insert(key, (now + self.ttl, value));
    }
}

/// A panic while holding these locks cannot leave the maps inconsistent; keep using them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        let flights: Arc<SingleFlight<&str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..50).map(|_| {
            let (flights, runs) = (flights.clone(), runs.clone());
            async move {
                flights
                    .run("k", || async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 7
                    })
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(v, _)| *v == Some(7)));
        assert_eq!(
            results.iter().filter(|(_, r)| *r == Role::Leader).count(),
            1
        );
        // The key is free again: a later call runs anew.
        let (v, role) = flights.run("k", || async { 1 }).await;
        assert_eq!((v, role), (Some(1), Role::Leader));
    }

    #[tokio::test]
    async fn run_survives_its_leader_being_dropped() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let leader = flights.run(1, || async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            9
        });
        let _ = tokio::time::timeout(Duration::from_millis(5), leader).await;
        let (v, role) = flights.run(1, || async { 0 }).await;
        assert_eq!((v, role), (Some(9), Role::Joined));
    }

    #[tokio::test]
    async fn ttl_cache_expires() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get(&"a"), None);
        let off = TtlCache::new(Duration::ZERO);
        off.put("a", 1);
        assert_eq!(off.get(&"a"), None);
    }
}
