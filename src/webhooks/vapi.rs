//! Vapi server messages at `POST /vapi`, dispatched on `message.type`:
//! `assistant-request` (answered with `assistantOverrides.variableValues`),
//! `tool-calls` (answered with single-line `results[]`, HTTP 200 even on a
//! tool error), `status-update` and `end-of-call-report` (acknowledged once
//! durable). Other types are acknowledged and counted.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::DateTime;
use serde_json::{Value, json};

use super::retell::{context_metadata, dynamic_variables};
use super::signature::verify_vapi_hmac;
use super::{
    RawBody, Verification, ack_event, called_in, candidate_secrets, error_label, ignored,
    optional_phone, record, unsigned_allowed, verified_by_any,
};
use crate::admin::constant_time_eq;
use crate::calls::Inbound;
use crate::domain::{
    CallEvent, CallId, CallPhase, InboundCall, Provider, ToolCall, TranscriptLine,
};
use crate::error::ApiError;
use crate::startup::AppState;

const PROVIDER: &str = "vapi";

/// Bearer token, the legacy `X-Vapi-Secret`, or an HMAC credential — any of
/// Vapi's ways to authenticate, against `VAPI_SECRET` or the tenant's own.
async fn verify(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verification, ApiError> {
    let called = called_in(
        body,
        &[
            &["message", "phoneNumber", "number"][..],
            &["message", "call", "phoneNumber", "number"],
        ],
    );
    let secrets = candidate_secrets(
        state,
        Provider::Vapi,
        &state.settings.webhooks.vapi_secret,
        called,
    )
    .await;
    if secrets.is_empty() {
        return unsigned_allowed(state, req, PROVIDER, "VAPI_SECRET");
    }
    verified_by_any("vapi", &secrets, |secret| verify_one(req, body, secret))
}

fn verify_one(req: &HttpRequest, body: &[u8], secret: &[u8]) -> Result<(), String> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
    if let Some(token) = header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        return constant_time_eq(token.trim().as_bytes(), secret)
            .then_some(())
            .ok_or_else(|| "invalid bearer token".into());
    }
    if let Some(token) = header("x-vapi-secret") {
        return constant_time_eq(token.trim().as_bytes(), secret)
            .then_some(())
            .ok_or_else(|| "invalid X-Vapi-Secret".into());
    }
    verify_vapi_hmac(
        header("x-signature"),
        header("x-timestamp"),
        body,
        secret,
        chrono::Utc::now().timestamp_millis(),
    )
    .map_err(|e| e.to_string())
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

struct Parties {
    call_id: Option<CallId>,
    caller: Option<crate::domain::PhoneNumber>,
    called: Option<crate::domain::PhoneNumber>,
}

fn parties(m: &Value) -> Parties {
    Parties {
        call_id: text(m, &["call", "id"]).and_then(|id| CallId::parse(id).ok()),
        caller: optional_phone(
            text(m, &["customer", "number"]).or_else(|| text(m, &["call", "customer", "number"])),
        ),
        called: optional_phone(
            text(m, &["phoneNumber", "number"])
                .or_else(|| text(m, &["call", "phoneNumber", "number"])),
        ),
    }
}

fn ms(iso: Option<&str>) -> Option<i64> {
    iso.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
}

/// Vapi parses tool results line by line: newlines would break it.
fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn assistant_request(state: &AppState, m: &Value) -> Result<HttpResponse, ApiError> {
    let p = parties(m);
    let called = p.called.ok_or_else(|| {
        ApiError::BadRequest("`message.phoneNumber.number` is missing or not a phone number".into())
    })?;
    let answer = state
        .calls
        .inbound(InboundCall {
            provider: Provider::Vapi,
            called: called.clone(),
            caller: p.caller,
            call_id: p.call_id,
        })
        .await
        .map_err(|e| ApiError::Unavailable(format!("tenant directory unavailable: {e}")))?;
    let ctx = match answer {
        Inbound::UnknownTenant => return Ok(HttpResponse::Ok().json(json!({}))),
        Inbound::Context(ctx) => ctx,
    };
    let mut body = json!({
        "assistantOverrides": {
            "variableValues": dynamic_variables(&ctx),
            "metadata": context_metadata(&ctx),
        }
    });
    // The tenant's assistant, when its configuration names one.
    if let Ok(Some(t)) = state.calls.tenants.resolve(&called).await
        && let Some(id) = t.config.get("vapi_assistant_id").and_then(Value::as_str)
    {
        body["assistantId"] = id.into();
    }
    Ok(HttpResponse::Ok().json(body))
}

/// Parses one tool call, accepting the three shapes seen in Vapi's docs:
/// `function.arguments` (string or object), `arguments`, `parameters`.
fn tool_call(item: &Value, p: &Parties) -> Result<ToolCall, String> {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .ok_or("tool call without `id`")?;
    let name = text(item, &["function", "name"])
        .or_else(|| item.get("name").and_then(Value::as_str))
        .ok_or("tool call without a name")?;
    let raw = item
        .get("function")
        .and_then(|f| f.get("arguments"))
        .or_else(|| item.get("arguments"))
        .or_else(|| item.get("parameters"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let args = match raw {
        Value::String(s) if s.trim().is_empty() => json!({}),
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| format!("arguments are not JSON: {e}"))?
        }
        other => other,
    };
    Ok(ToolCall {
        provider: Provider::Vapi,
        invocation_id: Some(id.to_owned()),
        name: name.to_owned(),
        args,
        call_id: p.call_id.clone(),
        caller: p.caller.clone(),
        called: p.called.clone(),
    })
}

async fn tool_calls(state: &AppState, m: &Value) -> Result<HttpResponse, ApiError> {
    let list = m
        .get("toolCallList")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::BadRequest("`message.toolCallList` must be an array".into()))?;
    let p = parties(m);
    let runs = list.iter().map(|item| {
        let parsed = tool_call(item, &p);
        let fallback_id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        async move {
            match parsed {
                Ok(tc) => {
                    let (id, name) = (
                        tc.invocation_id.clone().unwrap_or_default(),
                        tc.name.clone(),
                    );
                    match state.calls.tool(tc).await {
                        Ok(r) => {
                            json!({ "toolCallId": id, "name": name, "result": single_line(&r) })
                        }
                        Err(e) => {
                            json!({ "toolCallId": id, "name": name, "error": single_line(&e) })
                        }
                    }
                }
                Err(e) => {
                    json!({ "toolCallId": fallback_id, "name": "", "error": single_line(&e) })
                }
            }
        }
    });
    let results = futures_util::future::join_all(runs).await;
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

fn event_base(m: &Value, phase: CallPhase, event: &str) -> Result<CallEvent, ApiError> {
    let p = parties(m);
    let id = p
        .call_id
        .ok_or_else(|| ApiError::BadRequest("`message.call.id` is missing or invalid".into()))?;
    let mut e = CallEvent::new(Provider::Vapi, id, phase, event);
    e.caller = p.caller;
    e.called = p.called;
    e.direction = text(m, &["call", "type"]).map(|t| {
        if t.contains("inbound") {
            "inbound".into()
        } else {
            t.into()
        }
    });
    Ok(e)
}

async fn status_update(state: &AppState, m: &Value) -> Result<HttpResponse, ApiError> {
    let status = text(m, &["status"]).unwrap_or("");
    let phase = match status {
        "in-progress" => CallPhase::Started,
        "ended" => CallPhase::Ended,
        other => return Ok(ignored(PROVIDER, &format!("status-update:{other}"))),
    };
    let mut e = event_base(m, phase, &format!("status-update:{status}"))?;
    e.disconnection_reason = text(m, &["endedReason"]).map(str::to_owned);
    ack_event(state, e).await
}

async fn end_of_call_report(state: &AppState, m: &Value) -> Result<HttpResponse, ApiError> {
    let mut e = event_base(m, CallPhase::Analyzed, "end-of-call-report")?;
    e.started_at_ms = ms(text(m, &["startedAt"]));
    e.ended_at_ms = ms(text(m, &["endedAt"]));
    e.disconnection_reason = text(m, &["endedReason"]).map(str::to_owned);
    e.transcript = text(m, &["artifact", "transcript"]).map(str::to_owned);
    e.messages = m
        .get("artifact")
        .and_then(|a| a.get("messages"))
        .and_then(Value::as_array)
        .map(|msgs| {
            msgs.iter()
                .filter_map(|x| {
                    let role = match x.get("role").and_then(Value::as_str)? {
                        "bot" | "assistant" => "assistant",
                        "user" => "user",
                        _ => return None,
                    };
                    let content = x
                        .get("message")
                        .or_else(|| x.get("content"))
                        .and_then(Value::as_str)?;
                    Some(TranscriptLine {
                        role: role.into(),
                        content: content.into(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = m.get("analysis") {
        e.summary = a.get("summary").and_then(Value::as_str).map(str::to_owned);
        e.successful = match a.get("successEvaluation") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        e.analysis = Some(a.clone());
    }
    ack_event(state, e).await
}

async fn dispatch(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(HttpResponse, String), ApiError> {
    verify(state, req, body).await?;
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid Vapi message: {e}")))?;
    let m = envelope
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| ApiError::BadRequest("missing `message` object".into()))?;
    let kind = m
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("missing `message.type`".into()))?
        .to_owned();
    let resp = match kind.as_str() {
        "assistant-request" => assistant_request(state, m).await?,
        "tool-calls" => tool_calls(state, m).await?,
        "status-update" => status_update(state, m).await?,
        "end-of-call-report" => end_of_call_report(state, m).await?,
        other => ignored(PROVIDER, other),
    };
    Ok((resp, kind))
}

#[post("/vapi")]
async fn vapi(
    state: web::Data<AppState>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    match dispatch(&state, &req, &body).await {
        Ok((resp, kind)) => {
            record(PROVIDER, &kind, "ok", started);
            Ok(resp)
        }
        Err(e) => {
            record(PROVIDER, "message", error_label(&e), started);
            Err(e)
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(vapi);
}
