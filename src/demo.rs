//! The first-run demo: with no tenant configured, `warmline serve` seeds a
//! clearly labelled demo tenant on +15550100000 wired to an in-process
//! simulator with the latencies measured in the field, so a newcomer's first
//! request gets a real answer. `WARMLINE_DEMO=off` disables it; importing a
//! real tenant retires it.

use crate::domain::{PhoneNumber, TenantId};
use crate::simulator::{SimConfig, Simulator, demo_tenant_config};
use crate::store::{NewTenant, Store};

pub const DEMO_NUMBER: &str = "+15550100000";
pub const DEMO_TENANT: &str = "demo-dental";
/// The demo tenant's number, typed.
pub fn number() -> PhoneNumber {
    PhoneNumber::parse(DEMO_NUMBER).expect("the demo number is E.164")
}

/// The demo tenant's id: what an unsigned demo request may act for.
pub fn tenant_id() -> TenantId {
    TenantId::parse(DEMO_TENANT).expect("the demo tenant's id is valid")
}

/// A caller the demo data knows well.
pub const DEMO_CALLER: &str = "+15550100001";

/// Starts the demo simulator and (re)points the demo tenant at it, unless
/// real tenants exist — then the demo tenant is removed. Returns the running
/// simulator, which must live as long as the server.
pub async fn prepare(store: &Store) -> anyhow::Result<Option<Simulator>> {
    let tenants = store.list_tenants().await?;
    if tenants.iter().any(|t| !t.is_demo) {
        for t in tenants.iter().filter(|t| t.is_demo) {
            store.delete_tenant(&t.id).await?;
            tracing::info!(tenant = %t.id, "real tenants are configured: demo tenant removed");
        }
        return Ok(None);
    }
    let sim = Simulator::start(SimConfig {
        knobs: SimConfig::field_latencies(),
        ..SimConfig::default()
    })?;
    store
        .upsert_tenant(&NewTenant {
            id: TenantId::parse(DEMO_TENANT)?,
            phone_number: PhoneNumber::parse(DEMO_NUMBER)?,
            name: "Demo Dental".into(),
            time_zone: "America/New_York".into(),
            // The simulator's own config: a demo that does not type is a bug.
            config: demo_tenant_config(&sim.url).to_string(),
            is_demo: true,
        })
        .await?;
    tracing::info!(simulator = %sim.url, "demo tenant ready on {DEMO_NUMBER}");
    Ok(Some(sim))
}
