//! How fast warmline answered, per tenant and day, and how often the cache
//! answered while it did: counted in memory on the hot path ([`Rollup`] is
//! an [`AnswerSink`]) and added to `daily_timings` every few seconds with
//! one upsert per tenant-day, so a webhook never waits on this database
//! write. What a crash loses is at most one flush interval of statistics —
//! never an acknowledged event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use sqlx::Row;

use super::{Result, Store};
use crate::domain::TenantId;
use crate::support::attribution::{AnswerSink, Answered};

/// Upper bounds (ms) of the histogram's buckets; one more counts the rest.
pub const BOUNDS_MS: [u32; 15] = [
    10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000,
];
const BUCKETS: usize = BOUNDS_MS.len() + 1;
/// Tenant-days kept waiting for a flush at most; beyond, new ones are
/// dropped (and counted) rather than grow without bound while the
/// database is down.
const MAX_PENDING: usize = 10_000;

/// One tenant-day's (or a sum of them) answer times and cache lookups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DailyTimings {
    pub buckets: [i64; BUCKETS],
    pub cache_lookups: i64,
    pub cache_hits: i64,
}

fn column(i: usize) -> String {
    match BOUNDS_MS.get(i) {
        Some(b) => format!("le_{b}"),
        None => format!("over_{}", BOUNDS_MS[BOUNDS_MS.len() - 1]),
    }
}

impl DailyTimings {
    pub fn answers(&self) -> i64 {
        self.buckets.iter().sum()
    }

    pub fn add(&mut self, other: &DailyTimings) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.cache_lookups += other.cache_lookups;
        self.cache_hits += other.cache_hits;
    }

    fn record(&mut self, a: &Answered) {
        let ms = a.elapsed.as_secs_f64() * 1000.0;
        let i = BOUNDS_MS
            .iter()
            .position(|b| ms <= f64::from(*b))
            .unwrap_or(BOUNDS_MS.len());
        self.buckets[i] += 1;
        self.cache_lookups += i64::from(a.lookups);
        self.cache_hits += i64::from(a.hits);
    }

    /// The `q` quantile (0–1) in ms, interpolated inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without answers. In
    /// the last, open bucket it is that bucket's lower bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.answers();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut seen = 0.0;
        for (i, n) in self.buckets.iter().enumerate() {
            let n = *n as f64;
            if n > 0.0 && seen + n >= rank {
                let lower = if i == 0 {
                    0.0
                } else {
                    f64::from(BOUNDS_MS[i - 1])
                };
                let Some(upper) = BOUNDS_MS.get(i) else {
                    return Some(lower);
                };
                return Some(lower + (f64::from(*upper) - lower) * ((rank - seen) / n));
            }
            seen += n;
        }
        Some(f64::from(BOUNDS_MS[BOUNDS_MS.len() - 1]))
    }

    /// Cache hits over lookups, `None` without lookups.
    pub fn hit_ratio(&self) -> Option<f64> {
        (self.cache_lookups > 0).then(|| self.cache_hits as f64 / self.cache_lookups as f64)
    }
}

/// The in-memory side: answers counted by tenant-day until the next flush.
#[derive(Clone)]
pub struct Rollup {
    store: Store,
    pending: Arc<Mutex<HashMap<(String, NaiveDate), DailyTimings>>>,
}

impl AnswerSink for Rollup {
    fn answered(&self, a: &Answered) {
        // The day as a date, not text: this runs on every answer.
        let key = match &a.tenant {
            Some((id, tz)) => (id.clone(), Utc::now().with_timezone(tz).date_naive()),
            None => (String::new(), Utc::now().date_naive()),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let full = pending.len() >= MAX_PENDING;
        match pending.get_mut(&key) {
            Some(t) => t.record(a),
            None if full => {
                metrics::counter!("warmline_rollup_dropped_total").increment(1);
            }
            None => pending.entry(key).or_default().record(a),
        }
    }
}

impl Rollup {
    pub fn new(store: Store) -> Self {
        metrics::counter!("warmline_rollup_dropped_total").increment(0);
        metrics::counter!("warmline_rollup_flush_errors_total").increment(0);
        Rollup {
            store,
            pending: Arc::default(),
        }
    }

    /// Adds what was counted since the last flush to the database; what
    /// could not be written waits for the next flush. Returns the
    /// tenant-days written.
    pub async fn flush(&self) -> Result<usize> {
        let batch: Vec<((String, NaiveDate), DailyTimings)> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut written = 0;
        let mut failed = None;
        for (i, ((tenant, day), t)) in batch.iter().enumerate() {
            if let Err(e) = self
                .store
                .add_daily_timings(tenant, &day.to_string(), t)
                .await
            {
                metrics::counter!("warmline_rollup_flush_errors_total").increment(1);
                self.put_back(&batch[i..]);
                failed = Some(e);
                break;
            }
            written += 1;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    fn put_back(&self, rest: &[((String, NaiveDate), DailyTimings)]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (key, t) in rest {
            pending.entry(key.clone()).or_default().add(t);
        }
    }

    /// Flushes every `every` until the process ends (supervised by the
    /// caller).
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %crate::support::error_chain(&e), "daily timings not written yet; kept for the next flush");
            }
        }
    }
}

impl Store {
    /// Adds `t` to one tenant-day's row (`tenant` '' for no tenant).
    pub async fn add_daily_timings(&self, tenant: &str, day: &str, t: &DailyTimings) -> Result<()> {
        let cols: Vec<String> = (0..BUCKETS).map(column).collect();
        let values: Vec<String> = (0..BUCKETS + 4).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "INSERT INTO daily_timings (tenant_id, day, cache_lookups, cache_hits, {})
             VALUES ({})
             ON CONFLICT (tenant_id, day) DO UPDATE SET
                cache_lookups = daily_timings.cache_lookups + excluded.cache_lookups,
                cache_hits = daily_timings.cache_hits + excluded.cache_hits, {}",
            cols.join(", "),
            values.join(", "),
            cols.iter()
                .map(|c| format!("{c} = daily_timings.{c} + excluded.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(tenant)
            .bind(day)
            .bind(t.cache_lookups)
            .bind(t.cache_hits);
        for n in t.buckets {
            q = q.bind(n);
        }
        q.execute(self.pool()).await?;
        Ok(())
    }

    /// Days in `[from_day, to_day]` with answers, oldest first: one
    /// tenant's, or summed over every row (answers for no tenant included)
    /// when `tenant` is `None`.
    pub async fn daily_timings(
        &self,
        tenant: Option<&TenantId>,
        from_day: &str,
        to_day: &str,
    ) -> Result<Vec<(String, DailyTimings)>> {
        let cols: Vec<String> = (0..BUCKETS).map(column).collect();
        let sql = format!(
            "SELECT day, CAST(SUM(cache_lookups) AS BIGINT) AS cache_lookups,
                CAST(SUM(cache_hits) AS BIGINT) AS cache_hits, {}
             FROM daily_timings
             WHERE ($1 IS NULL OR tenant_id = $1) AND day >= $2 AND day <= $3
             GROUP BY day ORDER BY day",
            cols.iter()
                .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.map(TenantId::as_str))
            .bind(from_day)
            .bind(to_day)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let mut t = DailyTimings {
                    cache_lookups: r.try_get("cache_lookups")?,
                    cache_hits: r.try_get("cache_hits")?,
                    ..DailyTimings::default()
                };
                for (i, c) in cols.iter().enumerate() {
                    t.buckets[i] = r.try_get(c.as_str())?;
                }
                Ok((r.try_get("day")?, t))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(ms: u64) -> Answered {
        Answered {
            elapsed: Duration::from_millis(ms),
            lookups: 2,
            hits: 1,
            ..Answered::default()
        }
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let mut t = DailyTimings::default();
        assert_eq!(t.quantile_ms(0.95), None);
        assert_eq!(t.hit_ratio(), None);
        for _ in 0..90 {
            t.record(&answered(8)); // ≤ 10
        }
        for _ in 0..10 {
            t.record(&answered(120)); // 100–150
        }
        assert_eq!(t.answers(), 100);
        // Rank 95 is the 5th of 10 in (100, 150]: 100 + 50 × 5/10.
        assert_eq!(t.quantile_ms(0.95), Some(125.0));
        assert_eq!(t.quantile_ms(0.5), Some(10.0 * 50.0 / 90.0));
        assert_eq!(t.hit_ratio(), Some(0.5));
        let mut slow = DailyTimings::default();
        slow.record(&answered(60_000));
        assert_eq!(
            slow.quantile_ms(0.95),
            Some(5000.0),
            "the open bucket's bound"
        );
    }

    #[test]
    fn every_bucket_has_its_column() {
        assert_eq!(column(0), "le_10");
        assert_eq!(column(BUCKETS - 1), "over_5000");
    }
}
