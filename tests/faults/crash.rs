//! Scenarios 3 to 5: crashes — warmline SIGKILLed mid-burst (committing,
//! spilling, replaying) and restarted on the same journal and database, and
//! warmline started on a journal a crash (torn tail) or a bad disk (a
//! corrupt record in the middle) left behind.

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::helpers::PrivatePostgres;
use crate::load::{Load, LoadOpts};
use crate::process::Warmline;
use crate::verify::{self, Expect, Metrics};
use crate::{PROGRESS, Scenario, conclude, journal, pg_start, pg_stop, sqlite_url, wait_metrics};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s3_warmline_sigkilled_mid_burst_and_restarted() {
    let scenario = Scenario::start("3 warmline SIGKILL mid-burst");
    let Some(mut pg) = PrivatePostgres::start().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = pg.url();
    let mut wl = Warmline::new(
        dir.path(),
        &db,
        &[("WARMLINE_DB_ACQUIRE_TIMEOUT_MS", "500")],
    );
    wl.start().await;
    let opts = LoadOpts {
        callers: 3,
        event_blasters: 2,
        transcript_bytes: 16_000,
        ..LoadOpts::default()
    };
    let load = Load::start(&wl.base, "kill", opts);
    let mut acked_at_kills = Vec::new();

    // 1. Killed twice while committing to the database.
    for _ in 0..2 {
        load.wait_more_acked(120, PROGRESS).await;
        wl.kill();
        acked_at_kills.push(load.acked());
        wl.start().await;
    }
    load.wait_more_acked(60, PROGRESS).await;

    // 2. Killed while spilling to the journal (the database is down), and
    //    started again with the database still down: cold, it serves
    //    degraded, spilling behind the journal the killed process left.
    pg_stop(&mut pg);
    let target = load.acked_in("spill_journal") + 400;
    load.wait_for("400 more events spilled", PROGRESS, |t| {
        t.acked_in("spill_journal") >= target
    })
    .await;
    wl.kill();
    acked_at_kills.push(load.acked());
    wl.start().await;
    let target = load.acked_in("spill_journal") + 30;
    load.wait_for("30 more events spilled after a cold start", PROGRESS, |t| {
        t.acked_in("spill_journal") >= target
    })
    .await;

    // 3. The database returns; killed as soon as the replay has committed
    //    a batch while more waits, then started again to finish it.
    pg_start(&mut pg);
    let deadline = Instant::now() + PROGRESS;
    let mut killed_mid_replay = false;
    loop {
        let m = Metrics::scrape(&wl.base).await;
        let (replayed, waiting) = (
            m.sum("warmline_writebehind_replayed_total"),
            m.sum("warmline_writebehind_spill_depth"),
        );
        if replayed > 0.0 && waiting > 0.0 {
            wl.kill();
            acked_at_kills.push(load.acked());
            killed_mid_replay = true;
            break;
        }
        if waiting == 0.0 {
            break; // replayed whole before it was seen
        }
        assert!(
            Instant::now() < deadline,
            "the journal is never replayed:\n{}",
            wl.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if killed_mid_replay {
        wl.start().await;
    }
    wait_metrics(&wl, "journal replayed", PROGRESS, |m| {
        m.sum("warmline_writebehind_spill_depth") == 0.0
    })
    .await;
    load.wait_more_acked(60, PROGRESS).await;
    let tally = load.finish().await;
    let quarantine = std::fs::read_to_string(wl.spill_dir.join("quarantine.ndjson"))
        .unwrap_or_default()
        .lines()
        .count();
    let kills: Vec<String> = acked_at_kills.iter().map(usize::to_string).collect();
    // Events acknowledged by the cold process could not be given their
    // tenant (its lookup needs the database): stored, but without it.
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    let (no_tenant,): (i64,) = sqlx::query_as("SELECT count(*) FROM calls WHERE tenant_id IS NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // …and so, once ended, never written back to the CRM and memory.
    let (no_writeback,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM calls c WHERE c.ended_at_ms IS NOT NULL AND NOT EXISTS
           (SELECT 1 FROM writeback_queue w
             WHERE w.idempotency_key = 'crm_writeback:retell:' || c.call_id || ':call_ended')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let notes = vec![format!(
        "kills={} acked_at_kills={} killed_mid_replay={killed_mid_replay} torn_tails_quarantined={quarantine} calls_without_tenant={no_tenant} ended_without_writeback={no_writeback}",
        acked_at_kills.len(),
        kills.join(",")
    )];
    conclude(scenario, &wl, &db, &tally, Vec::new(), &[], notes).await;
}

/// Scenarios 4 and 5: warmline started under load on a journal of 81
/// records, one of them damaged as `damage` says: the 80 others are
/// replayed, the damaged one quarantined.
async fn start_on_journal(name: &'static str, tag: &str, damage: Damage) {
    let scenario = Scenario::start(name);
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let mut wl = Warmline::new(dir.path(), &db, &[]);
    std::fs::create_dir(&wl.spill_dir).unwrap();
    let (jobs, ends): (Vec<_>, Vec<_>) = (0..81)
        .map(|n| journal::ended_job(&format!("call_{tag}_journal_{n}"), n))
        .unzip();
    let lines = journal::framed_lines(&jobs).await;
    let (bad, text) = match damage {
        // A crash mid-append: the last record is cut short, no newline.
        Damage::TornTail => {
            let last = &lines[80];
            (
                80,
                format!("{}{}", lines[..80].concat(), &last[..last.len() / 2]),
            )
        }
        // A record damaged on the disk, in the middle: its checksum fails.
        Damage::CorruptMiddle => {
            let mut lines = lines.clone();
            lines[40] = lines[40].replacen("Thanks for calling", "Thanks for cal1ing", 1);
            (40, lines.concat())
        }
    };
    std::fs::write(wl.spill_dir.join("journal.ndjson"), text).unwrap();

    // The platform is already sending when warmline starts.
    let load = Load::start(&wl.base, tag, LoadOpts::default());
    load.wait_more_sent(20, PROGRESS).await;
    wl.start().await;
    wait_metrics(&wl, "journal replayed", PROGRESS, |m| {
        m.sum("warmline_writebehind_spill_depth") == 0.0
            && m.sum("warmline_writebehind_replayed_total") >= 80.0
    })
    .await;
    load.wait_more_acked(150, PROGRESS).await;
    let tally = load.finish().await;

    let quarantine =
        std::fs::read_to_string(wl.spill_dir.join("quarantine.ndjson")).unwrap_or_default();
    let expect: Vec<Expect> = (0..81)
        .filter(|n| *n != bad)
        .map(|n| Expect::Ended(format!("call_{tag}_journal_{n}"), ends[n]))
        .collect();
    let bad_id = warmline::domain::CallId::parse(&format!("call_{tag}_journal_{bad}")).unwrap();
    let store = verify::store(&db);
    let bad_stored = store
        .call(warmline::domain::Provider::Retell, &bad_id)
        .await
        .unwrap()
        .is_some();
    store.close().await;
    let notes = vec![format!(
        "journal=80 whole + 1 {} quarantine_lines={} bad_record_stored={bad_stored}",
        damage.what(),
        quarantine.lines().count()
    )];
    conclude(scenario, &wl, &db, &tally, expect, &[], notes).await;
    assert!(
        quarantine.contains(damage.reason()),
        "the {} record is not quarantined: {quarantine}",
        damage.what()
    );
    assert_eq!(quarantine.lines().count(), 1, "{quarantine}");
    assert!(!bad_stored, "the {} record was applied", damage.what());
    assert!(
        !wl.spill_dir.join("rejected.ndjson").exists(),
        "nothing is parked"
    );
}

#[derive(Clone, Copy)]
enum Damage {
    TornTail,
    CorruptMiddle,
}

impl Damage {
    fn what(self) -> &'static str {
        match self {
            Damage::TornTail => "torn",
            Damage::CorruptMiddle => "corrupt",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Damage::TornTail => "torn tail",
            Damage::CorruptMiddle => "checksum mismatch",
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s4_torn_journal_tail_under_load() {
    start_on_journal("4 torn journal tail", "torn", Damage::TornTail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fault injection: run by .ci/run with --ignored"]
async fn s5_corrupt_journal_record_in_the_middle() {
    start_on_journal("5 corrupt journal record", "corrupt", Damage::CorruptMiddle).await;
}
