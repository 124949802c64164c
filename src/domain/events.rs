//! The provider-neutral events the webhook edge produces: what `calls/` and
//! `writebehind/` work with, whichever platform sent them.

use serde::{Deserialize, Serialize};

use super::{CallId, PhoneNumber, Provider};

/// A call ringing: the platform waits for the caller's context.
#[derive(Debug, Clone)]
pub struct InboundCall {
    pub provider: Provider,
    pub called: PhoneNumber,
    /// `None` when the caller withheld the number.
    pub caller: Option<PhoneNumber>,
    /// Known already to Vapi and ElevenLabs; Retell has none yet.
    pub call_id: Option<CallId>,
}

/// A mid-call tool invocation.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub provider: Provider,
    /// The platform's id for this invocation (Vapi's `toolCallId`).
    pub invocation_id: Option<String>,
    pub name: String,
    pub args: serde_json::Value,
    /// What the payload says about the call; any part may be missing (Retell
    /// can call a tool before `call_started`, `args_at_root` carries none).
    pub call_id: Option<CallId>,
    pub caller: Option<PhoneNumber>,
    pub called: Option<PhoneNumber>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    Started,
    Ended,
    Analyzed,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// `user` (the caller) or `assistant` (the agent).
    pub role: String,
    pub content: String,
}

/// A call's life-cycle event, as acknowledged to the platform and then
/// written behind. Serialisable: it is what the spill journal stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub provider: Provider,
    pub call_id: CallId,
    pub phase: CallPhase,
    /// The provider's event name, for the idempotency key and the log.
    pub event: String,
    pub caller: Option<PhoneNumber>,
    pub called: Option<PhoneNumber>,
    pub direction: Option<String>,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub disconnection_reason: Option<String>,
    pub transcript: Option<String>,
    #[serde(default)]
    pub messages: Vec<TranscriptLine>,
    pub summary: Option<String>,
    pub successful: Option<bool>,
    pub sentiment: Option<String>,
    pub analysis: Option<serde_json::Value>,
    pub trace_id: Option<String>,
}

impl CallEvent {
    pub fn new(provider: Provider, call_id: CallId, phase: CallPhase, event: &str) -> Self {
        CallEvent {
            provider,
            call_id,
            phase,
            event: event.to_owned(),
            caller: None,
            called: None,
            direction: None,
            started_at_ms: None,
            ended_at_ms: None,
            duration_ms: None,
            disconnection_reason: None,
            transcript: None,
            messages: Vec::new(),
            summary: None,
            successful: None,
            sentiment: None,
            analysis: None,
            trace_id: None,
        }
    }

    /// A provider retrying the same event maps to the same key.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.provider, self.call_id, self.event)
    }
}
