//! The first-run demo: with no tenant configured, `warmline serve` seeds a
//! clearly labelled demo tenant on +15550100000 wired to an in-process
//! simulator with the latencies measured in the field, so a newcomer's first
//! request gets a real answer — an inbound call, an outbound one, an SMS,
//! and a WhatsApp bot's requests through the bots' API (with a key made for
//! the run, see `startup`). `WARMLINE_DEMO=off` disables it; importing a
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

/// The demo tenant's WhatsApp instance, for the bots' API.
pub const DEMO_INSTANCE: &str = "demo-dental-whatsapp";

/// An outbound call's start, as Retell posts it: the business calls Ana.
pub const DEMO_OUTBOUND: &str = r#"{"event":"call_started","call":{"call_id":"demo_outbound_1","call_type":"phone_call","direction":"outbound","from_number":"+15550100000","to_number":"+15550100001","call_status":"ongoing"}}"#;

/// A tool call during that outbound call.
pub const DEMO_OUTBOUND_TOOL: &str = r#"{"name":"get_customer_context","args":{},"call":{"call_id":"demo_outbound_1","direction":"outbound","from_number":"+15550100000","to_number":"+15550100001"}}"#;

/// An SMS from Ana, as Retell posts it to the number's inbound webhook.
pub const DEMO_SMS: &str = r#"{"event":"chat_inbound","chat_inbound":{"from_number":"+15550100001","to_number":"+15550100000"}}"#;

/// A WhatsApp bot asking for Ana's context by its instance.
pub const DEMO_WHATSAPP_CONTEXT: &str =
    r#"{"caller":"+15550100001","instance":"demo-dental-whatsapp"}"#;

/// The bot telling warmline what Ana wrote.
pub const DEMO_WHATSAPP_MESSAGE: &str = r#"{"caller":"+15550100001","instance":"demo-dental-whatsapp","role":"user","text":"Can I move my cleaning to Friday morning?"}"#;

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
            config: {
                let mut config = demo_tenant_config(&sim.url);
                config["whatsapp_instances"] = serde_json::json!([DEMO_INSTANCE]);
                config.to_string()
            },
            is_demo: true,
        })
        .await?;
    tracing::info!(simulator = %sim.url, "demo tenant ready on {DEMO_NUMBER}");
    Ok(Some(sim))
}
