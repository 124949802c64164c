//! Vapi webhooks end to end, through real HTTP against the upstream
//! simulator: assistant requests under each auth scheme, tool calls in every
//! argument shape, and end-of-call reports stored once.

use serde_json::json;
use warmline::domain::{CallId, PhoneNumber, Provider, TenantId};
use warmline::webhooks::signature::sign_vapi;

use crate::helpers::TestDb;
use crate::helpers::voice::{VAPI_SECRET, app, future_weekday, now_ms, post, vapi};

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
    // One instant: the signature covers the timestamp the header carries.
    let now = now_ms();
    let ts = now.to_string();
    let hmac = sign_vapi(body.as_bytes(), VAPI_SECRET.as_bytes(), now);
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
    let (status, answer) = vapi(&app, unknown).await;
    assert_eq!(status, 200);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("not set up")),
        "an unknown number gets Vapi's `error`, never `{{}}`: {answer}"
    );
}

#[tokio::test]
async fn vapi_is_always_answered_with_an_assistant_or_an_error_never_overrides_alone() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let request = || {
        json!({
            "type": "assistant-request", "call": { "id": "vapi-assistant" },
            "phoneNumber": { "number": "+15550100000" }, "customer": { "number": "+15550100001" }
        })
    };
    // The demo tenant names an inline assistant.
    let (status, answer) = vapi(&app, request()).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["assistant"]["name"], "Demo Dental receptionist",
        "{answer}"
    );
    assert_eq!(
        answer["assistantOverrides"]["variableValues"]["customer_name"],
        "Ana Souza"
    );

    let set = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut config = warmline::simulator::demo_tenant_config(&sim.url);
        edit(&mut config);
        warmline::store::NewTenant {
            id: TenantId::parse("demo-dental").unwrap(),
            phone_number: PhoneNumber::parse("+15550100000").unwrap(),
            name: "Demo Dental".into(),
            time_zone: "America/New_York".into(),
            config: config.to_string(),
            is_demo: false,
        }
    };
    // A saved assistant, by id.
    let with_id = set(&|c| {
        c.as_object_mut().unwrap().remove("vapi_assistant");
        c["vapi_assistant_id"] = "asst_123".into();
    });
    app.store.upsert_tenant(&with_id).await.unwrap();
    app.cache.warm_up().await;
    let (_, answer) = vapi(&app, request()).await;
    assert_eq!(answer["assistantId"], "asst_123", "{answer}");
    assert!(answer["assistantOverrides"]["variableValues"].is_object());

    // Neither: Vapi's `error`, counted as a fallback.
    let neither = set(&|c| {
        c.as_object_mut().unwrap().remove("vapi_assistant");
    });
    app.store.upsert_tenant(&neither).await.unwrap();
    app.cache.warm_up().await;
    let (status, answer) = vapi(&app, request()).await;
    assert_eq!(status, 200);
    assert!(answer["error"].is_string(), "{answer}");
    assert!(answer.get("assistantOverrides").is_none(), "{answer}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"warmline_fallback_activations_total{kind="vapi_no_assistant"}"#),
        "{metrics}"
    );
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
    assert_eq!(call.details.duration_ms, Some(150_000));
    assert_eq!(call.details.summary.as_deref(), Some("Wanted a booking"));
    assert_eq!(call.details.successful, Some(true));
    assert_eq!(
        call.details.disconnection_reason.as_deref(),
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
