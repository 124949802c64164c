//! `warmline loadgen` against a real warmline: the pool is loaded once and
//! then answered from the cache, a fixed rate sends exactly its schedule,
//! and the report, CSV and SVG hold every series. (What it measures is in
//! BENCHMARKS.md; nothing here asserts a speed.)

use warmline::domain::Provider;
use warmline::loadgen::{Options, Scenario, Series};
use warmline::simulator::endpoints;
use warmline::store::CallFilter;

use crate::helpers::TestDb;
use crate::helpers::voice::{ELEVEN_SECRET, RETELL_KEY, VAPI_SECRET, app};

fn options(target: &str, scenario: Scenario) -> Options {
    Options {
        target: target.to_owned(),
        scenario,
        baseline: false,
        concurrency: 4,
        rate: None,
        duration: 1,
        warmup: 0,
        callers: 5,
        prefill: true,
        prefill_concurrency: 4,
        cold: 0.0,
        called: "+15550100000".into(),
        call_ids: true,
        retell_key: RETELL_KEY.into(),
        vapi_secret: VAPI_SECRET.into(),
        elevenlabs_secret: ELEVEN_SECRET.into(),
        api_key: String::new(),
        instance: String::new(),
        threads: 1,
        timeout_ms: 30_000,
        csv: None,
        svg: None,
    }
}

/// Runs the load generator on a thread of its own (it has its own runtime).
async fn run(o: Options) -> anyhow::Result<Vec<Series>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(warmline::loadgen::run(o));
    });
    rx.await.expect("the load generator's thread answers")
}

#[tokio::test]
async fn the_pool_is_loaded_once_and_every_measured_request_is_a_signed_cached_answer() {
    let (app, sim) = app(TestDb::sqlite()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&app.address, Scenario::RetellInbound);
    o.baseline = true;
    o.csv = Some(dir.path().join("h.csv"));
    o.svg = Some(dir.path().join("h.svg"));
    let series = run(o).await.expect("the run succeeds");

    assert_eq!(series.len(), 2, "the scenario, then the /health baseline");
    assert_eq!(
        (series[0].name.as_str(), series[1].name.as_str()),
        ("retell-inbound", "health")
    );
    for s in &series {
        assert_eq!(s.failed(), 0, "{}: {:?}", s.name, s.failures);
        assert!(!s.histogram.is_empty(), "{} measured nothing", s.name);
    }
    // Five callers, five contact lookups: the prefill loaded each once and
    // every measured request was answered from the cache.
    assert_eq!(sim.state.calls(endpoints::GHL_FIND_CONTACT), 5);
    let csv = std::fs::read_to_string(dir.path().join("h.csv")).unwrap();
    assert!(
        csv.starts_with("series,percentile,latency_ms,count\n"),
        "{csv}"
    );
    for name in ["retell-inbound,", "health,"] {
        assert!(
            csv.lines().filter(|l| l.starts_with(name)).count() > 3,
            "{csv}"
        );
    }
    let svg = std::fs::read_to_string(dir.path().join("h.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
}

#[tokio::test]
async fn a_fixed_rate_sends_exactly_its_schedule_and_a_wrong_secret_is_counted_by_kind() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let mut o = options(&app.address, Scenario::Health);
    o.rate = Some(150);
    let series = run(o).await.expect("the run succeeds");
    // Requests are due at start + n/150 s for one second: 150 of them,
    // however late the server answers (latency counts from when each was due).
    assert_eq!(series[0].histogram.len() + series[0].failed(), 150);

    let mut o = options(&app.address, Scenario::VapiTool);
    o.vapi_secret = "not-the-secret".into();
    let err = run(o).await.expect_err("the prefill is refused");
    assert!(err.to_string().contains("http 401"), "{err}");
}

#[tokio::test]
async fn tool_calls_and_events_of_every_platform_are_answered() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    for scenario in [
        Scenario::RetellTool,
        Scenario::RetellEvents,
        Scenario::VapiInbound,
        Scenario::VapiTool,
        Scenario::VapiEvents,
        Scenario::ElevenlabsInbound,
        Scenario::ElevenlabsEvents,
    ] {
        let mut o = options(&app.address, scenario);
        o.rate = Some(20);
        let series = run(o).await.expect("the run succeeds");
        let s = &series[0];
        assert_eq!(s.failed(), 0, "{}: {:?}", s.name, s.failures);
        assert_eq!(s.histogram.len(), 20, "{}", s.name);
    }
    // The events were acknowledged as durable: every platform's calls are
    // in the log (a call's events arrive from one connection, in order).
    for provider in [Provider::Retell, Provider::Vapi, Provider::ElevenLabs] {
        let filter = CallFilter {
            provider: Some(provider),
            search: Some("lg-".into()),
            limit: 500,
            ..CallFilter::default()
        };
        // Durable in the journal when acknowledged; in the table once applied.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while app.store.list_calls(&filter).await.unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no {provider} call stored"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
