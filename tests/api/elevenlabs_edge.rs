//! ElevenLabs webhooks at their edges, through real HTTP: numbers out of any
//! sensible range are a 400 naming the field (never echoing the value) and
//! store nothing; an unknown called number still gets every dynamic variable;
//! web conversations (no phone call) and withheld numbers are tolerated; and
//! signature timestamps at the extremes are refused, never a panic.

use serde_json::{Value, json};
use warmline::domain::{CallId, Provider, TenantId};
use warmline::webhooks::signature::{sign_elevenlabs, sign_retell};

use crate::helpers::voice::{ELEVEN_SECRET, RETELL_KEY, app, post};
use crate::helpers::{TestApp, TestDb};

const START: &str = "data.metadata.start_time_unix_secs";
const DURATION: &str = "data.metadata.call_duration_secs";

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A post-call transcription for the demo tenant with `metadata` as given.
fn transcription(id: &str, metadata: Value) -> Value {
    json!({
        "type": "post_call_transcription", "event_timestamp": now_s(),
        "data": {
            "agent_id": "agent_x", "conversation_id": id, "status": "done",
            "transcript": [ { "role": "agent", "message": "Hi!" }, { "role": "user", "message": "Hello" } ],
            "metadata": metadata,
            "conversation_initiation_client_data": {
                "dynamic_variables": { "system__called_number": "+15550100000" }
            }
        }
    })
}

fn phone_call() -> Value {
    json!({ "external_number": "+15550100003", "agent_number": "+15550100000" })
}

async fn post_call_raw(app: &TestApp, body: &str) -> (u16, Value) {
    let sig = sign_elevenlabs(body.as_bytes(), ELEVEN_SECRET.as_bytes(), now_s());
    post(
        app,
        "/elevenlabs/post-call",
        body,
        &[("elevenlabs-signature", sig)],
    )
    .await
}

async fn post_call(app: &TestApp, body: &Value) -> (u16, Value) {
    post_call_raw(app, &body.to_string()).await
}

async fn stored(app: &TestApp, id: &str) -> Option<warmline::store::CallRecord> {
    app.store
        .call(Provider::ElevenLabs, &CallId::parse(id).unwrap())
        .await
        .unwrap()
}

/// Every out-of-range number is refused with a 400 naming its field and not
/// echoing the value; nothing is stored and no epoch-day row appears; the
/// tenant-day keeps counting afterwards.
async fn out_of_range_numbers_are_refused(app: &TestApp) {
    let future = (now_s() + 2 * 86_400).to_string();
    // (field, raw JSON of the value)
    let cases: Vec<(&str, String)> = vec![
        (START, i64::MAX.to_string()),
        (START, i64::MIN.to_string()),
        (START, u64::MAX.to_string()),
        (START, "946684799".into()), // a second before 2000-01-01
        (START, "-1".into()),
        (START, "0".into()),
        (START, future),
        (START, "1e300".into()),
        (START, "-1e300".into()),
        (START, "\"1763700000\"".into()),
        (DURATION, "1e300".into()),
        (DURATION, "-1e300".into()),
        (DURATION, i64::MAX.to_string()),
        (DURATION, i64::MIN.to_string()),
        (DURATION, u64::MAX.to_string()),
        (DURATION, "-1".into()),
        (DURATION, "-0.5".into()),
        (DURATION, "86400.5".into()),
        (DURATION, "86401".into()),
        (DURATION, "\"42\"".into()),
        (DURATION, "true".into()),
    ];
    let start = now_s() - 3_600;
    for (i, (field, raw)) in cases.iter().enumerate() {
        let id = format!("conv_range_{i}");
        let (start_raw, duration_raw) = if *field == START {
            (raw.clone(), "42".to_owned())
        } else {
            (start.to_string(), raw.clone())
        };
        // Built as text so the exact number reaches warmline unchanged.
        let metadata = format!(
            r#"{{"start_time_unix_secs":{start_raw},"call_duration_secs":{duration_raw},"phone_call":{}}}"#,
            phone_call()
        );
        let body = transcription(&id, json!("__METADATA__"))
            .to_string()
            .replace(r#""__METADATA__""#, &metadata);
        let (status, answer) = post_call_raw(app, &body).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 400, "{field} = {raw}: {answer}");
        assert!(
            message.contains(&format!("`{field}`")),
            "{field} = {raw}: {message}"
        );
        let bare = raw.trim_matches('"');
        assert!(
            !answer.to_string().contains(bare),
            "the answer echoes the value {raw}: {answer}"
        );
        assert!(
            stored(app, &id).await.is_none(),
            "{field} = {raw} was stored"
        );
    }
    let tenant = TenantId::parse("demo-dental").unwrap();
    let days = app
        .store
        .daily_metrics(None, "0000-01-01", "9999-12-31")
        .await
        .unwrap();
    assert!(days.is_empty(), "refused calls were counted: {days:?}");

    // The edges themselves are accepted, and the tenant-day counts them.
    let (status, answer) = post_call(
        app,
        &transcription(
            "conv_range_max",
            json!({ "start_time_unix_secs": start, "call_duration_secs": 86_400, "phone_call": phone_call() }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_call(
        app,
        &transcription(
            "conv_range_fraction",
            json!({ "start_time_unix_secs": start, "call_duration_secs": 42.5, "phone_call": phone_call() }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post_call(
        app,
        &transcription(
            "conv_range_zero",
            json!({ "start_time_unix_secs": 946_684_800, "call_duration_secs": 0, "phone_call": phone_call() }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let call = stored(app, "conv_range_fraction").await.unwrap();
    assert_eq!(
        (
            call.details.started_at_ms,
            call.details.duration_ms,
            call.details.ended_at_ms
        ),
        (
            Some(start * 1000),
            Some(42_500),
            Some(start * 1000 + 42_500)
        )
    );
    let days = app
        .store
        .daily_metrics(Some(&tenant), "0000-01-01", "9999-12-31")
        .await
        .unwrap();
    assert!(
        days.iter()
            .all(|d| !d.day.starts_with("1969") && !d.day.starts_with("1970")),
        "{days:?}"
    );
    let total: (i64, i64) = days
        .iter()
        .fold((0, 0), |(c, ms), d| (c + d.calls, ms + d.total_duration_ms));
    assert_eq!(total, (3, 86_400_000 + 42_500), "{days:?}");
}

#[tokio::test]
async fn elevenlabs_numbers_out_of_range_are_a_400_naming_the_field_on_sqlite() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    out_of_range_numbers_are_refused(&app).await;
}

#[tokio::test]
async fn elevenlabs_numbers_out_of_range_are_a_400_naming_the_field_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (app, _sim) = app(db).await;
    out_of_range_numbers_are_refused(&app).await;
}

async fn initiation(app: &TestApp, called: &str, caller: Value) -> (u16, Value) {
    let body = json!({ "caller_id": caller, "agent_id": "agent_x", "called_number": called, "call_sid": "CA1" });
    post(
        app,
        "/elevenlabs/initiation",
        &body.to_string(),
        &[("x-warmline-secret", ELEVEN_SECRET.into())],
    )
    .await
}

#[tokio::test]
async fn an_unknown_called_number_still_gets_every_dynamic_variable_with_neutral_values() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let (status, known) = initiation(&app, "+15550100000", json!("+15550100001")).await;
    assert_eq!(status, 200, "{known}");
    let known = known["dynamic_variables"].as_object().unwrap().clone();
    assert!(known.len() >= 7, "{known:?}");

    let (status, unknown) = initiation(&app, "+15559990000", json!("+15550100001")).await;
    assert_eq!(status, 200, "{unknown}");
    assert_eq!(unknown["type"], "conversation_initiation_client_data");
    let unknown = unknown["dynamic_variables"].as_object().unwrap();
    let names = |m: &serde_json::Map<String, Value>| {
        let mut k: Vec<String> = m.keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        names(unknown),
        names(&known),
        "every variable, every answer"
    );
    for (name, value) in unknown {
        let neutral = match &known[name] {
            Value::String(_) => json!(""),
            Value::Bool(_) => json!(false),
            Value::Number(_) => json!(0),
            other => panic!("{name} has an unexpected type: {other}"),
        };
        assert_eq!(
            value, &neutral,
            "{name}: typed like the known answer, neutral"
        );
    }
    assert_eq!(unknown["business_name"], "");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"warmline_fallback_activations_total{kind="unknown_called_number"}"#),
        "counted"
    );
}

#[tokio::test]
async fn web_conversations_and_withheld_numbers_are_tolerated() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    // A withheld caller at initiation: the business's context, no caller.
    let (status, answer) = initiation(&app, "+15550100000", Value::Null).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dynamic_variables"]["business_name"], "Demo Dental");
    assert_eq!(answer["dynamic_variables"]["is_returning_caller"], false);

    let start = now_s() - 600;
    let metadatas = [
        (
            "conv_web_null",
            json!({ "start_time_unix_secs": start, "call_duration_secs": 5, "phone_call": null }),
        ),
        (
            "conv_web_absent",
            json!({ "start_time_unix_secs": start, "call_duration_secs": 5 }),
        ),
        (
            "conv_web_nulls",
            json!({ "start_time_unix_secs": start, "call_duration_secs": null,
                    "phone_call": { "external_number": null, "agent_number": null, "caller_id": null } }),
        ),
        ("conv_web_no_metadata", Value::Null),
    ];
    for (id, metadata) in metadatas {
        let mut body = transcription(id, metadata);
        body["data"]["conversation_initiation_client_data"]["dynamic_variables"]["system__caller_id"] =
            Value::Null;
        let (status, answer) = post_call(&app, &body).await;
        assert_eq!(status, 200, "{id}: {answer}");
        let call = stored(&app, id).await.expect("stored");
        assert_eq!(call.details.caller, None, "{id}");
    }
    // No client data at all, and no phone call: unknown tenant, still stored.
    let mut body = transcription("conv_web_bare", json!({ "phone_call": null }));
    body["data"]
        .as_object_mut()
        .unwrap()
        .remove("conversation_initiation_client_data");
    let (status, answer) = post_call(&app, &body).await;
    assert_eq!(status, 200, "{answer}");
    let call = stored(&app, "conv_web_bare").await.expect("stored");
    assert_eq!((call.tenant_id, call.details.called), (None, None));
    let call = stored(&app, "conv_web_null").await.unwrap();
    assert_eq!(
        call.tenant_id.as_ref().map(TenantId::as_str),
        Some("demo-dental"),
        "the tenant from the client data"
    );
}

#[tokio::test]
async fn signature_timestamps_at_the_extremes_are_refused_without_a_panic() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let body = transcription(
        "conv_sig",
        json!({ "start_time_unix_secs": now_s() - 60, "call_duration_secs": 5, "phone_call": phone_call() }),
    )
    .to_string();
    let ten_years = now_s() + 10 * 365 * 86_400;
    for t in [i64::MAX, i64::MIN, i64::MIN + 1, ten_years, now_s() + 3_600] {
        let sig = sign_elevenlabs(body.as_bytes(), ELEVEN_SECRET.as_bytes(), t);
        let (status, answer) = post(
            &app,
            "/elevenlabs/post-call",
            &body,
            &[("elevenlabs-signature", sig)],
        )
        .await;
        assert_eq!(status, 401, "t={t}: {answer}");
    }
    let sig = format!("t=99999999999999999999999,v0={}", "0".repeat(64));
    let (status, _) = post(
        &app,
        "/elevenlabs/post-call",
        &body,
        &[("elevenlabs-signature", sig)],
    )
    .await;
    assert_eq!(status, 401);
    assert!(stored(&app, "conv_sig").await.is_none());

    let retell = json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": "+15550100000" } }).to_string();
    for t in [i64::MAX, i64::MIN, i64::MIN + 1] {
        let sig = sign_retell(retell.as_bytes(), RETELL_KEY.as_bytes(), t);
        let (status, answer) = post(
            &app,
            "/retell/inbound",
            &retell,
            &[("x-retell-signature", sig)],
        )
        .await;
        assert_eq!(status, 401, "t={t}: {answer}");
    }
    // The server is still answering after all of that.
    let (status, _) = post_call_raw(&app, &body).await;
    assert_eq!(status, 200);
}
