//! What admission keeps of PostgreSQL's answers for an outage.
//!
//! Lookups ask the database every time while it answers, so a change (a retired machine, a revoked key)
//! applies at once. When it does not answer, a [`Fallback`] gives the last answer it saw for the same
//! question if that answer is younger than its maximum age, and a [`Breaker`] stops later lookups from
//! waiting on the pool's acquire timeout again for a second: during an outage, ingest that the cache can
//! serve answers at the speed of the cache, and the rest answers 503 after one acquire timeout.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long lookups skip the database after it failed to answer one.
const OPEN_FOR: Duration = Duration::from_secs(1);

/// Whether `e` says that PostgreSQL could not be reached or is going away, rather than refusing a query.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P01-57P03: the server is shutting down or starting.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Remembers that the database failed, for one second.
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    open_until: Arc<Mutex<Option<Instant>>>,
}

impl Breaker {
    /// Whether the database failed less than a second ago.
    pub fn is_open(&self) -> bool {
        let open_until = self
            .open_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open_until.is_some_and(|t| Instant::now() < t)
    }

    /// Records a failure: lookups skip the database for a second.
    pub fn trip(&self) {
        *self
            .open_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + OPEN_FOR);
    }

    /// Records an answer.
    pub fn reset(&self) {
        *self
            .open_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The last answers to lookups, each usable until it is `max_age` old.
#[derive(Debug, Clone)]
pub struct Fallback<K, V> {
    entries: Arc<Mutex<HashMap<K, (V, Instant)>>>,
    max_age: Duration,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Fallback<K, V> {
    /// A cache of at most `capacity` answers, each usable for `max_age` (zero keeps nothing).
    pub fn new(max_age: Duration, capacity: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
            max_age,
            capacity,
        }
    }

    /// The answer to `key` if it is younger than the maximum age.
    pub fn fresh(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.max_age)
            .map(|(v, _)| v.clone())
    }

    /// Keeps `value` as the answer to `key`.
    pub fn put(&self, key: K, value: V) {
        if self.max_age.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let max_age = self.max_age;
            entries.retain(|_, (_, at)| at.elapsed() < max_age);
            if entries.len() >= self.capacity {
                // Still full of fresh answers: start over rather than track an order.
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Forgets every answer for which `stale` holds (e.g. after the instance changed what it says).
    pub fn forget(&self, stale: impl Fn(&K, &V) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|k, (v, _)| !stale(k, v));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_expire_and_can_be_forgotten() {
        let cache: Fallback<u32, &str> = Fallback::new(Duration::from_millis(50), 10);
        cache.put(1, "one");
        cache.put(2, "two");
        assert_eq!(cache.fresh(&1), Some("one"));
        cache.forget(|k, _| *k == 1);
        assert_eq!(cache.fresh(&1), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.fresh(&2), None, "older than the maximum age");
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache: Fallback<u32, u32> = Fallback::new(Duration::from_secs(60), 2);
        for i in 0..5 {
            cache.put(i, i);
        }
        assert_eq!(cache.fresh(&4), Some(4));
        assert!(cache.entries.lock().unwrap().len() <= 2);
        let off: Fallback<u32, u32> = Fallback::new(Duration::ZERO, 2);
        off.put(1, 1);
        assert_eq!(off.fresh(&1), None);
    }

    #[test]
    fn the_breaker_opens_for_a_second() {
        let b = Breaker::default();
        assert!(!b.is_open());
        b.trip();
        assert!(b.is_open());
        b.reset();
        assert!(!b.is_open());
    }
}
