//! The cache's settings: per-namespace policies (`WARMLINE_CACHE_*`) and the
//! optional shared tier (`REDIS_URL` and `WARMLINE_REDIS_*`).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::Policies;
use crate::support::{Env, SettingsError, redact_url};

/// The optional shared tier (L2 cache, leases, shared rate limits and the
/// invalidation backplane).
#[derive(Clone)]
pub struct RedisSettings {
    /// One URL, or with `cluster` several seed nodes separated by commas.
    /// `rediss://` is TLS. May hold a password, hence secret.
    pub url: SecretString,
    /// `WARMLINE_REDIS_CLUSTER=on`: the URLs are seed nodes of a Redis
    /// Cluster, reached through the cluster client.
    pub cluster: bool,
    /// `WARMLINE_REDIS_CA_FILE`: the PEM of a private CA that signed the
    /// server's certificate (`rediss://` only); without it the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Prefix of every key and channel warmline uses in Redis.
    pub prefix: String,
    /// Upper bound on any single Redis command: a Redis brown-out must never
    /// cost a caller more than this.
    pub command_timeout: Duration,
    /// How long establishing a connection (TCP, TLS, AUTH) may take.
    pub connect_timeout: Duration,
    /// How often the backplane sends itself a ping over pub/sub; a ping not
    /// back within the same interval means the subscription went silent.
    pub backplane_ping: Duration,
}

impl RedisSettings {
    /// A single server at `url` with the defaults of every other setting.
    pub fn new(url: impl Into<String>) -> Self {
        RedisSettings {
            url: SecretString::from(url.into()),
            cluster: false,
            ca_pem: None,
            prefix: "wl:".into(),
            command_timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(250),
            backplane_ping: Duration::from_secs(5),
        }
    }

    /// The URLs of the server or of the cluster's seed nodes.
    pub fn urls(&self) -> Vec<String> {
        self.url
            .expose_secret()
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// Whether the connection is TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.urls().iter().any(|u| u.starts_with("rediss://"))
    }
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
            Some(url) => Some(redis_from_env(env, url)?),
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

fn redis_from_env(env: &Env, url: String) -> Result<RedisSettings, SettingsError> {
    let defaults = RedisSettings::new("");
    let cluster = env.switch_or("WARMLINE_REDIS_CLUSTER", false)?;
    let settings = RedisSettings {
        url: url.clone().into(),
        cluster,
        ca_pem: None,
        prefix: env.get_or("WARMLINE_REDIS_PREFIX", "wl:"),
        command_timeout: env.millis_or("WARMLINE_REDIS_TIMEOUT_MS", 50)?,
        connect_timeout: env.millis_or(
            "WARMLINE_REDIS_CONNECT_TIMEOUT_MS",
            defaults.connect_timeout.as_millis() as u64,
        )?,
        backplane_ping: env.millis_or(
            "WARMLINE_REDIS_BACKPLANE_PING_MS",
            defaults.backplane_ping.as_millis() as u64,
        )?,
    };
    let urls = settings.urls();
    if urls.len() > 1 && !cluster {
        return Err(SettingsError::new(
            "REDIS_URL",
            format!(
                "`{}`: several URLs are seed nodes of a cluster; set WARMLINE_REDIS_CLUSTER=on",
                redact_url(&url)
            ),
        ));
    }
    for u in &urls {
        redis::Client::open(u.as_str())
            .map_err(|e| SettingsError::new("REDIS_URL", format!("`{}`: {e}", redact_url(u))))?;
    }
    if urls.iter().any(|u| u.starts_with("rediss://"))
        && !urls.iter().all(|u| u.starts_with("rediss://"))
    {
        return Err(SettingsError::new(
            "REDIS_URL",
            format!("`{}`: mixes rediss:// and redis:// nodes", redact_url(&url)),
        ));
    }
    if cluster && (settings.prefix.contains('{') || settings.prefix.contains('}')) {
        // The first `{…}` of a key picks its cluster slot: braces in the
        // prefix would put every key on one node.
        return Err(SettingsError::new(
            "WARMLINE_REDIS_PREFIX",
            format!("`{}`: no braces in a cluster", settings.prefix),
        ));
    }
    if settings.backplane_ping.is_zero() {
        return Err(SettingsError::new(
            "WARMLINE_REDIS_BACKPLANE_PING_MS",
            "`0`: expected at least 1 ms",
        ));
    }
    let ca_pem = match env.get("WARMLINE_REDIS_CA_FILE") {
        None => None,
        Some(path) => {
            if !settings.tls() {
                return Err(SettingsError::new(
                    "WARMLINE_REDIS_CA_FILE",
                    format!("`{path}`: a CA needs a rediss:// REDIS_URL"),
                ));
            }
            let pem = std::fs::read(&path).map_err(|e| {
                SettingsError::new("WARMLINE_REDIS_CA_FILE", format!("`{path}`: {e}"))
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(SettingsError::new(
                    "WARMLINE_REDIS_CA_FILE",
                    format!("`{path}`: no PEM certificate in it"),
                ));
            }
            Some(pem)
        }
    };
    Ok(RedisSettings { ca_pem, ..settings })
}
