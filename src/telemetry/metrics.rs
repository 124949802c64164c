//! Prometheus metrics: the process-wide recorder and its rendering (the
//! `/metrics` route itself is the HTTP layer's).
//!
//! Every metric is described here (name, unit, help), so the exposition
//! passes `promtool check metrics` and this file is the one list of what
//! warmline exports. Names follow Prometheus conventions: `warmline_` prefix,
//! base units in the name, `_total` on counters.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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
        // Known label values exist from the start, at 0.
        for kind in crate::domain::Fallback::ALL {
            metrics::counter!("warmline_fallback_activations_total", "kind" => kind.as_str())
                .increment(0);
        }
        for outcome in ["owed", "settled", "lost"] {
            metrics::counter!("warmline_cache_owed_drops_total", "outcome" => outcome).increment(0);
        }
        metrics::gauge!("warmline_cache_owed_drops").set(0.0);
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
        "warmline_cache_owed_drops",
        "Changed entries whose drop Redis did not take (stalled, timed out or behind its breaker), still to be dropped from L2 and the other replicas."
    );
    describe_counter!(
        "warmline_cache_owed_drops_total",
        Unit::Count,
        "Drops owed to Redis, by outcome: owed (remembered), settled (made again and taken), lost (past the bound, left to the entry's windows)."
    );
    describe_counter!(
        "warmline_cache_backplane_silences_total",
        Unit::Count,
        "Times the backplane subscription stayed open but its own ping did not come back; L1 was flushed each time."
    );
    describe_counter!(
        "warmline_upstream_throttled_total",
        Unit::Count,
        "Upstream requests not sent because the tenant's quota (e.g. GoHighLevel per location) was used up, by counter: shared (Redis, all replicas) or local (this replica, while Redis is unavailable)."
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

    describe_gauge!(
        "warmline_db_up",
        "1 when the database answered the scrape's ping."
    );
    describe_gauge!(
        "warmline_redis_up",
        "1 when Redis answered the scrape's ping (absent without Redis)."
    );
    describe_gauge!(
        "warmline_db_pool_connections",
        Unit::Count,
        "Database pool connections by state (idle, in_use)."
    );

    describe_counter!(
        "warmline_upstream_requests_total",
        Unit::Count,
        "Calls to upstream SaaS APIs by upstream, operation and outcome (ok, absent: the upstream has none, e.g. no memory thread yet; or the error kind)."
    );
    describe_histogram!(
        "warmline_upstream_request_duration_seconds",
        Unit::Seconds,
        "Upstream call latency including a retry, by upstream and operation."
    );
    describe_counter!(
        "warmline_upstream_errors_total",
        Unit::Count,
        "Failed upstream calls by upstream, operation and kind (timeout, unreachable, rate_limited, server_error, client_error, breaker_open, decode)."
    );
    describe_counter!(
        "warmline_upstream_retries_total",
        Unit::Count,
        "Retries of idempotent upstream reads, by upstream and operation."
    );
    describe_gauge!(
        "warmline_upstream_breaker_state",
        "Upstream circuit breaker state: 0 closed, 1 half-open, 2 open."
    );

    describe_counter!(
        "warmline_webhook_requests_total",
        Unit::Count,
        "Voice-platform webhooks by provider, event and outcome."
    );
    describe_histogram!(
        "warmline_webhook_duration_seconds",
        Unit::Seconds,
        "Time to answer a webhook, by provider and event."
    );
    describe_counter!(
        "warmline_webhook_ignored_total",
        Unit::Count,
        "Webhook messages acknowledged but not used, by provider and event."
    );
    describe_counter!(
        "warmline_call_events_total",
        Unit::Count,
        "Call life-cycle events acknowledged, by provider, phase (started, ended, analyzed), direction (inbound, outbound) and channel (voice, chat)."
    );
    describe_counter!(
        "warmline_api_requests_total",
        Unit::Count,
        "Requests to the bots' API (/api/v1/context, /api/v1/messages), by route and outcome (ok, unauthorized, bad_request, unknown_tenant, unavailable)."
    );
    describe_histogram!(
        "warmline_api_duration_seconds",
        Unit::Seconds,
        "Time to answer a request to the bots' API, by route."
    );
    describe_counter!(
        "warmline_fallback_activations_total",
        Unit::Count,
        "Fallbacks taken, by kind: unknown_called_number, call_from_database, call_from_recent_caller, tenant_default, call_unresolved."
    );
    describe_counter!(
        "warmline_tool_calls_total",
        Unit::Count,
        "Mid-call tool calls by tool and outcome."
    );
    describe_counter!(
        "warmline_tool_replays_total",
        Unit::Count,
        "Re-delivered tool calls that changed something (a booking), answered with their first answer instead of acting again."
    );
    describe_histogram!(
        "warmline_tool_duration_seconds",
        Unit::Seconds,
        "Time to answer a tool call, by tool."
    );

    describe_gauge!(
        "warmline_writebehind_queue_depth",
        Unit::Count,
        "Jobs waiting for the write-behind batcher."
    );
    describe_histogram!(
        "warmline_writebehind_flush_size",
        Unit::Count,
        "Jobs per group commit."
    );
    describe_histogram!(
        "warmline_writebehind_lag_seconds",
        Unit::Seconds,
        "Time from a job's acknowledgement request to its commit."
    );
    describe_counter!(
        "warmline_writebehind_spilled_total",
        Unit::Count,
        "Jobs written to the local spill journal because the database was unreachable."
    );
    describe_gauge!(
        "warmline_writebehind_spill_depth",
        Unit::Count,
        "Jobs waiting in the spill journal."
    );
    describe_counter!(
        "warmline_writebehind_replayed_total",
        Unit::Count,
        "Spilled jobs replayed into the database."
    );
    describe_counter!(
        "warmline_writebehind_rejected_total",
        Unit::Count,
        "Jobs the database refused for good, parked in the rejected journal."
    );
    describe_gauge!(
        "warmline_writebehind_parked",
        Unit::Count,
        "Jobs parked in the rejected journal now (apply them with `warmline events replay-rejected`)."
    );
    describe_counter!(
        "warmline_writebehind_retries_total",
        Unit::Count,
        "Writes retried because the database refused for now (busy, locked, deadlock, shutting down)."
    );
    describe_counter!(
        "warmline_writebehind_quarantined_total",
        Unit::Count,
        "Torn or damaged spill journal records moved to the quarantine file."
    );
    describe_gauge!(
        "warmline_writebehind_quarantined",
        Unit::Count,
        "Records in the spill directory's quarantine file."
    );
    describe_gauge!(
        "warmline_writebehind_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest acknowledged work not yet written back (0 when none)."
    );
    describe_counter!(
        "warmline_writeback_total",
        Unit::Count,
        "CRM and memory write-backs by kind and outcome (ok, retry, given_up)."
    );
    describe_gauge!(
        "warmline_writeback_backlog",
        Unit::Count,
        "CRM and memory write-backs waiting."
    );
    describe_counter!(
        "warmline_background_restarts_total",
        Unit::Count,
        "Background loops restarted after a panic, by loop (writeback, writebehind_replay, writebehind_prune, rollup, alerts)."
    );
    describe_counter!(
        "warmline_call_steps_total",
        Unit::Count,
        "Call steps (context answered, tool calls) handed to the write-behind for the admin's call detail, by kind and outcome: recorded (in the database), spilled (in the journal, replayed later), parked (refused by the database), lost (not written), shed (not taken: too many steps already waiting for the write-behind)."
    );
    describe_counter!(
        "warmline_admin_tenant_changes_total",
        Unit::Count,
        "Tenants created or updated from the admin pages, by action."
    );
    describe_counter!(
        "warmline_rollup_dropped_total",
        Unit::Count,
        "Answers not counted in the daily timings because too many tenant-days were waiting for a flush (the database is down)."
    );
    describe_counter!(
        "warmline_rollup_flush_errors_total",
        Unit::Count,
        "Daily-timings flushes the database refused; what they held waits for the next flush."
    );
    describe_gauge!(
        "warmline_alerts_active",
        "Alerts firing in warmline's own evaluation of its alert rules, by alert."
    );
}

/// The exposition text of every metric, after the recorder's upkeep.
pub fn render() -> String {
    let handle = install();
    metrics::gauge!("warmline_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    handle.run_upkeep();
    handle.render()
}
