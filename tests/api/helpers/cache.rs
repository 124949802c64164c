//! Standalone tiered caches (no app), their loaders and polling, for the
//! cache tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use warmline::cache::RedisSettings;
use warmline::cache::{Cache, CacheConfig, LoadError, Policies, RedisLink};
use warmline::store::Store;

fn link(url: &str) -> RedisLink {
    RedisLink::new(&RedisSettings {
        prefix: String::new(),
        command_timeout: Duration::from_millis(100),
        ..RedisSettings::new(url)
    })
    .expect("redis url")
}

/// A unique key prefix per test, so tests sharing the machine's Redis never
/// see each other's keys or backplane messages.
pub fn unique_prefix() -> String {
    format!("wltest:{}:", uuid::Uuid::new_v4().simple())
}

pub fn cache(redis: Option<&str>, prefix: &str, policies: Policies, store: Option<Store>) -> Cache {
    Cache::new(CacheConfig {
        policies,
        redis: redis.map(link),
        redis_prefix: prefix.to_owned(),
        store,
    })
}

/// A loader that counts its calls, sleeps, then answers `value`.
pub fn counting(
    calls: &Arc<AtomicUsize>,
    delay_ms: u64,
    value: Result<Option<String>, &'static str>,
) -> impl FnOnce() -> futures_util::future::BoxFuture<'static, Result<Option<String>, LoadError>>
+ Send
+ 'static {
    let calls = calls.clone();
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            value.map_err(LoadError::new)
        })
    }
}

pub async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}
