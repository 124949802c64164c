//! Typed settings, read once from the environment at start.
//!
//! Each subsystem owns its settings type and reads its own variables
//! (`store::DatabaseSettings`, `cache::CacheSettings`, …); this module only
//! composes them. Every setting has a default that works on a fresh machine
//! with nothing set: a local SQLite file, the in-process cache only, a
//! loopback listener. A value that does not parse stops the start with one
//! line naming the variable.
//!
//! Secrets (database and Redis passwords, tokens) are wrapped in
//! [`secrecy::SecretString`] and only ever shown redacted.

use std::collections::HashMap;
use std::fmt;

use secrecy::ExposeSecret;

use crate::admin::AdminSettings;
use crate::cache::CacheSettings;
use crate::calls::CallSettings;
use crate::http::HttpSettings;
use crate::store::DatabaseSettings;
use crate::support::{Env, redact_url};
use crate::telemetry::{LogFormat, TelemetrySettings};
use crate::upstreams::UpstreamSettings;
use crate::webhooks::WebhookSettings;
use crate::writebehind::WriteBehindSettings;

pub use crate::http::DEFAULT_ADDR;
pub use crate::store::DEFAULT_DATABASE_URL;
pub use crate::support::SettingsError;

#[derive(Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub upstreams: UpstreamSettings,
    pub webhooks: WebhookSettings,
    pub calls: CallSettings,
    pub writebehind: WriteBehindSettings,
    pub admin: AdminSettings,
    pub telemetry: TelemetrySettings,
    /// `WARMLINE_DEMO`: seed and serve the demo tenant when no real tenant
    /// exists (default on).
    pub demo: bool,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables; the process environment is one
    /// such map, tests pass their own.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let env = Env::new(vars);
        Ok(Settings {
            http: HttpSettings::from_env(&env)?,
            database: DatabaseSettings::from_env(&env)?,
            cache: CacheSettings::from_env(&env)?,
            upstreams: UpstreamSettings::from_env(&env)?,
            webhooks: WebhookSettings::from_env(&env)?,
            calls: CallSettings::from_env(&env)?,
            writebehind: WriteBehindSettings::from_env(&env)?,
            admin: AdminSettings::from_env(&env)?,
            telemetry: TelemetrySettings::from_env(&env)?,
            demo: env.switch_or("WARMLINE_DEMO", true)?,
        })
    }
}

impl fmt::Display for Settings {
    /// The settings as printed at start: every secret redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  WARMLINE_ADDR          {}", self.http.addr)?;
        writeln!(
            f,
            "  DATABASE_URL           {}",
            redact_url(self.database.url.expose_secret())
        )?;
        match &self.cache.redis {
            Some(r) => writeln!(
                f,
                "  REDIS_URL              {} ({}{}, command timeout {} ms)",
                r.urls()
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>()
                    .join(","),
                if r.cluster {
                    "cluster"
                } else {
                    "single server"
                },
                match (r.tls(), r.ca_pem.is_some()) {
                    (true, true) => ", TLS with WARMLINE_REDIS_CA_FILE",
                    (true, false) => ", TLS",
                    _ => "",
                },
                r.command_timeout.as_millis()
            )?,
            None => writeln!(f, "  REDIS_URL              (unset: in-process cache only)")?,
        }
        writeln!(
            f,
            "  WARMLINE_ADMIN_TOKEN   {}",
            if self.admin.token.is_some() {
                "(set)"
            } else {
                "(unset: admin API disabled)"
            }
        )?;
        writeln!(
            f,
            "  WARMLINE_ADMIN_PASSWORD_HASH {}",
            match (&self.admin.password, &self.admin.viewer_password) {
                (Some(_), Some(_)) => "(set, with a viewer login)",
                (Some(_), None) => "(set)",
                (None, Some(_)) => "(viewer login only)",
                (None, None) => "(unset: admin pages closed, or a one-time password with the demo)",
            }
        )?;
        writeln!(
            f,
            "  WARMLINE_DEMO          {}",
            if self.demo { "on" } else { "off" }
        )?;
        writeln!(
            f,
            "  OTEL_EXPORTER_OTLP_ENDPOINT {}",
            self.telemetry
                .otlp_endpoint
                .as_deref()
                .map(redact_url)
                .unwrap_or_else(|| "(unset: traces not exported)".into())
        )?;
        writeln!(f, "  RUST_LOG               {}", self.telemetry.log_filter)?;
        write!(
            f,
            "  WARMLINE_LOG_FORMAT    {}",
            match self.telemetry.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nothing_set_gives_the_embedded_defaults() {
        let s = Settings::from_vars(&HashMap::new()).expect("defaults parse");
        assert_eq!(s.http.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(s.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.cache.redis.is_none());
        assert_eq!(s.telemetry.log_format, LogFormat::Text);
    }

    #[test]
    fn a_bad_address_names_the_variable() {
        let err = Settings::from_vars(&vars(&[("WARMLINE_ADDR", "localhost")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "WARMLINE_ADDR");
        assert!(
            err.to_string()
                .starts_with("invalid WARMLINE_ADDR: `localhost`")
        );
    }

    #[test]
    fn an_unknown_database_scheme_names_the_variable_without_the_password() {
        let err = Settings::from_vars(&vars(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_bad_redis_url_names_the_variable() {
        let err = Settings::from_vars(&vars(&[("REDIS_URL", "http://nope")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "REDIS_URL");
    }

    #[test]
    fn a_bad_log_filter_or_format_names_the_variable() {
        let err = Settings::from_vars(&vars(&[("RUST_LOG", "warmline=loudest")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "RUST_LOG");
        let err = Settings::from_vars(&vars(&[("WARMLINE_LOG_FORMAT", "xml")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "WARMLINE_LOG_FORMAT");
    }

    #[test]
    fn printed_settings_never_show_passwords() {
        let s = Settings::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://app:s3cret@db:5432/warmline"),
            ("REDIS_URL", "redis://:r3dis@cache:6379/0"),
            ("WARMLINE_ADMIN_TOKEN", "t0ken-t0ken-t0ken-t0ken"),
        ]))
        .expect("parses");
        let shown = s.to_string();
        assert!(
            !shown.contains("s3cret") && !shown.contains("r3dis"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:***@db:5432/warmline"),
            "{shown}"
        );
        assert!(shown.contains("redis://:***@cache:6379/0"), "{shown}");
    }

    #[test]
    fn a_short_admin_token_or_bad_cache_override_names_the_variable() {
        let err = Settings::from_vars(&vars(&[("WARMLINE_ADMIN_TOKEN", "abc")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "WARMLINE_ADMIN_TOKEN");
        let err = Settings::from_vars(&vars(&[("WARMLINE_CACHE_MEMORY_FRESH_MS", "5m")]))
            .err()
            .expect("must fail");
        assert_eq!(err.var, "WARMLINE_CACHE_MEMORY_FRESH_MS");
    }
}
