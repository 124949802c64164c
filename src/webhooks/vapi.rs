//! Vapi server messages at `POST /vapi`, dispatched on `message.type`:
//! `assistant-request` (answered with `assistantOverrides.variableValues`),
//! `tool-calls` (answered with single-line `results[]`, HTTP 200 even on a
//! tool error), `status-update` and `end-of-call-report` (acknowledged once
//! durable). Other types are acknowledged and counted.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::DateTime;
use serde_json::{Value, json};

use super::{Delivery, EventBody, Gate, Handled, observed, optional_phone, text, variables};
use crate::calls::{Calls, Inbound};
use crate::domain::{
    CallEvent, CallId, CallPhase, InboundCall, PhoneNumber, Provider, ToolCall, ToolRequest,
    TranscriptLine,
};
use crate::error::ApiError;
use crate::support::json;

const PROVIDER: &str = "vapi";

/// Who a message is about.
#[derive(Clone)]
pub(super) struct Parties {
    call_id: Option<CallId>,
    caller: Option<PhoneNumber>,
    called: Option<PhoneNumber>,
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

/// What a call over SIP names instead of `phoneNumber.number`: the Vapi
/// phone-number id and the SIP URI, tried in that order against the
/// tenants' `line_ids`.
fn lines(m: &Value) -> impl Iterator<Item = &str> {
    [
        &["phoneNumber", "id"][..],
        &["call", "phoneNumberId"],
        &["phoneNumber", "sipUri"],
        &["call", "phoneNumber", "sipUri"],
    ]
    .into_iter()
    .filter_map(|path| text(m, path))
}

/// A message that names no number but a line a tenant claims is read as a
/// message to that tenant's number, before anything else looks at it.
async fn resolve_line(calls: &Calls, m: &mut Value) -> Result<(), ApiError> {
    if parties(m).called.is_some() {
        return Ok(());
    }
    let mut number = None;
    for line in lines(m) {
        number = calls.line_number(line).await?;
        if number.is_some() {
            break;
        }
    }
    if let (Some(n), Some(obj)) = (number, m.as_object_mut()) {
        let phone = obj.entry("phoneNumber").or_insert_with(|| json!({}));
        if !phone.is_object() {
            *phone = json!({});
        }
        if let Some(phone) = phone.as_object_mut() {
            phone.insert("number".into(), Value::String(n.as_str().to_owned()));
        }
    }
    Ok(())
}

/// One entry of `toolCallList`, parsed: the tool call, or why it could not
/// be read.
type ParsedToolCall = Result<ToolCall, Unreadable>;

/// A tool call that could not be read: its id and name as far as they were
/// given (Vapi's result names both), and why.
pub(super) struct Unreadable {
    id: String,
    name: String,
    problem: String,
}

/// A server message, typed.
pub(super) enum Message {
    AssistantRequest(InboundCall),
    /// An assistant request over SIP for a line no tenant names.
    UnknownLine,
    ToolCalls {
        parties: Parties,
        list: Vec<ParsedToolCall>,
    },
    Delivery(Delivery),
}

impl Message {
    fn called(&self) -> Option<PhoneNumber> {
        match self {
            Message::AssistantRequest(c) => Some(c.called.clone()),
            Message::UnknownLine => None,
            Message::ToolCalls { parties, .. } => parties.called.clone(),
            Message::Delivery(d) => d.called(),
        }
    }
}

/// The message and its `type` (the metrics' event label), without
/// resolving a SIP line.
pub(super) fn parse(body: &[u8]) -> Result<(String, Message), ApiError> {
    message(&envelope(body)?)
}

/// The `message` object of a body.
fn envelope(body: &[u8]) -> Result<Value, ApiError> {
    let mut envelope: Value = json::parse(body, "Vapi message")?;
    match envelope.get_mut("message").map(Value::take) {
        Some(m @ Value::Object(_)) => Ok(m),
        _ => Err(ApiError::BadRequest("missing `message` object".into())),
    }
}

fn message(m: &Value) -> Result<(String, Message), ApiError> {
    let kind = m
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("missing `message.type`".into()))?
        .to_owned();
    let p = parties(m);
    let no_call_id = p.call_id.is_none() && text(m, &["call", "id"]).is_none();
    let message = match kind.as_str() {
        // Chat sessions report status and end-of-call without a call: there
        // is nothing to log, so they are acknowledged and counted.
        "status-update" | "end-of-call-report" if no_call_id => {
            Message::Delivery(Delivery::Ignored {
                event: kind.clone(),
                called: p.called,
            })
        }
        "assistant-request" if p.called.is_none() && lines(m).next().is_some() => {
            Message::UnknownLine
        }
        "assistant-request" => Message::AssistantRequest(InboundCall {
            provider: Provider::Vapi,
            called: p.called.ok_or_else(|| {
                ApiError::BadRequest(
                    "`message.phoneNumber.number` is missing or not a phone number".into(),
                )
            })?,
            caller: p.caller,
            call_id: p.call_id,
        }),
        "tool-calls" => {
            let list = m
                .get("toolCallList")
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ApiError::BadRequest("`message.toolCallList` must be an array".into())
                })?;
            Message::ToolCalls {
                list: list.iter().map(|item| tool_call(item, &p)).collect(),
                parties: p,
            }
        }
        "status-update" => match text(m, &["status"]).unwrap_or("") {
            status @ ("in-progress" | "ended") => {
                let phase = if status == "ended" {
                    CallPhase::Ended
                } else {
                    CallPhase::Started
                };
                let mut e = event_base(m, p, phase, &format!("status-update:{status}"))?;
                e.details.disconnection_reason = text(m, &["endedReason"]).map(str::to_owned);
                Message::Delivery(Delivery::Call(Box::new(e)))
            }
            other => Message::Delivery(Delivery::Ignored {
                event: format!("status-update:{other}"),
                called: p.called,
            }),
        },
        "end-of-call-report" => {
            Message::Delivery(Delivery::Call(Box::new(end_of_call_report(m, p)?)))
        }
        other => Message::Delivery(Delivery::Ignored {
            event: other.to_owned(),
            called: p.called,
        }),
    };
    Ok((kind, message))
}

/// Parses one tool call, accepting the three shapes seen in Vapi's docs:
/// `function.arguments` (string or object), `arguments`, `parameters`.
fn tool_call(item: &Value, p: &Parties) -> ParsedToolCall {
    let id = item.get("id").and_then(Value::as_str);
    let name =
        text(item, &["function", "name"]).or_else(|| item.get("name").and_then(Value::as_str));
    let fail = |problem: String| Unreadable {
        id: id.unwrap_or("").to_owned(),
        name: name.unwrap_or("").to_owned(),
        problem,
    };
    let id = id.ok_or_else(|| fail("tool call without `id`".into()))?;
    let name = name.ok_or_else(|| fail("tool call without a name".into()))?;
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
            json::parse(s.as_bytes(), "arguments").map_err(|e| fail(e.to_string()))?
        }
        other => other,
    };
    Ok(ToolCall {
        provider: Provider::Vapi,
        invocation_id: Some(id.to_owned()),
        request: ToolRequest::parse(name, &args),
        arguments: args,
        call_id: p.call_id.clone(),
        caller: p.caller.clone(),
        called: p.called.clone(),
        // Vapi's id of this tool call: the same on every delivery of it.
        replay_key: Some(format!("vapi:{id}")),
        tenant_scope: None,
    })
}

fn ms(iso: Option<&str>) -> Option<i64> {
    iso.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
}

fn event_base(m: &Value, p: Parties, phase: CallPhase, event: &str) -> Result<CallEvent, ApiError> {
    let id = p
        .call_id
        .ok_or_else(|| ApiError::BadRequest("`message.call.id` is missing or invalid".into()))?;
    let mut e = CallEvent::new(Provider::Vapi, id, phase, event);
    e.details.caller = p.caller;
    e.details.called = p.called;
    e.details.direction = text(m, &["call", "type"]).map(direction);
    Ok(e)
}

/// The direction of a call by its Vapi `call.type`: `inboundPhoneCall`
/// and `outboundPhoneCall` are `inbound` and `outbound`, as every platform
/// says it; anything else (`webCall`) is kept as Vapi names it. Either way
/// `customer.number` is the customer and `phoneNumber.number` the business.
fn direction(call_type: &str) -> String {
    match call_type {
        "inboundPhoneCall" => "inbound".into(),
        "outboundPhoneCall" => "outbound".into(),
        other => other.into(),
    }
}

fn end_of_call_report(m: &Value, p: Parties) -> Result<CallEvent, ApiError> {
    let mut e = event_base(m, p, CallPhase::Analyzed, "end-of-call-report")?;
    let d = &mut e.details;
    d.started_at_ms = ms(text(m, &["startedAt"]));
    d.ended_at_ms = ms(text(m, &["endedAt"]));
    d.disconnection_reason = text(m, &["endedReason"]).map(str::to_owned);
    d.transcript = text(m, &["artifact", "transcript"]).map(str::to_owned);
    if let Some(a) = m.get("analysis") {
        d.summary = a.get("summary").and_then(Value::as_str).map(str::to_owned);
        d.successful = match a.get("successEvaluation") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        d.analysis = Some(a.clone());
    }
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
    Ok(e)
}

/// Vapi parses tool results line by line: newlines would break it.
fn single_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What Vapi is told when warmline cannot name an assistant: it speaks
/// `error` to the caller and ends the call, so it must be a sentence.
const NOT_SET_UP: &str =
    "Sorry, this number is not set up to take calls yet. Please try again later.";

/// Vapi needs an assistant (by id or inline) or an `error`: overrides alone,
/// or an empty answer, end the call with `assistant-request-returned-no-assistant`.
async fn assistant_request(calls: &Calls, call: InboundCall) -> Result<HttpResponse, ApiError> {
    let (context, tenant) = match calls.inbound(call).await? {
        // Counted as `unknown_called_number` by the call service.
        Inbound::UnknownTenant => {
            return Ok(HttpResponse::Ok().json(json!({ "error": NOT_SET_UP })));
        }
        Inbound::Context { context, tenant } => (context, tenant),
    };
    let overrides = json!({
        "variableValues": variables::as_strings(&context),
        "metadata": variables::metadata(&context),
    });
    let body = match (
        &tenant.config.vapi_assistant_id,
        &tenant.config.vapi_assistant,
    ) {
        (Some(id), _) => json!({ "assistantId": id, "assistantOverrides": overrides }),
        (None, Some(inline)) => json!({ "assistant": inline, "assistantOverrides": overrides }),
        (None, None) => {
            crate::domain::Fallback::VapiNoAssistant.count();
            tracing::warn!(
                tenant = %tenant.id,
                "Vapi asked for an assistant but the tenant names none; the call is refused"
            );
            json!({ "error": NOT_SET_UP })
        }
    };
    Ok(HttpResponse::Ok().json(body))
}

async fn tool_calls(calls: &Calls, list: Vec<ParsedToolCall>) -> HttpResponse {
    let runs = list.into_iter().map(|parsed| async move {
        match parsed {
            Ok(tc) => {
                let id = tc.invocation_id.clone().unwrap_or_default();
                let name = tc.name().to_owned();
                match calls.tool(tc).await {
                    Ok(r) => json!({ "toolCallId": id, "name": name, "result": single_line(&r) }),
                    Err(e) => json!({ "toolCallId": id, "name": name, "error": single_line(&e) }),
                }
            }
            Err(u) => {
                json!({ "toolCallId": u.id, "name": u.name, "error": single_line(&u.problem) })
            }
        }
    });
    let results = futures_util::future::join_all(runs).await;
    HttpResponse::Ok().json(json!({ "results": results }))
}

async fn dispatch(
    calls: &Calls,
    gate: &Gate,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Handled, ApiError> {
    let parsed = match envelope(body) {
        Ok(mut m) => {
            resolve_line(calls, &mut m).await?;
            message(&m)
        }
        Err(e) => Err(e),
    };
    let ((kind, message), verified) = gate
        .admit(
            calls,
            Provider::Vapi,
            req,
            parsed,
            |(_, m)| m.called(),
            |secret| {
                let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
                let now = chrono::Utc::now().timestamp_millis();
                gate.vapi_auth().verify(header, body, secret, now)
            },
        )
        .await?;
    match message {
        Message::AssistantRequest(call) => {
            Ok(Handled::ok(assistant_request(calls, call).await?, kind))
        }
        Message::UnknownLine => {
            crate::domain::Fallback::UnknownCalledNumber.count();
            tracing::warn!(
                "Vapi asked for an assistant for a SIP line no tenant names in `line_ids`"
            );
            Ok(Handled::ok(
                HttpResponse::Ok().json(json!({ "error": NOT_SET_UP })),
                kind,
            ))
        }
        Message::ToolCalls { mut list, .. } => {
            for tc in list.iter_mut().flatten() {
                tc.tenant_scope = verified.scope().cloned();
            }
            Ok(Handled::ok(tool_calls(calls, list).await, kind))
        }
        Message::Delivery(d) => d.acknowledge(calls, PROVIDER, kind).await,
    }
}

#[post("/vapi")]
async fn vapi(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    EventBody(body): EventBody,
) -> Result<HttpResponse, ApiError> {
    observed(
        &gate,
        PROVIDER,
        "message",
        dispatch(&calls, &gate, &req, &body),
    )
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(vapi);
}
