//! An inbound call's context, end to end: the second call of a caller
//! (answered from L1) through real HTTP with signature verification and in
//! process, and a first call against the upstream simulator with the
//! latencies measured in the field (contact 200 ms, slots 140 ms, memory
//! 150 ms) — which should cost the slowest upstream, not their sum.
//! The production subscriber is installed (logs formatted to a sink, spans
//! through OpenTelemetry), so the numbers include what production pays.
//! Results and how to reproduce them: BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warmline::domain::{InboundCall, PhoneNumber, Provider, TenantId};
use warmline::settings::Settings;
use warmline::simulator::{SimConfig, Simulator, demo_tenant_config};
use warmline::startup::Application;
use warmline::store::NewTenant;
use warmline::webhooks::signature::sign_retell;

const KEY: &str = "key_bench_retell";

struct Bench {
    base: String,
    calls: warmline::calls::Calls,
    _sim: Simulator,
    _dir: tempfile::TempDir,
}

async fn start() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimConfig {
        knobs: SimConfig::field_latencies(),
        ghl_burst_limit: 1_000_000,
        ..SimConfig::default()
    })
    .unwrap();
    let vars: HashMap<String, String> = [
        ("WARMLINE_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/bench.db", dir.path().display()),
        ),
        (
            "WARMLINE_SPILL_DIR",
            dir.path().join("spill").display().to_string(),
        ),
        ("WARMLINE_DEMO", "off".to_owned()),
        ("RETELL_API_KEY", KEY.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_vars(&vars).unwrap();
    // What production pays: the default log filter and format (lines
    // formatted, then discarded), every span through OpenTelemetry at the
    // default sampler, and the Prometheus recorder (installed by the app).
    let _telemetry = warmline::telemetry::init_with_log_writer(&settings.telemetry, std::io::sink);
    let app = Application::build(settings).await.unwrap();
    app.store()
        .upsert_tenant(&NewTenant {
            id: TenantId::parse("demo-dental").unwrap(),
            phone_number: PhoneNumber::parse("+15550100000").unwrap(),
            name: "Demo Dental".into(),
            time_zone: "America/New_York".into(),
            config: demo_tenant_config(&sim.url).to_string(),
            is_demo: false,
        })
        .await
        .unwrap();
    app.cache().warm_up().await;
    let calls = app.calls().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Bench {
        base,
        calls,
        _sim: sim,
        _dir: dir,
    }
}

fn inbound(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bench = rt.block_on(start());
    let client = reqwest::Client::new();
    let body = r#"{"event":"call_inbound","call_inbound":{"from_number":"+15550100001","to_number":"+15550100000"}}"#;
    // Warm the caller's context.
    rt.block_on(async {
        let sig = sign_retell(
            body.as_bytes(),
            KEY.as_bytes(),
            chrono::Utc::now().timestamp_millis(),
        );
        let r = client
            .post(format!("{}/retell/inbound", bench.base))
            .header("content-type", "application/json")
            .header("x-retell-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });

    c.bench_function("inbound/second_call_http_signed", |b| {
        b.to_async(&rt).iter(|| async {
            let sig = sign_retell(
                body.as_bytes(),
                KEY.as_bytes(),
                chrono::Utc::now().timestamp_millis(),
            );
            let r = client
                .post(format!("{}/retell/inbound", bench.base))
                .header("content-type", "application/json")
                .header("x-retell-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            std::hint::black_box(r.bytes().await.unwrap());
        })
    });

    let called = PhoneNumber::parse("+15550100000").unwrap();
    let caller = PhoneNumber::parse("+15550100001").unwrap();
    c.bench_function("inbound/second_call_in_process", |b| {
        b.to_async(&rt).iter(|| async {
            let answer = bench
                .calls
                .inbound(InboundCall {
                    provider: Provider::Retell,
                    called: called.clone(),
                    caller: Some(caller.clone()),
                    call_id: None,
                })
                .await
                .unwrap();
            std::hint::black_box(answer);
        })
    });

    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("inbound");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("first_call_field_latencies", |b| {
        b.to_async(&rt).iter(|| {
            // A caller never seen: contact and memory miss; slots are shared.
            let n = next.fetch_add(1, Ordering::Relaxed);
            let caller = PhoneNumber::parse(&format!("+1555031{n:04}")).unwrap();
            let called = called.clone();
            let calls = bench.calls.clone();
            async move {
                let answer = calls
                    .inbound(InboundCall {
                        provider: Provider::Retell,
                        called,
                        caller: Some(caller),
                        call_id: None,
                    })
                    .await
                    .unwrap();
                std::hint::black_box(answer);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = inbound
}
criterion_main!(benches);
