//! Outbound calls, the business calling its customer, from Vapi and
//! ElevenLabs (Retell's are in `retell.rs`): the tenant comes from the
//! business's number, the context is the customer's, and the call is the
//! tenant's, stored with direction `outbound`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmline::domain::{CallId, Provider};
use warmline::store::CallRecord;
use warmline::webhooks::signature::sign_elevenlabs;

use crate::helpers::voice::{ELEVEN_SECRET, app, post, vapi};
use crate::helpers::{TestApp, TestDb};

/// The stored call, once the write-behind has it.
pub async fn stored(app: &TestApp, provider: Provider, id: &str) -> CallRecord {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = app
            .store
            .call(provider, &CallId::parse(id).unwrap())
            .await
            .unwrap()
        {
            return c;
        }
        assert!(Instant::now() < deadline, "call {id} is stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_outbound_to_ana(call: &CallRecord) {
    assert_eq!(
        call.tenant_id.as_ref().map(|t| t.as_str()),
        Some("demo-dental"),
        "the business's call"
    );
    assert_eq!(call.details.direction.as_deref(), Some("outbound"));
    assert_eq!(
        call.details.caller.as_ref().map(|p| p.as_str()),
        Some("+15550100001"),
        "the customer"
    );
    assert_eq!(
        call.details.called.as_ref().map(|p| p.as_str()),
        Some("+15550100000"),
        "the business"
    );
}

/// A Vapi outbound call: `customer.number` is the callee and
/// `phoneNumber.number` the business's line.
pub fn vapi_outbound(kind: &str, id: &str) -> Value {
    json!({
        "type": kind,
        "call": { "id": id, "type": "outboundPhoneCall",
                  "customer": { "number": "+15550100001" } },
        "phoneNumber": { "number": "+15550100000" },
        "customer": { "number": "+15550100001" },
    })
}

#[tokio::test]
async fn a_vapi_outbound_call_is_answered_with_the_callees_context_and_stored_as_outbound() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let mut started = vapi_outbound("status-update", "vapi-outbound-1");
    started["status"] = json!("in-progress");
    let (status, answer) = vapi(&app, started).await;
    assert_eq!(status, 200, "{answer}");

    let mut tools = vapi_outbound("tool-calls", "vapi-outbound-1");
    tools["toolCallList"] = json!([{ "id": "tc-out-1", "type": "function",
        "function": { "name": "get_customer_context", "arguments": "{}" } }]);
    let (status, answer) = vapi(&app, tools).await;
    assert_eq!(status, 200, "{answer}");
    let result = answer["results"][0]["result"].as_str().unwrap_or_default();
    assert!(
        result.contains("Ana Souza"),
        "the callee's context: {answer}"
    );

    assert_outbound_to_ana(&stored(&app, Provider::Vapi, "vapi-outbound-1").await);
}

#[tokio::test]
async fn an_elevenlabs_outbound_call_is_answered_with_the_callees_context_and_stored_as_outbound() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    // On an outbound call the business is the one calling: `caller_id` is
    // its number, `called_number` the customer's.
    let init = json!({ "caller_id": "+15550100000", "agent_id": "agent_x",
                       "called_number": "+15550100001", "call_sid": "CA-out-1" })
    .to_string();
    let (status, answer) = post(
        &app,
        "/elevenlabs/initiation",
        &init,
        &[("x-warmline-secret", ELEVEN_SECRET.into())],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["dynamic_variables"]["customer_name"], "Ana Souza",
        "the callee's context: {answer}"
    );
    assert_eq!(answer["dynamic_variables"]["business_name"], "Demo Dental");

    let body = json!({
        "type": "post_call_transcription", "event_timestamp": 1_700_000_000,
        "data": {
            "agent_id": "agent_x", "conversation_id": "conv_outbound_1", "status": "done",
            "transcript": [ { "role": "agent", "message": "Hi Ana, a reminder" } ],
            "metadata": { "start_time_unix_secs": 1_763_700_000, "call_duration_secs": 30,
                          "phone_call": { "direction": "outbound", "type": "twilio",
                                          "phone_number_id": "pn_1", "call_sid": "CA-out-1",
                                          "external_number": "+15550100001",
                                          "agent_number": "+15550100000" } },
            "conversation_initiation_client_data": { "dynamic_variables": {
                "system__caller_id": "+15550100000", "system__called_number": "+15550100001" } }
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
    assert_outbound_to_ana(&stored(&app, Provider::ElevenLabs, "conv_outbound_1").await);
}

/// An app with the demo tenant and an admin, its rollups written often.
async fn admin_with_tenant() -> (TestApp, warmline::simulator::Simulator, String) {
    use crate::helpers::admin::{PASSWORD, session};
    let admin = warmline::admin::password::PasswordHash::make(PASSWORD).unwrap();
    let mut vars = crate::helpers::voice::secrets();
    vars.push(("WARMLINE_ADMIN_PASSWORD_HASH", admin.as_phc()));
    let (app, sim) = crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await;
    let cookie = session(&app, PASSWORD).await;
    (app, sim, cookie)
}

#[tokio::test]
async fn outbound_calls_are_listed_and_counted_under_their_tenant_as_outbound() {
    use crate::helpers::admin::get;
    use crate::helpers::voice::{retell, retell_call};
    let (app, _sim, cookie) = admin_with_tenant().await;
    // One call each way, each started and ended.
    let mut outbound = retell_call("call_dir_out", "+15550100000");
    outbound["direction"] = json!("outbound");
    outbound["to_number"] = json!("+15550100001");
    let inbound = retell_call("call_dir_in", "+15550100002");
    for call in [&outbound, &inbound] {
        let mut ended = call.clone();
        ended["end_timestamp"] = json!(crate::helpers::voice::now_ms());
        for (event, call) in [("call_started", call), ("call_ended", &ended)] {
            let (status, answer) = retell(
                &app,
                "/retell/events",
                &json!({ "event": event, "call": call }),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    stored(&app, Provider::Retell, "call_dir_out").await;
    stored(&app, Provider::Retell, "call_dir_in").await;

    let listed = |query: &'static str| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let html = get(app, &format!("/admin/calls?{query}"), Some(&cookie))
                .await
                .text()
                .await
                .unwrap();
            ["call_dir_out", "call_dir_in"]
                .into_iter()
                .filter(|id| html.contains(&format!(r#"href="/admin/calls/{id}""#)))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed("tenant=demo-dental&direction=outbound").await,
        ["call_dir_out"]
    );
    assert_eq!(
        listed("tenant=demo-dental&direction=inbound").await,
        ["call_dir_in"]
    );
    let bad = get(&app, "/admin/calls?direction=sideways", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        bad.contains("`direction`: expected inbound or outbound"),
        "{bad}"
    );
    let detail = get(&app, "/admin/calls/call_dir_out", Some(&cookie))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains(r#"<th scope="row">Direction</th><td>outbound"#),
        "{detail}"
    );

    // Counted on the tenant's day, each call under its direction.
    let tenant = warmline::domain::TenantId::parse("demo-dental").unwrap();
    let days = |direction| {
        let (app, tenant) = (&app, tenant.clone());
        async move {
            app.store
                .daily_metrics_in(Some(&tenant), direction, "2000-01-01", "2100-01-01")
                .await
                .unwrap()
                .iter()
                .map(|d| (d.calls, d.outbound_calls))
                .fold((0, 0), |(c, o), (dc, dout)| (c + dc, o + dout))
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while days(None).await != (2, 1) {
        assert!(Instant::now() < deadline, "both calls counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    use warmline::domain::Direction;
    assert_eq!(days(Some(Direction::Outbound)).await, (1, 1));
    assert_eq!(days(Some(Direction::Inbound)).await, (1, 0));
    let csv = get(
        &app,
        "/admin/metrics.csv?days=7&tenant=demo-dental&direction=outbound",
        Some(&cookie),
    )
    .await
    .text()
    .await
    .unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (calls, out) = (column("calls"), column("outbound_calls"));
    let counted: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|f| f[calls] != "0")
        .map(|f| (f[calls].clone(), f[out].clone()))
        .collect();
    assert_eq!(counted, [("1".to_owned(), "1".to_owned())], "{csv}");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("warmline_call_events_total{")
                && l.contains(r#"provider="retell""#)
                && l.contains(r#"direction="outbound""#)),
        "{metrics}"
    );

    let callee = warmline::domain::PhoneNumber::parse("+15550100001").unwrap();
    let contact = app.store.contact(&tenant, &callee).await.unwrap().unwrap();
    assert_eq!((contact.total_calls, contact.outbound_calls), (1, 1));
}
