//! Recent latencies by label, over a sliding window: what the admin pages
//! show as p50 / p95 and an error ratio without asking a Prometheus. A
//! sample costs one short lock and a push; the quantiles are computed only
//! when a page asks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far back the figures look.
pub const WINDOW: Duration = Duration::from_secs(300);
/// At most this many samples are kept per label (the newest).
const CAP: usize = 4096;
/// The label of requests refused before they were answered (bad or missing
/// credentials): shown on their own, left out of [`RecentLatency::answered`].
pub const REFUSED: &str = "refused";

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    micros: u32,
    ok: bool,
}

/// Shared, cheap to clone: one per thing measured (webhooks, an upstream).
#[derive(Clone)]
pub struct RecentLatency {
    window: Duration,
    series: Arc<Mutex<BTreeMap<String, VecDeque<Sample>>>>,
}

/// A label's figures over the window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyStats {
    pub label: String,
    pub count: usize,
    pub errors: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

impl LatencyStats {
    /// Errors over all samples, 0 to 1.
    pub fn error_ratio(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }
}

impl Default for RecentLatency {
    fn default() -> Self {
        RecentLatency::new(WINDOW)
    }
}

/// The `q` quantile (0–1) of sorted values, nearest rank.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

impl RecentLatency {
    pub fn new(window: Duration) -> Self {
        RecentLatency {
            window,
            series: Arc::default(),
        }
    }

    /// Records one sample under `label`.
    pub fn record(&self, label: &str, elapsed: Duration, ok: bool) {
        let now = Instant::now();
        let sample = Sample {
            at: now,
            micros: u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX),
            ok,
        };
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        if !series.contains_key(label) {
            series.insert(label.to_owned(), VecDeque::new());
        }
        let samples = series.get_mut(label).expect("inserted above");
        if samples.len() == CAP {
            samples.pop_front();
        }
        samples.push_back(sample);
        while samples
            .front()
            .is_some_and(|s| now.duration_since(s.at) > self.window)
        {
            samples.pop_front();
        }
    }

    /// The figures of every label with samples in the window, by label.
    pub fn stats(&self) -> Vec<LatencyStats> {
        let now = Instant::now();
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series
            .iter()
            .filter_map(|(label, samples)| {
                let recent: Vec<Sample> = samples
                    .iter()
                    .filter(|s| now.duration_since(s.at) <= self.window)
                    .copied()
                    .collect();
                (!recent.is_empty()).then(|| Self::figures(label, &recent))
            })
            .collect()
    }

    /// The figures over every label but [`REFUSED`] together, `None`
    /// before any sample: what callers waited for, which a flood of
    /// unauthenticated requests cannot pull down.
    pub fn answered(&self) -> Option<LatencyStats> {
        let now = Instant::now();
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let recent: Vec<Sample> = series
            .iter()
            .filter(|(label, _)| label.as_str() != REFUSED)
            .flat_map(|(_, samples)| samples)
            .filter(|s| now.duration_since(s.at) <= self.window)
            .copied()
            .collect();
        (!recent.is_empty()).then(|| Self::figures("answered", &recent))
    }

    fn figures(label: &str, samples: &[Sample]) -> LatencyStats {
        let mut micros: Vec<u32> = samples.iter().map(|s| s.micros).collect();
        micros.sort_unstable();
        LatencyStats {
            label: label.to_owned(),
            count: samples.len(),
            errors: samples.iter().filter(|s| !s.ok).count(),
            p50_ms: quantile(&micros, 0.50),
            p95_ms: quantile(&micros, 0.95),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_over_the_labels_samples() {
        let recent = RecentLatency::default();
        for ms in 1..=100u64 {
            recent.record("a", Duration::from_millis(ms), ms % 10 != 0);
        }
        recent.record("b", Duration::from_millis(500), true);
        let stats = recent.stats();
        assert_eq!(stats.len(), 2);
        let a = &stats[0];
        assert_eq!((a.label.as_str(), a.count, a.errors), ("a", 100, 10));
        assert_eq!((a.p50_ms, a.p95_ms), (50.0, 95.0));
        assert!((a.error_ratio() - 0.1).abs() < 1e-9);
        let all = recent.answered().unwrap();
        assert_eq!((all.count, all.p95_ms), (101, 96.0));
        recent.record(REFUSED, Duration::from_millis(1), false);
        assert_eq!(recent.answered().unwrap().count, 101, "refusals are apart");
        assert_eq!(recent.stats().len(), 3);
    }

    #[test]
    fn samples_older_than_the_window_no_longer_count() {
        let recent = RecentLatency::new(Duration::from_millis(0));
        recent.record("a", Duration::from_millis(5), true);
        std::thread::sleep(Duration::from_millis(2));
        assert!(recent.stats().is_empty());
        assert!(recent.answered().is_none());
    }

    #[test]
    fn a_label_keeps_only_its_newest_samples() {
        let recent = RecentLatency::default();
        for _ in 0..CAP + 10 {
            recent.record("a", Duration::from_millis(1), true);
        }
        assert_eq!(recent.stats()[0].count, CAP);
        assert_eq!(RecentLatency::default().stats(), Vec::new());
    }
}
