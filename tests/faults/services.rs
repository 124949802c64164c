//! Scenarios 1 and 2: the services warmline depends on go away under load —
//! Redis killed and restarted; Postgres stopped, started, and stopped again
//! in the middle of replaying the spill journal.

use std::time::{Duration, Instant};

use crate::helpers::{PrivatePostgres, PrivateRedis};
use crate::load::{Load, LoadOpts};
use crate::process::Warmline;
use crate::verify::Metrics;
use crate::{PROGRESS, Scenario, conclude, pg_start, pg_stop, sqlite_url, wait_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s1_redis_killed_and_restarted_mid_load() {
    let scenario = Scenario::start("1 redis killed+restarted");
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let mut wl = Warmline::new(dir.path(), &db, &[("REDIS_URL", &redis.url())]);
    wl.start().await;
    wait_metrics(&wl, "Redis up", PROGRESS, |m| {
        m.max("warmline_redis_up") == Some(1.0)
    })
    .await;
    let load = Load::start(&wl.base, "redis", LoadOpts::default());
    load.wait_more_acked(60, PROGRESS).await;

    redis.kill();
    wait_metrics(&wl, "Redis seen down", PROGRESS, |m| {
        m.max("warmline_redis_up") == Some(0.0)
    })
    .await;
    // Served through the outage.
    load.wait_more_acked(80, PROGRESS).await;
    let during = Metrics::scrape(&wl.base).await;

    redis.restart().await;
    wait_metrics(&wl, "Redis seen back", PROGRESS, |m| {
        m.max("warmline_redis_up") == Some(1.0)
    })
    .await;
    load.wait_more_acked(80, PROGRESS).await;
    let tally = load.finish().await;

    let notes = vec![format!(
        "l2_errors_during_outage={} l2_breaker_during={}",
        during.sum("warmline_cache_l2_errors_total"),
        during
            .max("warmline_cache_l2_breaker_state")
            .unwrap_or(-1.0)
    )];
    conclude(
        scenario,
        &wl,
        &db,
        &tally,
        Vec::new(),
        &[
            "warmline_redis_up",
            "warmline_cache_l2_errors_total",
            "warmline_cache_l2_breaker_state",
            "warmline_cache_backplane_connected",
        ],
        notes,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s2_postgres_stopped_and_restarted_mid_replay() {
    let scenario = Scenario::start("2 postgres stopped mid-replay");
    let Some(mut pg) = PrivatePostgres::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = pg.url();
    let mut wl = Warmline::new(
        dir.path(),
        &db,
        &[("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", "1000")],
    );
    wl.start().await;
    // Large transcripts and clients sending only events: a journal big
    // enough that its replay takes several batches.
    let opts = LoadOpts {
        callers: 2,
        event_blasters: 3,
        transcript_bytes: 16_000,
        ..LoadOpts::default()
    };
    let load = Load::start(&wl.base, "pg", opts);
    load.wait_more_acked(50, PROGRESS).await;

    let mut caught_mid_replay = 0;
    let mut outages = 0;
    while caught_mid_replay == 0 && outages < 3 {
        outages += 1;
        pg_stop(&mut pg);
        let target = load.acked_in("spill_journal") + 800;
        load.wait_for("800 more events spilled", PROGRESS, |t| {
            t.acked_in("spill_journal") >= target
        })
        .await;
        let before = Metrics::scrape(&wl.base)
            .await
            .sum("warmline_writebehind_replayed_total");
        pg_start(&mut pg);
        // Stop it again as soon as the replay has committed a batch while
        // more of the journal waits.
        let deadline = Instant::now() + PROGRESS;
        loop {
            let m = Metrics::scrape(&wl.base).await;
            let replayed = m.sum("warmline_writebehind_replayed_total") - before;
            let waiting = m.sum("warmline_writebehind_spill_depth");
            if replayed > 0.0 && waiting > 0.0 {
                pg_stop(&mut pg);
                caught_mid_replay = replayed as u64;
                break;
            }
            if waiting == 0.0 {
                break; // replayed whole before it was seen: another outage
            }
            assert!(
                Instant::now() < deadline,
                "the journal is never replayed:\n{}",
                wl.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if caught_mid_replay > 0 {
            // Down again: the journal (half replayed) waits, new events
            // spill behind it.
            load.wait_more_acked(100, PROGRESS).await;
            pg_start(&mut pg);
        }
    }
    wait_metrics(&wl, "journal replayed", PROGRESS, |m| {
        m.sum("warmline_writebehind_spill_depth") == 0.0 && m.max("warmline_db_up") == Some(1.0)
    })
    .await;
    load.wait_more_acked(50, PROGRESS).await;
    let tally = load.finish().await;
    let notes = vec![format!(
        "outages={outages} stopped_mid_replay_after={caught_mid_replay}_jobs"
    )];
    conclude(
        scenario,
        &wl,
        &db,
        &tally,
        Vec::new(),
        &["warmline_db_up"],
        notes,
    )
    .await;
    assert!(
        caught_mid_replay > 0,
        "the replay was never caught mid-way in {outages} outages"
    );
}
