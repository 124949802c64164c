//! Messages the platforms really send, answered right: Retell custom
//! functions on every method Retell allows, payloads with the nulls and
//! missing fields real deliveries carry, Vapi calls over SIP, and 400s that
//! name the field without echoing the caller's data.

use serde_json::json;
use warmline::domain::{PhoneNumber, TenantId};
use warmline::webhooks::signature::sign_retell;

use crate::helpers::TestDb;
use crate::helpers::voice::{
    ELEVEN_SECRET, RETELL_KEY, app, now_ms, post, retell, retell_call, vapi,
};

#[tokio::test]
async fn retell_functions_answer_on_every_method_retell_allows() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let query = "call_id=call_methods&from_number=%2B15550100001&to_number=%2B15550100000";
    let body_call = json!({
        "name": "get_customer_context",
        "call": { "call_id": "call_methods", "from_number": "+15550100001", "to_number": "+15550100000" },
        "args": {},
    })
    .to_string();
    for method in ["GET", "DELETE", "POST", "PUT", "PATCH"] {
        // GET and DELETE carry no body: the signature covers the empty string.
        let body = if matches!(method, "GET" | "DELETE") {
            String::new()
        } else {
            body_call.clone()
        };
        let sig = sign_retell(body.as_bytes(), RETELL_KEY.as_bytes(), now_ms());
        let resp = app
            .client
            .request(
                method.parse().unwrap(),
                format!(
                    "{}/retell/functions/get_customer_context?{query}",
                    app.address
                ),
            )
            .header("content-type", "application/json")
            .header("x-retell-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert!(
            answer["result"].as_str().unwrap().contains("Ana Souza"),
            "{method}: {answer}"
        );
    }
}

#[tokio::test]
async fn payloads_with_the_nulls_platforms_send_are_accepted() {
    let (app, _sim) = app(TestDb::sqlite()).await;

    // Retell: nothing said yet.
    let mut call = retell_call("call_nulls", "+15550100001");
    call["transcript_object"] = serde_json::Value::Null;
    let (status, answer) = retell(
        &app,
        "/retell/events",
        &json!({ "event": "call_started", "call": call }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // Retell: a withheld caller id gets the business's generic context.
    let (status, answer) = retell(
        &app,
        "/retell/inbound",
        &json!({ "event": "call_inbound", "call_inbound": { "from_number": null, "to_number": "+15550100000" } }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let vars = &answer["call_inbound"]["dynamic_variables"];
    assert_eq!(vars["business_name"], "Demo Dental");
    assert_eq!(vars["customer_name"], "");

    // Vapi chat sessions: no `call.id`.
    for message in [
        json!({ "type": "status-update", "status": "ended" }),
        json!({ "type": "end-of-call-report", "endedReason": "customer-ended-chat" }),
    ] {
        let (status, answer) = vapi(&app, message).await;
        assert_eq!(
            (status, &answer["ignored"]),
            (200, &json!(true)),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn large_call_events_are_stored_and_only_events_past_their_own_limit_are_refused() {
    let mut vars = crate::helpers::voice::secrets();
    vars.push(("WARMLINE_EVENT_BODY_LIMIT_BYTES", "4000000"));
    let (app, _sim) = crate::helpers::spawn_with_simulator(TestDb::sqlite(), &vars).await;
    // A long call analysed with word-level timings: well over 1 MiB.
    let words: Vec<serde_json::Value> = (0..40_000)
        .map(|i| json!({ "word": "appointment", "start": i, "end": i + 1 }))
        .collect();
    let mut call = retell_call("call_long", "+15550100001");
    call["transcript"] = "User: I'd like a cleaning. ".repeat(2_000).into();
    call["transcript_object"] =
        json!([{ "role": "user", "content": "I'd like a cleaning.", "words": words }]);
    let event = json!({ "event": "call_analyzed", "call": call });
    assert!(event.to_string().len() > 1_500_000);
    let (status, answer) = retell(&app, "/retell/events", &event).await;
    assert_eq!(status, 200, "{answer}");
    let stored = app
        .store
        .call(
            warmline::domain::Provider::Retell,
            &warmline::domain::CallId::parse("call_long").unwrap(),
        )
        .await
        .unwrap()
        .expect("stored");
    assert!(stored.details.transcript.unwrap().len() > 50_000);

    // Past the configured event limit: 413, before the body is buffered.
    let huge = json!({ "event": "call_analyzed", "pad": "x".repeat(4_100_000) });
    let (status, answer) = retell(&app, "/retell/events", &huge).await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
}

#[tokio::test]
async fn every_vapi_credential_option_is_accepted_when_configured() {
    use warmline::webhooks::vapi_auth::{HmacAlgorithm, HmacPlan, SignatureEncoding};
    let message = json!({ "message": { "type": "speech-update" } }).to_string();
    let secret = crate::helpers::voice::VAPI_SECRET;

    // A bearer credential under a custom header, without the `Bearer ` prefix.
    let (app, _sim) = crate::helpers::spawn_with_simulator(
        TestDb::sqlite(),
        &[
            ("VAPI_SECRET", secret),
            ("VAPI_AUTH_HEADER", "X-Vapi-Token"),
            ("VAPI_BEARER_PREFIX", "off"),
        ],
    )
    .await;
    let ok = crate::helpers::voice::post(
        &app,
        "/vapi",
        &message,
        &[("x-vapi-token", secret.to_owned())],
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    let bad = crate::helpers::voice::post(
        &app,
        "/vapi",
        &message,
        &[("x-vapi-token", "nope".to_owned())],
    )
    .await;
    assert_eq!(bad.0, 401);

    // HMAC with SHA-512, base64, a prefix, no timestamp, custom header.
    let (app, _sim) = crate::helpers::spawn_with_simulator(
        TestDb::sqlite(),
        &[
            ("VAPI_SECRET", secret),
            ("VAPI_HMAC_ALGORITHM", "sha512"),
            ("VAPI_HMAC_ENCODING", "base64"),
            ("VAPI_HMAC_INCLUDE_TIMESTAMP", "off"),
            ("VAPI_HMAC_SIGNATURE_PREFIX", "v1="),
            ("VAPI_HMAC_SIGNATURE_HEADER", "X-Hub-Signature"),
        ],
    )
    .await;
    let plan = HmacPlan {
        algorithm: HmacAlgorithm::Sha512,
        encoding: SignatureEncoding::Base64,
        include_timestamp: false,
        prefix: Some("v1=".into()),
        signature_header: "x-hub-signature".into(),
        ..HmacPlan::default()
    };
    let sig = plan.sign(message.as_bytes(), secret.as_bytes(), None);
    let ok =
        crate::helpers::voice::post(&app, "/vapi", &message, &[("x-hub-signature", sig)]).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    // SHA-1, hex, with the default timestamp header.
    let (app, _sim) = crate::helpers::spawn_with_simulator(
        TestDb::sqlite(),
        &[("VAPI_SECRET", secret), ("VAPI_HMAC_ALGORITHM", "sha1")],
    )
    .await;
    let ts = now_ms().to_string();
    let sha1 = HmacPlan {
        algorithm: HmacAlgorithm::Sha1,
        ..HmacPlan::default()
    };
    let sig = sha1.sign(message.as_bytes(), secret.as_bytes(), Some(&ts));
    let ok = crate::helpers::voice::post(
        &app,
        "/vapi",
        &message,
        &[("x-signature", sig), ("x-timestamp", ts)],
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
}

#[tokio::test]
async fn a_bad_field_is_named_in_the_400_and_its_value_never_echoed() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let mut call = retell_call("call_bad_field", "+15550100001");
    call["start_timestamp"] = json!("+1 (415) 555-0123");
    let cases = [
        (
            "/retell/events",
            json!({ "event": "call_ended", "call": call }),
            "`call.start_timestamp`",
        ),
        (
            "/retell/inbound",
            json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": 14155550123_i64 } }),
            "`call_inbound.to_number`",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = retell(&app, path, &body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{path}: {message}");
        assert!(
            !message.contains("555-0123") && !message.contains("4155550123"),
            "the value is echoed: {message}"
        );
    }
    let (status, answer) = post(
        &app,
        "/elevenlabs/initiation",
        &json!({ "called_number": "+15550100000", "caller_id": 14155550123_i64 }).to_string(),
        &[("x-warmline-secret", ELEVEN_SECRET.to_owned())],
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("`caller_id`"), "{message}");
    assert!(!message.contains("4155550123"), "{message}");
    let (status, answer) = post(&app, "/retell/+14155550123", "{}", &[]).await;
    assert_eq!(status, 404);
    assert!(
        !answer.to_string().contains("4155550123"),
        "the 404 names the path masked: {answer}"
    );
}

/// The demo tenant, reachable over SIP by a Vapi phone-number id and a SIP URI.
async fn demo_with_sip_lines(app: &crate::helpers::TestApp, sim_url: &str) {
    let mut config = warmline::simulator::demo_tenant_config(sim_url);
    config["line_ids"] = json!(["pn_sip_7f3a", "sip:Front-Desk@demo-dental.sip.vapi.ai"]);
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
}

#[tokio::test]
async fn vapi_sip_calls_are_resolved_by_the_line_the_tenant_names() {
    let (app, sim) = app(TestDb::sqlite()).await;
    demo_with_sip_lines(&app, &sim.url).await;
    let customer = json!({ "number": "+15550100001" });
    // By the phone-number id, and by the SIP URI (any case), with no number.
    for phone in [
        json!({ "id": "pn_sip_7f3a", "provider": "vapi" }),
        json!({ "sipUri": "sip:front-desk@demo-dental.sip.vapi.ai", "provider": "vapi" }),
    ] {
        let (status, answer) = vapi(
            &app,
            json!({ "type": "assistant-request", "call": { "id": "vapi-sip-1" }, "phoneNumber": phone, "customer": customer }),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["assistantOverrides"]["variableValues"]["customer_name"], "Ana Souza",
            "{answer}"
        );
        assert!(answer["assistant"].is_object(), "{answer}");
    }
    // A tool call names the line only as the call's `phoneNumberId`.
    let (status, answer) = vapi(
        &app,
        json!({
            "type": "tool-calls",
            "call": { "id": "vapi-sip-2", "phoneNumberId": "pn_sip_7f3a", "customer": customer },
            "toolCallList": [{ "id": "t1", "name": "get_customer_context", "arguments": {} }]
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let result = answer["results"][0]["result"].as_str().unwrap_or_default();
    assert!(result.contains("Ana Souza"), "{answer}");

    // A line no tenant names: Vapi's `error`, spoken, and counted.
    let before = fallbacks(&app, "unknown_called_number").await;
    let (status, answer) = vapi(
        &app,
        json!({ "type": "assistant-request", "call": { "id": "vapi-sip-3" }, "phoneNumber": { "id": "pn_nobody" } }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("not set up")),
        "{answer}"
    );
    assert_eq!(fallbacks(&app, "unknown_called_number").await, before + 1.0);
}

/// The fallback counter of `kind`, from `/metrics`.
async fn fallbacks(app: &crate::helpers::TestApp, kind: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("warmline_fallback_activations_total{"))
        .filter(|l| l.contains(&format!("kind=\"{kind}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
