//! ElevenLabs Agents webhooks:
//! - `POST /elevenlabs/initiation` — conversation-initiation client data for
//!   inbound telephony, answered with `dynamic_variables`. ElevenLabs signs
//!   nothing here: it sends the secret headers you configure, and warmline
//!   expects `X-Warmline-Secret: $ELEVENLABS_WEBHOOK_SECRET` (or a bearer).
//! - `POST /elevenlabs/post-call` — `post_call_transcription`, verified with
//!   `ElevenLabs-Signature`; `post_call_audio` and `call_initiation_failure`
//!   are acknowledged and counted.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::signature::verify_elevenlabs;
use super::{
    RawBody, Verification, ack_event, called_in, candidate_secrets, error_label, ignored,
    optional_phone, record, required_phone, unsigned_allowed, verified_by_any,
};
use crate::admin::constant_time_eq;
use crate::calls::{CallerContext, Inbound};
use crate::domain::{CallEvent, CallId, CallPhase, InboundCall, Provider, TranscriptLine};
use crate::error::ApiError;
use crate::startup::AppState;

const PROVIDER: &str = "elevenlabs";

async fn secrets(state: &AppState, body: &[u8]) -> Vec<secrecy::SecretString> {
    let called = called_in(
        body,
        &[
            &["called_number"][..],
            &["data", "metadata", "phone_call", "agent_number"],
            &[
                "data",
                "conversation_initiation_client_data",
                "dynamic_variables",
                "system__called_number",
            ],
        ],
    );
    candidate_secrets(
        state,
        Provider::ElevenLabs,
        &state.settings.webhooks.elevenlabs_secret,
        called,
    )
    .await
}

async fn verify_initiation(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verification, ApiError> {
    let secrets = secrets(state, body).await;
    if secrets.is_empty() {
        return unsigned_allowed(state, req, PROVIDER, "ELEVENLABS_WEBHOOK_SECRET");
    }
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let given = header("x-warmline-secret")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .ok_or_else(|| {
            ApiError::Unauthorized("elevenlabs: missing X-Warmline-Secret header".into())
        })?;
    secrets
        .iter()
        .any(|s| constant_time_eq(given.trim().as_bytes(), s.expose_secret().as_bytes()))
        .then_some(Verification::Signed)
        .ok_or_else(|| ApiError::Unauthorized("elevenlabs: invalid secret header".into()))
}

async fn verify_post_call(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verification, ApiError> {
    let secrets = secrets(state, body).await;
    if secrets.is_empty() {
        return unsigned_allowed(state, req, PROVIDER, "ELEVENLABS_WEBHOOK_SECRET");
    }
    let header = req
        .headers()
        .get("elevenlabs-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    verified_by_any("elevenlabs", &secrets, |secret| {
        verify_elevenlabs(header, body, secret, now)
    })
}

/// ElevenLabs dynamic variables may be strings, numbers or booleans.
fn variables(ctx: &CallerContext) -> Value {
    json!({
        "business_name": ctx.business_name,
        "customer_name": ctx.customer_name.clone().unwrap_or_default(),
        "is_returning_caller": ctx.returning_caller,
        "total_calls": ctx.total_calls,
        "memory_summary": ctx.memory_summary.clone().unwrap_or_default(),
        "next_available_slots": ctx.slots_spoken().join("; "),
        "time_zone": ctx.time_zone,
    })
}

async fn initiation(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    verify_initiation(state, req, body).await?;
    let b: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid initiation payload: {e}")))?;
    let called_raw = b
        .get("called_number")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("missing `called_number`".into()))?;
    let called = required_phone(called_raw, "called_number")?;
    let caller = optional_phone(b.get("caller_id").and_then(Value::as_str));
    let call_id = b
        .get("call_sid")
        .and_then(Value::as_str)
        .and_then(|s| CallId::parse(s).ok());
    let answer = state
        .calls
        .inbound(InboundCall {
            provider: Provider::ElevenLabs,
            called: called.clone(),
            caller,
            call_id,
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("tenant directory unavailable: {e}")))?;
    let vars = match answer {
        Inbound::UnknownTenant => json!({}),
        Inbound::Context(ctx) => variables(&ctx),
    };
    Ok(HttpResponse::Ok().json(json!({
        "type": "conversation_initiation_client_data",
        "dynamic_variables": vars,
    })))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

fn transcription_event(data: &Value) -> Result<CallEvent, ApiError> {
    let id = text(data, &["conversation_id"])
        .ok_or_else(|| ApiError::BadRequest("missing `data.conversation_id`".into()))?;
    let id = CallId::parse(id)
        .map_err(|e| ApiError::BadRequest(format!("`data.conversation_id`: {e}")))?;
    let mut e = CallEvent::new(
        Provider::ElevenLabs,
        id,
        CallPhase::Analyzed,
        "post_call_transcription",
    );
    let meta = data.get("metadata").cloned().unwrap_or(Value::Null);
    let vars = data
        .get("conversation_initiation_client_data")
        .and_then(|c| c.get("dynamic_variables"))
        .cloned()
        .unwrap_or(Value::Null);
    e.caller = optional_phone(
        text(&meta, &["phone_call", "external_number"])
            .or_else(|| text(&vars, &["system__caller_id"])),
    );
    e.called = optional_phone(
        text(&meta, &["phone_call", "agent_number"])
            .or_else(|| text(&vars, &["system__called_number"])),
    );
    e.started_at_ms = meta
        .get("start_time_unix_secs")
        .and_then(Value::as_i64)
        .map(|s| s * 1000);
    e.duration_ms = meta
        .get("call_duration_secs")
        .and_then(Value::as_f64)
        .map(|s| (s * 1000.0) as i64);
    if let (Some(s), Some(d)) = (e.started_at_ms, e.duration_ms) {
        e.ended_at_ms = Some(s + d);
    }
    e.disconnection_reason = text(&meta, &["termination_reason"]).map(str::to_owned);
    e.messages = data
        .get("transcript")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| {
                    let role = match l.get("role").and_then(Value::as_str)? {
                        "agent" => "assistant",
                        "user" => "user",
                        _ => return None,
                    };
                    let content = l.get("message").and_then(Value::as_str)?;
                    Some(TranscriptLine {
                        role: role.into(),
                        content: content.into(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if !e.messages.is_empty() {
        e.transcript = Some(
            e.messages
                .iter()
                .map(|m| {
                    format!(
                        "{}: {}",
                        if m.role == "user" { "User" } else { "Agent" },
                        m.content
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    if let Some(a) = data.get("analysis") {
        e.summary = text(a, &["transcript_summary"]).map(str::to_owned);
        e.successful = match text(a, &["call_successful"]) {
            Some("success") => Some(true),
            Some("failure") => Some(false),
            _ => None,
        };
        e.analysis = Some(a.clone());
    }
    Ok(e)
}

async fn post_call(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(HttpResponse, String), ApiError> {
    verify_post_call(state, req, body).await?;
    let b: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid post-call payload: {e}")))?;
    let kind = b
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("missing `type`".into()))?
        .to_owned();
    if kind != "post_call_transcription" {
        return Ok((ignored(PROVIDER, &kind), kind));
    }
    let data = b
        .get("data")
        .ok_or_else(|| ApiError::BadRequest("missing `data` object".into()))?;
    let event = transcription_event(data)?;
    Ok((ack_event(state, event).await?, kind))
}

#[post("/elevenlabs/initiation")]
async fn elevenlabs_initiation(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = initiation(&state, &req, &body).await;
    record(
        PROVIDER,
        "conversation_initiation",
        result.as_ref().map_or_else(error_label, |_| "ok"),
        started,
    );
    result
}

#[post("/elevenlabs/post-call")]
async fn elevenlabs_post_call(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    match post_call(&state, &req, &body).await {
        Ok((resp, kind)) => {
            record(PROVIDER, &kind, "ok", started);
            Ok(resp)
        }
        Err(e) => {
            record(PROVIDER, "post_call", error_label(&e), started);
            Err(e)
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(elevenlabs_initiation)
        .service(elevenlabs_post_call);
}
