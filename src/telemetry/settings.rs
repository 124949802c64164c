//! Logs and trace export, from `RUST_LOG`, `WARMLINE_LOG_FORMAT` and the
//! standard OpenTelemetry variables.

use crate::support::{Env, SettingsError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    pub log_filter: String,
    pub log_format: LogFormat,
    /// `OTEL_SERVICE_NAME`, default `warmline`.
    pub service_name: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (e.g. `http://jaeger:4318`); unset: no export.
    pub otlp_endpoint: Option<String>,
    /// `OTEL_TRACES_SAMPLER_ARG`: the fraction of new traces kept (parent-based).
    pub sample_ratio: f64,
}

impl TelemetrySettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let log_filter = env.get_or("RUST_LOG", "info,sqlx=warn");
        tracing_subscriber::EnvFilter::try_new(&log_filter)
            .map_err(|e| SettingsError::new("RUST_LOG", e.to_string()))?;
        let log_format = env
            .parse_with("WARMLINE_LOG_FORMAT", |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected `text` or `json`".into()),
            })?
            .unwrap_or(LogFormat::Text);
        let sample_ratio = env
            .parse_with("OTEL_TRACES_SAMPLER_ARG", |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| "expected a fraction from 0 to 1".into())
            })?
            .unwrap_or(1.0);
        Ok(TelemetrySettings {
            log_filter,
            log_format,
            service_name: env.get_or("OTEL_SERVICE_NAME", "warmline"),
            otlp_endpoint: env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            sample_ratio,
        })
    }
}
