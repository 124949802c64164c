//! Retell AI webhooks: `POST /retell/inbound` (the `call_inbound` webhook,
//! answered with the caller's dynamic variables).

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::signature::verify_retell;
use super::{Verification, record, unsigned_allowed};
use crate::calls::CallerContext;
use crate::domain::PhoneNumber;
use crate::error::ApiError;
use crate::startup::AppState;

const PROVIDER: &str = "retell";

fn verify(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<Verification, ApiError> {
    match &state.settings.webhooks.retell_api_key {
        Some(key) => {
            let header = req
                .headers()
                .get("x-retell-signature")
                .and_then(|v| v.to_str().ok());
            verify_retell(
                header,
                body,
                key.expose_secret().as_bytes(),
                chrono::Utc::now().timestamp_millis(),
            )
            .map(|()| Verification::Signed)
            .map_err(|e| ApiError::Unauthorized(format!("retell signature: {e}")))
        }
        None => unsigned_allowed(state, req, PROVIDER, "RETELL_API_KEY"),
    }
}

#[derive(Deserialize)]
struct InboundEnvelope {
    event: String,
    call_inbound: Option<InboundBody>,
}

#[derive(Deserialize)]
struct InboundBody {
    from_number: String,
    to_number: String,
}

/// Retell's dynamic variables are strings only.
fn dynamic_variables(ctx: &CallerContext) -> serde_json::Map<String, serde_json::Value> {
    let mut vars = serde_json::Map::new();
    let mut put = |k: &str, v: String| {
        vars.insert(k.to_owned(), v.into());
    };
    put("business_name", ctx.business_name.clone());
    put(
        "customer_name",
        ctx.customer_name.clone().unwrap_or_default(),
    );
    put("is_returning_caller", ctx.returning_caller.to_string());
    put("total_calls", ctx.total_calls.to_string());
    put(
        "memory_summary",
        ctx.memory_summary.clone().unwrap_or_default(),
    );
    put("next_available_slots", ctx.slots_spoken().join("; "));
    put("time_zone", ctx.time_zone.clone());
    vars
}

#[post("/retell/inbound")]
async fn retell_inbound(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = handle_inbound(&state, &req, &body).await;
    let outcome = match &result {
        Ok((_, o)) => *o,
        Err(ApiError::Unauthorized(_)) => "unauthorized",
        Err(_) => "bad_request",
    };
    record(PROVIDER, "call_inbound", outcome, started);
    result.map(|(r, _)| r)
}

async fn handle_inbound(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(HttpResponse, &'static str), ApiError> {
    verify(state, req, body)?;
    let envelope: InboundEnvelope = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid call_inbound payload: {e}")))?;
    if envelope.event != "call_inbound" {
        return Err(ApiError::BadRequest(format!(
            "`event` is `{}`; this endpoint takes `call_inbound`",
            envelope.event
        )));
    }
    let inbound = envelope
        .call_inbound
        .ok_or_else(|| ApiError::BadRequest("missing `call_inbound` object".into()))?;
    let called = PhoneNumber::parse(&inbound.to_number)
        .map_err(|e| ApiError::BadRequest(format!("`call_inbound.to_number`: {e}")))?;

    let tenant = state
        .tenants
        .resolve(&called)
        .await
        .map_err(|e| ApiError::Unavailable(format!("tenant directory unavailable: {e}")))?;
    let Some(tenant) = tenant else {
        // No tenant: an empty answer lets Retell's default agent take the call.
        metrics::counter!("warmline_fallback_activations_total", "kind" => "unknown_called_number")
            .increment(1);
        tracing::warn!(called = %called.masked(), "inbound call to a number no tenant has; answering empty");
        return Ok((
            HttpResponse::Ok().json(json!({ "call_inbound": {} })),
            "unknown_tenant",
        ));
    };

    let caller = PhoneNumber::parse(&inbound.from_number).ok();
    let ctx = match &caller {
        Some(caller) => state.context.assemble(&tenant, caller).await,
        None => {
            tracing::info!("caller number withheld or invalid; answering without caller context");
            state.context.anonymous(&tenant)
        }
    };
    let outcome = if ctx.missing.is_empty() {
        "ok"
    } else {
        "partial"
    };
    let body = json!({
        "call_inbound": {
            "dynamic_variables": dynamic_variables(&ctx),
            "metadata": {
                "tenant_id": ctx.tenant_id,
                "crm_contact_id": ctx.crm_contact_id,
                "context_missing": ctx.missing,
                "context_stale": ctx.stale,
            }
        }
    });
    Ok((HttpResponse::Ok().json(body), outcome))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(retell_inbound);
}
