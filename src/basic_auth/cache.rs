//! The verified-credential cache.
//!
//! A repeat request with the same correct credentials costs one HMAC and one
//! map lookup instead of a bcrypt or argon2 run. Keys are HMAC-SHA-256 of the
//! credentials under a random key drawn once per process, so the cache never
//! holds a password or anything that can be checked offline against one.
//! Only successes are cached; entries expire, the map is bounded, and it is
//! flushed whenever the credential set is replaced.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) type CacheKey = [u8; 32];

#[derive(Clone)]
pub(crate) struct Verified {
    pub(crate) user: Arc<str>,
    pub(crate) generation: u64,
    pub(crate) expires: Instant,
}

pub(crate) struct VerifiedCache {
    mac: Hmac<Sha256>,
    map: quick_cache::sync::Cache<CacheKey, Verified>,
    ttl: Duration,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let key: [u8; 32] = rand::random();
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256>>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        Self {
            mac,
            map: quick_cache::sync::Cache::new(capacity.max(1)),
            ttl,
        }
    }

    pub(crate) fn key(&self, user: &str, password: &str) -> CacheKey {
        let mut mac = self.mac.clone();
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user a cached success belongs to, if it is fresh and from the
    /// current credential set.
    pub(crate) fn get(&self, key: &CacheKey, generation: u64) -> Option<Arc<str>> {
        let hit = self.map.get(key)?;
        if hit.generation != generation || hit.expires <= Instant::now() {
            self.map.remove(key);
            return None;
        }
        Some(hit.user)
    }

    pub(crate) fn insert(&self, key: CacheKey, user: Arc<str>, generation: u64) {
        let expires = Instant::now() + self.ttl;
        self.map.insert(
            key,
            Verified {
                user,
                generation,
                expires,
            },
        );
    }

    pub(crate) fn clear(&self) {
        self.map.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_after_insert() {
        let c = VerifiedCache::new(10, Duration::from_secs(60));
        let k = c.key("u", "p");
        c.insert(k, "u".into(), 1);
        assert_eq!(c.get(&k, 1).as_deref(), Some("u"));
    }

    #[test]
    fn other_generation_misses() {
        let c = VerifiedCache::new(10, Duration::from_secs(60));
        let k = c.key("u", "p");
        c.insert(k, "u".into(), 1);
        assert!(c.get(&k, 2).is_none());
    }

    #[test]
    fn expired_entry_misses() {
        let c = VerifiedCache::new(10, Duration::ZERO);
        let k = c.key("u", "p");
        c.insert(k, "u".into(), 1);
        assert!(c.get(&k, 1).is_none());
    }

    #[test]
    fn keys_separate_user_and_password_boundaries() {
        let c = VerifiedCache::new(10, Duration::from_secs(60));
        assert_ne!(c.key("ab", "c"), c.key("a", "bc"));
        assert_ne!(c.key("u", "p"), c.key("u", "q"));
    }

    #[test]
    fn keys_differ_between_processes_keys() {
        let a = VerifiedCache::new(10, Duration::from_secs(60));
        let b = VerifiedCache::new(10, Duration::from_secs(60));
        assert_ne!(a.key("u", "p"), b.key("u", "p"));
    }

    #[test]
    fn capacity_bounds_the_map() {
        let c = VerifiedCache::new(100, Duration::from_secs(60));
        for i in 0..10_000 {
            let k = c.key(&i.to_string(), "p");
            c.insert(k, "u".into(), 1);
        }
        assert!(c.len() <= 200, "len {}", c.len());
    }
}
