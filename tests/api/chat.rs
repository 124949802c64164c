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
