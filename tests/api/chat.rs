//! Retell chat (SMS): `chat_inbound` at the number's inbound webhook,
//! answered in Retell's shape and logged like a call with channel `chat`.

use std::time::{Duration, Instant};

use serde_json::json;
use warmline::domain::{Channel, Direction, TenantId};
use warmline::store::CallFilter;
use warmline::webhooks::signature::sign_retell;

use crate::helpers::TestDb;
use crate::helpers::voice::{RETELL_KEY, app, now_ms, post};

#[tokio::test]
async fn an_sms_chat_inbound_is_answered_in_retells_shape_and_logged_as_a_chat() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let body = json!({ "event": "chat_inbound", "chat_inbound": {
        "agent_id": "agent_sms", "agent_version": 1,
        "from_number": "+15550100001", "to_number": "+15550100000" } })
    .to_string();
    let signature = sign_retell(body.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    // Retell retries with the same bytes: the same chat, logged once.
    for _ in 0..2 {
        let (status, answer) = post(
            &app,
            "/retell/inbound",
            &body,
            &[("x-retell-signature", signature.clone())],
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let vars = &answer["chat_inbound"]["dynamic_variables"];
        assert_eq!(vars["customer_name"], "Ana Souza", "{answer}");
        assert_eq!(vars["business_name"], "Demo Dental");
        assert!(
            vars.as_object().unwrap().values().all(|v| v.is_string()),
            "Retell's variables are strings: {answer}"
        );
        assert_eq!(
            answer["chat_inbound"]["metadata"]["tenant_id"],
            "demo-dental"
        );
    }
    let filter = CallFilter {
        tenant_id: Some(TenantId::parse("demo-dental").unwrap()),
        channel: Some(Channel::Chat),
        limit: 10,
        ..CallFilter::default()
    };
    let chats = app.store.list_calls(&filter).await.unwrap();
    assert_eq!(chats.len(), 1, "{chats:?}");
    let chat = &chats[0];
    assert_eq!(chat.details.channel, Some(Channel::Chat));
    assert_eq!(
        Direction::of(chat.details.direction.as_deref()),
        Direction::Inbound
    );
    assert_eq!(
        chat.details.caller.as_ref().map(|p| p.as_str()),
        Some("+15550100001")
    );
    let voice = CallFilter {
        channel: Some(Channel::Voice),
        ..filter
    };
    assert!(app.store.list_calls(&voice).await.unwrap().is_empty());

    // A chat to a number no tenant has: Retell's agent takes it as it is.
    let unknown = json!({ "event": "chat_inbound", "chat_inbound": {
        "from_number": "+15550100001", "to_number": "+15557770000", "chat_id": "chat_unknown_1" } })
    .to_string();
    let signature = sign_retell(unknown.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    let (status, answer) = post(
        &app,
        "/retell/inbound",
        &unknown,
        &[("x-retell-signature", signature)],
    )
    .await;
    assert_eq!((status, answer), (200, json!({ "chat_inbound": {} })));

    // Unsigned: refused like a call.
    let (status, _) = post(&app, "/retell/inbound", &body, &[]).await;
    assert_eq!(status, 401);
    // A call's inbound is still a call's.
    let call = json!({ "event": "call_inbound", "call_inbound": {
        "from_number": "+15550100001", "to_number": "+15550100000",
        "agent_id": "chat_inbound" } })
    .to_string();
    let signature = sign_retell(call.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    let (status, answer) = post(
        &app,
        "/retell/inbound",
        &call,
        &[("x-retell-signature", signature)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["call_inbound"]["dynamic_variables"]["customer_name"],
        "Ana Souza"
    );

    // The admin's log shows it as a chat.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let m = app.get("/metrics").await.text().await.unwrap();
        if m.contains(r#"event="chat_inbound""#) || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("warmline_webhook_requests_total{")
                && l.contains(r#"event="chat_inbound""#)),
        "{metrics}"
    );
}

/// The chat's own events add its transcript, end and analysis to the log
/// entry its `chat_inbound` made (the id echoed in the metadata), and its
/// messages reach the memory service; a chat is no call in the counts.
#[tokio::test]
async fn a_chats_events_complete_its_log_entry_and_its_messages_reach_the_memory_service() {
    use crate::helpers::voice::retell;
    let (app, sim) = app(TestDb::sqlite()).await;
    let inbound = json!({ "event": "chat_inbound", "chat_inbound": {
        "from_number": "+15550100002", "to_number": "+15550100000" } });
    let (status, answer) = retell(&app, "/retell/inbound", &inbound).await;
    assert_eq!(status, 200, "{answer}");
    let logged_as = answer["chat_inbound"]["metadata"]["warmline_chat_id"]
        .as_str()
        .expect("the log entry is named")
        .to_owned();
    let written = sim
        .state
        .calls(warmline::simulator::endpoints::ZEP_ADD_MESSAGES);

    let start = now_ms() - 60_000;
    let chat = json!({
        "chat_id": "retell_chat_9", "agent_id": "agent_sms", "chat_status": "ended",
        "start_timestamp": start, "end_timestamp": start + 30_000,
        "transcript": "User: can I book a cleaning?\nAgent: Monday at 9:00 is free.",
        "message_with_tool_calls": [
            { "message_id": "m1", "role": "user", "content": "can I book a cleaning?", "created_timestamp": start },
            { "message_id": "m2", "role": "tool_call_invocation", "name": "check_availability",
              "arguments": "{}", "tool_call_id": "t1" },
            { "message_id": "m3", "role": "agent", "content": "Monday at 9:00 is free.", "created_timestamp": start + 1 }
        ],
        "metadata": answer["chat_inbound"]["metadata"],
    });
    let (status, answer) = retell(
        &app,
        "/retell/events",
        &json!({ "event": "chat_ended", "chat": chat }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let mut analyzed = chat.clone();
    analyzed["chat_analysis"] = json!({ "chat_summary": "Asked for a cleaning",
        "chat_successful": true, "user_sentiment": "Positive" });
    let (status, answer) = retell(
        &app,
        "/retell/events",
        &json!({ "event": "chat_analyzed", "chat": analyzed }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let record = app
        .store
        .call(
            warmline::domain::Provider::Retell,
            &warmline::domain::CallId::parse(&logged_as).unwrap(),
        )
        .await
        .unwrap()
        .expect("one log entry");
    assert_eq!(record.details.channel, Some(Channel::Chat));
    assert_eq!(
        record.tenant_id.as_ref().map(|t| t.as_str()),
        Some("demo-dental")
    );
    assert_eq!(record.status.as_str(), "analyzed");
    assert_eq!(record.details.duration_ms, Some(30_000));
    assert_eq!(
        record.details.summary.as_deref(),
        Some("Asked for a cleaning")
    );
    assert!(
        record
            .details
            .transcript
            .as_deref()
            .is_some_and(|t| t.contains("Monday at 9:00")),
        "{record:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while sim
        .state
        .calls(warmline::simulator::endpoints::ZEP_ADD_MESSAGES)
        <= written
    {
        assert!(
            Instant::now() < deadline,
            "the chat reaches the memory service"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ben = app
        .store
        .contact(
            &TenantId::parse("demo-dental").unwrap(),
            &warmline::domain::PhoneNumber::parse("+15550100002").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ben.map_or(0, |c| c.total_calls), 0, "a chat is not a call");
}
