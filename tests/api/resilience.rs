//! Upstream adapters under failure, against the simulator's fault knobs:
//! 429s and rate-limit headers pause calls, a failed read is retried once and
//! a write never, a breaker opens and closes, and a slow upstream times out.

use std::time::{Duration, Instant};

use warmline::domain::TenantId;
use warmline::simulator::{Knob, SimConfig, Simulator, endpoints};
use warmline::upstreams::{ContactUpsert, MemorySubject, UpstreamError, Upstreams};

use crate::helpers::upstreams::{adapters, ghl_zep, phone, settings, sim, tenant};

#[tokio::test]
async fn a_429_pauses_calls_until_the_upstream_says_and_a_5xx_read_is_retried_once() {
    let sim = sim();
    let crm = adapters(ghl_zep(&sim.url)).crm.clone().unwrap();
    sim.state
        .set_knob(
            endpoints::GHL_FIND_CONTACT,
            Knob {
                error_rate: 1.0,
                error_status: Some(429),
                ..Knob::default()
            },
        )
        .unwrap();
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited { .. }), "{err}");
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        1,
        "a 429 is not retried"
    );
    sim.state
        .set_knob(endpoints::GHL_FIND_CONTACT, Knob::default())
        .unwrap();
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::RateLimited { .. }),
        "still paused: {err}"
    );
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        1,
        "the paused call never left"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await; // Retry-After: 1
    assert!(
        crm.find_contact_by_phone(&phone("+15550100001"))
            .await
            .unwrap()
            .is_some()
    );

    sim.state.reset();
    sim.state
        .set_knob(
            endpoints::GHL_FIND_CONTACT,
            Knob {
                error_rate: 1.0,
                ..Knob::default()
            },
        )
        .unwrap();
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Status { status: 500, .. }),
        "{err}"
    );
    assert_eq!(
        sim.state.calls(endpoints::GHL_FIND_CONTACT),
        2,
        "one retry of an idempotent read"
    );
    sim.state
        .set_knob(
            endpoints::GHL_UPSERT_CONTACT,
            Knob {
                error_rate: 1.0,
                ..Knob::default()
            },
        )
        .unwrap();
    let upsert = ContactUpsert {
        phone: Some(phone("+15550100001")),
        ..Default::default()
    };
    assert!(crm.upsert_contact(&upsert).await.is_err());
    assert_eq!(
        sim.state.calls(endpoints::GHL_UPSERT_CONTACT),
        1,
        "a write is never retried"
    );
}

#[tokio::test]
async fn gohighlevel_burst_limit_headers_pause_the_client_before_a_429() {
    let sim = Simulator::start(SimConfig {
        ghl_burst_limit: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let crm = adapters(ghl_zep(&sim.url)).crm.clone().unwrap();
    for _ in 0..3 {
        crm.find_contact_by_phone(&phone("+15550100001"))
            .await
            .unwrap();
    }
    // The third answer said `X-RateLimit-Remaining: 0`: the fourth call waits.
    let err = crm
        .find_contact_by_phone(&phone("+15550100001"))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited { .. }), "{err}");
    assert_eq!(sim.state.calls(endpoints::GHL_FIND_CONTACT), 3);
}

#[tokio::test]
async fn a_breaker_opens_after_the_configured_failures_fails_fast_and_closes_after_a_good_probe() {
    let sim = sim();
    let up = Upstreams::new(settings(2_000, 3, 300))
        .for_tenant(&tenant(ghl_zep(&sim.url)))
        .unwrap();
    let memory = up.memory.clone().unwrap();
    let tenant_id = TenantId::parse("demo-dental").unwrap();
    let ana = MemorySubject::for_caller(&tenant_id, &phone("+15550100001"), None);
    sim.state
        .set_knob(
            endpoints::ZEP_CONTEXT,
            Knob {
                down: true,
                ..Knob::default()
            },
        )
        .unwrap();
    // Each read is tried twice (one retry of a 503): two reads make 3+ failures.
    for _ in 0..2 {
        let err = memory.get_context(&ana).await.unwrap_err();
        assert!(
            matches!(
                err,
                UpstreamError::Status { status: 503, .. } | UpstreamError::BreakerOpen { .. }
            ),
            "{err}"
        );
    }
    let before = sim.state.calls(endpoints::ZEP_CONTEXT);
    assert_eq!(before, 3, "the third failure opened the breaker");
    let started = Instant::now();
    let err = memory.get_context(&ana).await.unwrap_err();
    assert!(matches!(err, UpstreamError::BreakerOpen { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "fails fast while open"
    );
    assert_eq!(
        sim.state.calls(endpoints::ZEP_CONTEXT),
        before,
        "nothing reaches the upstream"
    );

    sim.state
        .set_knob(endpoints::ZEP_CONTEXT, Knob::default())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        memory.get_context(&ana).await.unwrap().is_some(),
        "the probe succeeds"
    );
    assert!(
        memory.get_context(&ana).await.unwrap().is_some(),
        "and the breaker is closed"
    );
    assert_eq!(sim.state.calls(endpoints::ZEP_CONTEXT), before + 2);
}

#[tokio::test]
async fn a_2_s_memory_read_with_a_300_ms_timeout_fails_in_about_300_ms() {
    let sim = sim();
    let up = Upstreams::new(settings(300, 5, 10_000))
        .for_tenant(&tenant(ghl_zep(&sim.url)))
        .unwrap();
    let memory = up.memory.clone().unwrap();
    sim.state
        .set_knob(endpoints::ZEP_CONTEXT, Knob::latency(2_000))
        .unwrap();
    let ana = MemorySubject::for_caller(
        &TenantId::parse("demo-dental").unwrap(),
        &phone("+15550100001"),
        None,
    );
    let started = Instant::now();
    let err = memory.get_context(&ana).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    assert!(
        took < Duration::from_secs(1),
        "failed after {took:?}, not after the upstream's 2 s"
    );
}
