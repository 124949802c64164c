//! Counters per namespace and tier, so a dead upstream cannot hide behind a
//! good hit rate: a fail-safe hit is counted apart from a fresh one.
//!
//! Each event is counted twice on purpose: in these atomics (what the stats
//! endpoint and the admin read, exact and independent of any recorder) and as
//! a `warmline_cache_*` metric for Prometheus.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::policy::Namespace;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    L1,
    L2,
    /// The last-known-good copy in the database.
    Db,
    /// The loader (the upstream) itself.
    Loader,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::L1, Tier::L2, Tier::Db, Tier::Loader];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
            Tier::Db => "db",
            Tier::Loader => "loader",
        }
    }
}

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    HitFresh,
    /// Served stale inside the stale-while-revalidate window; one refresh runs.
    HitStale,
    /// Served stale because the load failed, timed out or is throttled.
    HitFailSafe,
    /// Loaded by this request.
    Miss,
    /// Waited for another request's load of the same key.
    Coalesced,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::HitFresh,
        Outcome::HitStale,
        Outcome::HitFailSafe,
        Outcome::Miss,
        Outcome::Coalesced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HitFresh => "hit_fresh",
            Outcome::HitStale => "hit_stale",
            Outcome::HitFailSafe => "hit_fail_safe",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
        }
    }

    pub fn is_hit(self) -> bool {
        matches!(
            self,
            Outcome::HitFresh | Outcome::HitStale | Outcome::HitFailSafe
        )
    }
}

const TIERS: usize = Tier::ALL.len();
const OUTCOMES: usize = Outcome::ALL.len();

/// One namespace's counters.
#[derive(Debug, Default)]
pub struct NamespaceStats {
    lookups: [[AtomicU64; OUTCOMES]; TIERS],
    load_errors: AtomicU64,
    evictions: AtomicU64,
    refreshes: AtomicU64,
    requests: RequestCounters,
}

/// `warmline_cache_requests_total`'s series of one namespace, registered
/// with the recorder on first use and kept: a lookup, which every webhook
/// makes, costs no label lookup in the registry.
#[derive(Default)]
struct RequestCounters([[OnceLock<metrics::Counter>; OUTCOMES]; TIERS]);

impl std::fmt::Debug for RequestCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestCounters")
    }
}

impl NamespaceStats {
    pub fn lookup(&self, ns: Namespace, tier: Tier, outcome: Outcome) {
        self.lookups[tier as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.requests.0[tier as usize][outcome as usize]
            .get_or_init(|| {
                metrics::counter!(
                    "warmline_cache_requests_total",
                    "namespace" => ns.as_str(),
                    "tier" => tier.as_str(),
                    "outcome" => outcome.as_str()
                )
            })
            .increment(1);
    }

    pub fn load_error(&self, ns: Namespace) {
        self.load_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("warmline_cache_load_errors_total", "namespace" => ns.as_str())
            .increment(1);
    }

    pub fn eviction(&self, ns: Namespace) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("warmline_cache_evictions_total", "namespace" => ns.as_str())
            .increment(1);
    }

    pub fn refresh(&self, ns: Namespace) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("warmline_cache_background_refreshes_total", "namespace" => ns.as_str())
            .increment(1);
    }

    pub fn count(&self, tier: Tier, outcome: Outcome) -> u64 {
        self.lookups[tier as usize][outcome as usize].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self, entries: u64) -> NamespaceSnapshot {
        let mut tiers = BTreeMap::new();
        let (mut hits, mut total, mut stale) = (0, 0, 0);
        for tier in Tier::ALL {
            let mut counts = BTreeMap::new();
            for outcome in Outcome::ALL {
                let n = self.count(tier, outcome);
                total += n;
                if outcome.is_hit() {
                    hits += n;
                }
                if matches!(outcome, Outcome::HitStale | Outcome::HitFailSafe) {
                    stale += n;
                }
                counts.insert(outcome.as_str(), n);
            }
            tiers.insert(tier.as_str(), counts);
        }
        let ratio = |n: u64| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        };
        NamespaceSnapshot {
            entries,
            lookups: total,
            hit_ratio: ratio(hits),
            stale_ratio: ratio(stale),
            load_errors: self.load_errors.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            background_refreshes: self.refreshes.load(Ordering::Relaxed),
            tiers,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceSnapshot {
    /// Entries in this replica's L1.
    pub entries: u64,
    pub lookups: u64,
    /// Hits of any kind (fresh, stale, fail-safe) over all lookups.
    pub hit_ratio: f64,
    /// Stale and fail-safe hits over all lookups: high means an upstream is
    /// slow or down even though the hit ratio looks healthy.
    pub stale_ratio: f64,
    pub load_errors: u64,
    pub evictions: u64,
    pub background_refreshes: u64,
    /// tier → outcome → count.
    pub tiers: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}
