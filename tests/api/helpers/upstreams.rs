//! Upstream adapters built directly (no app) against the simulator, for the
//! adapter contract and resilience tests.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use warmline::domain::{PhoneNumber, TenantId};
use warmline::simulator::{SimConfig, Simulator};
use warmline::tenants::Tenant;
use warmline::upstreams::http::ClientSettings;
use warmline::upstreams::registry::UpstreamSettings;
use warmline::upstreams::{TenantUpstreams, Upstreams};

pub fn phone(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).unwrap()
}

pub fn sim() -> Simulator {
    Simulator::start(SimConfig::default()).expect("simulator starts")
}

/// The demo tenant's time zone.
pub const NEW_YORK: chrono_tz::Tz = chrono_tz::America::New_York;

pub fn tenant(config: Value) -> Tenant {
    Tenant {
        id: TenantId::parse("demo-dental").unwrap(),
        phone_number: phone("+15550100000"),
        name: "Demo Dental".into(),
        time_zone: NEW_YORK,
        config: serde_json::from_value(config).expect("a valid tenant config"),
        is_demo: false,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

pub fn ghl_zep(url: &str) -> Value {
    warmline::simulator::demo_tenant_config(url)
}

pub fn settings(timeout_ms: u64, breaker_failures: u32, open_ms: u64) -> UpstreamSettings {
    let s = ClientSettings {
        timeout: Duration::from_millis(timeout_ms),
        breaker_failures,
        breaker_open_for: Duration::from_millis(open_ms),
    };
    UpstreamSettings {
        gohighlevel: s.clone(),
        zep: s.clone(),
        mem0: s.clone(),
        calcom: s,
        ..UpstreamSettings::default()
    }
}

pub fn adapters(config: Value) -> Arc<TenantUpstreams> {
    Upstreams::new(settings(2_000, 5, 10_000))
        .for_tenant(&tenant(config))
        .expect("adapters build")
}
