//! Single-flight and a small TTL cache.
//!
//! [`SingleFlight`] runs one future per key at a time: callers asking for a key already in
//! flight wait for that run and get a clone of its result. The run is a spawned task, so a
//! caller that gives up does not take the run away from the others still waiting for it; when
//! the last waiting caller gives up (its mount failed or was cancelled), the run is aborted, so
//! no fetch outlives every mount that wanted it. A guard frees the key whatever way the run
//! ends (result, panic, abort): a key can never stay taken by a run that is gone.
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

/// One run in flight: its shared result, the callers still waiting for it, and its task.
struct Entry<V> {
    /// Tells this run apart from a later run of the same key.
    id: u64,
    flight: Flight<V>,
    waiters: usize,
    task: tokio::task::AbortHandle,
}

struct Flights<K, V> {
    next_id: u64,
    entries: HashMap<K, Entry<V>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            next_id: 0,
            entries: HashMap::new(),
        }
    }
}

type FlightMap<K, V> = Arc<Mutex<Flights<K, V>>>;

/// At most one run per key at a time.
pub struct SingleFlight<K, V> {
    flights: FlightMap<K, V>,
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
            .field("in_flight", &lock(&self.flights).entries.len())
            .finish()
    }
}

/// Frees the key of run `id` when dropped, unless a later run holds the key by then.
struct KeyGuard<K: Eq + Hash, V> {
    flights: FlightMap<K, V>,
    key: Option<K>,
    id: u64,
}

impl<K: Eq + Hash, V> Drop for KeyGuard<K, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut flights = lock(&self.flights);
            if flights.entries.get(&key).is_some_and(|e| e.id == self.id) {
                flights.entries.remove(&key);
            }
        }
    }
}

/// One caller waiting for run `id`; the last one to give up aborts the run.
struct Waiter<K: Eq + Hash, V> {
    flights: FlightMap<K, V>,
    key: Option<K>,
    id: u64,
}

impl<K: Eq + Hash, V> Waiter<K, V> {
    /// The run delivered: this caller no longer counts as waiting, and aborts nothing.
    fn finished(mut self) {
        if let Some(key) = self.key.take() {
            let mut flights = lock(&self.flights);
            if let Some(entry) = flights.entries.get_mut(&key).filter(|e| e.id == self.id) {
                entry.waiters = entry.waiters.saturating_sub(1);
            }
        }
    }
}

impl<K: Eq + Hash, V> Drop for Waiter<K, V> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut flights = lock(&self.flights);
        let Some(entry) = flights.entries.get_mut(&key).filter(|e| e.id == self.id) else {
            return;
        };
        entry.waiters = entry.waiters.saturating_sub(1);
        if entry.waiters == 0 {
            // Nobody wants the result any more: stop the fetch and free the key now.
            entry.task.abort();
            flights.entries.remove(&key);
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the run for `key`, or starts `start()` as a new one. `None` if the run panicked or
    /// was aborted.
    pub async fn run<F>(&self, key: K, start: impl FnOnce() -> F) -> (Option<V>, Role)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (flight, role, waiter) = {
            let mut flights = lock(&self.flights);
            let joined = flights.entries.get_mut(&key).map(|entry| {
                entry.waiters += 1;
                (entry.flight.clone(), entry.id)
            });
            match joined {
                Some((flight, id)) => (flight, Role::Joined, self.waiter(key, id)),
                None => {
                    let id = flights.next_id;
                    flights.next_id = flights.next_id.wrapping_add(1);
                    let (flight, task) = self.spawn(key.clone(), id, start());
                    flights.entries.insert(
                        key.clone(),
                        Entry {
                            id,
                            flight: flight.clone(),
                            waiters: 1,
                            task,
                        },
                    );
                    (flight, Role::Leader, self.waiter(key, id))
                }
            }
        };
        let value = flight.await;
        waiter.finished();
        (value, role)
    }

    fn waiter(&self, key: K, id: u64) -> Waiter<K, V> {
        Waiter {
            flights: self.flights.clone(),
            key: Some(key),
            id,
        }
    }

    /// Runs `work` on its own task. The task's guard frees the key when the task ends in any
    /// way; the key is inserted by the caller while it holds the lock, and the removal needs that
    /// lock, so it comes after.
    fn spawn<F>(&self, key: K, id: u64, work: F) -> (Flight<V>, tokio::task::AbortHandle)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let guard = KeyGuard {
            flights: self.flights.clone(),
            key: Some(key),
            id,
        };
        let task = tokio::spawn(async move {
            let _guard = guard;
            work.await
        });
        let abort = task.abort_handle();
        (async move { task.await.ok() }.boxed().shared(), abort)
    }

    /// Runs in flight (for tests).
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).entries.len()
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
    async fn run_survives_its_leader_being_dropped_while_a_follower_waits() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let leader = flights.run(1, || async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            9
        });
        let follower = {
            let flights = flights.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                flights.run(1, || async { 0 }).await
            })
        };
        // The leader gives up mid-fetch, after the follower joined.
        let _ = tokio::time::timeout(Duration::from_millis(40), leader).await;
        assert_eq!(follower.await.unwrap(), (Some(9), Role::Joined));
        assert_eq!(flights.in_flight(), 0, "the key is free once the run ended");
    }

    #[tokio::test]
    async fn a_run_nobody_waits_for_is_aborted_and_frees_its_key() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let finished = Arc::new(AtomicUsize::new(0));
        let leader = flights.run(1, || {
            let finished = finished.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                9
            }
        });
        let _ = tokio::time::timeout(Duration::from_millis(10), leader).await;
        assert_eq!(
            flights.in_flight(),
            0,
            "cancelled leader freed the key at once"
        );
        let (v, role) =
            tokio::time::timeout(Duration::from_millis(100), flights.run(1, || async { 3 }))
                .await
                .expect("a new fetch is not stuck behind the cancelled one");
        assert_eq!((v, role), (Some(3), Role::Leader));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "the abandoned fetch was aborted"
        );
    }

    #[tokio::test]
    async fn a_panicking_run_frees_its_key() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::default();
        let (v, role) = flights
            .run(1, || async {
                tokio::task::yield_now().await;
                panic!("fetch panicked")
            })
            .await;
        assert_eq!((v, role), (None, Role::Leader));
        assert_eq!(flights.in_flight(), 0);
        let (v, role) = flights.run(1, || async { 4 }).await;
        assert_eq!((v, role), (Some(4), Role::Leader));
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
