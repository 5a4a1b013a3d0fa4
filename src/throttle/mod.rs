//! Brute-force throttling for [`BasicAuthLayer`](crate::basic_auth::BasicAuthLayer).
//!
//! After too many failed attempts from one client address, or for one user
//! name, within a window, further attempts are answered `429 Too Many
//! Requests` with `Retry-After`, **without running any password hash**. The
//! lock grows exponentially with each further failure, up to a maximum.
//!
//! ```
//! use std::time::Duration;
//! use tower_perimeter::basic_auth::{BasicAuthLayer, Users};
//! use tower_perimeter::throttle::{Throttle, ThrottlePolicy};
//!
//! let policy = ThrottlePolicy::default()
//!     .per_addr(20)
//!     .per_user(5)
//!     .window(Duration::from_secs(600));
//! let layer = BasicAuthLayer::builder()
//!     .users(Users::builder().user("demo", "pw")?.build())
//!     .throttle(Throttle::in_memory(policy)?)
//!     .build()?;
//! # Ok::<(), tower_perimeter::ConfigError>(())
//! ```
//!
//! Counters live in a [`ThrottleStore`]: [`MemoryStore`] by default, a
//! fixed-size table that evicts old entries so that a flood of addresses or
//! user names cannot grow it past its bound; or, with the `redis` feature,
//! `RedisStore`, shared by several gateway instances behind a load balancer.
//! When the store fails, the layer [fails open or closed](FailMode) as
//! configured, with a `tracing` error, and never waits longer than the
//! store's timeout.
//!
//! # Deployment caveat
//!
//! - The client address must be the real one: behind a TLS-terminating load
//!   balancer, resolve it from forwarded headers of trusted proxies only (see
//!   [`Throttle::client_addr`] and, with the `https` feature,
//!   `Throttle::trusted_proxies`). Otherwise every client shares the
//!   balancer's address, or a client forges its own.
//! - Per-user locks let anyone who knows a user name lock that user out for
//!   the lock time. Keep [`ThrottlePolicy::max_delay`] modest, or set
//!   [`ThrottlePolicy::per_user`] to zero to count per address only.
//! - The in-memory table evicts entries when full; an attacker with very many
//!   source addresses can push a record out. Size it for your traffic.

mod memory;
#[cfg(feature = "redis")]
mod redis_store;

pub use memory::{MemoryStore, DEFAULT_CAPACITY};
#[cfg(feature = "redis")]
pub use redis_store::{RedisStore, DEFAULT_TIMEOUT};

use crate::ConfigError;
use http::request::Parts;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const COMPONENT: &str = "throttle";

/// What a counter is kept for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// A client address.
    Addr(IpAddr),
    /// A user name, kept as a 128-bit digest so that keys have a fixed size.
    User([u8; 16]),
}

impl ThrottleKey {
    /// The key for a user name.
    pub fn user(name: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(name.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Self::User(out)
    }

    /// A printable, fixed-alphabet form (`a:<ip>` or `u:<hex>`), for stores
    /// keyed by strings.
    pub fn to_key_string(&self) -> String {
        match self {
            Self::Addr(ip) => format!("a:{ip}"),
            Self::User(d) => {
                let mut s = String::with_capacity(34);
                s.push_str("u:");
                for b in d {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
        }
    }
}

/// The failures recorded for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Failures within the window.
    pub failures: u32,
    /// When the last failure happened, in milliseconds since the Unix epoch.
    pub last_failure_ms: u64,
}

/// An error of a [`ThrottleStore`] (unreachable, timed out, bad reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "throttle store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// The boxed future a [`ThrottleStore`] returns.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Where failure counters are kept.
///
/// Implementations must bound their own waiting (a timeout) so that a
/// request is never held by an unreachable store.
pub trait ThrottleStore: Send + Sync + 'static {
    /// The records for `keys`, in order (a default record where none is kept).
    fn get(&self, keys: &[ThrottleKey]) -> StoreFuture<Vec<Record>>;

    /// Counts one failure for each of `keys` at `now_ms`; a record expires
    /// `ttl` after its last failure.
    fn record_failure(&self, keys: &[ThrottleKey], now_ms: u64, ttl: Duration) -> StoreFuture<()>;

    /// Forgets the record of `key` (after a success).
    fn reset(&self, key: &ThrottleKey) -> StoreFuture<()>;
}

impl<T: ThrottleStore> ThrottleStore for Arc<T> {
    fn get(&self, keys: &[ThrottleKey]) -> StoreFuture<Vec<Record>> {
        (**self).get(keys)
    }

    fn record_failure(&self, keys: &[ThrottleKey], now_ms: u64, ttl: Duration) -> StoreFuture<()> {
        (**self).record_failure(keys, now_ms, ttl)
    }

    fn reset(&self, key: &ThrottleKey) -> StoreFuture<()> {
        (**self).reset(key)
    }
}

/// What to do when the [`ThrottleStore`] fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Let the request be checked as if it were not throttled (the default:
    /// the password check still protects the service).
    #[default]
    Open,
    /// Answer `429` with `Retry-After: 1` until the store is back.
    Closed,
}

/// Limits and back-off for [`Throttle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    per_addr: u32,
    per_user: u32,
    window: Duration,
    base_delay: Duration,
    max_delay: Duration,
}

impl Default for ThrottlePolicy {
    /// 10 failures per address, 5 per user name, in a 15-minute window;
    /// locks start at 1 second and double with each further failure, up to
    /// 15 minutes.
    fn default() -> Self {
        Self {
            per_addr: 10,
            per_user: 5,
            window: Duration::from_secs(900),
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(900),
        }
    }
}

impl ThrottlePolicy {
    /// Failures from one address before it is locked (0: never).
    pub fn per_addr(mut self, n: u32) -> Self {
        self.per_addr = n;
        self
    }

    /// Failures for one user name before it is locked (0: never).
    pub fn per_user(mut self, n: u32) -> Self {
        self.per_user = n;
        self
    }

    /// How long failures are remembered after the last one.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The first lock's length; each further failure doubles it.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest lock.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.per_addr == 0 && self.per_user == 0 {
            return Err(ConfigError::new(
                COMPONENT,
                "per_addr and per_user are both 0: nothing would be throttled",
            ));
        }
        if self.window.is_zero() {
            return Err(ConfigError::new(
                COMPONENT,
                "window must be longer than zero",
            ));
        }
        if self.base_delay.is_zero() || self.max_delay < self.base_delay {
            return Err(ConfigError::new(
                COMPONENT,
                "need 0 < base_delay <= max_delay",
            ));
        }
        Ok(())
    }

    /// The lock that `failures` failures earn against `limit`, if any.
    pub fn delay(&self, failures: u32, limit: u32) -> Option<Duration> {
        if limit == 0 || failures < limit {
            return None;
        }
        let doublings = (failures - limit).min(32);
        let delay = self.base_delay.saturating_mul(1u32 << doublings.min(31));
        Some(delay.min(self.max_delay))
    }

    /// How long a record lives after its last failure.
    fn ttl(&self) -> Duration {
        self.window.max(self.max_delay)
    }
}

type ClientAddrFn = dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync;

/// Brute-force throttling for a [`BasicAuthLayer`](crate::basic_auth::BasicAuthLayer);
/// see the [module docs](self).
#[derive(Clone)]
pub struct Throttle {
    store: Arc<dyn ThrottleStore>,
    policy: ThrottlePolicy,
    fail_mode: FailMode,
    client_addr: Arc<ClientAddrFn>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("policy", &self.policy)
            .field("fail_mode", &self.fail_mode)
            .finish_non_exhaustive()
    }
}

/// The default client address: the connection's [`PeerAddr`](crate::PeerAddr).
fn default_client_addr(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<crate::PeerAddr>().map(|p| p.0.ip())
}

impl Throttle {
    /// Throttling with counters in a new [`MemoryStore`] of the default size.
    ///
    /// # Errors
    ///
    /// The policy throttles nothing, has a zero window, or its delays are out
    /// of order.
    pub fn in_memory(policy: ThrottlePolicy) -> Result<Self, ConfigError> {
        Self::with_store(policy, MemoryStore::default())
    }

    /// Throttling with counters in `store`.
    ///
    /// # Errors
    ///
    /// As [`Throttle::in_memory`].
    pub fn with_store(
        policy: ThrottlePolicy,
        store: impl ThrottleStore,
    ) -> Result<Self, ConfigError> {
        policy.check()?;
        Ok(Self {
            store: Arc::new(store),
            policy,
            fail_mode: FailMode::Open,
            client_addr: Arc::new(default_client_addr),
        })
    }

    /// What to do when the store fails. Default [`FailMode::Open`].
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// How to find the client address of a request. By default the
    /// connection's [`PeerAddr`](crate::PeerAddr) extension; without one,
    /// only user names are counted.
    pub fn client_addr<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    {
        self.client_addr = Arc::new(f);
        self
    }

    /// Finds the client address with the same trust rules as the HTTPS
    /// layers: the peer address, or the forwarded client address when the
    /// peer is a trusted proxy.
    #[cfg(feature = "https")]
    pub fn trusted_proxies(self, proxies: crate::https::TrustedProxies) -> Self {
        self.client_addr(move |parts| proxies.resolve(parts).addr())
    }

    /// The policy.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    pub(crate) fn addr_of(&self, parts: &Parts) -> Option<IpAddr> {
        (self.client_addr)(parts)
    }

    pub(crate) fn keys(&self, addr: Option<IpAddr>, user: Option<&str>) -> Vec<ThrottleKey> {
        let mut keys = Vec::with_capacity(2);
        if let (Some(ip), true) = (addr, self.policy.per_addr > 0) {
            keys.push(ThrottleKey::Addr(ip));
        }
        if let (Some(user), true) = (user, self.policy.per_user > 0) {
            keys.push(ThrottleKey::user(user));
        }
        keys
    }

    fn limit(&self, key: &ThrottleKey) -> u32 {
        match key {
            ThrottleKey::Addr(_) => self.policy.per_addr,
            ThrottleKey::User(_) => self.policy.per_user,
        }
    }

    /// How long the request must wait, if any of its keys is locked.
    pub(crate) async fn locked_for(&self, keys: &[ThrottleKey]) -> Option<Duration> {
        if keys.is_empty() {
            return None;
        }
        match self.store.get(keys).await {
            Ok(records) => {
                let now = now_ms();
                keys.iter()
                    .zip(records)
                    .filter_map(|(key, rec)| {
                        let delay = self.policy.delay(rec.failures, self.limit(key))?;
                        let until = rec.last_failure_ms.saturating_add(delay.as_millis() as u64);
                        (until > now).then(|| Duration::from_millis(until - now))
                    })
                    .max()
            }
            Err(_e) => {
                event!(error, error = %_e, fail_mode = ?self.fail_mode, "throttle store failed");
                match self.fail_mode {
                    FailMode::Open => None,
                    FailMode::Closed => Some(Duration::from_secs(1)),
                }
            }
        }
    }

    pub(crate) async fn failed(&self, keys: &[ThrottleKey]) {
        if keys.is_empty() {
            return;
        }
        if let Err(_e) = self
            .store
            .record_failure(keys, now_ms(), self.policy.ttl())
            .await
        {
            event!(error, error = %_e, "throttle store failed to record a failure");
        }
    }

    pub(crate) async fn succeeded(&self, user: &str) {
        if self.policy.per_user == 0 {
            return;
        }
        if let Err(_e) = self.store.reset(&ThrottleKey::user(user)).await {
            event!(error, error = %_e, "throttle store failed to reset a user");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_the_limit_and_is_capped() {
        let p = ThrottlePolicy::default()
            .base_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(10));
        assert_eq!(p.delay(4, 5), None);
        assert_eq!(p.delay(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(p.delay(6, 5), Some(Duration::from_secs(2)));
        assert_eq!(p.delay(8, 5), Some(Duration::from_secs(8)));
        assert_eq!(p.delay(9, 5), Some(Duration::from_secs(10)));
        assert_eq!(p.delay(u32::MAX, 5), Some(Duration::from_secs(10)));
        assert_eq!(p.delay(100, 0), None, "a zero limit never locks");
    }

    #[test]
    fn bad_policies_are_config_errors() {
        assert!(Throttle::in_memory(ThrottlePolicy::default().per_addr(0).per_user(0)).is_err());
        assert!(Throttle::in_memory(ThrottlePolicy::default().window(Duration::ZERO)).is_err());
        assert!(Throttle::in_memory(
            ThrottlePolicy::default()
                .base_delay(Duration::from_secs(10))
                .max_delay(Duration::from_secs(1))
        )
        .is_err());
    }

    #[test]
    fn user_keys_have_a_fixed_size_and_printable_form() {
        let a = ThrottleKey::user("alice");
        let long = ThrottleKey::user(&"x".repeat(4000));
        assert_ne!(a, long);
        assert_eq!(a.to_key_string().len(), 34);
        assert_eq!(long.to_key_string().len(), 34);
        assert_eq!(
            ThrottleKey::Addr("10.0.0.1".parse().unwrap()).to_key_string(),
            "a:10.0.0.1"
        );
    }

    #[tokio::test]
    async fn locks_after_the_limit_and_releases_after_the_delay() {
        let t = Throttle::in_memory(
            ThrottlePolicy::default()
                .per_addr(3)
                .base_delay(Duration::from_millis(200))
                .max_delay(Duration::from_secs(1)),
        )
        .unwrap();
        let keys = t.keys(Some("192.0.2.1".parse().unwrap()), None);
        for _ in 0..2 {
            t.failed(&keys).await;
            assert_eq!(t.locked_for(&keys).await, None);
        }
        t.failed(&keys).await;
        let wait = t.locked_for(&keys).await.expect("locked after 3 failures");
        assert!(wait <= Duration::from_millis(200));
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
        assert_eq!(t.locked_for(&keys).await, None);
        t.failed(&keys).await;
        let wait = t.locked_for(&keys).await.expect("locked again");
        assert!(wait > Duration::from_millis(200), "doubled: {wait:?}");
    }

    #[tokio::test]
    async fn success_resets_the_user_but_not_the_address() {
        let t = Throttle::in_memory(ThrottlePolicy::default().per_addr(2).per_user(2)).unwrap();
        let addr = Some("192.0.2.9".parse().unwrap());
        let keys = t.keys(addr, Some("bob"));
        t.failed(&keys).await;
        t.failed(&keys).await;
        assert!(t.locked_for(&t.keys(None, Some("bob"))).await.is_some());
        t.succeeded("bob").await;
        assert!(t.locked_for(&t.keys(None, Some("bob"))).await.is_none());
        assert!(t.locked_for(&t.keys(addr, None)).await.is_some());
    }

    struct Broken;
    impl ThrottleStore for Broken {
        fn get(&self, _: &[ThrottleKey]) -> StoreFuture<Vec<Record>> {
            Box::pin(async { Err(StoreError("down".into())) })
        }
        fn record_failure(&self, _: &[ThrottleKey], _: u64, _: Duration) -> StoreFuture<()> {
            Box::pin(async { Err(StoreError("down".into())) })
        }
        fn reset(&self, _: &ThrottleKey) -> StoreFuture<()> {
            Box::pin(async { Err(StoreError("down".into())) })
        }
    }

    #[tokio::test]
    async fn broken_store_fails_open_or_closed_as_configured() {
        let keys = [ThrottleKey::user("x")];
        let open = Throttle::with_store(ThrottlePolicy::default(), Broken).unwrap();
        assert_eq!(open.locked_for(&keys).await, None);
        let closed = open.fail_mode(FailMode::Closed);
        assert_eq!(closed.locked_for(&keys).await, Some(Duration::from_secs(1)));
        closed.failed(&keys).await;
        closed.succeeded("x").await;
    }
}
