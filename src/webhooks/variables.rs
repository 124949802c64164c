//! The caller's context as the agents' dynamic variables, the same names for
//! every platform: Retell and Vapi take strings only, ElevenLabs takes typed
//! values. One list, rendered two ways.

use actix_web::HttpResponse;
use actix_web::http::header;
use serde_json::{Map, Value, json};

use crate::calls::{CallerContext, Rendering};

/// Retell's `call_inbound` answer, rendered once per context version.
pub const RETELL_INBOUND: Rendering = Rendering(0);
/// ElevenLabs' conversation-initiation answer, likewise.
pub const ELEVENLABS_INITIATION: Rendering = Rendering(1);

/// `value` as JSON bytes, to keep with the context it was rendered from.
pub fn to_bytes(value: &Value) -> bytes::Bytes {
    // Serialising a `Value` cannot fail: its map keys are strings.
    serde_json::to_vec(value).unwrap_or_default().into()
}

/// A 200 with JSON rendered earlier.
pub fn json_answer(body: bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        ))
        .body(body)
}

/// The variables with their typed values.
fn typed(ctx: &CallerContext) -> [(&'static str, Value); 7] {
    [
        ("business_name", ctx.business_name.clone().into()),
        (
            "customer_name",
            ctx.customer_name.clone().unwrap_or_default().into(),
        ),
        ("is_returning_caller", ctx.returning_caller.into()),
        ("total_calls", ctx.total_calls.into()),
        (
            "memory_summary",
            ctx.memory_summary.clone().unwrap_or_default().into(),
        ),
        ("next_available_slots", ctx.slots_spoken().join("; ").into()),
        ("time_zone", ctx.time_zone.name().into()),
    ]
}

/// Strings only (Retell, Vapi).
pub fn as_strings(ctx: &CallerContext) -> Map<String, Value> {
    typed(ctx)
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k.to_owned(), Value::String(text))
        })
        .collect()
}

/// Strings, numbers and booleans (ElevenLabs).
pub fn as_values(ctx: &CallerContext) -> Map<String, Value> {
    typed(ctx)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// What the platform keeps with the call for the agent's tools and logs.
pub fn metadata(ctx: &CallerContext) -> Value {
    json!({
        "tenant_id": ctx.tenant_id,
        "crm_contact_id": ctx.crm_contact_id,
        "context_missing": ctx.missing,
        "context_stale": ctx.stale,
    })
}
