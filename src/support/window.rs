//! Fixed-window rate limits shared across replicas: a counter per key and
//! window kept in a [`SharedWindow`] (Redis, supplied by the cache), with a
//! counter in this process standing in while the shared one cannot answer.
//!
//! The shared counter is what keeps N replicas within an upstream's quota
//! instead of N times it. Without it (no Redis, or Redis down) each replica
//! counts alone: the fleet may then send up to N × the limit, and the
//! upstream's own 429s (respected by the HTTP client) are the backstop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A counter per key whose window starts at its first increment.
#[async_trait::async_trait]
pub trait SharedWindow: Send + Sync {
    /// Counts one more request for `key`; returns the count in the current
    /// window (this one included) and the time left in it.
    async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), String>;
}

/// At most `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// 0: unlimited.
    pub limit: u32,
    pub window: Duration,
}

/// Which counter refused (or admitted) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Shared,
    Local,
}

impl Counter {
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Shared => "shared",
            Counter::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed(Counter),
    /// Over the limit: try again after this long.
    Throttled {
        retry_after: Duration,
        by: Counter,
    },
}

pub struct RateLimiter {
    limit: RateLimit,
    shared: Option<Arc<dyn SharedWindow>>,
    /// Key → (window start, count), used while the shared counter fails.
    local: Mutex<HashMap<String, (Instant, u64)>>,
    /// Requests refused since start, by the shared and the local counter.
    throttled: [AtomicU64; 2],
}

/// A limiter's settings and what it refused, for the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QuotaStatus {
    pub limit: u32,
    pub window_ms: u64,
    /// Counted for every replica together (Redis), or by this one alone.
    pub shared: bool,
    pub throttled_shared: u64,
    pub throttled_local: u64,
}

impl RateLimiter {
    pub fn new(limit: RateLimit, shared: Option<Arc<dyn SharedWindow>>) -> Self {
        RateLimiter {
            limit,
            shared,
            local: Mutex::new(HashMap::new()),
            throttled: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    pub fn status(&self) -> QuotaStatus {
        QuotaStatus {
            limit: self.limit.limit,
            window_ms: u64::try_from(self.limit.window.as_millis()).unwrap_or(u64::MAX),
            shared: self.shared.is_some(),
            throttled_shared: self.throttled[0].load(Ordering::Relaxed),
            throttled_local: self.throttled[1].load(Ordering::Relaxed),
        }
    }

    /// Counts a request for `key` and says whether it may go out.
    pub async fn admit(&self, key: &str) -> Admission {
        let admission = self.count(key).await;
        if let Admission::Throttled { by, .. } = admission {
            let slot = match by {
                Counter::Shared => 0,
                Counter::Local => 1,
            };
            self.throttled[slot].fetch_add(1, Ordering::Relaxed);
        }
        admission
    }

    async fn count(&self, key: &str) -> Admission {
        if self.limit.limit == 0 {
            return Admission::Allowed(Counter::Local);
        }
        let limit = u64::from(self.limit.limit);
        if let Some(shared) = &self.shared {
            match shared.increment(key, self.limit.window).await {
                Ok((n, left)) if n > limit => {
                    return Admission::Throttled {
                        retry_after: left,
                        by: Counter::Shared,
                    };
                }
                Ok(_) => return Admission::Allowed(Counter::Shared),
                Err(e) => {
                    tracing::debug!(error = %e, "shared rate limit unavailable: counting locally")
                }
            }
        }
        self.admit_locally(key, limit)
    }

    fn admit_locally(&self, key: &str, limit: u64) -> Admission {
        let now = Instant::now();
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.len() > 10_000 {
            local.retain(|_, (start, _)| now.duration_since(*start) < self.limit.window);
        }
        let entry = local.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.limit.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            Admission::Throttled {
                retry_after: self
                    .limit
                    .window
                    .saturating_sub(now.duration_since(entry.0)),
                by: Counter::Local,
            }
        } else {
            Admission::Allowed(Counter::Local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Down;

    #[async_trait::async_trait]
    impl SharedWindow for Down {
        async fn increment(&self, _: &str, _: Duration) -> Result<(u64, Duration), String> {
            Err("redis is down".into())
        }
    }

    #[tokio::test]
    async fn without_the_shared_counter_the_local_one_keeps_the_limit() {
        let limiter = RateLimiter::new(
            RateLimit {
                limit: 3,
                window: Duration::from_secs(60),
            },
            Some(Arc::new(Down)),
        );
        for _ in 0..3 {
            assert_eq!(
                limiter.admit("loc-1").await,
                Admission::Allowed(Counter::Local)
            );
        }
        assert!(matches!(
            limiter.admit("loc-1").await,
            Admission::Throttled {
                by: Counter::Local,
                ..
            }
        ));
        // Another key has its own window.
        assert_eq!(
            limiter.admit("loc-2").await,
            Admission::Allowed(Counter::Local)
        );
        let status = limiter.status();
        assert_eq!((status.throttled_local, status.throttled_shared), (1, 0));
    }
}
