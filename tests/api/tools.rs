//! Mid-call tools (Retell function calls) end to end, through real HTTP
//! against the upstream simulator: booking against the calendar, ranked
//! alternatives, and the fallback cascade when a call's session is not cached.

use std::time::{Duration, Instant};

use serde_json::json;
use warmline::domain::{CallId, Provider, TenantId};
use warmline::simulator::endpoints;

use crate::helpers::voice::{
    RETELL_KEY, app, future_weekday, now_ms, post, retell, retell_call, vapi,
};
use crate::helpers::{TestApp, TestDb};

/// The first time `check_availability` offers on `day`, as the agent says it.
async fn first_free_time(app: &TestApp, call_id: &str, day: &str) -> String {
    let check = json!({ "name": "check_availability", "call": retell_call(call_id, "+15550100001"), "args": { "date": day } });
    let (_, before) = retell(app, "/retell/functions/check_availability", &check).await;
    let before = before["result"].as_str().unwrap().to_owned();
    // "On Monday, November 30 these times are free for Teeth cleaning: 9:00 AM, 9:30 AM and …"
    before
        .split(": ")
        .nth(1)
        .unwrap()
        .split([',', ' '])
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn a_booking_removes_the_slot_from_the_next_check_availability_answer() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let day = future_weekday();
    let (status, _) = retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_started", "call": retell_call("call_book", "+15550100001") }),
    )
    .await;
    assert_eq!(status, 200);
    let check = json!({ "name": "check_availability", "call": retell_call("call_book", "+15550100001"), "args": { "date": day } });
    let first = first_free_time(&app, "call_book", &day).await;
    let book = json!({ "name": "book_appointment", "call": retell_call("call_book", "+15550100001"),
                       "args": { "date": day, "time": first, "service": "Teeth cleaning" } });
    let (status, booked) = retell(&app, "/retell/functions/book_appointment", &book).await;
    assert_eq!(status, 200);
    assert!(
        booked["result"]
            .as_str()
            .unwrap()
            .starts_with("Booked: Teeth cleaning"),
        "{booked}"
    );
    assert_eq!(sim.state.calls(endpoints::GHL_BOOK), 1);

    let (_, after) = retell(&app, "/retell/functions/check_availability", &check).await;
    let after = after["result"].as_str().unwrap();
    assert!(
        !after.contains(&format!(" {first},")) && !after.contains(&format!(": {first}")),
        "{first} still offered: {after}"
    );

    // The appointment is logged and counted as a booking.
    let mut logged = Vec::new();
    for _ in 0..50 {
        logged = app
            .store
            .appointments(&TenantId::parse("demo-dental").unwrap(), 0, i64::MAX)
            .await
            .unwrap();
        if !logged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].call_id.as_deref(), Some("call_book"));
    // Booking again: the calendar refuses, the agent hears why.
    let (_, again) = retell(&app, "/retell/functions/book_appointment", &book).await;
    assert!(
        again["result"]
            .as_str()
            .unwrap()
            .contains("isn't available anymore"),
        "{again}"
    );
}

#[tokio::test]
async fn get_alternatives_ranks_the_closest_times_from_concurrent_searches() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let call = retell_call("call_alt", "+15550100001");
    retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_started", "call": call }),
    )
    .await;
    let args = json!({ "date": future_weekday(), "time": "11:00", "service": "checkup" });
    let (status, answer) = retell(
        &app,
        "/retell/functions",
        &json!({ "name": "get_alternatives", "call": call, "args": args }),
    )
    .await;
    assert_eq!(status, 200);
    let text = answer["result"].as_str().unwrap();
    assert!(
        text.starts_with("The closest times for Check-up are "),
        "{text}"
    );
    assert_eq!(
        text.matches(" at ").count(),
        3,
        "three alternatives: {text}"
    );
}

#[tokio::test]
async fn a_tool_call_before_call_started_uses_the_fallback_cascade_and_records_it() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    // No call_started yet: the call id is unknown everywhere.
    let call = retell_call("call_early", "+15550100001");
    let (status, answer) = retell(
        &app,
        "/retell/functions/list_services",
        &json!({ "name": "list_services", "call": call, "args": {} }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer["result"]
            .as_str()
            .unwrap()
            .contains("Teeth cleaning"),
        "{answer}"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"warmline_fallback_activations_total{kind="tenant_default"}"#),
        "{metrics}"
    );
    let id = CallId::parse("call_early").unwrap();
    let mut steps = Vec::new();
    for _ in 0..50 {
        steps = app
            .store
            .call_fallbacks(Provider::Retell, &id)
            .await
            .unwrap();
        if !steps.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].kind, "tenant_default");
    // The session is cached now: the next tool takes no fallback.
    retell(
        &app,
        "/retell/functions/list_services",
        &json!({ "name": "list_services", "call": call, "args": {} }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.store
            .call_fallbacks(Provider::Retell, &id)
            .await
            .unwrap()
            .len(),
        1
    );

    // A call known only to the database (started on another replica).
    retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_started", "call": retell_call("call_db", "+15550100002") }),
    )
    .await;
    // Its session is built beside the acknowledgement: wait for it, then
    // drop every session so only the database knows the call.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.cache.stats().namespaces["call"].entries < 2 {
        assert!(Instant::now() < deadline, "session never cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.cache
        .flush(&warmline::cache::FlushScope::Namespace(
            warmline::cache::Namespace::Call,
        ))
        .await;
    let (_, answer) = retell(
        &app,
        "/retell/functions/get_customer_context",
        &json!({
        "name": "get_customer_context", "call": { "call_id": "call_db" }, "args": {} }),
    )
    .await;
    assert!(
        answer["result"].as_str().unwrap().contains("Ben Carter"),
        "{answer}"
    );
    assert!(
        app.get("/metrics")
            .await
            .text()
            .await
            .unwrap()
            .contains(r#"kind="call_from_database""#)
    );

    // args_at_root: the args alone, the call named in the query string.
    let (status, answer) = retell(
        &app,
        "/retell/functions/check_availability?call_id=call_db",
        &json!({ "date": future_weekday() }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        answer["result"]
            .as_str()
            .unwrap()
            .contains("Teeth cleaning"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_redelivered_booking_gets_its_first_answer_and_books_once() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let day = future_weekday();
    let first = first_free_time(&app, "call_replay", &day).await;
    // Retell re-sends the same signed bytes (a retry after a lost answer, or
    // a replay by someone who captured them).
    let book =
        json!({ "name": "book_appointment", "call": retell_call("call_replay", "+15550100001"),
                       "args": { "date": day, "time": first, "service": "Teeth cleaning" } })
        .to_string();
    let sig = warmline::webhooks::signature::sign_retell(
        book.as_bytes(),
        RETELL_KEY.as_bytes(),
        now_ms(),
    );
    let headers = [("x-retell-signature", sig)];
    let (status, once) = post(&app, "/retell/functions/book_appointment", &book, &headers).await;
    assert_eq!(status, 200);
    assert!(
        once["result"].as_str().unwrap().starts_with("Booked:"),
        "{once}"
    );
    let (status, twice) = post(&app, "/retell/functions/book_appointment", &book, &headers).await;
    assert_eq!((status, &twice), (200, &once), "the first answer, again");
    assert_eq!(sim.state.calls(endpoints::GHL_BOOK), 1, "booked once");

    // Vapi delivers the same tool call (same `toolCallId`) twice.
    let second = first_free_time(&app, "call_replay", &day).await;
    let message = json!({
        "type": "tool-calls", "call": { "id": "vapi-replay" },
        "phoneNumber": { "number": "+15550100000" }, "customer": { "number": "+15550100001" },
        "toolCallList": [{ "id": "tc_book_1", "type": "function", "function": {
            "name": "book_appointment",
            "arguments": { "date": day, "time": second, "service": "Teeth cleaning" } } }]
    });
    let (_, once) = vapi(&app, message.clone()).await;
    let (_, twice) = vapi(&app, message).await;
    assert!(
        once["results"][0]["result"]
            .as_str()
            .unwrap()
            .starts_with("Booked:"),
        "{once}"
    );
    assert_eq!(once, twice);
    assert_eq!(
        sim.state.calls(endpoints::GHL_BOOK),
        2,
        "one booking per tool call"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"warmline_tool_replays_total{tool="book_appointment"}"#),
        "{metrics}"
    );
}
