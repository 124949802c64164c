//! Nothing acknowledged is lost to a bad journal or a busy database: a torn
//! or damaged record is quarantined and never blocks the others, text a
//! backend refuses is sanitised, a database that refuses "for now" is
//! retried instead of parking the event, and what is parked is listed and
//! applied again by `warmline events replay-rejected`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor};
use warmline::domain::{CallEvent, CallId, CallPhase, Provider};
use warmline::writebehind::{Job, Spill};

use crate::helpers::voice::{RETELL_KEY, now_ms, retell_call, secrets};
use crate::helpers::{TestApp, TestDb, settings_with, spawn_with_settings};

fn event_job(call_id: &str, transcript: &str) -> Job {
    let mut event = CallEvent::new(
        Provider::Retell,
        CallId::parse(call_id).unwrap(),
        CallPhase::Ended,
        "call_ended",
    );
    event.details.transcript = Some(transcript.into());
    Job::CallEvent {
        event: Box::new(event),
        tenant_id: None,
        time_zone: None,
    }
}

/// The framed lines `Spill` writes for these jobs, one per job.
async fn framed_lines(jobs: &[Job]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let spill = Spill::open(dir.path().to_path_buf()).unwrap();
    for job in jobs {
        spill.append(std::slice::from_ref(job)).await.unwrap();
    }
    let text = std::fs::read_to_string(dir.path().join("journal.ndjson")).unwrap();
    text.lines().map(|l| format!("{l}\n")).collect()
}

/// An app on `db` whose spill directory is `spill`.
async fn app_on(db: TestDb, spill: &Path) -> TestApp {
    let mut vars = secrets();
    let dir = spill.display().to_string();
    vars.push(("WARMLINE_SPILL_DIR", &dir));
    let url = db.url().to_owned();
    vars.push(("DATABASE_URL", &url));
    let mut app = spawn_with_settings(settings_with(&vars)).await;
    app.db = Some(db);
    app
}

async fn stored(app: &TestApp, call_id: &str) -> Option<warmline::store::CallRecord> {
    app.store
        .call(Provider::Retell, &CallId::parse(call_id).unwrap())
        .await
        .unwrap()
}

/// Waits (up to 30 s) until every call of `ids` is stored.
async fn wait_stored(app: &TestApp, ids: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        for id in ids {
            if stored(app, id).await.is_none() {
                missing.push(*id);
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never stored: {missing:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn torn_and_damaged_records_are_quarantined_and_never_block_the_others() {
    let ids = [
        "call_j0", "call_j1", "call_j2", "call_j3", "call_j4", "call_j5",
    ];
    let jobs: Vec<Job> = ids.iter().map(|id| event_job(id, "hello")).collect();
    let l = framed_lines(&jobs).await;
    let damaged = l[3].replace("hello", "jello");
    let legacy = format!(
        "{}\n",
        serde_json::to_string(&event_job("call_legacy", "from an older version")).unwrap()
    );
    // A crash mid-append (j1 torn, j2 appended after it on the same line), a
    // record damaged on disk (j3), a line of an older version, and a torn
    // tail (j5).
    let journal = [
        l[0].clone(),
        l[1][..20].to_owned(),
        l[2].clone(),
        damaged,
        l[4].clone(),
        legacy,
        l[5][..15].to_owned(),
    ]
    .concat();
    let spill = tempfile::tempdir().unwrap();
    std::fs::write(spill.path().join("journal.ndjson"), journal).unwrap();

    let app = app_on(TestDb::sqlite(), spill.path()).await;
    wait_stored(&app, &["call_j0", "call_j2", "call_j4", "call_legacy"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.writebehind.spilled() > 0 {
        assert!(Instant::now() < deadline, "the journal is never emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for lost in ["call_j1", "call_j3", "call_j5"] {
        assert!(stored(&app, lost).await.is_none(), "{lost}");
    }
    let quarantine = std::fs::read_to_string(spill.path().join("quarantine.ndjson")).unwrap();
    assert_eq!(quarantine.lines().count(), 3, "{quarantine}");
    for reason in ["torn tail", "checksum mismatch", "torn record"] {
        assert!(quarantine.contains(reason), "{reason}: {quarantine}");
    }
    assert_eq!(app.writebehind.spill().quarantined(), 3);
    // A live event after all that goes straight to the database.
    let body =
        json!({ "event": "call_started", "call": retell_call("call_after", "+15550100001") });
    let (status, answer) = crate::helpers::voice::retell(&app, "/retell/events", &body).await;
    assert_eq!(
        (status, answer["durable_in"].as_str()),
        (200, Some("database"))
    );
}

#[tokio::test]
async fn a_transcript_with_nul_is_stored_on_postgres_live_and_from_the_journal() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let spill = tempfile::tempdir().unwrap();
    let spilled = framed_lines(&[event_job("call_nul_spilled", "before\u{0}after")]).await;
    std::fs::write(spill.path().join("journal.ndjson"), spilled.concat()).unwrap();
    let app = app_on(db, spill.path()).await;

    let mut call = retell_call("call_nul_live", "+15550100001");
    call["transcript"] = json!("Agent: hi\u{0}there");
    let (status, answer) = crate::helpers::voice::retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_ended", "call": call }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["durable_in"], "database", "{answer}");
    let live = stored(&app, "call_nul_live").await.expect("stored");
    assert_eq!(
        live.details.transcript.as_deref(),
        Some("Agent: hi\u{FFFD}there")
    );
    wait_stored(&app, &["call_nul_spilled"]).await;
    let replayed = stored(&app, "call_nul_spilled").await.unwrap();
    assert_eq!(
        replayed.details.transcript.as_deref(),
        Some("before\u{FFFD}after")
    );
    assert!(!spill.path().join("rejected.ndjson").exists());
}

/// The value of an unlabelled counter or gauge in `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not exported"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_busy_past_its_timeout_is_retried_never_parked() {
    let db = TestDb::sqlite();
    let url = db.url().to_owned();
    let spill = tempfile::tempdir().unwrap();
    let app = app_on(db, spill.path()).await;
    // Another writer holds the database past warmline's busy timeout.
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    other.execute("BEGIN EXCLUSIVE").await.unwrap();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let body = json!({ "event": "call_started", "call": retell_call("call_busy", "+15550100001") })
        .to_string();
    let sig = warmline::webhooks::signature::sign_retell(
        body.as_bytes(),
        RETELL_KEY.as_bytes(),
        now_ms(),
    );
    let send = client
        .post(format!("{}/retell/events", app.address))
        .header("content-type", "application/json")
        .header("x-retell-signature", sig)
        .body(body)
        .send();
    // The counter is the process's: other tests may retry too, so this
    // waits for it to move past where it stood.
    let before = metric(&app, "warmline_writebehind_retries_total").await;
    let answer = tokio::spawn(send);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&app, "warmline_writebehind_retries_total").await <= before {
        assert!(
            Instant::now() < deadline,
            "the busy database is never retried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    other.execute("COMMIT").await.unwrap();
    other.close().await.unwrap();

    let resp = answer.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["durable_in"], "database", "{answer}");
    assert!(stored(&app, "call_busy").await.is_some());
    assert!(!spill.path().join("rejected.ndjson").exists());
}

#[tokio::test]
async fn parked_events_are_counted_listed_and_applied_again_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let db = dir.path().join("warmline.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    // One bare job an older version parked, one parked with its reason.
    std::fs::create_dir(&spill).unwrap();
    let bare = serde_json::to_string(&event_job("call_parked_old", "x")).unwrap();
    let parked = warmline::writebehind::Parked {
        at_ms: now_ms(),
        reason: "no such table: calls".into(),
        job: event_job("call_parked_new", "y"),
    };
    {
        let s = Spill::open(spill.clone()).unwrap();
        s.reject(&parked.job, &parked.reason).await.unwrap();
    }
    let rejected = spill.join("rejected.ndjson");
    let framed = std::fs::read_to_string(&rejected).unwrap();
    std::fs::write(&rejected, format!("{bare}\n{framed}")).unwrap();

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmline"))
            .args(args)
            .current_dir(dir.path())
            .env("DATABASE_URL", &url)
            .env("WARMLINE_SPILL_DIR", &spill)
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = run(&["events", "rejected"]);
    assert!(listed.contains("no such table: calls"), "{listed}");
    assert!(listed.contains("older version"), "{listed}");
    assert_eq!(listed.lines().count(), 2, "{listed}");

    let replayed = run(&["events", "replay-rejected"]);
    assert!(
        replayed.contains("2 parked event(s) applied; 0 still parked"),
        "{replayed}"
    );
    assert_eq!(run(&["events", "rejected"]).trim(), "no parked events");
    // Applying again is a no-op: nothing is parked, nothing doubles.
    let again = run(&["events", "replay-rejected"]);
    assert!(again.contains("0 parked event(s) applied"), "{again}");

    let store = TestDb::External(url.clone()).store().await;
    for id in ["call_parked_old", "call_parked_new"] {
        let call = store
            .call(Provider::Retell, &CallId::parse(id).unwrap())
            .await
            .unwrap();
        assert!(call.is_some(), "{id} applied");
    }
}

#[tokio::test]
async fn an_event_acknowledged_without_its_tenant_gets_it_when_applied() {
    // Spilled by a replica that could not look the tenant up (database
    // down, nothing cached): the job names the called number only.
    let db = TestDb::sqlite();
    db.store()
        .await
        .upsert_tenant(&warmline::store::NewTenant {
            id: warmline::domain::TenantId::parse("late-clinic").unwrap(),
            phone_number: warmline::domain::PhoneNumber::parse("+15557770002").unwrap(),
            name: "Late Clinic".into(),
            time_zone: "America/New_York".into(),
            config: "{}".into(),
            is_demo: false,
        })
        .await
        .unwrap();
    let mut job = event_job("call_late_tenant", "Agent: hello");
    if let Job::CallEvent { event, .. } = &mut job {
        event.details.called = Some(warmline::domain::PhoneNumber::parse("+15557770002").unwrap());
        event.details.caller = Some(warmline::domain::PhoneNumber::parse("+15550100001").unwrap());
        event.details.duration_ms = Some(60_000);
        event.details.ended_at_ms = Some(now_ms());
    }
    let spill = tempfile::tempdir().unwrap();
    std::fs::write(
        spill.path().join("journal.ndjson"),
        framed_lines(&[job]).await.concat(),
    )
    .unwrap();
    let app = app_on(db, spill.path()).await;
    wait_stored(&app, &["call_late_tenant"]).await;
    let call = stored(&app, "call_late_tenant").await.unwrap();
    assert_eq!(
        call.tenant_id.as_ref().map(|t| t.as_str()),
        Some("late-clinic")
    );
    let tenant = warmline::domain::TenantId::parse("late-clinic").unwrap();
    let days = app
        .store
        .daily_metrics(Some(&tenant), "2000-01-01", "2100-01-01")
        .await
        .unwrap();
    assert_eq!(days.iter().map(|d| d.calls).sum::<i64>(), 1, "{days:?}");
}
