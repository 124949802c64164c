//! Retell AI webhooks:
//! - `POST /retell/inbound` — `call_inbound`, answered with dynamic variables;
//! - `POST /retell/functions/{name}` and `POST /retell/functions` — custom
//!   functions (tools), default payload or `args_at_root`;
//! - `POST /retell/events` — `call_started`, `call_ended`, `call_analyzed`.
//!
//! Every request carries `x-retell-signature`, checked on the raw bytes.
//! An SMS's `chat_inbound`, posted to the same inbound webhook, is `chat`'s.

mod chat;

pub(super) use chat::parse_chat_inbound as parse_chat;

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, post, route, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::signature::verify_retell;
use super::{
    Delivery, EventBody, Gate, Handled, RawBody, Verification, observed, optional_phone,
    required_phone, variables,
};
use crate::calls::{Calls, Inbound};
use crate::domain::{
    CallEvent, CallId, CallPhase, InboundCall, PhoneNumber, Provider, ToolCall, ToolRequest,
    TranscriptLine,
};
use crate::error::ApiError;
use crate::support::json;

const PROVIDER: &str = "retell";
/// Retell hands at most this much of a tool result to the LLM.
pub const MAX_RESULT_CHARS: usize = 15_000;

/// Verifies `x-retell-signature` for the parsed envelope, then hands it over.
async fn admit<T>(
    gate: &Gate,
    calls: &Calls,
    req: &HttpRequest,
    body: &[u8],
    parsed: Result<T, ApiError>,
    called: impl FnOnce(&T) -> Option<PhoneNumber>,
) -> Result<(T, Verification), ApiError> {
    let header = req
        .headers()
        .get("x-retell-signature")
        .and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp_millis();
    gate.admit(calls, Provider::Retell, req, parsed, called, |key| {
        verify_retell(header, body, key, now).map_err(|e| e.to_string())
    })
    .await
}

// ----------------------------------------------------------------- inbound

#[derive(Deserialize)]
struct InboundEnvelope {
    event: String,
    call_inbound: Option<InboundBody>,
}

#[derive(Deserialize)]
struct InboundBody {
    /// Null or absent when the caller withholds the number.
    from_number: Option<String>,
    to_number: String,
    /// The call's id, when Retell sends it (current versions do): the
    /// session is then cached for the call's functions at once.
    call_id: Option<String>,
}

pub(super) fn parse_inbound(body: &[u8]) -> Result<InboundCall, ApiError> {
    let envelope: InboundEnvelope = json::parse(body, "call_inbound payload")?;
    if envelope.event != "call_inbound" {
        return Err(ApiError::BadRequest(format!(
            "`event` is `{}`; this endpoint takes `call_inbound`",
            envelope.event
        )));
    }
    let inbound = envelope
        .call_inbound
        .ok_or_else(|| ApiError::BadRequest("missing `call_inbound` object".into()))?;
    Ok(InboundCall {
        provider: Provider::Retell,
        called: required_phone(&inbound.to_number, "call_inbound.to_number")?,
        caller: optional_phone(inbound.from_number.as_deref()),
        call_id: inbound
            .call_id
            .as_deref()
            .and_then(|id| CallId::parse(id).ok()),
    })
}

#[post("/retell/inbound")]
async fn retell_inbound(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    observed(&gate, PROVIDER, "call_inbound", async {
        if chat::might_be_chat(&body)
            && let Some(response) = chat::chat_inbound(&calls, &gate, &req, &body).await?
        {
            return Ok(Handled::ok(response, "chat_inbound"));
        }
        let response = inbound(&calls, &gate, &req, &body).await?;
        Ok(Handled::ok(response, "call_inbound"))
    })
    .await
}

async fn inbound(
    calls: &Calls,
    gate: &Gate,
    req: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let (call, _) = admit(gate, calls, req, body, parse_inbound(body), |c| {
        Some(c.called.clone())
    })
    .await?;
    Ok(match calls.inbound(call).await? {
        // Empty: Retell's default agent for the number takes the call.
        Inbound::UnknownTenant => HttpResponse::Ok().json(json!({ "call_inbound": {} })),
        Inbound::Context { context, .. } => {
            variables::json_answer(context.rendered(variables::RETELL_INBOUND, |c| {
                variables::to_bytes(&json!({
                    "call_inbound": {
                        "dynamic_variables": variables::as_strings(c),
                        "metadata": variables::metadata(c),
                    }
                }))
            }))
        }
    })
}

// --------------------------------------------------------------- functions

/// The query string of a function call: the call's details when the tool
/// is configured to send them (`call_id`, `from_number`, `to_number`), and —
/// for GET and DELETE, which have no body — the arguments.
struct FunctionQuery(BTreeMap<String, String>);

impl FunctionQuery {
    const CALL_FIELDS: [&'static str; 3] = ["call_id", "from_number", "to_number"];

    fn get(&self, field: &str) -> Option<String> {
        self.0.get(field).cloned()
    }

    /// Every other parameter, as the arguments of a body-less call.
    fn args(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .filter(|(k, _)| !Self::CALL_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }
}

/// A custom function's payload: the default `{name, call, args}`, the
/// arguments alone (`args_at_root`), or — for GET and DELETE — no body, the
/// arguments in the query string. Call details missing from the body come
/// from the query.
fn parse_function(
    path_name: Option<&str>,
    query: &FunctionQuery,
    body: &[u8],
) -> Result<ToolCall, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        query.args()
    } else {
        json::parse(body, "function payload")?
    };
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::BadRequest("function payload must be a JSON object".into()))?;
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
    let field = |k: &str| {
        call.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| query.get(k))
    };
    let call_id = field("call_id")
        .map(|id| {
            CallId::parse(&id).map_err(|e| ApiError::BadRequest(format!("`call.call_id`: {e}")))
        })
        .transpose()?;
    let (caller, called) = sides(
        field("from_number").as_deref(),
        field("to_number").as_deref(),
        field("direction").as_deref(),
    );
    Ok(ToolCall {
        provider: Provider::Retell,
        invocation_id: None,
        request: ToolRequest::parse(&name, &args),
        arguments: args,
        call_id,
        caller,
        called,
        replay_key: None,
        tenant_scope: None,
    })
}

/// The customer's and the business's numbers of a call: on an outbound
/// call Retell's `from_number` is the business and `to_number` the
/// customer, the other way round from an inbound one.
fn sides<'a>(
    from: Option<&'a str>,
    to: Option<&'a str>,
    direction: Option<&str>,
) -> (Option<PhoneNumber>, Option<PhoneNumber>) {
    let (customer, business) = if direction == Some("outbound") {
        (to, from)
    } else {
        (from, to)
    };
    (optional_phone(customer), optional_phone(business))
}

/// [`parse_function`] on a raw query string, as the route would see it.
pub(super) fn parse_function_request(
    path_name: Option<&str>,
    query: &str,
    body: &[u8],
) -> Result<ToolCall, ApiError> {
    let query = web::Query::<BTreeMap<String, String>>::from_query(query)
        .map_err(|_| ApiError::BadRequest("the query string cannot be read".into()))?;
    parse_function(path_name, &FunctionQuery(query.into_inner()), body)
}

/// A signed Retell request is identified by its signature and body: Retell
/// re-sends exactly those bytes when it retries.
fn replay_key(req: &HttpRequest, body: &[u8]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let signature = req.headers().get("x-retell-signature")?.as_bytes();
    let digest = Sha256::new()
        .chain_update(signature)
        .chain_update(b"\n")
        .chain_update(body)
        .finalize();
    Some(format!("retell:{}", hex::encode(&digest[..16])))
}

async fn function(
    calls: &Calls,
    gate: &Gate,
    req: &HttpRequest,
    body: &[u8],
    path_name: Option<&str>,
    query: &FunctionQuery,
) -> Result<HttpResponse, ApiError> {
    let parsed = parse_function(path_name, query, body);
    let (mut tc, verified) = admit(gate, calls, req, body, parsed, |tc| tc.called.clone()).await?;
    tc.replay_key = replay_key(req, body);
    tc.tenant_scope = verified.scope().cloned();
    // A tool's failure is a sentence for the agent, still a 200: Retell
    // retries non-2xx answers, which would only repeat the failure.
    let text = match calls.tool(tc).await {
        Ok(t) | Err(t) => t,
    };
    let text: String = text.chars().take(MAX_RESULT_CHARS).collect();
    Ok(HttpResponse::Ok().json(json!({ "result": text })))
}

// Retell calls a function with the method the tool is configured with.
#[route(
    "/retell/functions/{name}",
    method = "POST",
    method = "GET",
    method = "PUT",
    method = "PATCH",
    method = "DELETE"
)]
async fn retell_function_named(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    RawBody(body): RawBody,
    name: web::Path<String>,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let query = FunctionQuery(query.into_inner());
    observed(&gate, PROVIDER, "function", async {
        let response = function(&calls, &gate, &req, &body, Some(&name), &query).await?;
        Ok(Handled::ok(response, "function"))
    })
    .await
}

#[route(
    "/retell/functions",
    method = "POST",
    method = "GET",
    method = "PUT",
    method = "PATCH",
    method = "DELETE"
)]
async fn retell_function(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    RawBody(body): RawBody,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let query = FunctionQuery(query.into_inner());
    observed(&gate, PROVIDER, "function", async {
        let response = function(&calls, &gate, &req, &body, None, &query).await?;
        Ok(Handled::ok(response, "function"))
    })
    .await
}

// ------------------------------------------------------------------ events

#[derive(Deserialize)]
struct EventEnvelope {
    event: String,
    call: Option<Value>,
    /// A chat's events (`chat_started`, `chat_ended`, `chat_analyzed`)
    /// carry the chat instead of a call.
    chat: Option<Value>,
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
    /// Null before anything was said.
    transcript_object: Option<Vec<RetellUtterance>>,
    disconnection_reason: Option<String>,
    call_analysis: Option<Value>,
}

#[derive(Deserialize)]
struct RetellUtterance {
    role: String,
    content: String,
}

pub(super) fn parse_event(body: &[u8]) -> Result<Delivery, ApiError> {
    let envelope: EventEnvelope = json::parse(body, "event payload")?;
    let phase = match envelope.event.as_str() {
        "call_started" => CallPhase::Started,
        "call_ended" => CallPhase::Ended,
        "call_analyzed" => CallPhase::Analyzed,
        "chat_started" | "chat_ended" | "chat_analyzed" if envelope.chat.is_some() => {
            let chat = envelope.chat.unwrap_or_default();
            return chat::chat_event(&envelope.event, chat).map(|e| Delivery::Call(Box::new(e)));
        }
        _ => {
            let number = |k: &str| {
                envelope
                    .call
                    .as_ref()
                    .and_then(|c| c.get(k))
                    .and_then(Value::as_str)
            };
            let (_, called) = sides(
                number("from_number"),
                number("to_number"),
                number("direction"),
            );
            return Ok(Delivery::Ignored {
                called,
                event: envelope.event,
            });
        }
    };
    let call = envelope
        .call
        .ok_or_else(|| ApiError::BadRequest("missing `call` object".into()))?;
    call_event(&envelope.event, phase, call).map(|e| Delivery::Call(Box::new(e)))
}

fn call_event(event: &str, phase: CallPhase, call: Value) -> Result<CallEvent, ApiError> {
    let c: RetellCall = json::from_value(call, "event payload").map_err(|p| p.within("call"))?;
    let id = CallId::parse(&c.call_id)
        .map_err(|e| ApiError::BadRequest(format!("`call.call_id`: {e}")))?;
    let mut e = CallEvent::new(Provider::Retell, id, phase, event);
    let d = &mut e.details;
    (d.caller, d.called) = sides(
        c.from_number.as_deref(),
        c.to_number.as_deref(),
        c.direction.as_deref(),
    );
    d.direction = c.direction;
    d.started_at_ms = c.start_timestamp;
    d.ended_at_ms = c.end_timestamp;
    d.duration_ms = c.duration_ms;
    d.transcript = c.transcript;
    d.disconnection_reason = c.disconnection_reason;
    if let Some(a) = c.call_analysis {
        analysis(d, a, "call_summary", "call_successful");
    }
    e.messages = c
        .transcript_object
        .unwrap_or_default()
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
    Ok(e)
}

#[post("/retell/events")]
async fn retell_events(
    calls: web::Data<Calls>,
    gate: web::Data<Gate>,
    req: HttpRequest,
    EventBody(body): EventBody,
) -> Result<HttpResponse, ApiError> {
    observed(&gate, PROVIDER, "event", async {
        let (delivery, _) = admit(
            &gate,
            &calls,
            &req,
            &body,
            parse_event(&body),
            Delivery::called,
        )
        .await?;
        let name = delivery.name();
        delivery.acknowledge(&calls, PROVIDER, name).await
    })
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(retell_inbound)
        .service(retell_function_named)
        .service(retell_function)
        .service(retell_events);
}

/// Retell's analysis of a call or a chat on its log entry: the summary and
/// success under the names that kind uses, the sentiment, and the whole.
pub(super) fn analysis(
    d: &mut crate::domain::CallDetails,
    a: Value,
    summary: &str,
    successful: &str,
) {
    d.summary = a.get(summary).and_then(Value::as_str).map(str::to_owned);
    d.successful = a.get(successful).and_then(Value::as_bool);
    d.sentiment = a
        .get("user_sentiment")
        .and_then(Value::as_str)
        .map(str::to_owned);
    d.analysis = Some(a);
}
