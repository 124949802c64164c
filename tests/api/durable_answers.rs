//! A tool's answer claims nothing that is not durable yet: the fallback a
//! tool call took is recorded (call log and daily metrics) before the tool
//! answers, a booking is in the appointment log when "Booked" is said, and
//! when the log cannot be written the answer says so instead of plain success.
//!
//! Every assertion here runs right after the HTTP answer, without waiting or
//! polling: that is the point.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor};
use warmline::domain::{CallId, Provider, TenantId};
use warmline::simulator::endpoints;

use crate::helpers::voice::{app, future_weekday, retell, retell_call, secrets};
use crate::helpers::{PrivatePostgres, TestApp, TestDb, spawn_with_simulator};

fn demo() -> TenantId {
    TenantId::parse("demo-dental").unwrap()
}

async fn fallbacks_counted(app: &TestApp) -> i64 {
    app.store
        .daily_metrics(Some(&demo()), "2000-01-01", "2100-01-01")
        .await
        .unwrap()
        .iter()
        .map(|d| d.fallbacks)
        .sum()
}

async fn bookings_counted(app: &TestApp) -> i64 {
    app.store
        .daily_metrics(Some(&demo()), "2000-01-01", "2100-01-01")
        .await
        .unwrap()
        .iter()
        .map(|d| d.bookings)
        .sum()
}

#[tokio::test]
async fn a_fallback_is_recorded_and_counted_before_the_tool_answers() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    // Several early tool calls (before `call_started`), each checked the
    // moment it is answered.
    for i in 0..5 {
        let call_id = format!("call_early_{i}");
        let call = retell_call(&call_id, "+15550100001");
        let (status, answer) = retell(
            &app,
            "/retell/functions/list_services",
            &json!({ "name": "list_services", "call": call, "args": {} }),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["result"]
                .as_str()
                .unwrap()
                .contains("Teeth cleaning"),
            "{answer}"
        );
        let steps = app
            .store
            .call_fallbacks(Provider::Retell, &CallId::parse(&call_id).unwrap())
            .await
            .unwrap();
        assert_eq!(steps.len(), 1, "{call_id}: fallback not recorded yet");
        assert_eq!(steps[0].kind, "tenant_default");
        assert_eq!(fallbacks_counted(&app).await, i + 1, "{call_id}");
    }

    // A call no step can place: answered with an apology, recorded all the same.
    let mut call = retell_call("call_nowhere", "+15550109999");
    call["to_number"] = "+15550109998".into();
    let (status, answer) = retell(
        &app,
        "/retell/functions/list_services",
        &json!({ "name": "list_services", "call": call, "args": {} }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["result"]
            .as_str()
            .unwrap()
            .contains("can't look that up"),
        "{answer}"
    );
    let steps = app
        .store
        .call_fallbacks(Provider::Retell, &CallId::parse("call_nowhere").unwrap())
        .await
        .unwrap();
    assert_eq!(steps.len(), 1, "unresolved fallback not recorded yet");
    assert_eq!(steps[0].kind, "call_unresolved");
}

/// The first time `check_availability` offers on `day`, as the agent says it.
async fn first_free_time(app: &TestApp, call_id: &str, day: &str) -> String {
    let check = json!({ "name": "check_availability", "call": retell_call(call_id, "+15550100001"), "args": { "date": day } });
    let (_, answer) = retell(app, "/retell/functions/check_availability", &check).await;
    let answer = answer["result"].as_str().unwrap().to_owned();
    // "On Monday, November 30 these times are free for Teeth cleaning: 9:00 AM, 9:30 AM and …"
    answer
        .split(": ")
        .nth(1)
        .unwrap_or_else(|| panic!("no free times: {answer}"))
        .split([',', ' '])
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn book(app: &TestApp, call_id: &str, day: &str, time: &str) -> String {
    let body = json!({ "name": "book_appointment", "call": retell_call(call_id, "+15550100001"),
                       "args": { "date": day, "time": time, "service": "Teeth cleaning" } });
    let (status, answer) = retell(app, "/retell/functions/book_appointment", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"].as_str().unwrap().to_owned()
}

/// A plain "Booked: …." with no word about the records.
fn claims_plain_success(answer: &str) -> bool {
    answer.starts_with("Booked:") && !answer.contains("couldn't save")
}

#[tokio::test]
async fn a_booking_is_in_the_appointment_log_when_booked_is_answered() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let day = future_weekday();
    let time = first_free_time(&app, "call_logged", &day).await;
    let answer = book(&app, "call_logged", &day, &time).await;
    assert!(claims_plain_success(&answer), "{answer}");
    assert_eq!(sim.state.calls(endpoints::GHL_BOOK), 1);
    let logged = app.store.appointments(&demo(), 0, i64::MAX).await.unwrap();
    assert_eq!(logged.len(), 1, "appointment not logged yet");
    assert_eq!(logged[0].call_id.as_deref(), Some("call_logged"));
    assert_eq!(bookings_counted(&app).await, 1);
}

#[tokio::test]
async fn a_booking_the_database_refuses_to_log_is_not_answered_as_plain_success() {
    let db = TestDb::sqlite();
    let url = db.url().to_owned();
    let (app, sim) = app(db).await;
    let day = future_weekday();
    let time = first_free_time(&app, "call_refused", &day).await;
    // The database refuses the appointment row (here: its table is gone).
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    conn.execute("DROP TABLE appointments").await.unwrap();
    conn.close().await.unwrap();

    let answer = book(&app, "call_refused", &day, &time).await;
    assert_eq!(
        sim.state.calls(endpoints::GHL_BOOK),
        1,
        "the calendar booked"
    );
    assert!(
        answer.starts_with("Booked: Teeth cleaning"),
        "the booking exists and is said: {answer}"
    );
    assert!(!claims_plain_success(&answer), "{answer}");
    // The refused job is kept for an operator in the rejected journal.
    let rejected = app.spill.as_ref().unwrap().path().join("rejected.ndjson");
    let kept = std::fs::read_to_string(&rejected).unwrap();
    assert!(kept.contains("\"job\":\"appointment\""), "{kept}");
}

/// Waits (up to 10 s) until the call's session is cached.
async fn session_cached(app: &TestApp, sessions: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.cache.stats().namespaces["call"].entries < sessions {
        assert!(Instant::now() < deadline, "session never cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_and_the_journal_unwritable_a_booking_says_it_was_not_saved() {
    let Some(mut pg) = PrivatePostgres::start().await else {
        return;
    };
    let (app, sim) = spawn_with_simulator(TestDb::External(pg.url()), &secrets()).await;
    let day = future_weekday();
    let started =
        json!({ "event": "call_started", "call": retell_call("call_lost", "+15550100001") });
    let (status, _) = retell(&app, "/retell/events", &started).await;
    assert_eq!(status, 200);
    session_cached(&app, 1).await;
    let time = first_free_time(&app, "call_lost", &day).await;

    // The database goes away and the spill directory cannot take a file
    // (a path that is no longer a directory fails even for root).
    pg.stop_server();
    let spill = app.spill.as_ref().unwrap().path().to_path_buf();
    std::fs::remove_dir_all(&spill).unwrap();
    std::fs::write(&spill, "not a directory").unwrap();

    let answer = book(&app, "call_lost", &day, &time).await;
    assert_eq!(
        sim.state.calls(endpoints::GHL_BOOK),
        1,
        "the calendar booked"
    );
    assert!(
        answer.starts_with("Booked: Teeth cleaning"),
        "the booking exists and is said: {answer}"
    );
    assert!(!claims_plain_success(&answer), "{answer}");
    // Put the directory back, so the app's temporary directory is removed.
    std::fs::remove_file(&spill).unwrap();
    std::fs::create_dir(&spill).unwrap();
}
