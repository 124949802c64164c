//! Webhook edges across providers, through real HTTP: bad input gets a 4xx
//! JSON answer, unknown events are acknowledged (and counted), and a tenant's
//! own webhook secret verifies its calls.

use serde_json::json;
use warmline::domain::{PhoneNumber, TenantId};
use warmline::webhooks::signature::sign_retell;

use crate::helpers::voice::{RETELL_KEY, VAPI_SECRET, app, now_ms, post, retell, vapi};
use crate::helpers::{TestDb, spawn_with_simulator};

#[tokio::test]
async fn bad_webhook_input_gets_4xx_json_and_unknown_events_are_acknowledged() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    // Inbound calls and tools are small: 1 MiB by default.
    let big = format!(
        r#"{{"event":"call_inbound","pad":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    let sig = sign_retell(big.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    let (status, answer) = post(
        &app,
        "/retell/inbound",
        &big,
        &[("x-retell-signature", sig)],
    )
    .await;
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
            config: config.to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
    app.cache.warm_up().await;
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
