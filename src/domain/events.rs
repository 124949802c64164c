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

/// What is known about a call: the part of a call event that the call log
/// keeps. One definition for the event (what a platform said) and the
/// stored record (what all its events said, merged); `None` means "not said".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallDetails {
    pub caller: Option<PhoneNumber>,
    pub called: Option<PhoneNumber>,
    pub direction: Option<String>,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub disconnection_reason: Option<String>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub successful: Option<bool>,
    pub sentiment: Option<String>,
    pub analysis: Option<serde_json::Value>,
    pub trace_id: Option<String>,
}

/// A call's life-cycle event, as acknowledged to the platform and then
/// written behind. Serialisable: it is what the spill journal stores (the
/// details are flattened, so a journal line reads as one object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub provider: Provider,
    pub call_id: CallId,
    pub phase: CallPhase,
    /// The provider's event name, for the idempotency key and the log.
    pub event: String,
    #[serde(flatten)]
    pub details: CallDetails,
    #[serde(default)]
    pub messages: Vec<TranscriptLine>,
}

impl CallEvent {
    pub fn new(provider: Provider, call_id: CallId, phase: CallPhase, event: &str) -> Self {
        CallEvent {
            provider,
            call_id,
            phase,
            event: event.to_owned(),
            details: CallDetails::default(),
            messages: Vec::new(),
        }
    }

    /// A provider retrying the same event maps to the same key.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.provider, self.call_id, self.event)
    }
}
