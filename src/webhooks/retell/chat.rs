//! Retell chat (SMS) at `POST /retell/inbound`: an incoming SMS makes Retell
//! post `chat_inbound` to the number's inbound webhook, the envelope of
//! `call_inbound` grouped under `chat_inbound`. It is answered in Retell's
//! shape, `{"chat_inbound": {"dynamic_variables": {…}, "metadata": {…}}}`,
//! with the same variables as a call, and the chat session is logged like
//! a call with channel `chat`, durably before the answer (a chat that
//! cannot be logged is a 503, which Retell retries). The chat's own events
//! (`chat_started`, `chat_ended`, `chat_analyzed` at `/retell/events`) add
//! its transcript, end and analysis to the same log entry: the answer's
//! metadata names it (`warmline_chat_id`) and Retell echoes it back.

use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{admit, variables};
use crate::calls::{Calls, Inbound};
use crate::domain::{
    CallEvent, CallId, CallPhase, Channel, InboundCall, PhoneNumber, Provider, TranscriptLine,
};
use crate::error::ApiError;
use crate::support::json;
use crate::webhooks::{Gate, optional_phone, required_phone};

#[derive(Deserialize)]
struct Envelope {
    event: String,
    chat_inbound: Option<Body>,
}

#[derive(Deserialize)]
struct Body {
    /// The customer's number; null when it is withheld.
    from_number: Option<String>,
    /// The business's number, the one the SMS was sent to.
    to_number: String,
    /// The chat's id, when Retell sends it.
    chat_id: Option<String>,
}

/// A `chat_inbound` delivery, parsed.
pub(in crate::webhooks) struct ChatInbound {
    pub caller: Option<PhoneNumber>,
    pub called: PhoneNumber,
    pub chat_id: Option<CallId>,
}

/// Whether the body may be a chat: only then is it parsed as one, so a
/// call's inbound pays a scan of its bytes, not a second parse.
pub(in crate::webhooks) fn might_be_chat(body: &[u8]) -> bool {
    const KEY: &[u8] = b"\"chat_inbound\"";
    body.windows(KEY.len()).any(|w| w == KEY)
}

/// The chat, or `None` when the body is not a `chat_inbound` event.
pub(in crate::webhooks) fn parse_chat_inbound(
    body: &[u8],
) -> Result<Option<ChatInbound>, ApiError> {
    let envelope: Envelope = json::parse(body, "chat_inbound payload")?;
    if envelope.event != "chat_inbound" {
        return Ok(None);
    }
    let chat = envelope
        .chat_inbound
        .ok_or_else(|| ApiError::BadRequest("missing `chat_inbound` object".into()))?;
    Ok(Some(ChatInbound {
        called: required_phone(&chat.to_number, "chat_inbound.to_number")?,
        caller: optional_phone(chat.from_number.as_deref()),
        chat_id: chat
            .chat_id
            .as_deref()
            .map(|id| {
                CallId::parse(id)
                    .map_err(|e| ApiError::BadRequest(format!("`chat_inbound.chat_id`: {e}")))
            })
            .transpose()?,
    }))
}

/// The id a chat is logged under: Retell's when it sends one, else one
/// made from the signed bytes, which Retell re-sends unchanged when it
/// retries (so a retry is the same chat, logged once).
fn chat_id(req: &HttpRequest, body: &[u8], given: Option<CallId>) -> Result<CallId, ApiError> {
    if let Some(id) = given {
        return Ok(id);
    }
    let signature = req
        .headers()
        .get("x-retell-signature")
        .map_or(&b""[..], |v| v.as_bytes());
    let digest = Sha256::new()
        .chain_update(signature)
        .chain_update(b"\n")
        .chain_update(body)
        .finalize();
    CallId::parse(&format!("chat_{}", hex::encode(&digest[..12])))
        .map_err(|e| ApiError::BadRequest(format!("chat id: {e}")))
}

/// Answers a chat that `might_be_chat`; `None` when it was not one after
/// all, for the call's inbound to take.
pub(in crate::webhooks) async fn chat_inbound(
    calls: &Calls,
    gate: &Gate,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Option<HttpResponse>, ApiError> {
    let parsed = match parse_chat_inbound(body) {
        Ok(None) => return Ok(None),
        Ok(Some(chat)) => Ok(chat),
        Err(e) => Err(e),
    };
    let (chat, _) = admit(gate, calls, req, body, parsed, |c| Some(c.called.clone())).await?;
    let id = chat_id(req, body, chat.chat_id)?;
    let logged_as = id.clone();
    let mut event = CallEvent::new(
        Provider::Retell,
        id.clone(),
        CallPhase::Started,
        "chat_inbound",
    );
    let d = &mut event.details;
    d.caller = chat.caller.clone();
    d.called = Some(chat.called.clone());
    d.direction = Some("inbound".into());
    d.channel = Some(Channel::Chat);
    d.started_at_ms = Some(crate::support::now_ms());
    d.trace_id = crate::telemetry::current_trace_id();
    let call = InboundCall {
        provider: Provider::Retell,
        called: chat.called,
        caller: chat.caller,
        call_id: Some(id),
    };
    // The context and the log at once: the chat waits for the slower.
    let (answer, logged) = tokio::join!(calls.inbound(call), calls.call_event(event));
    logged?;
    Ok(Some(HttpResponse::Ok().json(match answer? {
        Inbound::UnknownTenant => json!({ "chat_inbound": {} }),
        Inbound::Context { context, .. } => {
            let mut metadata = variables::metadata(&context);
            metadata["warmline_chat_id"] = json!(logged_as.as_str());
            json!({
                "chat_inbound": {
                    "dynamic_variables": variables::as_strings(&context),
                    "metadata": metadata,
                }
            })
        }
    })))
}

#[derive(Deserialize)]
struct RetellChat {
    chat_id: String,
    start_timestamp: Option<i64>,
    end_timestamp: Option<i64>,
    transcript: Option<String>,
    message_with_tool_calls: Option<Vec<Value>>,
    chat_analysis: Option<Value>,
    /// Not in every version's chat object; used when given.
    from_number: Option<String>,
    to_number: Option<String>,
    metadata: Option<Value>,
}

/// A chat's life-cycle event as a call event of channel `chat`, under the
/// id its `chat_inbound` was logged with when the metadata echoes it.
pub(in crate::webhooks) fn chat_event(event: &str, chat: Value) -> Result<CallEvent, ApiError> {
    let c: RetellChat =
        json::from_value(chat, "chat event payload").map_err(|p| p.within("chat"))?;
    let logged_as = c
        .metadata
        .as_ref()
        .and_then(|m| m.get("warmline_chat_id"))
        .and_then(Value::as_str)
        .unwrap_or(&c.chat_id);
    let id = CallId::parse(logged_as)
        .map_err(|e| ApiError::BadRequest(format!("`chat.chat_id`: {e}")))?;
    let phase = match event {
        "chat_started" => CallPhase::Started,
        "chat_ended" => CallPhase::Ended,
        _ => CallPhase::Analyzed,
    };
    let mut e = CallEvent::new(Provider::Retell, id, phase, event);
    let d = &mut e.details;
    d.channel = Some(Channel::Chat);
    d.caller = optional_phone(c.from_number.as_deref());
    d.called = optional_phone(c.to_number.as_deref());
    d.started_at_ms = c.start_timestamp;
    d.ended_at_ms = c.end_timestamp;
    if let (Some(s), Some(end)) = (c.start_timestamp, c.end_timestamp) {
        d.duration_ms = end.checked_sub(s).filter(|ms| *ms >= 0);
    }
    d.transcript = c.transcript;
    if let Some(a) = c.chat_analysis {
        super::analysis(d, a, "chat_summary", "chat_successful");
    }
    e.messages = c
        .message_with_tool_calls
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let role = match m.get("role").and_then(Value::as_str)? {
                "agent" => "assistant",
                "user" => "user",
                _ => return None,
            };
            Some(TranscriptLine {
                role: role.into(),
                content: m.get("content").and_then(Value::as_str)?.to_owned(),
            })
        })
        .collect();
    Ok(e)
}
