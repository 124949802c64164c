//! ElevenLabs Agents webhooks:
//! - `POST /elevenlabs/initiation` — conversation-initiation client data for
//!   inbound telephony, answered with `dynamic_variables`. ElevenLabs signs
//!   nothing here: it sends the secret headers you configure, and warmline
//!   expects `X-Warmline-Secret: $ELEVENLABS_WEBHOOK_SECRET` (or a bearer).
//! - `POST /elevenlabs/post-call` — `post_call_transcription`, verified with
//!   `ElevenLabs-Signature`; `post_call_audio` and `call_initiation_failure`
//!   are acknowledged and counted.
//!
//! Numbers from a payload are range-checked before any arithmetic: one out of
//! range is a 400 naming the field, never echoing the value.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use serde_json::{Map, Number, Value, json};

use super::signature::verify_elevenlabs;
use super::{
    Delivery, EventBody, Gate, Handled, RawBody, observed, optional_phone, required_phone, text,
    variables,
};
use crate::calls::{CallerContext, Calls, Inbound};
use crate::domain::{
    CallEvent, CallId, CallPhase, InboundCall, PhoneNumber, Provider, TranscriptLine,
};
use crate::error::ApiError;
use crate::support::constant_time_eq;
use crate::support::json;

const PROVIDER: &str = "elevenlabs";

// -------------------------------------------------------------- initiation

#[derive(Deserialize)]
struct InitiationBody {
    called_number: Option<String>,
    caller_id: Option<String>,
    call_sid: Option<String>,
    /// Not documented for this webhook; honoured when a bridge sends it.
    direction: Option<String>,
}

pub(super) fn parse_initiation(body: &[u8]) -> Result<InboundCall, ApiError> {
    let b: InitiationBody = json::parse(body, "initiation payload")?;
    let called_raw = b
        .called_number
        .ok_or_else(|| ApiError::BadRequest("missing `called_number`".into()))?;
    let call = InboundCall {
        provider: Provider::ElevenLabs,
        called: required_phone(&called_raw, "called_number")?,
        caller: optional_phone(b.caller_id.as_deref()),
        call_id: b.call_sid.as_deref().and_then(|s| CallId::parse(s).ok()),
    };
    Ok(if b.direction.as_deref() == Some("outbound") {
        reversed(call)
    } else {
        call
    })
}

/// The call the other way round: on an outbound call the business is the
/// one calling, so `caller_id` is its number and `called_number` the
/// customer's. A call whose customer number is withheld cannot be reversed.
fn reversed(call: InboundCall) -> InboundCall {
    match call.caller.clone() {
        Some(business) => InboundCall {
            caller: Some(call.called.clone()),
            called: business,
            ..call
        },
        None => call,
    }
}

/// The initiation as the business sees it. ElevenLabs sends this webhook
/// for outbound calls too, without saying which it is: a `called_number`
/// no tenant has, from a `caller_id` a tenant has, is that tenant calling
/// its customer. Both lookups are answered from memory.
async fn business_side(calls: &Calls, call: InboundCall) -> Result<InboundCall, ApiError> {
    let Some(caller) = &call.caller else {
        return Ok(call);
    };
    if calls.tenant(&call.called).await?.is_some() || calls.tenant(caller).await?.is_none() {
        return Ok(call);
    }
    Ok(reversed(call))
}

async fn initiation(
    calls: &Calls,
    gate: &Gate,
    req: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    let given = header("x-warmline-secret")
        .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")));
    let parsed = match parse_initiation(body) {
        Ok(call) => business_side(calls, call).await,
        Err(e) => Err(e),
    };
    let (call, _) = gate
        .admit(
            calls,
            Provider::ElevenLabs,
            req,
            parsed,
            |c| Some(c.called.clone()),
            |secret| match given {
                None => Err("missing X-Warmline-Secret header".into()),
                Some(g) if constant_time_eq(g.trim().as_bytes(), secret) => Ok(()),
                Some(_) => Err("invalid secret header".into()),
            },
        )
        .await?;
    let answer = |vars: Map<String, Value>| {
        json!({
            "type": "conversation_initiation_client_data",
            "dynamic_variables": vars,
        })
    };
    Ok(match calls.inbound(call).await? {
        Inbound::UnknownTenant => {
            // Counted (`unknown_called_number`) and logged by the call service.
            tracing::info!("ElevenLabs initiation for an unknown number: neutral variables");
            HttpResponse::Ok().json(answer(neutral_variables()))
        }
        Inbound::Context { context, .. } => {
            variables::json_answer(context.rendered(variables::ELEVENLABS_INITIATION, |c| {
                variables::to_bytes(&answer(variables::as_values(c)))
            }))
        }
    })
}

/// Every variable warmline defines, each with its type's neutral value (an
/// empty string, `false`, `0`): ElevenLabs needs every variable the agent
/// declares in every answer, also when no tenant has the called number.
fn neutral_variables() -> Map<String, Value> {
    variables::as_values(&CallerContext::nobody())
        .into_iter()
        .map(|(name, value)| {
            let neutral = match value {
                Value::Bool(_) => Value::Bool(false),
                Value::Number(_) => Value::from(0),
                _ => Value::String(String::new()),
            };
            (name, neutral)
        })
        .collect()
}

// --------------------------------------------------------------- post-call

/// 2000-01-01T00:00:00Z: no call warmline hears of started before it.
const EARLIEST_START_S: i64 = 946_684_800;
/// How far past warmline's clock a call's start may be.
const START_LEEWAY_S: i64 = 24 * 60 * 60;
/// The longest call: a day.
const MAX_DURATION_S: i64 = 24 * 60 * 60;

/// Seconds (an integer, or a float: ElevenLabs' durations are) as whole
/// milliseconds; `None` when that does not fit an `i64`.
fn seconds_to_ms(n: &Number) -> Option<i64> {
    if let Some(s) = n.as_i64() {
        return s.checked_mul(1000);
    }
    let ms = (n.as_f64()? * 1000.0).round();
    // `i64::MAX as f64` rounds up to 2^63, which itself does not fit.
    (ms.is_finite() && ms >= i64::MIN as f64 && ms < i64::MAX as f64).then_some(ms as i64)
}

/// The seconds at `key` of `meta` as milliseconds within `[lo_s, hi_s]`:
/// `None` when absent or null, a 400 naming `field` otherwise — the value is
/// never echoed.
fn ms_within(
    meta: &Value,
    key: &str,
    field: &str,
    lo_s: i64,
    hi_s: i64,
) -> Result<Option<i64>, ApiError> {
    let n = match meta.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(_) => return Err(ApiError::BadRequest(format!("`{field}` must be a number"))),
    };
    let in_range = |ms: &i64| {
        let (lo, hi) = (lo_s.saturating_mul(1000), hi_s.saturating_mul(1000));
        (lo..=hi).contains(ms)
    };
    match seconds_to_ms(n).filter(in_range) {
        Some(ms) => Ok(Some(ms)),
        None => Err(ApiError::BadRequest(format!("`{field}` is out of range"))),
    }
}

/// `metadata.phone_call.direction` of a post-call payload.
fn direction(data: &Value) -> Option<&str> {
    text(data, &["metadata", "phone_call", "direction"])
}

/// One of the system variables ElevenLabs echoes in a post-call payload.
fn system_variable<'a>(data: &'a Value, name: &str) -> Option<&'a str> {
    text(
        data,
        &[
            "conversation_initiation_client_data",
            "dynamic_variables",
            name,
        ],
    )
}

/// The agent's number in a post-call payload: the business's line, either
/// way the call went. The system variables name the two ends as caller and
/// called, so on an outbound call the business is the caller.
fn agent_number(data: &Value) -> Option<PhoneNumber> {
    let fallback = if direction(data) == Some("outbound") {
        "system__caller_id"
    } else {
        "system__called_number"
    };
    optional_phone(
        text(data, &["metadata", "phone_call", "agent_number"])
            .or_else(|| system_variable(data, fallback)),
    )
}

/// The customer's number in a post-call payload.
fn customer_number(data: &Value) -> Option<PhoneNumber> {
    let fallback = if direction(data) == Some("outbound") {
        "system__called_number"
    } else {
        "system__caller_id"
    };
    optional_phone(
        text(data, &["metadata", "phone_call", "external_number"])
            .or_else(|| system_variable(data, fallback)),
    )
}

/// A post-call delivery, checked against `now_s` (warmline's clock).
pub(super) fn parse_post_call(body: &[u8], now_s: i64) -> Result<(String, Delivery), ApiError> {
    let b: Value = json::parse(body, "post-call payload")?;
    let kind = b
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("missing `type`".into()))?
        .to_owned();
    if kind != "post_call_transcription" {
        let called = b.get("data").and_then(agent_number);
        let event = kind.clone();
        return Ok((kind, Delivery::Ignored { event, called }));
    }
    let data = b
        .get("data")
        .ok_or_else(|| ApiError::BadRequest("missing `data` object".into()))?;
    let event = transcription_event(data, now_s)?;
    Ok((kind, Delivery::Call(Box::new(event))))
}

fn transcription_event(data: &Value, now_s: i64) -> Result<CallEvent, ApiError> {
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
    let d = &mut e.details;
    d.caller = customer_number(data);
    d.called = agent_number(data);
    d.direction = direction(data).map(str::to_owned);
    d.started_at_ms = ms_within(
        &meta,
        "start_time_unix_secs",
        "data.metadata.start_time_unix_secs",
        EARLIEST_START_S,
        now_s.saturating_add(START_LEEWAY_S),
    )?;
    d.duration_ms = ms_within(
        &meta,
        "call_duration_secs",
        "data.metadata.call_duration_secs",
        0,
        MAX_DURATION_S,
    )?;
    if let (Some(s), Some(dur)) = (d.started_at_ms, d.duration_ms) {
        d.ended_at_ms = s.checked_add(dur);
    }
    d.disconnection_reason = text(&meta, &["termination_reason"]).map(str::to_owned);
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
        d.transcript = Some(
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
        d.summary = text(a, &["transcript_summary"]).map(str::to_owned);
        d.successful = match text(a, &["call_successful"]) {
            Some("success") => Some(true),
            Some("failure") => Some(false),
            _ => None,
        };
        d.analysis = Some(a.clone());
    }
    Ok(e)
}

async fn post_call(
    calls: &Calls,
    gate: &Gate,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Handled, ApiError> {
    let header = req
        .headers()
        .get("elevenlabs-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    let ((kind, delivery), _) = gate
        .admit(
            calls,
            Provider::ElevenLabs,
            req,
            parse_post_call(body, now),
            |(_, d)| d.called(),
            |secret| verify_elevenlabs(header, body, secret, now).map_err(|e| e.to_string()),
        )
        .await?;
    delivery.acknowledge(calls, PROVIDER, kind).await
}

#[post("/elevenlabs/initiation")]
async fn elevenlabs_initiation(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    observed(&gate, PROVIDER, "conversation_initiation", async {
        let response = initiation(&calls, &gate, &req, &body).await?;
        Ok(Handled::ok(response, "conversation_initiation"))
    })
    .await
}

#[post("/elevenlabs/post-call")]
async fn elevenlabs_post_call(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    EventBody(body): EventBody,
) -> Result<HttpResponse, ApiError> {
    observed(
        &gate,
        PROVIDER,
        "post_call",
        post_call(&calls, &gate, &req, &body),
    )
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(elevenlabs_initiation)
        .service(elevenlabs_post_call);
}
