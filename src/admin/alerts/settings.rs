//! The thresholds warmline's alerts fire at and how often they are
//! evaluated, from `WARMLINE_ALERT_*`. The defaults are the Prometheus
//! rules' (`dashboards/prometheus/alerts.yml`).

use std::time::Duration;

use super::rules::Rule;
use crate::support::{Env, SettingsError};

#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    /// `WARMLINE_ALERT_EVAL_MS` (15 s): how often the conditions are checked.
    pub every: Duration,
    /// `WARMLINE_ALERT_FOR_MS`: how long every condition must hold before
    /// its alert fires; unset, each rule's own `for` (1 to 15 min).
    pub hold: Option<Duration>,
    /// `WARMLINE_ALERT_WINDOW_MS` (10 min): the window of the hit ratio and
    /// of the write-behind lag's trend (the rules' `[10m]`).
    pub window: Duration,
    /// `WARMLINE_ALERT_HIT_RATIO_MIN` (0.5): below it, the hit-ratio alert.
    pub hit_ratio_min: f64,
    /// `WARMLINE_ALERT_FALLBACK_RATIO_MAX` (0.1): fallbacks per call today
    /// above it.
    pub fallback_ratio_max: f64,
    /// `WARMLINE_ALERT_P95_FACTOR` (1.5): webhook p95 above this many times
    /// its 7-day baseline.
    pub p95_factor: f64,
    /// `WARMLINE_ALERT_WRITEBEHIND_LAG_MS` (2 min): the oldest pending
    /// write-back older than this, and getting older.
    pub lag_max: Duration,
    /// `WARMLINE_ALERT_SPILL_DEPTH_MAX` (0): more events than this in the
    /// spill journal.
    pub spill_max: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            every: Duration::from_secs(15),
            hold: None,
            window: Duration::from_secs(600),
            hit_ratio_min: 0.5,
            fallback_ratio_max: 0.1,
            p95_factor: 1.5,
            lag_max: Duration::from_secs(120),
            spill_max: 0,
        }
    }
}

/// A number in `[min, max]`.
fn number(env: &Env, name: &str, default: f64, min: f64, max: f64) -> Result<f64, SettingsError> {
    Ok(env
        .parse_with(name, |v| match v.parse::<f64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("expected a number from {min} to {max}")),
        })?
        .unwrap_or(default))
}

impl AlertSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let d = AlertSettings::default();
        let every = env.millis_or("WARMLINE_ALERT_EVAL_MS", d.every.as_millis() as u64)?;
        if every < Duration::from_millis(10) {
            return Err(SettingsError::new(
                "WARMLINE_ALERT_EVAL_MS",
                "expected at least 10 milliseconds",
            ));
        }
        let hold = match env.get("WARMLINE_ALERT_FOR_MS") {
            None => None,
            Some(_) => Some(env.millis_or("WARMLINE_ALERT_FOR_MS", 0)?),
        };
        Ok(AlertSettings {
            every,
            hold,
            window: env.millis_or("WARMLINE_ALERT_WINDOW_MS", d.window.as_millis() as u64)?,
            hit_ratio_min: number(
                env,
                "WARMLINE_ALERT_HIT_RATIO_MIN",
                d.hit_ratio_min,
                0.0,
                1.0,
            )?,
            fallback_ratio_max: number(
                env,
                "WARMLINE_ALERT_FALLBACK_RATIO_MAX",
                d.fallback_ratio_max,
                0.0,
                1.0,
            )?,
            p95_factor: number(env, "WARMLINE_ALERT_P95_FACTOR", d.p95_factor, 1.0, 100.0)?,
            lag_max: env.millis_or(
                "WARMLINE_ALERT_WRITEBEHIND_LAG_MS",
                d.lag_max.as_millis() as u64,
            )?,
            spill_max: u64::from(env.count_or("WARMLINE_ALERT_SPILL_DEPTH_MAX", 0, 0)?),
        })
    }

    /// How long `rule`'s condition must hold before it fires.
    pub fn hold_for(&self, rule: Rule) -> Duration {
        self.hold.unwrap_or_else(|| rule.default_for())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<AlertSettings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AlertSettings::from_env(&Env::new(&map))
    }

    #[test]
    fn nothing_set_gives_the_prometheus_rules_defaults() {
        let s = parse(&[]).unwrap();
        assert_eq!(s, AlertSettings::default());
        assert_eq!(s.hold_for(Rule::FallbacksHigh), Duration::from_secs(300));
        assert_eq!(s.hold_for(Rule::DatabaseDown), Duration::from_secs(60));
    }

    #[test]
    fn thresholds_and_the_hold_are_read_and_checked() {
        let s = parse(&[
            ("WARMLINE_ALERT_FOR_MS", "0"),
            ("WARMLINE_ALERT_EVAL_MS", "50"),
            ("WARMLINE_ALERT_HIT_RATIO_MIN", "0.8"),
            ("WARMLINE_ALERT_SPILL_DEPTH_MAX", "10"),
        ])
        .unwrap();
        assert_eq!(s.hold_for(Rule::WebhookLatencyHigh), Duration::ZERO);
        assert_eq!(s.every, Duration::from_millis(50));
        assert_eq!((s.hit_ratio_min, s.spill_max), (0.8, 10));
        for (var, bad) in [
            ("WARMLINE_ALERT_HIT_RATIO_MIN", "50"),
            ("WARMLINE_ALERT_P95_FACTOR", "0.5"),
            ("WARMLINE_ALERT_EVAL_MS", "0"),
            ("WARMLINE_ALERT_FOR_MS", "soon"),
        ] {
            assert_eq!(parse(&[(var, bad)]).unwrap_err().var, var);
        }
    }
}
