//! `/metrics`: the Prometheus exposition, with the gauges that are read at
//! scrape time (health of the database and Redis, the pool, the write-behind
//! and write-back backlogs, the upstream breakers, cache entries).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, get, web};

use crate::cache::{Cache, Namespace, RedisHealth, RedisLink};
use crate::store::Store;
use crate::support::now_ms;
use crate::upstreams::Upstreams;
use crate::writebehind::WriteBehind;

/// What a scrape reads.
#[derive(Clone)]
pub struct Scrape {
    pub store: Store,
    pub redis: Option<RedisLink>,
    pub cache: Cache,
    pub upstreams: Arc<Upstreams>,
    pub writebehind: WriteBehind,
}

/// How long a scrape may wait on the database or Redis for its gauges.
const PROBE: Duration = Duration::from_millis(250);

impl Scrape {
    async fn refresh_gauges(&self) {
        let db_up = self.store.ping(PROBE).await.is_ok();
        metrics::gauge!("warmline_db_up").set(if db_up { 1.0 } else { 0.0 });
        let pool = self.store.pool();
        let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
        metrics::gauge!("warmline_db_pool_connections", "state" => "idle").set(idle);
        metrics::gauge!("warmline_db_pool_connections", "state" => "in_use")
            .set((size - idle).max(0.0));
        if let Some(redis) = &self.redis {
            let up = redis.ping(PROBE).await == RedisHealth::Ok;
            metrics::gauge!("warmline_redis_up").set(if up { 1.0 } else { 0.0 });
        }
        if db_up
            && let Ok(Ok((depth, oldest))) =
                tokio::time::timeout(PROBE, self.store.writeback_backlog()).await
        {
            metrics::gauge!("warmline_writeback_backlog").set(depth as f64);
            let age = oldest.map_or(0.0, |o| ((now_ms() - o).max(0) as f64) / 1000.0);
            metrics::gauge!("warmline_writebehind_oldest_pending_seconds").set(age);
        }
        metrics::gauge!("warmline_writebehind_spill_depth").set(self.writebehind.spilled() as f64);
        let spill = self.writebehind.spill();
        // Read from the file: `warmline events replay-rejected` changes it
        // from another process.
        let parked = spill.parked().map_or(0, |p| p.len());
        metrics::gauge!("warmline_writebehind_parked").set(parked as f64);
        metrics::gauge!("warmline_writebehind_quarantined").set(spill.quarantined() as f64);
        for up in self.upstreams.status() {
            metrics::gauge!("warmline_upstream_breaker_state", "upstream" => up.upstream)
                .set(up.breaker.gauge_value());
        }
        let stats = self.cache.stats();
        for ns in Namespace::ALL {
            if let Some(s) = stats.namespaces.get(ns.as_str()) {
                metrics::gauge!("warmline_cache_entries", "namespace" => ns.as_str())
                    .set(s.entries as f64);
            }
        }
    }
}

#[get("/metrics")]
async fn metrics_route(scrape: web::Data<Scrape>) -> HttpResponse {
    scrape.refresh_gauges().await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::render())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics_route);
}
