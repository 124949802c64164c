//! The alert rules, as `dashboards/prometheus/alerts.yml` states them
//! (same names, severities and default thresholds), checked against the
//! replica's own numbers in an [`AlertInputs`]. Pure: no clock, no I/O, so
//! each condition is tested at its boundaries.

use std::collections::BTreeMap;
use std::time::Duration;

use super::settings::AlertSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    CacheHitRatioLow,
    FallbacksHigh,
    WebhookLatencyHigh,
    WriteBehindLagGrowing,
    SpillingToJournal,
    UpstreamBreakerOpen,
    RedisDown,
    DatabaseDown,
}

/// How a rule's value and threshold read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ratio,
    Millis,
    Seconds,
    Count,
    Breaker,
    Up,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::CacheHitRatioLow,
        Rule::FallbacksHigh,
        Rule::WebhookLatencyHigh,
        Rule::WriteBehindLagGrowing,
        Rule::SpillingToJournal,
        Rule::UpstreamBreakerOpen,
        Rule::RedisDown,
        Rule::DatabaseDown,
    ];

    /// The Prometheus rule's `alert:` name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::CacheHitRatioLow => "WarmlineCacheHitRatioLow",
            Rule::FallbacksHigh => "WarmlineFallbacksHigh",
            Rule::WebhookLatencyHigh => "WarmlineWebhookLatencyHigh",
            Rule::WriteBehindLagGrowing => "WarmlineWriteBehindLagGrowing",
            Rule::SpillingToJournal => "WarmlineSpillingToJournal",
            Rule::UpstreamBreakerOpen => "WarmlineUpstreamBreakerOpen",
            Rule::RedisDown => "WarmlineRedisDown",
            Rule::DatabaseDown => "WarmlineDatabaseDown",
        }
    }

    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn severity(self) -> &'static str {
        match self {
            Rule::SpillingToJournal | Rule::DatabaseDown => "critical",
            _ => "warning",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Rule::CacheHitRatioLow => "Cache hit ratio low",
            Rule::FallbacksHigh => "Fallback activations high",
            Rule::WebhookLatencyHigh => "Webhook p95 above its 7-day baseline",
            Rule::WriteBehindLagGrowing => "Write-behind lag growing",
            Rule::SpillingToJournal => "Events waiting in the local spill journal",
            Rule::UpstreamBreakerOpen => "Upstream circuit breaker open",
            Rule::RedisDown => "Redis unreachable",
            Rule::DatabaseDown => "Database unreachable",
        }
    }

    /// What it means for the callers, in one sentence.
    pub fn meaning(self) -> &'static str {
        match self {
            Rule::CacheHitRatioLow => "Few cache lookups hit: callers wait on the upstreams.",
            Rule::FallbacksHigh => {
                "Many calls took a fallback (unknown number, unknown call id, …): callers get generic answers."
            }
            Rule::WebhookLatencyHigh => {
                "Webhooks answer much slower than usual: callers hear dead air."
            }
            Rule::WriteBehindLagGrowing => {
                "Acknowledged work waits long to be written back, and the backlog is getting older."
            }
            Rule::SpillingToJournal => {
                "Acknowledged events are only on local disk: the database has been unreachable."
            }
            Rule::UpstreamBreakerOpen => {
                "Calls to this upstream fail fast; stale values are being served."
            }
            Rule::RedisDown => {
                "warmline serves from L1 only; replicas cannot share cache or invalidations."
            }
            Rule::DatabaseDown => {
                "Webhooks are answered from cache; call events go to the spill journal."
            }
        }
    }

    /// The Prometheus rule's `for:`.
    pub fn default_for(self) -> Duration {
        let minutes = match self {
            Rule::CacheHitRatioLow | Rule::WriteBehindLagGrowing => 10,
            Rule::FallbacksHigh | Rule::SpillingToJournal => 5,
            Rule::WebhookLatencyHigh => 15,
            Rule::UpstreamBreakerOpen | Rule::RedisDown | Rule::DatabaseDown => 1,
        };
        Duration::from_secs(minutes * 60)
    }

    fn unit(self) -> Unit {
        match self {
            Rule::CacheHitRatioLow | Rule::FallbacksHigh => Unit::Ratio,
            Rule::WebhookLatencyHigh => Unit::Millis,
            Rule::WriteBehindLagGrowing => Unit::Seconds,
            Rule::SpillingToJournal => Unit::Count,
            Rule::UpstreamBreakerOpen => Unit::Breaker,
            Rule::RedisDown | Rule::DatabaseDown => Unit::Up,
        }
    }

    /// A value or threshold of this rule, for people.
    pub fn show(self, v: f64) -> String {
        match self.unit() {
            Unit::Ratio if !v.is_finite() => "∞".into(),
            Unit::Ratio => format!("{:.1} %", v * 100.0),
            Unit::Millis => format!("{v:.0} ms"),
            Unit::Seconds => format!("{v:.0} s"),
            Unit::Count => format!("{v:.0}"),
            Unit::Breaker => "open".into(),
            Unit::Up if v >= 1.0 => "up".into(),
            Unit::Up => "down".into(),
        }
    }

    /// How the value compares with the threshold when the rule breaches.
    pub fn comparison(self) -> &'static str {
        match self {
            Rule::CacheHitRatioLow => "<",
            Rule::UpstreamBreakerOpen | Rule::RedisDown | Rule::DatabaseDown => "is",
            _ => ">",
        }
    }

    /// The condition in force, as the thresholds table states it.
    pub fn condition(self, s: &AlertSettings) -> String {
        let window = minutes(s.window);
        match self {
            Rule::CacheHitRatioLow => format!(
                "hits below {} of cache lookups over {window}",
                self.show(s.hit_ratio_min)
            ),
            Rule::FallbacksHigh => format!(
                "fallbacks above {} of the calls today",
                self.show(s.fallback_ratio_max)
            ),
            Rule::WebhookLatencyHigh => {
                format!("webhook p95 above {} × its 7-day p95", s.p95_factor)
            }
            Rule::WriteBehindLagGrowing => format!(
                "oldest pending write-back older than {} s and getting older over {window}",
                s.lag_max.as_secs()
            ),
            Rule::SpillingToJournal => {
                format!("more than {} events in the spill journal", s.spill_max)
            }
            Rule::UpstreamBreakerOpen => "an upstream's circuit breaker is open".into(),
            Rule::RedisDown => "Redis does not answer PING".into(),
            Rule::DatabaseDown => "the database does not answer a ping".into(),
        }
    }
}

/// `10 min`, `30 s`.
pub fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else if s > 0 {
        format!("{s} s")
    } else if d.is_zero() {
        "at once".into()
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The replica's numbers an evaluation looks at, gathered once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertInputs {
    /// Cache lookups that hit (fresh, stale or fail-safe, any tier) and all
    /// lookups, over the window.
    pub cache_hits: u64,
    pub cache_lookups: u64,
    /// Today's calls and fallbacks over every tenant; `None` when the
    /// database did not answer.
    pub calls_today: Option<i64>,
    pub fallbacks_today: Option<i64>,
    /// Webhook p95 now and over the last 7 days; the rule has no data while
    /// either is missing.
    pub webhook_p95_ms: Option<f64>,
    pub webhook_p95_baseline_ms: Option<f64>,
    /// Age of the oldest pending write-back (0 when none) and how it changed
    /// over the window, in seconds per second (least squares, as PromQL's
    /// `deriv`); `None` when unknown.
    pub writeback_oldest_s: Option<f64>,
    pub writeback_oldest_trend: Option<f64>,
    pub writeback_depth: i64,
    /// Events waiting in the spill journal.
    pub spill_depth: u64,
    /// Upstreams with an open breaker.
    pub open_breakers: Vec<String>,
    /// `None` without Redis.
    pub redis_up: Option<bool>,
    pub db_up: bool,
}

/// One label set for which a rule's condition holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub threshold: f64,
    pub detail: String,
}

impl Breach {
    fn new(value: f64, threshold: f64, detail: String) -> Self {
        Breach {
            labels: BTreeMap::new(),
            value,
            threshold,
            detail,
        }
    }
}

/// What a rule says of the inputs: `None` when it cannot tell (no data:
/// the alert's state stays as it was), else every label set it breaches
/// for (empty: all clear).
pub fn check(rule: Rule, i: &AlertInputs, s: &AlertSettings) -> Option<Vec<Breach>> {
    let one =
        |breach: Option<Breach>| -> Option<Vec<Breach>> { Some(breach.into_iter().collect()) };
    match rule {
        Rule::CacheHitRatioLow => {
            if i.cache_lookups == 0 {
                return None;
            }
            let ratio = i.cache_hits as f64 / i.cache_lookups as f64;
            one((ratio < s.hit_ratio_min).then(|| {
                Breach::new(
                    ratio,
                    s.hit_ratio_min,
                    format!("{} of {} lookups hit", i.cache_hits, i.cache_lookups),
                )
            }))
        }
        Rule::FallbacksHigh => {
            let (calls, fallbacks) = (i.calls_today?, i.fallbacks_today?);
            // As in PromQL: 0 / 0 is no alert, n / 0 is infinitely many.
            let ratio = match (fallbacks, calls) {
                (0, _) => 0.0,
                (_, 0) => f64::INFINITY,
                (f, c) => f as f64 / c as f64,
            };
            one((ratio > s.fallback_ratio_max).then(|| {
                Breach::new(
                    ratio,
                    s.fallback_ratio_max,
                    format!("{fallbacks} fallbacks, {calls} calls today"),
                )
            }))
        }
        Rule::WebhookLatencyHigh => {
            let (p95, baseline) = (i.webhook_p95_ms?, i.webhook_p95_baseline_ms?);
            let limit = s.p95_factor * baseline;
            one((baseline > 0.0 && p95 > limit).then(|| {
                Breach::new(
                    p95,
                    limit,
                    format!("p95 {p95:.0} ms, 7-day p95 {baseline:.0} ms"),
                )
            }))
        }
        Rule::WriteBehindLagGrowing => {
            let age = i.writeback_oldest_s?;
            let limit = s.lag_max.as_secs_f64();
            if age <= limit {
                return Some(Vec::new());
            }
            let trend = i.writeback_oldest_trend?;
            one((trend > 0.0).then(|| {
                Breach::new(
                    age,
                    limit,
                    format!(
                        "{} write-backs pending, the oldest for {age:.0} s",
                        i.writeback_depth
                    ),
                )
            }))
        }
        Rule::SpillingToJournal => one((i.spill_depth > s.spill_max).then(|| {
            Breach::new(
                i.spill_depth as f64,
                s.spill_max as f64,
                format!("{} events only on local disk", i.spill_depth),
            )
        })),
        Rule::UpstreamBreakerOpen => Some(
            i.open_breakers
                .iter()
                .map(|up| Breach {
                    labels: BTreeMap::from([("upstream".to_owned(), up.clone())]),
                    // The gauge's value for open, as the rule compares it.
                    value: 2.0,
                    threshold: 2.0,
                    detail: format!("calls to {up} fail fast"),
                })
                .collect(),
        ),
        Rule::RedisDown => {
            let up = i.redis_up?;
            one((!up).then(|| Breach::new(0.0, 0.0, "PING failed".into())))
        }
        Rule::DatabaseDown => {
            one((!i.db_up).then(|| Breach::new(0.0, 0.0, "the ping failed".into())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> AlertInputs {
        AlertInputs {
            cache_hits: 90,
            cache_lookups: 100,
            calls_today: Some(100),
            fallbacks_today: Some(2),
            webhook_p95_ms: Some(100.0),
            webhook_p95_baseline_ms: Some(100.0),
            writeback_oldest_s: Some(0.0),
            writeback_oldest_trend: Some(0.0),
            redis_up: Some(true),
            db_up: true,
            ..AlertInputs::default()
        }
    }

    fn fires(rule: Rule, i: &AlertInputs) -> Option<bool> {
        check(rule, i, &AlertSettings::default()).map(|b| !b.is_empty())
    }

    #[test]
    fn a_healthy_replica_raises_nothing() {
        for rule in Rule::ALL {
            assert_eq!(fires(rule, &healthy()), Some(false), "{rule:?}");
        }
    }

    #[test]
    fn names_severities_and_holds_are_the_prometheus_rules() {
        let yml = include_str!("../../../dashboards/prometheus/alerts.yml");
        for rule in Rule::ALL {
            let at = yml
                .find(&format!("alert: {}\n", rule.name()))
                .unwrap_or_else(|| panic!("{} is not in alerts.yml", rule.name()));
            let body = &yml[at..];
            let body = &body[..body[1..].find("- alert:").map_or(body.len(), |n| n + 1)];
            let hold = format!("for: {}m\n", rule.default_for().as_secs() / 60);
            assert!(body.contains(&hold), "{}: {hold}", rule.name());
            let severity = format!("severity: {}\n", rule.severity());
            assert!(body.contains(&severity), "{}: {severity}", rule.name());
            assert_eq!(Rule::from_name(rule.name()), Some(rule));
        }
    }

    #[test]
    fn the_hit_ratio_fires_below_half_not_at_it() {
        let mut i = healthy();
        (i.cache_hits, i.cache_lookups) = (50, 100);
        assert_eq!(fires(Rule::CacheHitRatioLow, &i), Some(false));
        i.cache_hits = 49;
        let b = check(Rule::CacheHitRatioLow, &i, &AlertSettings::default()).unwrap();
        assert_eq!((b[0].value, b[0].threshold), (0.49, 0.5));
        assert_eq!(b[0].detail, "49 of 100 lookups hit");
        (i.cache_hits, i.cache_lookups) = (0, 0);
        assert_eq!(
            fires(Rule::CacheHitRatioLow, &i),
            None,
            "no lookups, no data"
        );
    }

    #[test]
    fn fallbacks_fire_above_a_tenth_of_the_calls() {
        let mut i = healthy();
        (i.calls_today, i.fallbacks_today) = (Some(100), Some(10));
        assert_eq!(fires(Rule::FallbacksHigh, &i), Some(false));
        i.fallbacks_today = Some(11);
        assert_eq!(fires(Rule::FallbacksHigh, &i), Some(true));
        (i.calls_today, i.fallbacks_today) = (Some(0), Some(0));
        assert_eq!(fires(Rule::FallbacksHigh, &i), Some(false));
        // Calls count when they end; fallbacks when they happen.
        i.fallbacks_today = Some(3);
        let b = check(Rule::FallbacksHigh, &i, &AlertSettings::default()).unwrap();
        assert!(b[0].value.is_infinite());
        assert_eq!(Rule::FallbacksHigh.show(b[0].value), "∞");
        i.calls_today = None;
        assert_eq!(fires(Rule::FallbacksHigh, &i), None, "database down");
    }

    #[test]
    fn latency_fires_above_one_and_a_half_baselines_and_has_no_data_without_them() {
        let mut i = healthy();
        i.webhook_p95_ms = Some(150.0);
        assert_eq!(fires(Rule::WebhookLatencyHigh, &i), Some(false));
        i.webhook_p95_ms = Some(151.0);
        assert_eq!(fires(Rule::WebhookLatencyHigh, &i), Some(true));
        i.webhook_p95_baseline_ms = None;
        assert_eq!(fires(Rule::WebhookLatencyHigh, &i), None);
        i.webhook_p95_baseline_ms = Some(100.0);
        i.webhook_p95_ms = None;
        assert_eq!(fires(Rule::WebhookLatencyHigh, &i), None);
    }

    #[test]
    fn lag_fires_when_old_and_getting_older() {
        let mut i = healthy();
        i.writeback_oldest_s = Some(120.0);
        i.writeback_oldest_trend = Some(1.0);
        assert_eq!(fires(Rule::WriteBehindLagGrowing, &i), Some(false));
        i.writeback_oldest_s = Some(121.0);
        assert_eq!(fires(Rule::WriteBehindLagGrowing, &i), Some(true));
        i.writeback_oldest_trend = Some(0.0);
        assert_eq!(
            fires(Rule::WriteBehindLagGrowing, &i),
            Some(false),
            "old but steady"
        );
        i.writeback_oldest_trend = None;
        assert_eq!(fires(Rule::WriteBehindLagGrowing, &i), None, "one sample");
        i.writeback_oldest_s = None;
        assert_eq!(
            fires(Rule::WriteBehindLagGrowing, &i),
            None,
            "database down"
        );
    }

    #[test]
    fn the_spill_journal_fires_above_its_maximum() {
        let mut i = healthy();
        i.spill_depth = 1;
        assert_eq!(fires(Rule::SpillingToJournal, &i), Some(true));
        let s = AlertSettings {
            spill_max: 1,
            ..AlertSettings::default()
        };
        assert_eq!(check(Rule::SpillingToJournal, &i, &s), Some(Vec::new()));
    }

    #[test]
    fn each_open_breaker_is_an_alert_of_its_own() {
        let mut i = healthy();
        i.open_breakers = vec!["zep".into(), "calcom".into()];
        let b = check(Rule::UpstreamBreakerOpen, &i, &AlertSettings::default()).unwrap();
        let ups: Vec<_> = b.iter().map(|b| b.labels["upstream"].as_str()).collect();
        assert_eq!(ups, ["zep", "calcom"]);
    }

    #[test]
    fn redis_and_the_database_fire_when_down() {
        let mut i = healthy();
        (i.redis_up, i.db_up) = (Some(false), false);
        assert_eq!(fires(Rule::RedisDown, &i), Some(true));
        assert_eq!(fires(Rule::DatabaseDown, &i), Some(true));
        i.redis_up = None;
        assert_eq!(fires(Rule::RedisDown, &i), None, "no Redis configured");
    }

    #[test]
    fn values_read_in_their_units() {
        assert_eq!(Rule::CacheHitRatioLow.show(0.375), "37.5 %");
        assert_eq!(Rule::WebhookLatencyHigh.show(612.4), "612 ms");
        assert_eq!(Rule::DatabaseDown.show(0.0), "down");
        assert_eq!(minutes(Duration::from_secs(600)), "10 min");
        assert!(
            Rule::CacheHitRatioLow
                .condition(&AlertSettings::default())
                .contains("50.0 %")
        );
    }
}
