//! Trust at the edge, tried as an attacker would: a secret acts only for the
//! tenant whose envelope picked it, every refusal looks the same, and what a
//! sender chooses never becomes a metric label.

use serde_json::{Value, json};
use warmline::domain::{CallId, PhoneNumber, Provider, TenantId};
use warmline::webhooks::REFUSED;
use warmline::webhooks::signature::{sign_elevenlabs, sign_retell};

use crate::helpers::voice::{now_ms, post, retell_call, secrets};
use crate::helpers::{TestApp, TestDb, spawn_with_simulator};

const CLINIC_A: &str = "+15550100000";
const CLINIC_B: &str = "+15557770000";
const A_RETELL: &str = "tenant-a-retell-key";
const A_ELEVEN: &str = "tenant-a-elevenlabs-secret";
const B_RETELL: &str = "tenant-b-retell-key";

/// Replaces a tenant with the demo data, its own secrets and `number`.
async fn tenant(app: &TestApp, sim_url: &str, id: &str, number: &str, secrets: Value) {
    let mut config = warmline::simulator::demo_tenant_config(sim_url);
    config["webhook_secrets"] = secrets;
    app.store
        .upsert_tenant(&warmline::store::NewTenant {
            id: TenantId::parse(id).unwrap(),
            phone_number: PhoneNumber::parse(number).unwrap(),
            name: id.into(),
            time_zone: "America/New_York".into(),
            config: config.to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
}

/// Two tenants, each with its own webhook secrets and no global ones.
async fn two_tenants() -> (TestApp, warmline::simulator::Simulator) {
    let (app, sim) = spawn_with_simulator(TestDb::sqlite(), &[]).await;
    tenant(
        &app,
        &sim.url,
        "demo-dental",
        CLINIC_A,
        json!({ "retell": { "token": A_RETELL }, "elevenlabs": { "token": A_ELEVEN } }),
    )
    .await;
    tenant(
        &app,
        &sim.url,
        "other-clinic",
        CLINIC_B,
        json!({ "retell": { "token": B_RETELL } }),
    )
    .await;
    app.cache.warm_up().await;
    (app, sim)
}

async fn retell_signed(app: &TestApp, path: &str, body: &Value, key: &str) -> (u16, Value) {
    let body = body.to_string();
    let sig = sign_retell(body.as_bytes(), key.as_bytes(), now_ms());
    post(app, path, &body, &[("x-retell-signature", sig)]).await
}

/// Tenant B has a live call, `call_id`, signed with B's own key.
async fn start_call_of_b(app: &TestApp, call_id: &str) {
    let mut call = retell_call(call_id, "+15550100001");
    call["to_number"] = CLINIC_B.into();
    let (status, answer) = retell_signed(
        app,
        "/retell/events",
        &json!({ "event": "call_started", "call": call }),
        B_RETELL,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn one_tenants_secret_cannot_act_on_another_tenants_number() {
    let (app, _sim) = two_tenants().await;

    // A Retell event that names tenant A in one field and B in the one acted
    // on, signed with A's key.
    let mut call = retell_call("call_cross_tenant", "+15550100001");
    call["to_number"] = CLINIC_B.into();
    let event = json!({
        "event": "call_ended",
        "call_inbound": { "from_number": "+15550100001", "to_number": CLINIC_A },
        "call": call,
    });
    let (status, answer) = retell_signed(&app, "/retell/events", &event, A_RETELL).await;
    assert_eq!(status, 401, "{answer}");
    let stored = app
        .store
        .call(
            Provider::Retell,
            &CallId::parse("call_cross_tenant").unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_none(), "nothing stored under tenant B");
    // B's own key does act for B.
    let (status, answer) = retell_signed(&app, "/retell/events", &event, B_RETELL).await;
    assert_eq!(status, 200, "{answer}");

    // A custom function reading B's caller context with A's key.
    let function = json!({
        "name": "get_customer_context",
        "args": {},
        "call": { "call_id": "call_cross_fn", "from_number": "+15550100001", "to_number": CLINIC_B },
        "call_inbound": { "to_number": CLINIC_A },
    });
    let (status, answer) = retell_signed(
        &app,
        "/retell/functions/get_customer_context",
        &function,
        A_RETELL,
    )
    .await;
    assert_eq!(
        status, 401,
        "B's customer context must not be read: {answer}"
    );

    // ElevenLabs post-call: A's number on top, B's agent number in the data.
    let post_call = json!({
        "type": "post_call_transcription",
        "called_number": CLINIC_A,
        "data": {
            "conversation_id": "conv_cross_tenant",
            "metadata": { "phone_call": { "agent_number": CLINIC_B, "external_number": "+15550100001" } },
            "transcript": [{ "role": "user", "message": "hi" }],
        },
    })
    .to_string();
    let sig = sign_elevenlabs(post_call.as_bytes(), A_ELEVEN.as_bytes(), now_ms() / 1000);
    let (status, answer) = post(
        &app,
        "/elevenlabs/post-call",
        &post_call,
        &[("elevenlabs-signature", sig)],
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    let stored = app
        .store
        .call(
            Provider::ElevenLabs,
            &CallId::parse("conv_cross_tenant").unwrap(),
        )
        .await
        .unwrap();
    assert!(stored.is_none(), "no call stored under tenant B");
}

#[tokio::test]
async fn every_authentication_failure_gets_the_same_401() {
    let (app, _sim) = two_tenants().await;
    let inbound = |to: &str| json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": to } });
    let mut answers = Vec::new();
    // A tenant with its own secret, signed wrongly; a number no tenant has
    // (no secret applies at all); no signature; garbage that does not parse.
    answers.push(retell_signed(&app, "/retell/inbound", &inbound(CLINIC_A), "wrong").await);
    answers.push(retell_signed(&app, "/retell/inbound", &inbound("+15559990000"), "wrong").await);
    answers.push(post(&app, "/retell/inbound", &inbound(CLINIC_B).to_string(), &[]).await);
    answers.push(post(&app, "/retell/inbound", "{not json", &[]).await);
    answers.push(
        post(
            &app,
            "/vapi",
            &json!({"message": {"type": "tool-calls", "toolCallList": []}}).to_string(),
            &[],
        )
        .await,
    );
    for (status, answer) in &answers {
        assert_eq!(*status, 401, "{answer}");
        assert_eq!(answer["error"]["message"], REFUSED, "{answer}");
    }
}

#[tokio::test]
async fn invented_event_names_never_become_metric_labels() {
    let (app, _sim) = spawn_with_simulator(TestDb::sqlite(), &secrets()).await;
    let metrics = || async { app.get("/metrics").await.text().await.unwrap() };
    // The recorder is shared by every test in this process: compare counts.
    let others = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"warmline_webhook_ignored_total{provider="retell",event="other"} "#,
                )
            })
            .map_or(0.0, |n| n.parse().unwrap())
    };
    let before = others(&metrics().await);
    let key = secrets()[0].1;
    for i in 0..20 {
        let name = format!("invented_event_{i}");
        let (status, _) = retell_signed(
            &app,
            "/retell/events",
            &json!({ "event": name, "call": {} }),
            key,
        )
        .await;
        assert_eq!(status, 200);
    }
    for name in ["x".repeat(100_000), "+14155550123".into()] {
        let (status, _) = retell_signed(
            &app,
            "/retell/events",
            &json!({ "event": name, "call": {} }),
            key,
        )
        .await;
        assert_eq!(status, 200);
    }
    let after = metrics().await;
    assert!(
        !after.contains("invented_event"),
        "no label per invented name"
    );
    assert!(!after.contains("xxxxxxxxxx"), "no huge label");
    assert!(!after.contains("4155550123"), "no caller data in a label");
    assert!(others(&after) >= before + 22.0, "{after}");
}

#[tokio::test]
async fn unsigned_requests_are_served_only_for_the_demo_number_from_this_machine_without_a_proxy() {
    let demo = crate::helpers::spawn_app_with(TestDb::sqlite(), &[("WARMLINE_DEMO", "on")]).await;
    assert!(demo.demo_running);
    let inbound = |to: &str| {
        json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": to } })
            .to_string()
    };
    let (status, answer) = post(&demo, "/retell/inbound", &inbound(CLINIC_A), &[]).await;
    assert_eq!(
        status, 200,
        "the demo number, unsigned, from this machine: {answer}"
    );

    // A real tenant imported while the demo runs is never served unsigned.
    demo.store
        .upsert_tenant(&warmline::store::NewTenant {
            id: TenantId::parse("real-clinic").unwrap(),
            phone_number: PhoneNumber::parse(CLINIC_B).unwrap(),
            name: "Real Clinic".into(),
            time_zone: "UTC".into(),
            config: json!({}).to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
    demo.cache.warm_up().await;
    let (status, _) = post(&demo, "/retell/inbound", &inbound(CLINIC_B), &[]).await;
    assert_eq!(status, 401, "a real tenant's number");
    let (status, _) = post(&demo, "/retell/inbound", &inbound("+15559990000"), &[]).await;
    assert_eq!(status, 401, "a number no tenant has");

    // Behind a tunnel or proxy every request looks local.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let (status, _) = post(
            &demo,
            "/retell/inbound",
            &inbound(CLINIC_A),
            &[(header, "203.0.113.7".to_owned())],
        )
        .await;
        assert_eq!(status, 401, "{header}");
    }

    // Listening beyond loopback: never unsigned.
    let exposed = crate::helpers::spawn_app_with(
        TestDb::sqlite(),
        &[("WARMLINE_DEMO", "on"), ("WARMLINE_ADDR", "0.0.0.0:0")],
    )
    .await;
    let (status, _) = post(&exposed, "/retell/inbound", &inbound(CLINIC_A), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_tool_call_signed_for_one_tenant_never_reaches_another_tenants_call() {
    let (app, _sim) = two_tenants().await;
    // Tenant B has a live call.
    start_call_of_b(&app, "call_of_b").await;

    // A's key, A's number, B's call id: the session and the cascade stay
    // within A.
    let function = json!({
        "name": "list_services",
        "args": {},
        "call": { "call_id": "call_of_b", "from_number": "+15550100001", "to_number": CLINIC_A },
    });
    let (status, answer) =
        retell_signed(&app, "/retell/functions/list_services", &function, A_RETELL).await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["result"].as_str().unwrap();
    assert!(text.starts_with("demo-dental offers"), "{text}");
    assert!(!text.contains("other-clinic"), "{text}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"warmline_fallback_activations_total{kind="call_of_another_tenant"}"#),
        "{metrics}"
    );

    // B's own key still reaches B's call.
    let mut own = function.clone();
    own["call"]["to_number"] = CLINIC_B.into();
    let (_, answer) = retell_signed(&app, "/retell/functions/list_services", &own, B_RETELL).await;
    assert!(
        answer["result"]
            .as_str()
            .unwrap()
            .starts_with("other-clinic offers"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_unsigned_demo_request_acts_for_the_demo_tenant_only() {
    let (app, sim) = spawn_with_simulator(TestDb::sqlite(), &[("WARMLINE_DEMO", "on")]).await;
    assert!(app.demo_running);
    tenant(
        &app,
        &sim.url,
        "other-clinic",
        CLINIC_B,
        json!({ "retell": { "token": B_RETELL } }),
    )
    .await;
    app.cache.warm_up().await;
    start_call_of_b(&app, "call_of_b_demo").await;

    // Unsigned, from this machine, for the demo number — naming B's call.
    let function = json!({
        "name": "list_services",
        "args": {},
        "call": { "call_id": "call_of_b_demo", "from_number": "+15550100001", "to_number": CLINIC_A },
    });
    let (status, answer) = post(
        &app,
        "/retell/functions/list_services",
        &function.to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["result"].as_str().unwrap();
    assert!(!text.contains("other-clinic"), "B's call stays B's: {text}");
    assert!(text.starts_with("Demo Dental offers"), "{text}");
}
