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

/// Which way a conversation went: the customer reaching the business
/// (`inbound`) or the business reaching its customer (`outbound`: a
/// reminder, a follow-up). Either way the tenant is the business and the
/// context the customer's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Inbound,
    Outbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// The direction a call's stored label names: only `outbound` is
    /// outbound, so a label a platform made up cannot open a third kind.
    pub fn of(label: Option<&str>) -> Self {
        if label == Some("outbound") {
            Direction::Outbound
        } else {
            Direction::Inbound
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Direction::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| "expected inbound or outbound".into())
    }
}

/// How the customer talks to the agent: a phone call, or a chat (an SMS,
/// a messaging session), logged like a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Voice,
    Chat,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Voice, Channel::Chat];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Chat => "chat",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| "expected voice or chat".into())
    }
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
    /// `voice` unless said otherwise (a Retell `chat_inbound` is `chat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
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
