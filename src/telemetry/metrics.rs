//! Prometheus metrics: the process-wide recorder and the `/metrics` route.
//!
//! Every metric is described here (name, unit, help), so the exposition
//! passes `promtool check metrics` and this file is the one list of what
//! warmline exports. Names follow Prometheus conventions: `warmline_` prefix,
//! base units in the name, `_total` on counters.

use std::sync::OnceLock;

use actix_web::{HttpResponse, get, web};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::cache::Namespace;
use crate::startup::AppState;

/// Histogram buckets from 100 µs to 10 s: an L1 hit and a 6 s memory timeout
/// both land in a bucket of their own.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once per process and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("static bucket list is not empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder owns the process (a test harness): render our
            // own, unfed, rather than fail.
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        handle
    })
}

fn describe() {
    describe_gauge!(
        "warmline_build_info",
        "Always 1; the version label says which build runs."
    );
    describe_counter!(
        "warmline_cache_requests_total",
        Unit::Count,
        "Cache lookups by namespace, the tier that answered and how (hit_fresh, hit_stale, hit_fail_safe, miss, coalesced)."
    );
    describe_counter!(
        "warmline_cache_load_errors_total",
        Unit::Count,
        "Loads (upstream calls made for the cache) that failed or timed out."
    );
    describe_counter!(
        "warmline_cache_evictions_total",
        Unit::Count,
        "L1 entries evicted because the namespace reached its capacity."
    );
    describe_counter!(
        "warmline_cache_background_refreshes_total",
        Unit::Count,
        "Refreshes started in the background (stale-while-revalidate or early refresh)."
    );
    describe_histogram!(
        "warmline_cache_load_duration_seconds",
        Unit::Seconds,
        "How long cache loads took, by namespace and result."
    );
    describe_counter!(
        "warmline_cache_l2_errors_total",
        Unit::Count,
        "Redis (L2) operations that failed or timed out, by operation."
    );
    describe_gauge!(
        "warmline_cache_l2_breaker_state",
        "State of the Redis breaker: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        "warmline_cache_backplane_messages_total",
        Unit::Count,
        "Backplane invalidation messages, by direction (published, received)."
    );
    describe_counter!(
        "warmline_cache_backplane_publish_errors_total",
        Unit::Count,
        "Backplane messages that could not be published."
    );
    describe_gauge!(
        "warmline_cache_backplane_connected",
        "1 while the backplane subscription is up."
    );
    describe_gauge!(
        "warmline_cache_entries",
        Unit::Count,
        "Entries in this replica's L1, by namespace."
    );
}

#[get("/metrics")]
async fn metrics_route(state: web::Data<AppState>) -> HttpResponse {
    let handle = install();
    metrics::gauge!("warmline_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let stats = state.cache.stats();
    for ns in Namespace::ALL {
        if let Some(s) = stats.namespaces.get(ns.as_str()) {
            metrics::gauge!("warmline_cache_entries", "namespace" => ns.as_str())
                .set(s.entries as f64);
        }
    }
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics_route);
}
