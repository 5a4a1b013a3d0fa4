//! The in-memory [`ThrottleStore`].

use super::{Record, StoreFuture, ThrottleKey, ThrottleStore};
use std::fmt;
use std::time::Duration;

/// Default capacity of a [`MemoryStore`], in records.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Clone, Copy)]
struct Entry {
    record: Record,
    expires_ms: u64,
}

/// A fixed-capacity table of failure records, local to this process.
///
/// Keys are a client address or a 128-bit digest of a user name, so every
/// entry has a bounded size, and the table never holds more than its
/// capacity: when full, the least useful entries are evicted.
pub struct MemoryStore {
    map: quick_cache::sync::Cache<ThrottleKey, Entry>,
    capacity: usize,
}

impl MemoryStore {
    /// A table of at most `capacity` records (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            map: quick_cache::sync::Cache::new(capacity),
            capacity,
        }
    }

    /// The number of records held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The capacity given at construction.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn get_now(&self, key: &ThrottleKey, now_ms: u64) -> Record {
        match self.map.get(key) {
            Some(e) if e.expires_ms > now_ms => e.record,
            Some(_) => {
                self.map.remove(key);
                Record::default()
            }
            None => Record::default(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ThrottleStore for MemoryStore {
    fn get(&self, keys: &[ThrottleKey]) -> StoreFuture<Vec<Record>> {
        let now = super::now_ms();
        let out = keys.iter().map(|k| self.get_now(k, now)).collect();
        Box::pin(std::future::ready(Ok(out)))
    }

    fn record_failure(&self, keys: &[ThrottleKey], now_ms: u64, ttl: Duration) -> StoreFuture<()> {
        for key in keys {
            let prev = self.get_now(key, now_ms);
            let record = Record {
                failures: prev.failures.saturating_add(1),
                last_failure_ms: now_ms,
            };
            let expires_ms = now_ms.saturating_add(ttl.as_millis() as u64);
            // Two concurrent failures may count once; the lock still comes,
            // one failure later at most.
            self.map.insert(key.clone(), Entry { record, expires_ms });
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn reset(&self, key: &ThrottleKey) -> StoreFuture<()> {
        self.map.remove(key);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[tokio::test]
    async fn a_flood_of_addresses_stays_within_capacity() {
        let store = MemoryStore::new(1_000);
        for i in 0..200_000u32 {
            let key = ThrottleKey::Addr(IpAddr::V4(Ipv4Addr::from(i)));
            store
                .record_failure(&[key], 1, Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(
            store.len() <= store.capacity() + store.capacity() / 10,
            "len {}",
            store.len()
        );
    }

    #[tokio::test]
    async fn expired_records_read_as_empty() {
        let store = MemoryStore::new(10);
        let key = ThrottleKey::user("u");
        store
            .record_failure(std::slice::from_ref(&key), 1_000, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(store.get_now(&key, 1_005).failures, 1);
        assert_eq!(store.get_now(&key, 1_011).failures, 0);
    }
}
