//! Retell webhooks through real HTTP, against the upstream simulator.

use std::time::Duration;

use serde_json::{Value, json};
use warmline::simulator::{Knob, Simulator, endpoints};
use warmline::webhooks::signature::sign_retell;

use crate::helpers::{TestApp, TestDb, spawn_app_with};

const RETELL_KEY: &str = "key_test_retell_webhook";

async fn app_with_simulator(extra: &[(&str, &str)]) -> (TestApp, Simulator) {
    let mut vars = vec![("RETELL_API_KEY", RETELL_KEY)];
    vars.extend_from_slice(extra);
    crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await
}

fn inbound_body(from: &str, to: &str) -> String {
    json!({ "event": "call_inbound", "call_inbound": { "from_number": from, "to_number": to, "agent_id": "agent_1" } }).to_string()
}

async fn post_signed(
    app: &TestApp,
    path: &str,
    body: &str,
    signature: Option<String>,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("{}{}", app.address, path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("x-retell-signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn sign(body: &str) -> String {
    sign_retell(
        body.as_bytes(),
        RETELL_KEY.as_bytes(),
        chrono::Utc::now().timestamp_millis(),
    )
}

#[tokio::test]
async fn a_signed_inbound_call_is_answered_with_dynamic_variables_and_the_second_from_l1() {
    let (app, sim) = app_with_simulator(&[]).await;
    let body = inbound_body("+1 555 010 0001", "+15550100000");
    let (status, answer) = post_signed(&app, "/retell/inbound", &body, Some(sign(&body))).await;
    assert_eq!(status, 200, "{answer}");
    let vars = answer["call_inbound"]["dynamic_variables"]
        .as_object()
        .unwrap();
    assert_eq!(vars["customer_name"], "Ana Souza");
    assert_eq!(vars["is_returning_caller"], "true");
    assert!(
        vars.values().all(Value::is_string),
        "Retell dynamic variables are strings: {answer}"
    );
    let first = sim.state.all_calls();
    assert_eq!(first[endpoints::GHL_FIND_CONTACT], 1);
    assert_eq!(first[endpoints::ZEP_CONTEXT], 1);
    assert_eq!(first[endpoints::GHL_FREE_SLOTS], 1);

    let (status, again) = post_signed(&app, "/retell/inbound", &body, Some(sign(&body))).await;
    assert_eq!(status, 200);
    assert_eq!(again, answer);
    assert_eq!(
        sim.state.all_calls(),
        first,
        "the second call made no upstream call"
    );
}

#[tokio::test]
async fn a_wrong_stale_or_missing_retell_signature_is_a_401() {
    let (app, sim) = app_with_simulator(&[]).await;
    let body = inbound_body("+15550100001", "+15550100000");
    let stale = sign_retell(
        body.as_bytes(),
        RETELL_KEY.as_bytes(),
        chrono::Utc::now().timestamp_millis() - 10 * 60 * 1000,
    );
    let other_key = sign_retell(
        body.as_bytes(),
        b"another-key",
        chrono::Utc::now().timestamp_millis(),
    );
    for sig in [
        None,
        Some(stale),
        Some(other_key),
        Some("v=1,d=abc".to_owned()),
    ] {
        let (status, answer) = post_signed(&app, "/retell/inbound", &body, sig).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    // The body must be the signed bytes exactly.
    let (status, _) = post_signed(
        &app,
        "/retell/inbound",
        &body.replace("0001", "0002"),
        Some(sign(&body)),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        sim.state.all_calls().is_empty(),
        "nothing unsigned reached an upstream"
    );
}

#[tokio::test]
async fn without_a_secret_and_outside_the_demo_unsigned_webhooks_are_refused() {
    let app = spawn_app_with(TestDb::sqlite(), &[]).await;
    let body = inbound_body("+15550100001", "+15550100000");
    let (status, answer) = post_signed(&app, "/retell/inbound", &body, None).await;
    assert_eq!(status, 401);
    // Why (RETELL_API_KEY is not set) goes to the log; the caller gets the
    // one answer every refusal gets.
    assert_eq!(
        answer["error"]["message"],
        warmline::webhooks::REFUSED,
        "{answer}"
    );
}

#[tokio::test]
async fn an_unknown_called_number_gets_an_empty_override_and_counts_a_fallback() {
    let (app, _sim) = app_with_simulator(&[]).await;
    let body = inbound_body("+15550100001", "+15557770000");
    let (status, answer) = post_signed(&app, "/retell/inbound", &body, Some(sign(&body))).await;
    assert_eq!((status, answer), (200, json!({ "call_inbound": {} })));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with(r#"warmline_fallback_activations_total{kind="unknown_called_number"}"#)),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_inbound_payloads_get_a_400_naming_the_field() {
    let (app, _sim) = app_with_simulator(&[]).await;
    let cases = [
        ("{not json", "invalid call_inbound payload"),
        (r#"{"event":"call_inbound"}"#, "missing `call_inbound`"),
        (
            r#"{"event":"call_started","call_inbound":{"from_number":"+15550100001","to_number":"+15550100000"}}"#,
            "`event`",
        ),
        (
            r#"{"event":"call_inbound","call_inbound":{"from_number":"+15550100001"}}"#,
            "to_number",
        ),
        (
            r#"{"event":"call_inbound","call_inbound":{"from_number":"+15550100001","to_number":"nope"}}"#,
            "`call_inbound.to_number`",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = post_signed(&app, "/retell/inbound", body, Some(sign(body))).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{body} → {answer}"
        );
    }
}

#[tokio::test]
async fn with_the_memory_upstream_down_the_call_is_answered_within_the_deadline_without_memory() {
    let (app, sim) = app_with_simulator(&[("WARMLINE_INBOUND_DEADLINE_MS", "800")]).await;
    sim.state
        .set_knob(
            endpoints::ZEP_CONTEXT,
            Knob {
                down: true,
                ..Knob::default()
            },
        )
        .unwrap();
    let body = inbound_body("+15550100001", "+15550100000");
    let started = std::time::Instant::now();
    let (status, answer) = post_signed(&app, "/retell/inbound", &body, Some(sign(&body))).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered well inside Retell's 10 s"
    );
    let call = &answer["call_inbound"];
    assert_eq!(
        call["dynamic_variables"]["customer_name"], "Ana Souza",
        "the rest of the context is there"
    );
    assert_eq!(call["dynamic_variables"]["memory_summary"], "");
    assert_eq!(call["metadata"]["context_missing"], json!(["memory"]));

    // A slow memory upstream: the answer does not wait for it.
    sim.state
        .set_knob(endpoints::ZEP_CONTEXT, Knob::latency(3_000))
        .unwrap();
    let body = inbound_body("+15550100002", "+15550100000");
    let (status, answer) = post_signed(&app, "/retell/inbound", &body, Some(sign(&body))).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["call_inbound"]["dynamic_variables"]["customer_name"],
        "Ben Carter"
    );
    assert_eq!(
        answer["call_inbound"]["metadata"]["context_missing"],
        json!(["memory"])
    );
}

/// On an outbound call Retell's `from_number` is the business and
/// `to_number` the customer: the tenant comes from the business's number,
/// the context is the customer's, and the call is the tenant's.
#[tokio::test]
async fn an_outbound_call_is_the_business_calling_its_customer() {
    let (app, _sim) = crate::helpers::voice::app(TestDb::sqlite()).await;
    let mut call = crate::helpers::voice::retell_call("call_outbound", "+15550100000");
    call["from_number"] = json!("+15550100000");
    call["to_number"] = json!("+15550100001");
    call["direction"] = json!("outbound");
    let (status, answer) = crate::helpers::voice::retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_started", "call": call }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let function = json!({
        "name": "get_customer_context",
        "args": {},
        "call": { "call_id": "call_outbound", "from_number": "+15550100000",
                  "to_number": "+15550100001", "direction": "outbound" },
    });
    // The session is built beside the acknowledgement: wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = crate::helpers::voice::retell(
            &app,
            "/retell/functions/get_customer_context",
            &function,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        if answer["result"].as_str().unwrap().contains("Ana Souza") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the callee's context: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = loop {
        if let Some(c) = app
            .store
            .call(
                warmline::domain::Provider::Retell,
                &warmline::domain::CallId::parse("call_outbound").unwrap(),
            )
            .await
            .unwrap()
        {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "the call is stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        stored.tenant_id.as_ref().map(|t| t.as_str()),
        Some("demo-dental"),
        "the business's call"
    );
    assert_eq!(stored.details.direction.as_deref(), Some("outbound"));
    assert_eq!(
        stored.details.caller.as_ref().map(|p| p.as_str()),
        Some("+15550100001"),
        "the customer"
    );
}
