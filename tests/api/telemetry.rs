//! Traces: the root span per webhook with its semantic-convention
//! attributes, child spans for the call, cache and upstreams (none on the
//! cached hot path, whose root span names the tenant), no unmasked
//! phone number anywhere, trace ids returned and stored, OTLP export.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use opentelemetry::trace::{SpanKind, TraceId};
use serde_json::json;
use warmline::domain::{CallId, Provider};
use warmline::webhooks::signature::sign_retell;

use crate::helpers::{SPANS, TestDb, free_port, spawn_with_simulator};

const KEY: &str = "key_telemetry_test";

/// One POST the test's collector received: content type and body.
type Export = (String, Vec<u8>);

fn attrs(span: &opentelemetry_sdk::trace::SpanData) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
        .collect()
}

/// Sends a signed `call_inbound` in a trace of its own (an incoming
/// `traceparent` with parent span `00f067aa0ba902b7`) and returns the spans
/// of that trace once its root span is finished.
async fn traced_inbound(app: &crate::helpers::TestApp) -> Vec<opentelemetry_sdk::trace::SpanData> {
    let body = json!({ "event": "call_inbound", "call_inbound": { "from_number": "+15550100001", "to_number": "+15550100000" } }).to_string();
    let sig = sign_retell(
        body.as_bytes(),
        KEY.as_bytes(),
        chrono::Utc::now().timestamp_millis(),
    );
    let trace_hex = format!("{:032x}", fastrand::u128(1..));
    let parent_hex = "00f067aa0ba902b7";
    let resp = app
        .client
        .post(format!("{}/retell/inbound", app.address))
        .header("content-type", "application/json")
        .header("x-retell-signature", sig)
        .header("traceparent", format!("00-{trace_hex}-{parent_hex}-01"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-trace-id"].to_str().unwrap(),
        trace_hex,
        "the incoming traceparent is honoured"
    );

    let trace = TraceId::from_hex(&trace_hex).unwrap();
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = SPANS
            .get_finished_spans()
            .unwrap()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect();
        if spans.iter().any(|s| s.name == "POST /retell/inbound") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_webhook_that_misses_the_cache_yields_one_trace_with_tenant_cache_and_upstream_spans()
 {
    let (app, _sim) = spawn_with_simulator(TestDb::sqlite(), &[("RETELL_API_KEY", KEY)]).await;
    let spans = traced_inbound(&app).await;
    let parent_hex = "00f067aa0ba902b7";
    let root = spans
        .iter()
        .find(|s| s.name == "POST /retell/inbound")
        .expect("root span");
    assert_eq!(root.span_kind, SpanKind::Server);
    assert_eq!(root.parent_span_id.to_string(), parent_hex);
    let a = attrs(root);
    assert_eq!(a["http.request.method"], "POST");
    assert_eq!(a["http.route"], "/retell/inbound");
    assert_eq!(a["http.response.status_code"], "200");
    assert_eq!(a["url.path"], "/retell/inbound");

    assert!(spans.iter().any(|s| s.name == "calls.inbound"
        && attrs(s).get("tenant").map(String::as_str) == Some("demo-dental")));
    let lookups: Vec<HashMap<String, String>> = spans
        .iter()
        .filter(|s| s.name == "cache.lookup")
        .map(attrs)
        .collect();
    // The tenant came from L1 (warmed at start): a fresh L1 hit opens no span.
    assert!(
        !lookups.iter().any(|a| a["cache.namespace"] == "tenant"),
        "{lookups:?}"
    );
    for ns in ["contact", "memory", "slots"] {
        let l = lookups
            .iter()
            .find(|a| a["cache.namespace"] == ns)
            .unwrap_or_else(|| panic!("no {ns} lookup in {lookups:?}"));
        assert!(
            l.contains_key("cache.tier") && l.contains_key("cache.outcome"),
            "{l:?}"
        );
    }
    assert!(
        lookups.iter().any(|a| a["cache.outcome"] == "miss"),
        "{lookups:?}"
    );
    let upstream: Vec<HashMap<String, String>> = spans
        .iter()
        .filter(|s| s.name == "upstream.call")
        .map(attrs)
        .collect();
    for (up, op) in [
        ("gohighlevel", "find_contact"),
        ("zep", "get_context"),
        ("gohighlevel", "free_slots"),
    ] {
        let call = upstream
            .iter()
            .find(|a| a["upstream"] == up && a["operation"] == op)
            .unwrap_or_else(|| panic!("no {up} {op} span in {upstream:?}"));
        assert_eq!(call["outcome"], "ok");
        assert_eq!(call["breaker.state"], "closed");
        assert_eq!(call["http.response.status_code"], "200");
    }

    // No phone number in the clear, in any attribute or event.
    for s in &spans {
        let mut texts: Vec<String> = attrs(s).into_values().collect();
        texts.push(s.name.to_string());
        for e in s.events.iter() {
            texts.push(e.name.to_string());
            texts.extend(e.attributes.iter().map(|kv| kv.value.as_str().into_owned()));
        }
        for t in texts {
            assert!(
                !t.contains("5550100001") && !t.contains("5550100000"),
                "unmasked number in span {}: {t}",
                s.name
            );
        }
    }

    // The caller again: the hot path. Its trace is the root span alone,
    // which names the tenant; no child span was paid for.
    let again = traced_inbound(&app).await;
    let names: Vec<&str> = again.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["POST /retell/inbound"], "{again:?}");
    assert_eq!(attrs(&again[0])["warmline.tenant"], "demo-dental");
}

#[tokio::test]
async fn the_trace_id_returned_with_a_call_event_is_stored_on_the_call_log() {
    let (app, _sim) = spawn_with_simulator(TestDb::sqlite(), &[("RETELL_API_KEY", KEY)]).await;
    let body = json!({ "event": "call_started", "call": {
        "call_id": "call_traced", "from_number": "+15550100001", "to_number": "+15550100000" } })
    .to_string();
    let sig = sign_retell(
        body.as_bytes(),
        KEY.as_bytes(),
        chrono::Utc::now().timestamp_millis(),
    );
    let resp = app
        .client
        .post(format!("{}/retell/events", app.address))
        .header("content-type", "application/json")
        .header("x-retell-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let trace = resp.headers()["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(trace.len(), 32);
    let call = app
        .store
        .call(Provider::Retell, &CallId::parse("call_traced").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.details.trace_id.as_deref(), Some(trace.as_str()));
}

#[tokio::test]
async fn spans_are_exported_to_an_otlp_http_receiver() {
    // A collector of our own: records what is POSTed to /v1/traces.
    let received: Arc<Mutex<Vec<Export>>> = Arc::default();
    let sink = received.clone();
    let port = free_port();
    let server = HttpServer::new(move || {
        let sink = sink.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let sink = sink.clone();
                async move {
                    let ct = req
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    sink.lock().unwrap().push((ct, body.to_vec()));
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    let dir = tempfile::tempdir().unwrap();
    let app_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmline"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("RETELL_API_KEY")
        .env("WARMLINE_ADDR", format!("127.0.0.1:{app_port}"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .env("OTEL_SERVICE_NAME", "warmline-otlp-test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{app_port}");
    crate::helpers::wait_until_serving(&base).await;
    let body = crate::helpers::DEMO_INBOUND;
    let resp = client
        .post(format!("{base}/retell/inbound"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // SIGTERM: warmline drains, then flushes its spans before exiting.
    crate::helpers::stop_with_sigterm(&mut child).await;
    handle.stop(true).await;
    let got = received.lock().unwrap().clone();
    assert!(!got.is_empty(), "no export reached the receiver");
    assert!(
        got.iter().all(|(ct, _)| ct == "application/x-protobuf"),
        "{:?}",
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    let all: Vec<u8> = got.into_iter().flat_map(|(_, b)| b).collect();
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"warmline-otlp-test"), "service name exported");
    assert!(
        has(b"POST /retell/inbound"),
        "the webhook's root span exported"
    );
    assert!(has(b"upstream.call"), "child spans exported");
    assert!(
        !has(b"5550100001"),
        "no unmasked caller number in the export"
    );
}
