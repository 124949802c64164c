//! `POST /api/v1/context`: the customer's context as typed JSON — the
//! fields of the agents' dynamic variables with their own types (numbers,
//! booleans, lists as arrays, `null` for what is unknown), serialised once,
//! straight from the context. A cached customer is answered from memory:
//! no upstream, no database query.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Serialize;

use super::{Target, observed, resolve};
use crate::calls::{CallerContext, Calls, Rendering};
use crate::error::ApiError;
use crate::support::json;

#[derive(Serialize)]
struct Answer<'a> {
    tenant_id: &'a str,
    caller: &'a str,
    business_name: &'a str,
    customer_name: Option<&'a str>,
    is_returning_caller: bool,
    total_calls: i64,
    /// RFC 3339, UTC.
    last_call_at: Option<String>,
    memory_summary: Option<&'a str>,
    /// As the agent would say them, in the business's time zone.
    next_available_slots: Vec<String>,
    /// The same slots' starts, RFC 3339.
    next_slot_starts: Vec<String>,
    time_zone: &'a str,
    crm_contact_id: Option<&'a str>,
    /// Parts left out (not back in time) or served stale.
    context_missing: &'a [String],
    context_stale: &'a [String],
}

/// The answer's slot among a context's rendered answers (the webhooks'
/// are 0 and 1, in `webhooks::variables`).
const RENDERED: Rendering = Rendering(2);

/// The answer for `caller`, whose context `ctx` is (the context cache is
/// keyed by caller, so a rendered answer is always its caller's).
fn answer(caller: &str, ctx: &CallerContext) -> bytes::Bytes {
    let a = Answer {
        tenant_id: &ctx.tenant_id,
        caller,
        business_name: &ctx.business_name,
        customer_name: ctx.customer_name.as_deref(),
        is_returning_caller: ctx.returning_caller,
        total_calls: ctx.total_calls,
        last_call_at: ctx
            .last_call_at_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339()),
        memory_summary: ctx.memory_summary.as_deref(),
        next_available_slots: ctx.slots_spoken(),
        next_slot_starts: ctx
            .next_slots
            .iter()
            .map(|s| s.start.to_rfc3339())
            .collect(),
        time_zone: ctx.time_zone.name(),
        crm_contact_id: ctx.crm_contact_id.as_deref(),
        context_missing: &ctx.missing,
        context_stale: &ctx.stale,
    };
    // Strings, numbers and lists: serialising it cannot fail.
    serde_json::to_vec(&a).unwrap_or_default().into()
}

#[post("/api/v1/context")]
#[tracing::instrument(name = "api.context", skip_all, fields(tenant = tracing::field::Empty))]
pub(super) async fn context(
    calls: web::Data<Calls>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    observed("context", async {
        let target: Target = json::parse(&body, "context request").map_err(ApiError::from)?;
        let (caller, tenant) = resolve(&calls, &req, &target).await?;
        let ctx = calls.customer_context(&tenant, &caller).await;
        let bytes = ctx.rendered(RENDERED, |c| answer(caller.as_str(), c));
        Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(bytes))
    })
    .await
}
