//! Gathering an evaluation's [`AlertInputs`] from the replica's own numbers
//! — the ones the summary bar and `/metrics` read — and the little history
//! the rules' windows need (the hit ratio over the window, the write-behind
//! lag's trend), kept between evaluations.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use chrono::{Days, TimeZone, Utc};
use chrono_tz::Tz;

use super::rules::AlertInputs;
use crate::admin::console::Console;
use crate::cache::{CacheStats, RedisHealth, RedisLink};
use crate::store::{DailyTimings, TenantDay};
use crate::support::{BreakerState, now_ms};

/// The longest an evaluation waits on the database or Redis for one number.
const PROBE: Duration = Duration::from_millis(500);
const QUERY: Duration = Duration::from_secs(1);

/// Samples of the cumulative counters, to turn them into numbers over the
/// window.
#[derive(Debug)]
pub struct Windows {
    window_ms: i64,
    /// (at, hits, lookups) since the replica started.
    cache: VecDeque<(i64, u64, u64)>,
    /// (at, age in seconds of the oldest pending write-back).
    lag: VecDeque<(i64, f64)>,
}

impl Windows {
    pub fn new(window: Duration) -> Self {
        Windows {
            window_ms: window.as_millis() as i64,
            cache: VecDeque::new(),
            lag: VecDeque::new(),
        }
    }

    /// Hits and lookups since the last sample at least a window old; while
    /// the replica is younger than the window, since it started.
    pub fn cache(&mut self, now_ms: i64, hits: u64, lookups: u64) -> (u64, u64) {
        let edge = now_ms - self.window_ms;
        self.cache.push_back((now_ms, hits, lookups));
        while self.cache.len() > 1 && self.cache[1].0 <= edge {
            self.cache.pop_front();
        }
        let (base_hits, base_lookups) = match self.cache.front() {
            Some(&(at, h, l)) if at <= edge => (h, l),
            _ => (0, 0),
        };
        (
            hits.saturating_sub(base_hits),
            lookups.saturating_sub(base_lookups),
        )
    }

    /// The lag's slope over the window, in seconds per second (least
    /// squares over the samples, as PromQL's `deriv`); `None` before two
    /// samples.
    pub fn lag_trend(&mut self, now_ms: i64, age_s: f64) -> Option<f64> {
        self.lag.push_back((now_ms, age_s));
        while self
            .lag
            .front()
            .is_some_and(|&(at, _)| at < now_ms - self.window_ms)
        {
            self.lag.pop_front();
        }
        slope(&self.lag)
    }
}

fn slope(points: &VecDeque<(i64, f64)>) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let t0 = points[0].0;
    let xs = points.iter().map(|&(at, _)| (at - t0) as f64 / 1000.0);
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = points.iter().map(|&(_, y)| y).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (x, &(_, y)) in xs.zip(points) {
        cov += (x - mean_x) * (y - mean_y);
        var += (x - mean_x) * (x - mean_x);
    }
    (var > 0.0).then(|| cov / var)
}

/// Calls and fallbacks of every tenant's today, in its own time zone (the
/// day the write-behind counts them on).
pub(crate) fn today(days: &[TenantDay], now_ms: i64) -> (i64, i64) {
    let mut zones: HashMap<&str, String> = HashMap::new();
    days.iter()
        .filter(|d| {
            let today = zones.entry(d.time_zone.as_str()).or_insert_with(|| {
                let tz = d.time_zone.parse::<Tz>().unwrap_or(Tz::UTC);
                tz.timestamp_millis_opt(now_ms)
                    .single()
                    .map(|t| t.date_naive().to_string())
                    .unwrap_or_default()
            });
            d.day == *today
        })
        .fold((0, 0), |(c, f), d| (c + d.calls, f + d.fallbacks))
}

/// Hits of any kind in any tier, and all lookups, since the replica
/// started: the terms of the Prometheus rule's ratio.
fn cache_counts(stats: &CacheStats) -> (u64, u64) {
    let (mut hits, mut lookups) = (0, 0);
    for ns in stats.namespaces.values() {
        lookups += ns.lookups;
        for outcomes in ns.tiers.values() {
            hits += outcomes
                .iter()
                .filter(|(o, _)| o.starts_with("hit"))
                .map(|(_, n)| n)
                .sum::<u64>();
        }
    }
    (hits, lookups)
}

/// Reads every number an evaluation needs; each wait is bounded, and what
/// cannot be read is `None` (that rule has no data this time).
pub async fn gather(
    console: &Console,
    redis: Option<&RedisLink>,
    windows: &mut Windows,
) -> AlertInputs {
    let now = now_ms();
    let store = &console.store;
    let db_up = store.ping(PROBE).await.is_ok();
    let (mut calls_today, mut fallbacks_today) = (None, None);
    let (mut writeback_oldest_s, mut writeback_oldest_trend, mut writeback_depth) = (None, None, 0);
    let mut webhook_p95_baseline_ms = None;
    if db_up {
        let utc = Utc::now().date_naive();
        let (from, to) = (
            (utc - Days::new(1)).to_string(),
            (utc + Days::new(1)).to_string(),
        );
        let days = store.tenant_days(&from, &to);
        if let Ok(Ok(days)) = tokio::time::timeout(QUERY, days).await {
            let (calls, fallbacks) = today(&days, now);
            (calls_today, fallbacks_today) = (Some(calls), Some(fallbacks));
        }
        if let Ok(Ok((depth, oldest))) =
            tokio::time::timeout(QUERY, store.writeback_backlog()).await
        {
            // As `warmline_writebehind_oldest_pending_seconds`.
            let age = oldest.map_or(0.0, |o| (now - o).max(0) as f64 / 1000.0);
            writeback_oldest_s = Some(age);
            writeback_oldest_trend = windows.lag_trend(now, age);
            writeback_depth = depth;
        }
        // As `rate(warmline_webhook_duration_seconds_bucket[7d])`: the last
        // seven days' answers (tenant days may run a day ahead of UTC).
        let utc = Utc::now().date_naive();
        let (from, to) = (
            (utc - Days::new(7)).to_string(),
            (utc + Days::new(1)).to_string(),
        );
        let week = store.daily_timings(None, &from, &to);
        if let Ok(Ok(days)) = tokio::time::timeout(QUERY, week).await {
            let mut sum = DailyTimings::default();
            for (_, t) in &days {
                sum.add(t);
            }
            webhook_p95_baseline_ms = sum.quantile_ms(0.95);
        }
    }
    let (hits, lookups) = cache_counts(&console.cache.stats());
    let (cache_hits, cache_lookups) = windows.cache(now, hits, lookups);
    let open_breakers: BTreeSet<String> = console
        .upstreams
        .status()
        .into_iter()
        .filter(|u| u.breaker == BreakerState::Open)
        .map(|u| u.upstream.to_owned())
        .collect();
    let redis_up = match redis {
        Some(link) => Some(link.ping(PROBE).await == RedisHealth::Ok),
        None => None,
    };
    AlertInputs {
        cache_hits,
        cache_lookups,
        calls_today,
        fallbacks_today,
        // The last five minutes, as the summary bar shows it.
        webhook_p95_ms: console.webhook_latency.answered().map(|s| s.p95_ms),
        webhook_p95_baseline_ms,
        writeback_oldest_s,
        writeback_oldest_trend,
        writeback_depth,
        spill_depth: console.writebehind.spill().pending() as u64,
        open_breakers: open_breakers.into_iter().collect(),
        redis_up,
        db_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hit_ratio_counts_since_start_then_over_the_window() {
        let mut w = Windows::new(Duration::from_secs(600));
        assert_eq!(w.cache(0, 10, 20), (10, 20), "younger than the window");
        assert_eq!(w.cache(300_000, 30, 60), (30, 60));
        // The sample at 0 is a window old now: counted from it.
        assert_eq!(w.cache(600_000, 40, 100), (30, 80));
        assert_eq!(
            w.cache(900_000, 40, 200),
            (10, 140),
            "from the sample at 300 s"
        );
    }

    #[test]
    fn today_is_each_tenants_own() {
        let day = |tz: &str, day: &str, calls| TenantDay {
            tenant_id: format!("t-{tz}"),
            time_zone: tz.into(),
            day: day.into(),
            calls,
            fallbacks: 1,
        };
        // 2026-03-10 02:00 UTC: still the 9th in New York.
        let now = 1_773_108_000_000;
        let days = [
            day("America/New_York", "2026-03-09", 5),
            day("America/New_York", "2026-03-10", 100),
            day("Europe/Berlin", "2026-03-10", 7),
            day("Europe/Berlin", "2026-03-09", 100),
            day("not a zone", "2026-03-10", 1),
        ];
        assert_eq!(today(&days, now), (13, 3));
    }

    #[test]
    fn the_lag_trend_is_the_slope_over_the_window() {
        let mut w = Windows::new(Duration::from_secs(600));
        assert_eq!(w.lag_trend(0, 0.0), None, "one sample");
        let trend = w.lag_trend(60_000, 60.0).unwrap();
        assert!((trend - 1.0).abs() < 1e-9, "{trend}");
        assert_eq!(w.lag_trend(120_000, 60.0).map(|t| t > 0.0), Some(true));
        // Flat for a whole window: not growing.
        for m in 3..=14 {
            w.lag_trend(m * 60_000, 60.0);
        }
        assert_eq!(w.lag_trend(15 * 60_000, 60.0), Some(0.0));
        // Going down.
        assert!(w.lag_trend(16 * 60_000, 0.0).unwrap() < 0.0);
    }
}
