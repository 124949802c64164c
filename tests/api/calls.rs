//! Voice webhooks end to end: Vapi and ElevenLabs shapes and signatures,
//! mid-call tools with the fallback cascade, durable call events — through
//! real HTTP, against the upstream simulator, SQLite and Postgres.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmline::domain::{CallId, PhoneNumber, Provider, TenantId};
use warmline::simulator::{Simulator, endpoints};
use warmline::webhooks::signature::{sign_elevenlabs, sign_retell, sign_vapi};

use crate::helpers::{PrivatePostgres, TestApp, TestDb, spawn_with_simulator};

const RETELL_KEY: &str = "key_test_retell_webhook";
const VAPI_SECRET: &str = "vapi-test-secret";
const ELEVEN_SECRET: &str = "wsec_test_elevenlabs";

fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RETELL_API_KEY", RETELL_KEY),
        ("VAPI_SECRET", VAPI_SECRET),
        ("ELEVENLABS_WEBHOOK_SECRET", ELEVEN_SECRET),
    ]
}

async fn app(db: TestDb) -> (TestApp, Simulator) {
    spawn_with_simulator(db, &secrets()).await
}

async fn post(app: &TestApp, path: &str, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}{}", app.address, path))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body.to_owned()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn retell(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let sig = sign_retell(body.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    post(app, path, &body, &[("x-retell-signature", sig)]).await
}

async fn vapi(app: &TestApp, message: Value) -> (u16, Value) {
    post(
        app,
        "/vapi",
        &json!({ "message": message }).to_string(),
        &[("authorization", format!("Bearer {VAPI_SECRET}"))],
    )
    .await
}

fn retell_call(call_id: &str, from: &str) -> Value {
    json!({
        "call_id": call_id, "agent_id": "agent_1", "call_type": "phone_call", "direction": "inbound",
        "from_number": from, "to_number": "+15550100000", "call_status": "ongoing",
        "start_timestamp": now_ms() - 60_000,
    })
}

fn ended_call(call_id: &str, from: &str, duration_ms: i64) -> Value {
    let mut c = retell_call(call_id, from);
    let start = now_ms() - duration_ms;
    c["start_timestamp"] = start.into();
    c["end_timestamp"] = (start + duration_ms).into();
    c["duration_ms"] = duration_ms.into();
    c["call_status"] = "ended".into();
    c["disconnection_reason"] = "user_hangup".into();
    c["transcript"] = "Agent: Hi, Demo Dental.\nUser: I'd like a cleaning.".into();
    c["transcript_object"] = json!([
        { "role": "agent", "content": "Hi, Demo Dental." },
        { "role": "user", "content": "I'd like a cleaning." }
    ]);
    c
}

/// A weekday a week or two ahead, as YYYY-MM-DD.
fn future_weekday() -> String {
    use chrono::Datelike;
    let mut d = chrono::Utc::now().date_naive() + chrono::Duration::days(8);
    while matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
        d = d.succ_opt().unwrap();
    }
    d.to_string()
}

// ---------------------------------------------------------------- Vapi

#[tokio::test]
async fn a_vapi_assistant_request_is_answered_with_variable_values_under_each_auth_scheme() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let message = json!({
        "type": "assistant-request",
        "call": { "id": "vapi-call-1", "type": "inboundPhoneCall", "customer": { "number": "+15550100001" } },
        "phoneNumber": { "number": "+15550100000" },
        "customer": { "number": "+15550100001" }
    });
    let body = json!({ "message": message }).to_string();
    let ts = now_ms().to_string();
    let hmac = sign_vapi(body.as_bytes(), VAPI_SECRET.as_bytes(), now_ms());
    let schemes: Vec<Vec<(&str, String)>> = vec![
        vec![("authorization", format!("Bearer {VAPI_SECRET}"))],
        vec![("x-vapi-secret", VAPI_SECRET.to_owned())],
        vec![("x-signature", hmac), ("x-timestamp", ts)],
    ];
    for headers in schemes {
        let (status, answer) = post(&app, "/vapi", &body, &headers).await;
        assert_eq!(status, 200, "{headers:?}: {answer}");
        let vars = &answer["assistantOverrides"]["variableValues"];
        assert_eq!(vars["customer_name"], "Ana Souza", "{answer}");
        assert!(vars["memory_summary"].as_str().unwrap().contains("morning"));
    }
    for headers in [
        vec![("authorization", "Bearer wrong".to_owned())],
        vec![("x-vapi-secret", "wrong".to_owned())],
        vec![
            ("x-signature", "00".repeat(32)),
            ("x-timestamp", now_ms().to_string()),
        ],
        vec![],
    ] {
        let (status, answer) = post(&app, "/vapi", &body, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {answer}");
    }
    let unknown = json!({ "type": "assistant-request", "call": { "id": "c" }, "phoneNumber": { "number": "+15557770000" } });
    assert_eq!(vapi(&app, unknown).await, (200, json!({})));
}

#[tokio::test]
async fn vapi_tool_calls_answer_single_line_results_for_every_argument_shape_and_200_on_errors() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let day = future_weekday();
    let start = json!({
        "type": "assistant-request", "call": { "id": "vapi-call-2" },
        "phoneNumber": { "number": "+15550100000" }, "customer": { "number": "+15550100001" }
    });
    assert_eq!(vapi(&app, start).await.0, 200);
    let args = json!({ "date": day, "service": "cleaning" });
    let message = json!({
        "type": "tool-calls",
        "call": { "id": "vapi-call-2", "customer": { "number": "+15550100001" } },
        "phoneNumber": { "number": "+15550100000" },
        "toolCallList": [
            { "id": "t1", "type": "function", "function": { "name": "check_availability", "arguments": args.to_string() } },
            { "id": "t2", "name": "check_availability", "arguments": args },
            { "id": "t3", "name": "check_availability", "parameters": args },
            { "id": "t4", "name": "get_customer_context", "arguments": {} },
            { "id": "t5", "name": "teleport", "arguments": {} },
            { "id": "t6", "name": "check_availability", "arguments": { "date": "the day after never" } }
        ],
        "toolWithToolCallList": []
    });
    let (status, answer) = vapi(&app, message).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    for r in &results[..3] {
        let text = r["result"].as_str().unwrap_or_else(|| panic!("{r}"));
        assert!(text.contains("free for Teeth cleaning"), "{text}");
        assert!(!text.contains('\n'));
    }
    assert_eq!(results[0]["result"], results[1]["result"]);
    assert_eq!(
        (
            results[0]["toolCallId"].as_str(),
            results[0]["name"].as_str()
        ),
        (Some("t1"), Some("check_availability"))
    );
    assert!(results[3]["result"].as_str().unwrap().contains("Ana Souza"));
    assert!(
        results[4]["error"].as_str().unwrap().contains("teleport"),
        "{answer}"
    );
    assert!(
        results[5]["error"]
            .as_str()
            .unwrap()
            .contains("didn't understand the date"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_vapi_end_of_call_report_is_stored_once_with_its_transcript_and_analysis() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let report = json!({
        "type": "end-of-call-report",
        "call": { "id": "vapi-call-3", "type": "inboundPhoneCall", "customer": { "number": "+15550100002" } },
        "phoneNumber": { "number": "+15550100000" },
        "startedAt": "2026-11-21T15:00:00.000Z", "endedAt": "2026-11-21T15:02:30.000Z",
        "endedReason": "customer-ended-call",
        "artifact": { "transcript": "AI: Hello\nUser: Book me", "messages": [
            { "role": "bot", "message": "Hello" }, { "role": "user", "message": "Book me" } ] },
        "analysis": { "summary": "Wanted a booking", "successEvaluation": "true" }
    });
    for _ in 0..2 {
        let (status, answer) = vapi(&app, report.clone()).await;
        assert_eq!(status, 200, "{answer}");
    }
    let call = app
        .store
        .call(Provider::Vapi, &CallId::parse("vapi-call-3").unwrap())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(call.duration_ms, Some(150_000));
    assert_eq!(call.summary.as_deref(), Some("Wanted a booking"));
    assert_eq!(call.successful, Some(true));
    assert_eq!(
        call.disconnection_reason.as_deref(),
        Some("customer-ended-call")
    );
    let tenant = TenantId::parse("demo-dental").unwrap();
    let contact = app
        .store
        .contact(&tenant, &PhoneNumber::parse("+15550100002").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.total_calls, 1, "counted once despite the retry");
}

// ---------------------------------------------------------------- ElevenLabs

#[tokio::test]
async fn elevenlabs_initiation_and_post_call_are_answered_and_verified() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let init = json!({ "caller_id": "+15550100001", "agent_id": "agent_x", "called_number": "+15550100000", "call_sid": "CA123" }).to_string();
    let (status, answer) = post(
        &app,
        "/elevenlabs/initiation",
        &init,
        &[("x-warmline-secret", ELEVEN_SECRET.into())],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "conversation_initiation_client_data");
    assert_eq!(answer["dynamic_variables"]["customer_name"], "Ana Souza");
    assert_eq!(
        answer["dynamic_variables"]["is_returning_caller"], true,
        "typed, not a string"
    );
    let (status, _) = post(
        &app,
        "/elevenlabs/initiation",
        &init,
        &[("x-warmline-secret", "nope".into())],
    )
    .await;
    assert_eq!(status, 401);

    let body = json!({
        "type": "post_call_transcription", "event_timestamp": 1_700_000_000,
        "data": {
            "agent_id": "agent_x", "conversation_id": "conv_42", "status": "done",
            "transcript": [ { "role": "agent", "message": "Hi!" }, { "role": "user", "message": "Cancel my visit" } ],
            "metadata": { "start_time_unix_secs": 1_763_700_000, "call_duration_secs": 42,
                          "phone_call": { "external_number": "+15550100003", "agent_number": "+15550100000" } },
            "analysis": { "call_successful": "success", "transcript_summary": "Asked to cancel" }
        }
    })
    .to_string();
    let sig = sign_elevenlabs(
        body.as_bytes(),
        ELEVEN_SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
    );
    let (status, answer) = post(
        &app,
        "/elevenlabs/post-call",
        &body,
        &[("elevenlabs-signature", sig)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let call = app
        .store
        .call(Provider::ElevenLabs, &CallId::parse("conv_42").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (call.duration_ms, call.summary.as_deref()),
        (Some(42_000), Some("Asked to cancel"))
    );
    assert_eq!(
        call.transcript.as_deref(),
        Some("Agent: Hi!\nUser: Cancel my visit")
    );

    let stale = sign_elevenlabs(
        body.as_bytes(),
        ELEVEN_SECRET.as_bytes(),
        chrono::Utc::now().timestamp() - 31 * 60,
    );
    let (status, _) = post(
        &app,
        "/elevenlabs/post-call",
        &body,
        &[("elevenlabs-signature", stale)],
    )
    .await;
    assert_eq!(status, 401);
    let audio = json!({ "type": "post_call_audio", "data": { "conversation_id": "conv_42", "full_audio": "AAAA" } }).to_string();
    let sig = sign_elevenlabs(
        audio.as_bytes(),
        ELEVEN_SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
    );
    let (status, answer) = post(
        &app,
        "/elevenlabs/post-call",
        &audio,
        &[("elevenlabs-signature", sig)],
    )
    .await;
    assert_eq!((status, answer["ignored"].as_bool()), (200, Some(true)));
}

// ---------------------------------------------------------------- tools

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
    let (_, before) = retell(&app, "/retell/functions/check_availability", &check).await;
    let before = before["result"].as_str().unwrap().to_owned();
    // "On Monday, November 30 these times are free for Teeth cleaning: 9:00 AM, 9:30 AM and …"
    let first = before
        .split(": ")
        .nth(1)
        .unwrap()
        .split([',', ' '])
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
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
    while app.state.cache.stats().namespaces["call"].entries < 2 {
        assert!(Instant::now() < deadline, "session never cached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.state
        .cache
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

// ---------------------------------------------------------------- events

#[tokio::test]
async fn call_ended_delivered_twice_stores_one_call_counts_once_and_writes_back() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let event =
        json!({ "event": "call_ended", "call": ended_call("call_twice", "+15550100001", 90_000) });
    let (status, first) = retell(&app, "/retell/events", &event).await;
    assert_eq!(
        (status, &first["durable_in"], &first["duplicate"]),
        (200, &json!("database"), &json!(false)),
        "{first}"
    );
    let (status, second) = retell(&app, "/retell/events", &event).await;
    assert_eq!((status, &second["duplicate"]), (200, &json!(true)));

    let calls = app
        .store
        .list_calls(&warmline::store::CallFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].transcript.as_deref(),
        Some("Agent: Hi, Demo Dental.\nUser: I'd like a cleaning.")
    );
    let tenant = TenantId::parse("demo-dental").unwrap();
    let days = app
        .store
        .daily_metrics(Some(&tenant), "2000-01-01", "2100-01-01")
        .await
        .unwrap();
    assert_eq!(
        (days.len(), days[0].calls, days[0].total_duration_ms),
        (1, 1, 90_000)
    );

    // Write-back: the transcript reaches the memory service, the CRM is touched.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.state.calls(endpoints::ZEP_ADD_MESSAGES) == 0
        || sim.state.calls(endpoints::GHL_UPSERT_CONTACT) == 0
    {
        assert!(
            Instant::now() < deadline,
            "write-back never ran: {:?}",
            sim.state.all_calls()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let added = &sim.state.requests(Some(endpoints::ZEP_ADD_MESSAGES))[0];
    assert_eq!(
        added.body.as_ref().unwrap()["messages"][1]["content"],
        "I'd like a cleaning."
    );
    // The items are marked done once the upstream answered.
    while app.store.outbox_backlog().await.unwrap().0 > 0 {
        assert!(Instant::now() < deadline, "write-back items left pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn thousand_concurrent_events_keep_daily_metrics_exact(app: &TestApp) {
    // 500 calls from 10 callers, each call_ended delivered twice, all at once.
    let events: Vec<Value> = (0..500)
        .flat_map(|i| {
            let from = format!("+1555020{:04}", i % 10);
            let e = json!({ "event": "call_ended", "call": ended_call(&format!("call_{i:04}"), &from, 1_000) });
            [e.clone(), e]
        })
        .collect();
    let sends = events.iter().map(|e| retell(app, "/retell/events", e));
    let answers = futures_util::future::join_all(sends).await;
    assert!(
        answers.iter().all(|(s, _)| *s == 200),
        "{:?}",
        answers.iter().find(|(s, _)| *s != 200)
    );
    assert_eq!(
        answers
            .iter()
            .filter(|(_, a)| a["duplicate"] == false)
            .count(),
        500
    );

    let tenant = TenantId::parse("demo-dental").unwrap();
    let days = app
        .store
        .daily_metrics(Some(&tenant), "2000-01-01", "2100-01-01")
        .await
        .unwrap();
    let calls: i64 = days.iter().map(|d| d.calls).sum();
    let duration: i64 = days.iter().map(|d| d.total_duration_ms).sum();
    assert_eq!((calls, duration), (500, 500_000));
    for c in 0..10 {
        let phone = PhoneNumber::parse(&format!("+1555020{c:04}")).unwrap();
        assert_eq!(
            app.store
                .contact(&tenant, &phone)
                .await
                .unwrap()
                .unwrap()
                .total_calls,
            50
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_call_events_leave_daily_metrics_exact_on_sqlite() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    thousand_concurrent_events_keep_daily_metrics_exact(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_call_events_leave_daily_metrics_exact_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (app, _sim) = app(db).await;
    thousand_concurrent_events_keep_daily_metrics_exact(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_first_calls_from_one_caller_make_one_upstream_call_per_source() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let body = json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": "+15550100000" } });
    let answers =
        futures_util::future::join_all((0..500).map(|_| retell(&app, "/retell/inbound", &body)))
            .await;
    assert!(answers.iter().all(|(s, a)| *s == 200
        && a["call_inbound"]["dynamic_variables"]["customer_name"] == "Ana Souza"));
    let calls = sim.state.all_calls();
    assert_eq!(calls[endpoints::GHL_FIND_CONTACT], 1, "{calls:?}");
    assert_eq!(calls[endpoints::ZEP_CONTEXT], 1, "{calls:?}");
    assert_eq!(calls[endpoints::GHL_FREE_SLOTS], 1, "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_events_are_acknowledged_from_the_spill_journal_and_replayed() {
    let Some(mut pg) = PrivatePostgres::start().await else {
        return;
    };
    let url = pg.url();
    let (app, _sim) = spawn_with_simulator(TestDb::External(url), &secrets()).await;
    retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_ended", "call": ended_call("call_before", "+15550100001", 1_000) }),
    )
    .await;

    pg.stop_server();
    let mut spilled = 0;
    for i in 0..20 {
        let e = json!({ "event": "call_ended", "call": ended_call(&format!("call_down_{i}"), "+15550100002", 2_000) });
        let (status, answer) = retell(&app, "/retell/events", &e).await;
        assert_eq!(
            status, 200,
            "acknowledged while the database is down: {answer}"
        );
        if answer["durable_in"] == "spill_journal" {
            spilled += 1;
        }
    }
    assert!(spilled >= 19, "{spilled} of 20 went to the journal");
    let (status, ready) = app.get_json("/ready").await;
    assert_eq!((status, &ready["database"]), (200, &json!("error")));
    // The context is still answered, from cache.
    let inbound = json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": "+15550100000" } });
    let (status, answer) = retell(&app, "/retell/inbound", &inbound).await;
    assert_eq!(
        (
            status,
            &answer["call_inbound"]["dynamic_variables"]["business_name"]
        ),
        (200, &json!("Demo Dental"))
    );

    pg.start_server().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = app
            .store
            .list_calls(&warmline::store::CallFilter {
                limit: 100,
                ..Default::default()
            })
            .await;
        if calls.as_ref().is_ok_and(|c| c.len() == 21) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spilled events not replayed: {:?}",
            calls.map(|c| c.len())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tenant = TenantId::parse("demo-dental").unwrap();
    let ben = app
        .store
        .contact(&tenant, &PhoneNumber::parse("+15550100002").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ben.total_calls, 20,
        "every acknowledged event applied exactly once"
    );
    assert_eq!(app.state.writebehind.spilled(), 0);
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_webhook_input_gets_4xx_json_and_unknown_events_are_acknowledged() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let big = format!(
        r#"{{"event":"call_ended","pad":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    let sig = sign_retell(big.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    let (status, answer) = post(&app, "/retell/events", &big, &[("x-retell-signature", sig)]).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (413, &json!("payload_too_large"))
    );

    let (status, answer) = retell(&app, "/retell/events", &json!({ "event": "call_ended" })).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`call`"),
        "{answer}"
    );
    let (status, answer) = retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_ended", "call": { "from_number": "+1" } }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("call_id"),
        "{answer}"
    );
    let (status, answer) = retell(
        &app,
        "/retell/events",
        &json!({ "event": "transcript_updated", "call": {} }),
    )
    .await;
    assert_eq!((status, &answer["ignored"]), (200, &json!(true)));
    let (status, answer) = vapi(&app, json!({ "type": "speech-update" })).await;
    assert_eq!((status, &answer["ignored"]), (200, &json!(true)));
    let (status, answer) = vapi(&app, json!({ "type": "tool-calls" })).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("toolCallList"),
        "{answer}"
    );
    let (status, _) = post(
        &app,
        "/vapi",
        "[1,2",
        &[("authorization", format!("Bearer {VAPI_SECRET}"))],
    )
    .await;
    assert_eq!(status, 400);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"warmline_webhook_ignored_total{provider="retell",event="transcript_updated"}"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_tenant_with_its_own_webhook_secret_is_verified_with_it() {
    // No global Retell key: only the tenant's own secret can sign.
    let (app, sim) = spawn_with_simulator(TestDb::sqlite(), &[]).await;
    let mut config = warmline::simulator::demo_tenant_config(&sim.url);
    config["webhook_secrets"] = json!({ "retell": { "token": "tenant-own-retell-key" } });
    app.store
        .upsert_tenant(&warmline::store::NewTenant {
            id: TenantId::parse("demo-dental").unwrap(),
            phone_number: PhoneNumber::parse("+15550100000").unwrap(),
            name: "Demo Dental".into(),
            time_zone: "America/New_York".into(),
            config,
            is_demo: false,
        })
        .await
        .unwrap();
    app.state.cache.warm_up().await;
    let body = json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": "+15550100000" } }).to_string();
    let good = sign_retell(body.as_bytes(), b"tenant-own-retell-key", now_ms());
    let (status, answer) = post(
        &app,
        "/retell/inbound",
        &body,
        &[("x-retell-signature", good)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["call_inbound"]["dynamic_variables"]["customer_name"],
        "Ana Souza"
    );
    let other = sign_retell(body.as_bytes(), b"some-other-key", now_ms());
    assert_eq!(
        post(
            &app,
            "/retell/inbound",
            &body,
            &[("x-retell-signature", other)]
        )
        .await
        .0,
        401
    );
    assert_eq!(post(&app, "/retell/inbound", &body, &[]).await.0, 401);
    // Another tenant's number is not covered by this tenant's secret.
    let elsewhere = body.replace("+15550100000", "+15557770000");
    let signed = sign_retell(elsewhere.as_bytes(), b"tenant-own-retell-key", now_ms());
    assert_eq!(
        post(
            &app,
            "/retell/inbound",
            &elsewhere,
            &[("x-retell-signature", signed)]
        )
        .await
        .0,
        401
    );
}
