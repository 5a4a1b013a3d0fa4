//! The Redis [`ThrottleStore`], for counters shared by several instances.

use super::{Record, StoreError, StoreFuture, ThrottleKey, ThrottleStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Default time a Redis operation (or connection attempt) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

const RECORD_FAILURE: &str = r"
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
";

/// Failure counters kept in Redis, so that several gateway instances behind
/// a load balancer share them.
///
/// Each key is a hash (`n` failures, `t` last failure in ms) that expires on
/// its own. Every operation is bounded by a timeout; the connection is made
/// on first use and remade after failures, so a Redis that is down at start
/// or goes away later only makes operations fail (see
/// [`FailMode`](super::FailMode)), never hang.
///
/// ```no_run
/// use tower_perimeter::throttle::{RedisStore, Throttle, ThrottlePolicy};
///
/// let store = RedisStore::new("redis://127.0.0.1:6379/")?;
/// let throttle = Throttle::with_store(ThrottlePolicy::default(), store)?;
/// # Ok::<(), tower_perimeter::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection info may hold a password: print only the prefix.
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for the Redis at `url` (`redis://host:port/db`), with keys
    /// under `tower-perimeter:throttle:` and a [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// The URL cannot be parsed. Nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, crate::ConfigError> {
        Self::with_options(url, "tower-perimeter:throttle:", DEFAULT_TIMEOUT)
    }

    /// A store with its own key prefix and operation timeout.
    ///
    /// # Errors
    ///
    /// The URL cannot be parsed, or the timeout is zero.
    pub fn with_options(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, crate::ConfigError> {
        let client = redis::Client::open(url).map_err(|e| {
            crate::ConfigError::new("throttle", format!("bad Redis URL: {}", e.kind_str()))
        })?;
        if timeout.is_zero() {
            return Err(crate::ConfigError::new(
                "throttle",
                "Redis timeout must be longer than zero",
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                prefix: prefix.to_owned(),
                timeout,
                script: redis::Script::new(RECORD_FAILURE),
            }),
        })
    }

    async fn connection(inner: &Inner) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(inner.timeout)
            .set_response_timeout(inner.timeout)
            .set_number_of_retries(1)
            .set_max_delay(inner.timeout.as_millis() as u64);
        let conn = tokio::time::timeout(
            inner.timeout * 2,
            inner.conn.get_or_try_init(|| {
                ConnectionManager::new_with_config(inner.client.clone(), config)
            }),
        )
        .await
        .map_err(|_| StoreError("connect timed out".into()))?
        .map_err(|e| StoreError(format!("connect: {}", e.kind_str())))?;
        Ok(conn.clone())
    }

    fn key(&self, key: &ThrottleKey) -> String {
        format!("{}{}", self.inner.prefix, key.to_key_string())
    }

    async fn bounded<T>(
        timeout: Duration,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| StoreError("operation timed out".into()))?
            .map_err(|e| StoreError(e.kind_str().to_owned()))
    }
}

trait KindStr {
    fn kind_str(&self) -> &'static str;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> &'static str {
        // The error's text can echo the URL with its password; keep the kind.
        if self.is_timeout() {
            "timeout"
        } else if self.is_connection_refusal() {
            "connection refused"
        } else if self.is_io_error() || self.is_connection_dropped() {
            "i/o error"
        } else {
            "redis error"
        }
    }
}

impl ThrottleStore for RedisStore {
    fn get(&self, keys: &[ThrottleKey]) -> StoreFuture<Vec<Record>> {
        let this = self.clone();
        let names: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        Box::pin(async move {
            let mut conn = Self::connection(&this.inner).await?;
            let mut pipe = redis::pipe();
            for name in &names {
                pipe.cmd("HMGET").arg(name).arg("n").arg("t");
            }
            let rows: Vec<(Option<u32>, Option<u64>)> =
                Self::bounded(this.inner.timeout, pipe.query_async(&mut conn)).await?;
            Ok(rows
                .into_iter()
                .map(|(n, t)| Record {
                    failures: n.unwrap_or(0),
                    last_failure_ms: t.unwrap_or(0),
                })
                .collect())
        })
    }

    fn record_failure(&self, keys: &[ThrottleKey], now_ms: u64, ttl: Duration) -> StoreFuture<()> {
        let this = self.clone();
        let names: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        Box::pin(async move {
            let mut conn = Self::connection(&this.inner).await?;
            for name in names {
                let mut call = this.inner.script.key(name);
                call.arg(now_ms).arg(ttl_ms);
                let _: u32 =
                    Self::bounded(this.inner.timeout, call.invoke_async(&mut conn)).await?;
            }
            Ok(())
        })
    }

    fn reset(&self, key: &ThrottleKey) -> StoreFuture<()> {
        let this = self.clone();
        let name = self.key(key);
        Box::pin(async move {
            let mut conn = Self::connection(&this.inner).await?;
            let _: i64 = Self::bounded(
                this.inner.timeout,
                redis::cmd("DEL").arg(name).query_async(&mut conn),
            )
            .await?;
            Ok(())
        })
    }
}
