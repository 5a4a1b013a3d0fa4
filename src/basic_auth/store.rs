//! The shared, hot-swappable credential set.

use super::cache::VerifiedCache;
use super::users::Users;
use crate::ConfigError;
use arc_swap::ArcSwap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Default number of cached verified credentials.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default lifetime of a cached verified credential.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

pub(crate) struct Snapshot {
    pub(crate) users: Arc<Users>,
    pub(crate) generation: u64,
}

struct Inner {
    current: ArcSwap<Snapshot>,
    next_generation: AtomicU64,
    cache: Option<VerifiedCache>,
}

/// A credential set that can be replaced at run time.
///
/// Cloning gives another handle to the same set. [`CredentialStore::replace`]
/// swaps the whole set atomically: a request in flight checks against the
/// set it started with, old or new, never a mix of both. Replacing also
/// flushes the verified-credential cache.
///
/// ```
/// use tower_perimeter::basic_auth::{CredentialStore, Users};
///
/// let store = CredentialStore::new(Users::builder().user("a", "1")?.build());
/// store.replace(Users::builder().user("b", "2")?.build());
/// assert!(store.users().contains("b"));
/// assert!(!store.users().contains("a"));
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CredentialStore {
    inner: Arc<Inner>,
}

impl CredentialStore {
    /// A store with the default cache ([`DEFAULT_CACHE_CAPACITY`] entries,
    /// [`DEFAULT_CACHE_TTL`]).
    pub fn new(users: Users) -> Self {
        Self::with_cache(users, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL)
    }

    /// A store whose cache holds at most `capacity` verified credentials for
    /// `ttl` each. A capacity or ttl of zero turns the cache off.
    pub fn with_cache(users: Users, capacity: usize, ttl: Duration) -> Self {
        let cache = (capacity > 0 && !ttl.is_zero()).then(|| VerifiedCache::new(capacity, ttl));
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(Snapshot {
                    users: Arc::new(users),
                    generation: 0,
                }),
                next_generation: AtomicU64::new(1),
                cache,
            }),
        }
    }

    /// A store with no cache: every request runs the password hash.
    pub fn without_cache(users: Users) -> Self {
        Self::with_cache(users, 0, Duration::ZERO)
    }

    /// Replaces the credential set atomically and flushes the cache.
    pub fn replace(&self, users: Users) {
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        if users.is_empty() {
            event!(
                warn,
                "credential set replaced by an empty one: every request will be rejected"
            );
        }
        self.inner.current.store(Arc::new(Snapshot {
            users: Arc::new(users),
            generation,
        }));
        if let Some(cache) = &self.inner.cache {
            cache.clear();
        }
    }

    /// The current credential set.
    pub fn users(&self) -> Arc<Users> {
        Arc::clone(&self.inner.current.load().users)
    }

    /// The current set, held for the duration of one check. A cheap guard,
    /// not a reference count: a request sees one set from start to end.
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.current.load()
    }

    pub(crate) fn cache(&self) -> Option<&VerifiedCache> {
        self.inner.cache.as_ref()
    }
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.inner.current.load();
        f.debug_struct("CredentialStore")
            .field("users", &snap.users.len())
            .field("generation", &snap.generation)
            .field("cache", &self.inner.cache.is_some())
            .finish()
    }
}

/// Reloads a [`CredentialStore`] from an htpasswd file on demand (for
/// example on `SIGHUP`).
///
/// A file that fails to parse leaves the current set in place and returns the
/// error, so a typo in the file never locks everyone out.
///
/// ```no_run
/// use tower_perimeter::basic_auth::{CredentialStore, HtpasswdReloader, Users};
///
/// let store = CredentialStore::new(Users::from_htpasswd_file("htpasswd")?);
/// let reloader = HtpasswdReloader::new("htpasswd", store.clone());
/// // later, on SIGHUP:
/// let count = reloader.reload()?;
/// println!("{count} users loaded");
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct HtpasswdReloader {
    path: PathBuf,
    store: CredentialStore,
}

impl HtpasswdReloader {
    /// A reloader of `path` into `store`.
    pub fn new(path: impl Into<PathBuf>, store: CredentialStore) -> Self {
        Self {
            path: path.into(),
            store,
        }
    }

    /// The file this reloader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file and, if it parses, replaces the store's set with it.
    /// Returns the number of users loaded.
    ///
    /// # Errors
    ///
    /// Any error of [`Users::from_htpasswd_file`]; the current set stays.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        match Users::from_htpasswd_file(&self.path) {
            Ok(users) => {
                let n = users.len();
                self.store.replace(users);
                event!(info, users = n, "htpasswd file reloaded");
                Ok(n)
            }
            Err(e) => {
                event!(error, error = %e, "htpasswd reload failed; keeping the current users");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_bumps_generation_and_flushes_cache() {
        let store = CredentialStore::new(Users::builder().user("a", "1").unwrap().build());
        let g0 = store.snapshot().generation;
        let cache = store.cache().unwrap();
        let k = cache.key("a", "1");
        cache.insert(k, "a".into(), g0);
        assert!(cache.get(&k, g0).is_some());
        store.replace(Users::builder().user("a", "2").unwrap().build());
        let g1 = store.snapshot().generation;
        assert_ne!(g0, g1);
        assert!(store.cache().unwrap().get(&k, g0).is_none());
    }

    #[test]
    fn reload_keeps_old_set_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
        let store = CredentialStore::new(Users::from_htpasswd_file(&path).unwrap());
        let reloader = HtpasswdReloader::new(&path, store.clone());
        std::fs::write(&path, "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nbroken\n").unwrap();
        let err = reloader.reload().unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(store.users().contains("bob"));
        std::fs::write(&path, "carol:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
        assert_eq!(reloader.reload().unwrap(), 1);
        assert!(store.users().contains("carol"));
        assert!(!store.users().contains("bob"));
    }

    #[test]
    fn zero_capacity_disables_cache() {
        let store = CredentialStore::with_cache(Users::default(), 0, Duration::from_secs(1));
        assert!(store.cache().is_none());
        assert!(CredentialStore::without_cache(Users::default())
            .cache()
            .is_none());
    }
}
