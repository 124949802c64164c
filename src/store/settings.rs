//! Where warmline stores its durable state: `DATABASE_URL` and the pool.

use secrecy::SecretString;

use crate::support::{Env, SettingsError, redact_url};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://warmline.db?mode=rwc";

#[derive(Clone)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; may contain a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request may wait for a pooled connection before failing.
    pub acquire_timeout: std::time::Duration,
    /// How often the daily answer-time rollup is written.
    pub rollup_flush: std::time::Duration,
}

impl DatabaseSettings {
    /// `DATABASE_URL`, `WARMLINE_DB_MAX_CONNECTIONS`, `WARMLINE_DB_ACQUIRE_TIMEOUT_MS`,
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
        Ok(DatabaseSettings {
            url: url.into(),
            max_connections: env.count_or("WARMLINE_DB_MAX_CONNECTIONS", 10, 1)?,
            acquire_timeout: env.millis_or("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            rollup_flush,
        })
    }
}
