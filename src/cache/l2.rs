//! L2: the shared tier in Redis. Every command is bounded by the command
//! timeout and guarded by a breaker, so a Redis outage or brown-out costs a
//! caller at most one timeout and then nothing while the breaker is open.
//! L2 errors are never errors for the caller: a failed L2 read is a miss, a
//! failed write is dropped (and counted).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::AsyncCommands;

use super::policy::Namespace;
use super::redis_link::RedisLink;
use crate::support::{Breaker, BreakerState};

/// Longest an admin flush may spend scanning Redis.
const SCAN_TIMEOUT: Duration = super::redis_link::BULK_TIMEOUT;

pub struct L2 {
    link: RedisLink,
    breaker: Breaker,
    /// Key prefix, e.g. `wl:`; keys are `{prefix}{namespace}:{key}`.
    prefix: String,
    errors: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error("redis breaker is open")]
    BreakerOpen,
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl L2 {
    pub fn new(link: RedisLink, prefix: String) -> Self {
        for op in ["get", "set", "delete", "scan", "lease", "ratelimit"] {
            metrics::counter!("warmline_cache_l2_errors_total", "operation" => op).increment(0);
        }
        metrics::gauge!("warmline_cache_l2_breaker_state").set(0.0);
        L2 {
            link,
            breaker: Breaker::new(3, Duration::from_secs(2)),
            prefix,
            errors: AtomicU64::new(0),
        }
    }

    /// The Redis key of an entry: `{prefix}{namespace}:{{key}}`. The braces
    /// are a cluster hash tag: an entry and its lease
    /// ([`Self::lease_key`]) share a slot, so one script may touch both.
    pub fn key(&self, ns: Namespace, key: &str) -> String {
        format!("{}{}:{{{}}}", self.prefix, ns.as_str(), key)
    }

    fn lease_key(&self, ns: Namespace, key: &str) -> String {
        format!("{}lease:{}:{{{}}}", self.prefix, ns.as_str(), key)
    }

    /// The entry key back from a Redis key of `ns` ([`Self::key`]).
    pub fn entry_key<'a>(&self, ns: Namespace, raw: &'a str) -> Option<&'a str> {
        raw.strip_prefix(self.prefix.as_str())?
            .strip_prefix(ns.as_str())?
            .strip_prefix(":{")?
            .strip_suffix('}')
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Redis is known to be back (the backplane resubscribed): ping the
    /// command connection until it answers — each ping also makes the
    /// connection manager reconnect — then close the breaker, so L2 serves
    /// again at once instead of after a cool-down and a probe that may still
    /// meet the dead connection.
    pub async fn recover(&self) {
        const ATTEMPTS: u32 = 50;
        const PAUSE: Duration = Duration::from_millis(100);
        for _ in 0..ATTEMPTS {
            // The reconnect itself may take longer than one command.
            let timeout = self.link.command_timeout().max(Duration::from_millis(500));
            if self.link.ping(timeout).await == super::RedisHealth::Ok {
                self.breaker.on_success();
                metrics::gauge!("warmline_cache_l2_breaker_state")
                    .set(self.breaker.state().gauge_value());
                tracing::info!("redis answers again: L2 breaker closed");
                return;
            }
            tokio::time::sleep(PAUSE).await;
        }
        tracing::warn!("redis resubscribed but does not answer commands; the L2 breaker stays");
    }

    /// Runs one Redis operation under the breaker and `timeout`.
    async fn guarded<T, F>(&self, op: &'static str, timeout: Duration, f: F) -> Result<T, L2Error>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(L2Error::BreakerOpen);
        }
        let result = match tokio::time::timeout(timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(L2Error::Redis(e)),
            Err(_) => Err(L2Error::Timeout(timeout)),
        };
        match &result {
            Ok(_) => self.breaker.on_success(),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("warmline_cache_l2_errors_total", "operation" => op).increment(1);
                if self.breaker.on_failure() {
                    tracing::warn!(error = %e, "redis breaker opened: serving from L1 and loaders only");
                }
            }
        }
        metrics::gauge!("warmline_cache_l2_breaker_state").set(self.breaker.state().gauge_value());
        result
    }

    pub async fn get(&self, ns: Namespace, key: &str) -> Result<Option<String>, L2Error> {
        let mut conn = self.link.connection();
        let k = self.key(ns, key);
        self.guarded(
            "get",
            self.link.command_timeout(),
            conn.get::<_, Option<String>>(k),
        )
        .await
    }

    pub async fn set(
        &self,
        ns: Namespace,
        key: &str,
        value: &str,
        ttl_ms: u64,
    ) -> Result<(), L2Error> {
        if ttl_ms == 0 {
            return Ok(());
        }
        let mut conn = self.link.connection();
        let k = self.key(ns, key);
        self.guarded(
            "set",
            self.link.command_timeout(),
            conn.pset_ex::<_, _, ()>(k, value, ttl_ms),
        )
        .await
    }

    /// Deletes whole Redis keys (already prefixed); returns how many existed.
    pub async fn delete_raw(&self, keys: &[String]) -> Result<u64, L2Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut conn = self.link.bulk_connection();
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(keys);
        self.guarded("delete", SCAN_TIMEOUT, cmd.query_async::<u64>(&mut conn))
            .await
    }

    /// Every Redis key of `ns` whose entry key starts with `prefix`. In a
    /// cluster every master is scanned: each holds only its own slots.
    pub async fn scan(&self, ns: Namespace, prefix: &str) -> Result<Vec<String>, L2Error> {
        let pattern = format!(
            "{}{}*",
            glob_escape(&format!("{}{}:{{", self.prefix, ns.as_str())),
            glob_escape(prefix)
        );
        let link = self.link.clone();
        // Boxed: the cluster client's routed commands make a large future,
        // and every caller of a flush (a booking, deep in a webhook) would
        // carry it on its stack.
        let scan = Box::pin(async move {
            let mut keys = Vec::new();
            for node in link.masters().await? {
                let mut cursor: u64 = 0;
                loop {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    let (next, batch): (u64, Vec<String>) = link.query_on(&node, cmd).await?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            keys.sort();
            keys.dedup();
            Ok(keys)
        });
        self.guarded("scan", SCAN_TIMEOUT, scan).await
    }

    /// `SET lease NX PX`: true when this replica may load the key.
    pub async fn try_lease(
        &self,
        ns: Namespace,
        key: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<bool, L2Error> {
        let mut conn = self.link.connection();
        let lease = self.lease_key(ns, key);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&lease)
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1));
        let reply: Option<String> = self
            .guarded(
                "lease",
                self.link.command_timeout(),
                cmd.query_async(&mut conn),
            )
            .await?;
        Ok(reply.is_some())
    }

    /// Releases the lease if `owner` still holds it (compare-and-delete in
    /// one script): a lease that expired during a slow load and was taken
    /// by another replica is that replica's, and stays.
    pub async fn release_lease(&self, ns: Namespace, key: &str, owner: &str) {
        let mut conn = self.link.connection();
        let lease = self.lease_key(ns, key);
        let mut release = RELEASE_LEASE.prepare_invoke();
        release.key(lease).arg(owner);
        let _ = self
            .guarded(
                "lease",
                self.link.command_timeout(),
                release.invoke_async::<i64>(&mut conn),
            )
            .await;
    }
}

impl L2 {
    /// Counts one request in the fixed window of `key` (`INCR`, and
    /// `PEXPIRE` on the first, in one script, so a window always ends);
    /// returns the count and the milliseconds left in the window. The key is
    /// hash-tagged like an entry's.
    pub async fn window_increment(&self, key: &str, window_ms: u64) -> Result<(u64, u64), L2Error> {
        let mut conn = self.link.connection();
        let mut count = WINDOW_INCREMENT.prepare_invoke();
        count
            .key(format!("{}ratelimit:{{{key}}}", self.prefix))
            .arg(window_ms.max(1));
        let (n, left): (u64, i64) = self
            .guarded(
                "ratelimit",
                self.link.command_timeout(),
                count.invoke_async(&mut conn),
            )
            .await?;
        Ok((n, u64::try_from(left).unwrap_or(0)))
    }
}

static WINDOW_INCREMENT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local n = redis.call('INCR', KEYS[1]) \
         local left = redis.call('PTTL', KEYS[1]) \
         if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) left = tonumber(ARGV[1]) end \
         return {n, left}",
    )
});

/// Deletes the lease only while it holds the caller's token.
static RELEASE_LEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});

/// Escapes Redis glob metacharacters so a prefix matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Rate-limit windows in Redis: shared by every replica on it.
pub(crate) struct L2Window(pub(crate) Arc<L2>);

#[async_trait::async_trait]
impl crate::support::SharedWindow for L2Window {
    async fn increment(
        &self,
        key: &str,
        window: std::time::Duration,
    ) -> Result<(u64, std::time::Duration), String> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.0
            .window_increment(key, window_ms)
            .await
            .map(|(n, left)| (n, std::time::Duration::from_millis(left)))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine's Redis, or `None` (reported) when it is not running and
    /// the run does not require it.
    async fn redis() -> Option<L2> {
        let url = std::env::var("WARMLINE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let link = RedisLink::new(&crate::cache::RedisSettings {
            prefix: String::new(),
            command_timeout: Duration::from_secs(2),
            ..crate::cache::RedisSettings::new(url.clone())
        })
        .ok()?;
        if link.ping(Duration::from_secs(2)).await != crate::cache::RedisHealth::Ok {
            assert!(
                std::env::var("WARMLINE_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "Redis is required at {url}"
            );
            // Past the harness's capture, as the integration tests' skips.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED cache::l2 lease test: redis unavailable ({url})\n").as_bytes(),
            );
            return None;
        }
        let prefix = format!("wltest:{}:", uuid::Uuid::new_v4().simple());
        Some(L2::new(link, prefix))
    }

    #[tokio::test]
    async fn a_lease_is_released_only_by_its_holder() {
        let Some(l2) = redis().await else { return };
        let ns = Namespace::Contact;
        assert!(l2.try_lease(ns, "k", "first", 60_000).await.unwrap());
        assert!(!l2.try_lease(ns, "k", "second", 60_000).await.unwrap());
        // A holder whose lease expired and went to another must not end
        // the other's: "second" never held it, so nothing is released.
        l2.release_lease(ns, "k", "second").await;
        assert!(
            !l2.try_lease(ns, "k", "third", 60_000).await.unwrap(),
            "still held"
        );
        l2.release_lease(ns, "k", "first").await;
        assert!(
            l2.try_lease(ns, "k", "third", 60_000).await.unwrap(),
            "released"
        );
        l2.release_lease(ns, "k", "third").await;
    }

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(
            glob_escape("wl:memory:a*b?[c]\\"),
            "wl:memory:a\\*b\\?\\[c\\]\\\\"
        );
    }
}
