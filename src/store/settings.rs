//! Where warmline stores its durable state: `DATABASE_URL` and the pool.

use secrecy::{ExposeSecret, SecretString};

use crate::support::{Env, SettingsError, redact_url};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://warmline.db?mode=rwc";

#[derive(Clone)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; may contain a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// Connections kept open even when idle (managed Postgres: a warm pool
    /// spares the TLS handshake on the first calls after a quiet spell).
    pub min_connections: u32,
    /// How long a request may wait for a pooled connection before failing.
    pub acquire_timeout: std::time::Duration,
    /// An idle connection above `min_connections` is closed after this.
    pub idle_timeout: std::time::Duration,
    /// Every connection is replaced after this long (poolers and managed
    /// services drop old connections; replacing them first avoids errors).
    pub max_lifetime: std::time::Duration,
    /// How often the daily answer-time rollup is written.
    pub rollup_flush: std::time::Duration,
}

impl DatabaseSettings {
    /// `DATABASE_URL` (with `sslmode=disable|prefer|require|verify-ca|verify-full`
    /// and `sslrootcert=PATH` for Postgres over TLS), `WARMLINE_DB_MAX_CONNECTIONS`,
    /// `WARMLINE_DB_MIN_CONNECTIONS`, `WARMLINE_DB_ACQUIRE_TIMEOUT_MS`,
    /// `WARMLINE_DB_IDLE_TIMEOUT_MS`, `WARMLINE_DB_MAX_LIFETIME_MS`,
    /// `WARMLINE_ROLLUP_FLUSH_MS`.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let url = env.get_or("DATABASE_URL", DEFAULT_DATABASE_URL);
        if super::Backend::from_url(&url).is_none() {
            return Err(SettingsError::new(
                "DATABASE_URL",
                format!(
                    "`{}`: expected sqlite://PATH or postgres://USER@HOST:PORT/DB",
                    redact_url(&url)
                ),
            ));
        }
        let rollup_flush = env.millis_or("WARMLINE_ROLLUP_FLUSH_MS", 10_000)?;
        if rollup_flush.is_zero() {
            return Err(SettingsError::new(
                "WARMLINE_ROLLUP_FLUSH_MS",
                "`0`: expected at least 1 ms",
            ));
        }
        if let Some(reason) = tls_problem(&url) {
            return Err(SettingsError::new(
                "DATABASE_URL",
                format!("`{}`: {reason}", redact_url(&url)),
            ));
        }
        let max_connections = env.count_or("WARMLINE_DB_MAX_CONNECTIONS", 10, 1)?;
        let min_connections = env.count_or("WARMLINE_DB_MIN_CONNECTIONS", 0, 0)?;
        if min_connections > max_connections {
            return Err(SettingsError::new(
                "WARMLINE_DB_MIN_CONNECTIONS",
                format!(
                    "`{min_connections}`: above WARMLINE_DB_MAX_CONNECTIONS ({max_connections})"
                ),
            ));
        }
        Ok(DatabaseSettings {
            url: url.into(),
            max_connections,
            min_connections,
            acquire_timeout: env.millis_or("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            idle_timeout: env.millis_or("WARMLINE_DB_IDLE_TIMEOUT_MS", 600_000)?,
            max_lifetime: env.millis_or("WARMLINE_DB_MAX_LIFETIME_MS", 1_800_000)?,
            rollup_flush,
        })
    }

    /// The TLS mode of a Postgres URL (`sslmode`, `prefer` when unset), or
    /// `none` for SQLite.
    pub fn tls_mode(&self) -> String {
        let url = self.url.expose_secret();
        if super::Backend::from_url(url) != Some(super::Backend::Postgres) {
            return "none".into();
        }
        query_param(url, "sslmode").unwrap_or_else(|| "prefer".into())
    }

    /// Whether `sslrootcert` names a CA of its own.
    pub fn private_ca(&self) -> bool {
        query_param(self.url.expose_secret(), "sslrootcert").is_some()
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What is wrong with a Postgres URL's TLS parameters, caught at start
/// rather than at the first connection.
fn tls_problem(url: &str) -> Option<String> {
    if super::Backend::from_url(url) != Some(super::Backend::Postgres) {
        return None;
    }
    if let Some(mode) = query_param(url, "sslmode")
        && ![
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ]
        .contains(&mode.as_str())
    {
        return Some(format!(
            "sslmode={mode}: expected disable, prefer, require, verify-ca or verify-full"
        ));
    }
    if let Some(path) = query_param(url, "sslrootcert")
        && let Err(e) = std::fs::metadata(&path)
    {
        return Some(format!("sslrootcert={path}: {e}"));
    }
    None
}
