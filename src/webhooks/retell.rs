//! Retell AI webhooks:
//! - `POST /retell/inbound` — `call_inbound`, answered with dynamic variables;
//! - `POST /retell/functions/{name}` and `POST /retell/functions` — custom
//!   functions (tools), default payload or `args_at_root`;
//! - `POST /retell/events` — `call_started`, `call_ended`, `call_analyzed`.
//!
//! Every request carries `x-retell-signature`, checked on the raw bytes.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::signature::verify_retell;
use super::{
    RawBody, Verification, ack_event, called_in, candidate_secrets, error_label, ignored,
    optional_phone, record, required_phone, unsigned_allowed, verified_by_any,
};
use crate::calls::{CallerContext, Inbound};
use crate::domain::{
    CallEvent, CallId, CallPhase, InboundCall, PhoneNumber, Provider, ToolCall, TranscriptLine,
};
use crate::error::ApiError;
use crate::startup::AppState;

const PROVIDER: &str = "retell";
/// Retell hands at most this much of a tool result to the LLM.
pub const MAX_RESULT_CHARS: usize = 15_000;

async fn verify(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verification, ApiError> {
    let called = called_in(
        body,
        &[&["call_inbound", "to_number"][..], &["call", "to_number"]],
    )
    .or_else(|| {
        let q = web::Query::<FunctionQuery>::from_query(req.query_string()).ok()?;
        optional_phone(q.to_number.as_deref())
    });
    let secrets = candidate_secrets(
        state,
        Provider::Retell,
        &state.settings.webhooks.retell_api_key,
        called,
    )
    .await;
    if secrets.is_empty() {
        return unsigned_allowed(state, req, PROVIDER, "RETELL_API_KEY");
    }
    let header = req
        .headers()
        .get("x-retell-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp_millis();
    verified_by_any("retell signature", &secrets, |key| {
        verify_retell(header, body, key, now)
    })
}

fn outcome_of<T>(r: &Result<T, ApiError>, ok: &'static str) -> &'static str {
    match r {
        Ok(_) => ok,
        Err(e) => error_label(e),
    }
}

// ----------------------------------------------------------------- inbound

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
pub fn dynamic_variables(ctx: &CallerContext) -> serde_json::Map<String, Value> {
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

pub fn context_metadata(ctx: &CallerContext) -> Value {
    json!({
        "tenant_id": ctx.tenant_id,
        "crm_contact_id": ctx.crm_contact_id,
        "context_missing": ctx.missing,
        "context_stale": ctx.stale,
    })
}

#[post("/retell/inbound")]
async fn retell_inbound(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = inbound(&state, &req, &body).await;
    record(PROVIDER, "call_inbound", outcome_of(&result, "ok"), started);
    result
}

async fn inbound(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    verify(state, req, body).await?;
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
    let called = required_phone(&inbound.to_number, "call_inbound.to_number")?;
    let caller = PhoneNumber::parse(&inbound.from_number).ok();
    let answer = state
        .calls
        .inbound(InboundCall {
            provider: Provider::Retell,
            called: called.clone(),
            caller,
            call_id: None,
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("tenant directory unavailable: {e}")))?;
    Ok(HttpResponse::Ok().json(match answer {
        // Empty: Retell's default agent for the number takes the call.
        Inbound::UnknownTenant => json!({ "call_inbound": {} }),
        Inbound::Context(ctx) => json!({
            "call_inbound": {
                "dynamic_variables": dynamic_variables(&ctx),
                "metadata": context_metadata(&ctx),
            }
        }),
    }))
}

// --------------------------------------------------------------- functions

#[derive(Deserialize, Default)]
struct FunctionQuery {
    call_id: Option<String>,
    from_number: Option<String>,
    to_number: Option<String>,
}

fn tool_call(
    path_name: Option<&str>,
    query: &FunctionQuery,
    body: &Value,
) -> Result<ToolCall, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("function payload must be a JSON object".into()))?;
    // Default payload: {name, call, args}; `args_at_root`: the args alone.
    let default_shape =
        obj.contains_key("args") && (obj.contains_key("call") || obj.contains_key("name"));
    let name = match (path_name, obj.get("name").and_then(Value::as_str)) {
        (Some(p), _) => p.to_owned(),
        (None, Some(n)) if default_shape => n.to_owned(),
        _ => {
            return Err(ApiError::BadRequest(
                "missing function `name` (in the path /retell/functions/{name} or the body)".into(),
            ));
        }
    };
    let (args, call) = if default_shape {
        let args = obj.get("args").cloned().unwrap_or(Value::Null);
        if !(args.is_object() || args.is_null()) {
            return Err(ApiError::BadRequest("`args` must be a JSON object".into()));
        }
        (args, obj.get("call").cloned().unwrap_or(Value::Null))
    } else {
        (body.clone(), Value::Null)
    };
    let field = |k: &str, q: &Option<String>| {
        call.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| q.clone())
    };
    let call_id = field("call_id", &query.call_id)
        .map(|id| {
            CallId::parse(&id).map_err(|e| ApiError::BadRequest(format!("`call.call_id`: {e}")))
        })
        .transpose()?;
    Ok(ToolCall {
        provider: Provider::Retell,
        invocation_id: None,
        name,
        args: if args.is_null() { json!({}) } else { args },
        call_id,
        caller: optional_phone(field("from_number", &query.from_number).as_deref()),
        called: optional_phone(field("to_number", &query.to_number).as_deref()),
    })
}

async fn function(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    path_name: Option<&str>,
    query: &FunctionQuery,
) -> Result<HttpResponse, ApiError> {
    verify(state, req, body).await?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid function payload: {e}")))?;
    let tc = tool_call(path_name, query, &value)?;
    // A tool's failure is a sentence for the agent, still a 200: Retell
    // retries non-2xx answers, which would only repeat the failure.
    let text = match state.calls.tool(tc).await {
        Ok(t) | Err(t) => t,
    };
    let text: String = text.chars().take(MAX_RESULT_CHARS).collect();
    Ok(HttpResponse::Ok().json(json!({ "result": text })))
}

#[post("/retell/functions/{name}")]
async fn retell_function_named(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
    name: web::Path<String>,
    query: web::Query<FunctionQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = function(&state, &req, &body, Some(&name), &query).await;
    record(PROVIDER, "function", outcome_of(&result, "ok"), started);
    result
}

#[post("/retell/functions")]
async fn retell_function(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
    query: web::Query<FunctionQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = function(&state, &req, &body, None, &query).await;
    record(PROVIDER, "function", outcome_of(&result, "ok"), started);
    result
}

// ------------------------------------------------------------------ events

#[derive(Deserialize)]
struct EventEnvelope {
    event: String,
    call: Option<Value>,
}

#[derive(Deserialize)]
struct RetellCall {
    call_id: String,
    from_number: Option<String>,
    to_number: Option<String>,
    direction: Option<String>,
    start_timestamp: Option<i64>,
    end_timestamp: Option<i64>,
    duration_ms: Option<i64>,
    transcript: Option<String>,
    #[serde(default)]
    transcript_object: Vec<RetellUtterance>,
    disconnection_reason: Option<String>,
    call_analysis: Option<Value>,
}

#[derive(Deserialize)]
struct RetellUtterance {
    role: String,
    content: String,
}

fn call_event(event: &str, phase: CallPhase, call: Value) -> Result<CallEvent, ApiError> {
    let c: RetellCall =
        serde_json::from_value(call).map_err(|e| ApiError::BadRequest(format!("`call`: {e}")))?;
    let id = CallId::parse(&c.call_id)
        .map_err(|e| ApiError::BadRequest(format!("`call.call_id`: {e}")))?;
    let mut e = CallEvent::new(Provider::Retell, id, phase, event);
    e.caller = optional_phone(c.from_number.as_deref());
    e.called = optional_phone(c.to_number.as_deref());
    e.direction = c.direction;
    e.started_at_ms = c.start_timestamp;
    e.ended_at_ms = c.end_timestamp;
    e.duration_ms = c.duration_ms;
    e.transcript = c.transcript;
    e.messages = c
        .transcript_object
        .into_iter()
        .filter(|u| u.role == "agent" || u.role == "user")
        .map(|u| TranscriptLine {
            role: if u.role == "agent" {
                "assistant".into()
            } else {
                "user".into()
            },
            content: u.content,
        })
        .collect();
    e.disconnection_reason = c.disconnection_reason;
    if let Some(a) = c.call_analysis {
        e.summary = a
            .get("call_summary")
            .and_then(Value::as_str)
            .map(str::to_owned);
        e.successful = a.get("call_successful").and_then(Value::as_bool);
        e.sentiment = a
            .get("user_sentiment")
            .and_then(Value::as_str)
            .map(str::to_owned);
        e.analysis = Some(a);
    }
    Ok(e)
}

async fn events(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(HttpResponse, String, &'static str), ApiError> {
    verify(state, req, body).await?;
    let envelope: EventEnvelope = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid event payload: {e}")))?;
    let phase = match envelope.event.as_str() {
        "call_started" => CallPhase::Started,
        "call_ended" => CallPhase::Ended,
        "call_analyzed" => CallPhase::Analyzed,
        other => return Ok((ignored(PROVIDER, other), other.to_owned(), "ignored")),
    };
    let call = envelope
        .call
        .ok_or_else(|| ApiError::BadRequest("missing `call` object".into()))?;
    let event = call_event(&envelope.event, phase, call)?;
    let resp = ack_event(state, event).await?;
    Ok((resp, envelope.event, "ok"))
}

#[post("/retell/events")]
async fn retell_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    match events(&state, &req, &body).await {
        Ok((resp, event, outcome)) => {
            record(PROVIDER, &event, outcome, started);
            Ok(resp)
        }
        Err(e) => {
            record(PROVIDER, "event", error_label(&e), started);
            Err(e)
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(retell_inbound)
        .service(retell_function_named)
        .service(retell_function)
        .service(retell_events);
}
