//! What the admin pages show, gathered from each part's own numbers: the
//! summary bar on every page (calls today, hit ratios, stale served,
//! fallbacks, write-behind depth, parked events, health dots) and the
//! parked events.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::session::LoginLimiter;
use crate::cache::{Cache, CacheStats};
use crate::store::Store;
use crate::support::{BreakerState, RecentLatency};
use crate::tenants::TenantDirectory;
use crate::upstreams::Upstreams;
use crate::writebehind::WriteBehind;

/// The admin pages' view of the running replica.
#[derive(Clone)]
pub struct Console {
    pub store: Store,
    pub cache: Cache,
    pub upstreams: Arc<Upstreams>,
    pub writebehind: WriteBehind,
    pub tenants: TenantDirectory,
    /// Every webhook's latency over the last minutes.
    pub webhook_latency: RecentLatency,
    pub limiter: Arc<LoginLimiter>,
}

/// One health dot: a name, `ok` / `warn` / `error` / `disabled`, and what
/// it says.
#[derive(Debug, Clone)]
pub struct Dot {
    pub name: String,
    pub state: &'static str,
    pub title: String,
}

/// The summary bar.
#[derive(Debug, Clone)]
pub struct Summary {
    pub calls_today: i64,
    pub fallbacks_today: i64,
    /// Percentages, one decimal, or `–` before any lookup.
    pub l1_hit: String,
    pub l2_hit: String,
    pub stale_served: u64,
    /// The webhooks' p95 over the last five minutes, `–` before any.
    pub webhook_p95: String,
    pub writebehind_depth: usize,
    pub parked: usize,
    pub dots: Vec<Dot>,
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// L1 hits over all lookups; L2 hits over the lookups L1 did not answer.
fn hit_ratios(stats: &CacheStats) -> (String, String, u64) {
    let (mut lookups, mut l1, mut l2, mut stale) = (0, 0, 0, 0);
    for ns in stats.namespaces.values() {
        lookups += ns.lookups;
        for (tier, outcomes) in &ns.tiers {
            let hits: u64 = outcomes
                .iter()
                .filter(|(o, _)| o.starts_with("hit"))
                .map(|(_, n)| n)
                .sum();
            match *tier {
                "l1" => l1 += hits,
                "l2" => l2 += hits,
                _ => {}
            }
            stale += outcomes.get("hit_stale").unwrap_or(&0)
                + outcomes.get("hit_fail_safe").unwrap_or(&0);
        }
    }
    (percent(l1, lookups), percent(l2, lookups - l1), stale)
}

/// A breaker's health dot class.
pub fn breaker_class(breaker: BreakerState) -> &'static str {
    match breaker {
        BreakerState::Closed => "ok",
        BreakerState::HalfOpen => "warn",
        BreakerState::Open => "error",
    }
}

fn breaker_dot(name: String, breaker: BreakerState) -> Dot {
    Dot {
        name,
        state: breaker_class(breaker),
        title: format!("breaker {}", breaker.as_str()),
    }
}

impl Console {
    pub async fn summary(&self) -> Summary {
        // Each tenant's own today, as the write-behind counts its calls
        // (a New York tenant's evening is already tomorrow in UTC).
        let utc = Utc::now().date_naive();
        let (from, to) = (
            (utc - chrono::Days::new(1)).to_string(),
            (utc + chrono::Days::new(1)).to_string(),
        );
        let days =
            tokio::time::timeout(Duration::from_secs(1), self.store.tenant_days(&from, &to)).await;
        let (calls_today, fallbacks_today) = match &days {
            Ok(Ok(days)) => super::alerts::today(days, crate::support::now_ms()),
            _ => (0, 0),
        };
        let db_up = self.store.ping(Duration::from_millis(500)).await.is_ok();
        let stats = self.cache.stats();
        let (l1_hit, l2_hit, stale_served) = hit_ratios(&stats);
        let mut dots = vec![Dot {
            name: "database".into(),
            state: if db_up { "ok" } else { "error" },
            title: if db_up { "answers" } else { "unreachable" }.into(),
        }];
        dots.push(match &stats.l2 {
            None => Dot {
                name: "redis".into(),
                state: "disabled",
                title: "not configured".into(),
            },
            Some(l2) => breaker_dot("redis".into(), l2.breaker),
        });
        for up in self.upstreams.status() {
            dots.push(breaker_dot(up.upstream.into(), up.breaker));
        }
        let spill = self.writebehind.spill();
        Summary {
            calls_today,
            fallbacks_today,
            l1_hit,
            l2_hit,
            stale_served,
            webhook_p95: self
                .webhook_latency
                .answered()
                .map_or_else(|| "–".into(), |s| format!("{:.0} ms", s.p95_ms)),
            writebehind_depth: spill.pending(),
            parked: spill.parked().map_or(0, |p| p.len()),
            dots,
        }
    }
}
