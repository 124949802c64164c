//! Scenarios 6 and 7: warmline's dependencies answer, but badly — SQLite
//! held by another writer past the busy timeout; upstreams failing, then
//! hanging.

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

use crate::load::{self, Load, LoadOpts};
use crate::process::{Simulator, Warmline};
use crate::verify::Metrics;
use crate::{PROGRESS, Scenario, conclude, sqlite_url, wait_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s6_sqlite_held_busy_by_another_writer() {
    let scenario = Scenario::start("6 sqlite held busy");
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let mut wl = Warmline::new(dir.path(), &db, &[]);
    wl.start().await;
    let opts = LoadOpts {
        request_timeout: Duration::from_secs(120),
        ..LoadOpts::default()
    };
    let load = Load::start(&wl.base, "busy", opts);
    load.wait_more_acked(60, PROGRESS).await;

    let retries_before = Metrics::scrape(&wl.base)
        .await
        .sum("warmline_writebehind_retries_total");
    let mut other = sqlx::SqliteConnection::connect(&db).await.unwrap();
    other.execute("BEGIN EXCLUSIVE").await.unwrap();
    let held = Instant::now();
    // Held past warmline's 5 s busy timeout: it retries.
    wait_metrics(&wl, "retrying the busy database", PROGRESS, |m| {
        m.sum("warmline_writebehind_retries_total") > retries_before
    })
    .await;
    // The fault lasts 8 s in all (not a wait for a result), or as long as
    // FAULTS_SQLITE_HOLD_S says.
    let hold = std::env::var("FAULTS_SQLITE_HOLD_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    tokio::time::sleep(Duration::from_secs(hold).saturating_sub(held.elapsed())).await;
    other.execute("COMMIT").await.unwrap();
    other.close().await.unwrap();
    let held_for = held.elapsed();

    load.wait_more_acked(80, PROGRESS).await;
    let tally = load.finish().await;
    let notes = vec![format!("lock_held={:.1}s", held_for.as_secs_f64())];
    conclude(scenario, &wl, &db, &tally, Vec::new(), &[], notes).await;
    assert!(
        !wl.spill_dir.join("rejected.ndjson").exists(),
        "a busy database parked an event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s7_upstream_errors_then_timeouts() {
    let scenario = Scenario::start("7 upstream errors then timeouts");
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path()).await;
    let db = sqlite_url(dir.path());
    let mut wl = Warmline::new(
        dir.path(),
        &db,
        &[
            ("WARMLINE_UPSTREAM_GOHIGHLEVEL_TIMEOUT_MS", "1000"),
            ("WARMLINE_UPSTREAM_ZEP_TIMEOUT_MS", "1000"),
            ("WARMLINE_UPSTREAM_BREAKER_OPEN_MS", "2000"),
        ],
    );
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(&tenants, tenant_file(&sim.url)).unwrap();
    wl.run(&["tenants", "import", &tenants.display().to_string()]);
    wl.start().await;
    let opts = LoadOpts {
        mid_call_tool: "check_availability",
        ..LoadOpts::default()
    };
    let load = Load::start(&wl.base, "upstream", opts);
    load.wait_more_acked(40, PROGRESS).await;

    // Every upstream answers 503: the breakers open.
    sim.knob(
        "*",
        serde_json::json!({ "error_rate": 1.0, "error_status": 503 }),
    )
    .await;
    let errors = wait_metrics(&wl, "an upstream breaker open", PROGRESS, |m| {
        m.max("warmline_upstream_breaker_state") == Some(2.0)
    })
    .await;
    load.wait_more_sent(60, PROGRESS).await;

    // Then every upstream hangs: calls time out (an open breaker lets a
    // probe through every 2 s).
    sim.knob("*", serde_json::json!({ "timeout_rate": 1.0 }))
        .await;
    let timeouts = |m: &Metrics| {
        m.sum_by("warmline_upstream_errors_total", "kind")
            .get("timeout")
            .copied()
            .unwrap_or(0.0)
    };
    let before = timeouts(&Metrics::scrape(&wl.base).await);
    wait_metrics(&wl, "upstream calls timing out", PROGRESS, |m| {
        timeouts(m) >= before + 4.0
    })
    .await;
    load.wait_more_sent(60, PROGRESS).await;

    // Healthy again: the breakers close.
    sim.knob("*", serde_json::json!({})).await;
    wait_metrics(&wl, "every upstream breaker closed", PROGRESS, |m| {
        m.max("warmline_upstream_breaker_state") == Some(0.0)
    })
    .await;
    load.wait_more_acked(40, PROGRESS).await;
    let tally = load.finish().await;
    let end = Metrics::scrape(&wl.base).await;
    let inbound_failed: u64 = tally
        .by_kind
        .iter()
        .filter(|(k, _)| k.starts_with("inbound ") && !k.ends_with(" 2xx"))
        .map(|(_, n)| n)
        .sum();
    let tool_failed: u64 = tally
        .by_kind
        .iter()
        .filter(|(k, _)| k.starts_with("tool ") && !k.ends_with(" 2xx"))
        .map(|(_, n)| n)
        .sum();
    let notes = vec![
        format!(
            "inbound_full={} inbound_degraded={} inbound_failed={inbound_failed} tool_failed={tool_failed}",
            tally.inbound_full, tally.inbound_degraded
        ),
        format!(
            "upstream_errors[{}] breaker_max_at_errors={} breaker_max_end={}",
            end.by("warmline_upstream_errors_total", "kind"),
            errors
                .max("warmline_upstream_breaker_state")
                .unwrap_or(-1.0),
            end.max("warmline_upstream_breaker_state").unwrap_or(-1.0),
        ),
        format!(
            "fallbacks[{}]",
            end.by("warmline_fallback_activations_total", "kind")
        ),
    ];
    conclude(
        scenario,
        &wl,
        &db,
        &tally,
        Vec::new(),
        &["warmline_cache_load_errors_total"],
        notes,
    )
    .await;
    assert_eq!(inbound_failed, 0, "an inbound call went unanswered");
    assert_eq!(tool_failed, 0, "a tool call went unanswered");
    assert!(tally.inbound_degraded > 0, "no inbound call met the outage");
}

/// The demo business as a real tenant whose upstreams are `sim`.
fn tenant_file(sim: &str) -> String {
    format!(
        r#"[[tenants]]
id = "faults-dental"
phone_number = "{number}"
name = "Faults Dental"
time_zone = "America/New_York"
crm = {{ kind = "gohighlevel", location_id = "loc_demo", token = "sim-ghl-token", base_url = "{sim}" }}
memory = {{ kind = "zep", token = "sim-zep-key", base_url = "{sim}" }}
calendar = {{ kind = "gohighlevel", location_id = "loc_demo", token = "sim-ghl-token", base_url = "{sim}" }}

[[tenants.services]]
id = "cleaning"
name = "Teeth cleaning"
duration_minutes = 30
calendar_id = "cal_demo_cleaning"
"#,
        number = load::CALLED
    )
}
