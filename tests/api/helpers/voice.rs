//! Voice-provider webhooks as the providers send them: the shared secrets,
//! signed Retell and Vapi requests, and Retell call payloads.

use serde_json::{Value, json};
use warmline::simulator::Simulator;
use warmline::webhooks::signature::sign_retell;

use super::{TestApp, TestDb, spawn_with_simulator};

pub const RETELL_KEY: &str = "key_test_retell_webhook";
pub const VAPI_SECRET: &str = "vapi-test-secret";
pub const ELEVEN_SECRET: &str = "wsec_test_elevenlabs";

pub fn secrets() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RETELL_API_KEY", RETELL_KEY),
        ("VAPI_SECRET", VAPI_SECRET),
        ("ELEVENLABS_WEBHOOK_SECRET", ELEVEN_SECRET),
    ]
}

pub async fn app(db: TestDb) -> (TestApp, Simulator) {
    spawn_with_simulator(db, &secrets()).await
}

pub async fn post(
    app: &TestApp,
    path: &str,
    body: &str,
    headers: &[(&str, String)],
) -> (u16, Value) {
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

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub async fn retell(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let sig = sign_retell(body.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
    post(app, path, &body, &[("x-retell-signature", sig)]).await
}

pub async fn vapi(app: &TestApp, message: Value) -> (u16, Value) {
    post(
        app,
        "/vapi",
        &json!({ "message": message }).to_string(),
        &[("authorization", format!("Bearer {VAPI_SECRET}"))],
    )
    .await
}

pub fn retell_call(call_id: &str, from: &str) -> Value {
    json!({
        "call_id": call_id, "agent_id": "agent_1", "call_type": "phone_call", "direction": "inbound",
        "from_number": from, "to_number": "+15550100000", "call_status": "ongoing",
        "start_timestamp": now_ms() - 60_000,
    })
}

/// A weekday a week or two ahead, as YYYY-MM-DD.
pub fn future_weekday() -> String {
    use chrono::Datelike;
    let mut d = chrono::Utc::now().date_naive() + chrono::Duration::days(8);
    while matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
        d = d.succ_opt().unwrap();
    }
    d.to_string()
}
