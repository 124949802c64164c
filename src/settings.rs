//! Typed settings, read once from the environment at start.
//!
//! Every setting has a default that works on a fresh machine with nothing set:
//! a local SQLite file, the in-process cache only, a loopback listener. A value
//! that does not parse stops the start with one line naming the variable, so an
//! operator never has to guess which of twenty variables was wrong.
//!
//! Secrets (database and Redis passwords, tokens) are wrapped in
//! [`secrecy::SecretString`] and only ever shown redacted.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::cache::Policies;
use crate::upstreams::registry::UpstreamSettings;

/// Where warmline stores its durable state.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; may contain a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request may wait for a pooled connection before failing.
    pub acquire_timeout: Duration,
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub database: DatabaseSettings,
    pub redis: Option<RedisSettings>,
    pub log_filter: String,
    pub log_format: LogFormat,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Per-namespace cache policies (defaults, then `WARMLINE_CACHE_*`).
    pub cache_policies: Policies,
    /// Bearer token of the admin JSON API; unset: the API is disabled.
    pub admin_token: Option<SecretString>,
    /// Per-upstream timeouts and breaker figures.
    pub upstreams: UpstreamSettings,
    /// Seed and serve the demo tenant when no real tenant exists.
    pub demo: bool,
    pub webhooks: WebhookSettings,
    /// Where acknowledged work waits while the database is unreachable.
    pub spill_dir: std::path::PathBuf,
    /// How long applied events are remembered to recognise retries.
    pub idempotency_retention: Duration,
    pub telemetry: TelemetrySettings,
}

/// Tracing export, from the standard OpenTelemetry variables.
#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// `OTEL_SERVICE_NAME`, default `warmline`.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. `http://jaeger:4318`); unset: no export.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the fraction of new traces kept (parent-based).
    pub sample_ratio: f64,
}

/// Provider secrets (global; a tenant may later override them) and the
/// inbound deadline budget.
#[derive(Clone)]
pub struct WebhookSettings {
    pub retell_api_key: Option<SecretString>,
    pub vapi_secret: Option<SecretString>,
    pub elevenlabs_secret: Option<SecretString>,
    /// How long an inbound call's context may take before missing parts are
    /// left out (they finish in the background for the next caller).
    pub inbound_deadline: Duration,
}

/// A setting that could not be used; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}: {reason}")]
pub struct SettingsError {
    pub var: String,
    pub reason: String,
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://warmline.db?mode=rwc";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads settings from a map of variables; the process environment is one
    /// such map, tests pass their own.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };

        let addr = parse_var(
            "WARMLINE_ADDR",
            get("WARMLINE_ADDR").as_deref().unwrap_or(DEFAULT_ADDR),
            |v| v.parse::<SocketAddr>().map_err(|e| e.to_string()),
        )?;

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        validate_database_url(&database_url).map_err(|reason| SettingsError {
            var: "DATABASE_URL".into(),
            reason,
        })?;
        let max_connections = match get("WARMLINE_DB_MAX_CONNECTIONS") {
            Some(v) => parse_var("WARMLINE_DB_MAX_CONNECTIONS", &v, |v| {
                match v.parse::<u32>() {
                    Ok(0) => Err("must be at least 1".into()),
                    Ok(n) => Ok(n),
                    Err(e) => Err(e.to_string()),
                }
            })?,
            None => 10,
        };
        let acquire_timeout = duration_var(&get, "WARMLINE_DB_ACQUIRE_TIMEOUT_MS", 2_000)?;

        let redis = match get("REDIS_URL") {
            None => None,
            Some(url) => {
                validate_redis_url(&url).map_err(|reason| SettingsError {
                    var: "REDIS_URL".into(),
                    reason,
                })?;
                Some(RedisSettings {
                    url: url.into(),
                    prefix: get("WARMLINE_REDIS_PREFIX").unwrap_or_else(|| "wl:".into()),
                    command_timeout: duration_var(&get, "WARMLINE_REDIS_TIMEOUT_MS", 50)?,
                })
            }
        };

        let log_filter = get("RUST_LOG").unwrap_or_else(|| "info,sqlx=warn".into());
        tracing_subscriber::EnvFilter::try_new(&log_filter).map_err(|e| SettingsError {
            var: "RUST_LOG".into(),
            reason: e.to_string(),
        })?;
        let log_format = match get("WARMLINE_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(SettingsError {
                    var: "WARMLINE_LOG_FORMAT".into(),
                    reason: format!("expected `text` or `json`, got `{other}`"),
                });
            }
        };

        let cache_policies = Policies::default()
            .with_overrides(|name| get(name))
            .map_err(|(var, reason)| SettingsError { var, reason })?;
        let admin_token = match get("WARMLINE_ADMIN_TOKEN") {
            Some(t) if t.len() < 16 => {
                return Err(SettingsError {
                    var: "WARMLINE_ADMIN_TOKEN".into(),
                    reason: "must be at least 16 characters".into(),
                });
            }
            t => t.map(SecretString::from),
        };

        let mut upstreams = UpstreamSettings::default();
        for kind in UpstreamSettings::KINDS {
            let var = format!("WARMLINE_UPSTREAM_{}_TIMEOUT_MS", kind.to_uppercase());
            let slot = upstreams.for_kind_mut(kind).expect("known kind");
            slot.timeout = duration_var(&get, &var, slot.timeout.as_millis() as u64)?;
        }
        let failures = match get("WARMLINE_UPSTREAM_BREAKER_FAILURES") {
            Some(v) => parse_var("WARMLINE_UPSTREAM_BREAKER_FAILURES", &v, |v| {
                match v.parse::<u32>() {
                    Ok(0) | Err(_) => Err("expected a whole number of at least 1".into()),
                    Ok(n) => Ok(n),
                }
            })?,
            None => 5,
        };
        let open_for = duration_var(&get, "WARMLINE_UPSTREAM_BREAKER_OPEN_MS", 10_000)?;
        for kind in UpstreamSettings::KINDS {
            let slot = upstreams.for_kind_mut(kind).expect("known kind");
            slot.breaker_failures = failures;
            slot.breaker_open_for = open_for;
        }
        let demo = match get("WARMLINE_DEMO").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(SettingsError {
                    var: "WARMLINE_DEMO".into(),
                    reason: format!("expected `on` or `off`, got `{other}`"),
                });
            }
        };

        let webhooks = WebhookSettings {
            retell_api_key: get("RETELL_API_KEY").map(SecretString::from),
            vapi_secret: get("VAPI_SECRET").map(SecretString::from),
            elevenlabs_secret: get("ELEVENLABS_WEBHOOK_SECRET").map(SecretString::from),
            inbound_deadline: duration_var(&get, "WARMLINE_INBOUND_DEADLINE_MS", 1_500)?,
        };

        let sample_ratio = match get("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(v) => parse_var("OTEL_TRACES_SAMPLER_ARG", &v, |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| "expected a fraction from 0 to 1".into())
            })?,
        };
        let telemetry = TelemetrySettings {
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "warmline".into()),
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            sample_ratio,
        };

        let idempotency_retention = match get("WARMLINE_IDEMPOTENCY_RETENTION_HOURS") {
            None => Duration::from_secs(7 * 24 * 3600),
            Some(v) => parse_var("WARMLINE_IDEMPOTENCY_RETENTION_HOURS", &v, |v| {
                match v.parse::<u64>() {
                    Ok(h) if h >= 1 => Ok(Duration::from_secs(h * 3600)),
                    _ => Err("expected a whole number of hours, at least 1".into()),
                }
            })?,
        };

        Ok(Settings {
            addr,
            idempotency_retention,
            telemetry,
            spill_dir: get("WARMLINE_SPILL_DIR")
                .unwrap_or_else(|| "warmline-spill".into())
                .into(),
            webhooks,
            upstreams,
            demo,
            cache_policies,
            admin_token,
            database: DatabaseSettings {
                url: database_url.into(),
                max_connections,
                acquire_timeout,
            },
            redis,
            log_filter,
            log_format,
            shutdown_grace: duration_var(&get, "WARMLINE_SHUTDOWN_GRACE_MS", 10_000)?,
        })
    }
}

fn parse_var<T>(
    var: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, SettingsError> {
    parse(value).map_err(|reason| SettingsError {
        var: var.into(),
        reason: format!("`{value}`: {reason}"),
    })
}

fn duration_var(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default_ms: u64,
) -> Result<Duration, SettingsError> {
    match get(var) {
        None => Ok(Duration::from_millis(default_ms)),
        Some(v) => parse_var(var, &v, |v| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| "expected a whole number of milliseconds".into())
        }),
    }
}

fn validate_database_url(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(())
    } else {
        Err(format!(
            "`{}`: expected sqlite://PATH or postgres://USER@HOST:PORT/DB",
            redact_url(url)
        ))
    }
}

fn validate_redis_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("`{}`: {e}", redact_url(url)))
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}://{}@{}", &url[..scheme_end], masked, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

impl fmt::Display for Settings {
    /// The settings as printed at start: every secret redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  WARMLINE_ADDR          {}", self.addr)?;
        writeln!(
            f,
            "  DATABASE_URL           {}",
            redact_url(self.database.url.expose_secret())
        )?;
        match &self.redis {
            Some(r) => writeln!(
                f,
                "  REDIS_URL              {} (command timeout {} ms)",
                redact_url(r.url.expose_secret()),
                r.command_timeout.as_millis()
            )?,
            None => writeln!(f, "  REDIS_URL              (unset: in-process cache only)")?,
        }
        writeln!(
            f,
            "  WARMLINE_ADMIN_TOKEN   {}",
            if self.admin_token.is_some() {
                "(set)"
            } else {
                "(unset: admin API disabled)"
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
        writeln!(f, "  RUST_LOG               {}", self.log_filter)?;
        write!(
            f,
            "  WARMLINE_LOG_FORMAT    {}",
            match self.log_format {
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
        assert_eq!(s.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(s.database.url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.redis.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
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

    #[test]
    fn redact_url_leaves_urls_without_credentials_alone() {
        assert_eq!(
            redact_url("sqlite://warmline.db?mode=rwc"),
            "sqlite://warmline.db?mode=rwc"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
