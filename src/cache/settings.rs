//! The cache's settings: per-namespace policies (`WARMLINE_CACHE_*`) and the
//! optional shared tier (`REDIS_URL`).

use std::time::Duration;

use secrecy::SecretString;

use super::Policies;
use crate::support::{Env, SettingsError, redact_url};

/// The optional shared tier (L2 cache and the invalidation backplane).
#[derive(Clone)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Prefix of every key and channel warmline uses in Redis.
    pub prefix: String,
    /// Upper bound on any single Redis command: a Redis brown-out must never
    /// cost a caller more than this.
    pub command_timeout: Duration,
}

#[derive(Clone)]
pub struct CacheSettings {
    pub policies: Policies,
    /// `None`: in-process cache only.
    pub redis: Option<RedisSettings>,
}

impl CacheSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let policies = Policies::default()
            .with_overrides(|name| env.get(name))
            .map_err(|(var, reason)| SettingsError { var, reason })?;
        let redis = match env.get("REDIS_URL") {
            None => None,
            Some(url) => {
                redis::Client::open(url.as_str()).map_err(|e| {
                    SettingsError::new("REDIS_URL", format!("`{}`: {e}", redact_url(&url)))
                })?;
                Some(RedisSettings {
                    url: url.into(),
                    prefix: env.get_or("WARMLINE_REDIS_PREFIX", "wl:"),
                    command_timeout: env.millis_or("WARMLINE_REDIS_TIMEOUT_MS", 50)?,
                })
            }
        };
        Ok(CacheSettings { policies, redis })
    }

    /// The prefix of every Redis key and channel.
    pub fn redis_prefix(&self) -> String {
        self.redis
            .as_ref()
            .map_or_else(|| "wl:".into(), |r| r.prefix.clone())
    }
}
