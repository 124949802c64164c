//! What the load generator sends: each platform's real, signed requests for a
//! caller drawn from the pool, and the trivial-handler baseline.

use serde_json::json;

use super::client::Request;
use crate::webhooks::signature::{sign_elevenlabs, sign_retell};

/// A kind of request the load generator can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `GET /health`: the trivial handler, the machine's limit.
    Health,
    /// Retell `call_inbound` (dynamic variables), signed.
    RetellInbound,
    /// Retell `check_availability` during a call, signed.
    RetellTool,
    /// Retell `call_started` then `call_ended` for new calls, signed: call
    /// events made durable.
    RetellEvents,
    /// Vapi `assistant-request`.
    VapiInbound,
    /// Vapi `tool-calls` with `check_availability`.
    VapiTool,
    /// Vapi `end-of-call-report` for new calls.
    VapiEvents,
    /// ElevenLabs conversation initiation (dynamic variables).
    ElevenlabsInbound,
    /// ElevenLabs `post_call_transcription` for new conversations, signed.
    ElevenlabsEvents,
    /// The bots' API: `POST /api/v1/context` by WhatsApp instance, with the
    /// tenant's API key.
    ContextApi,
}

impl Scenario {
    /// The scenario's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::RetellInbound => "retell-inbound",
            Scenario::RetellTool => "retell-tool",
            Scenario::RetellEvents => "retell-events",
            Scenario::VapiInbound => "vapi-inbound",
            Scenario::VapiTool => "vapi-tool",
            Scenario::VapiEvents => "vapi-events",
            Scenario::ElevenlabsInbound => "elevenlabs-inbound",
            Scenario::ElevenlabsEvents => "elevenlabs-events",
            Scenario::ContextApi => "context-api",
        }
    }

    /// Whether the scenario reads caller context that a warm-up should load
    /// first (events write; the baseline reads nothing).
    pub fn reads_context(self) -> bool {
        !matches!(
            self,
            Scenario::Health
                | Scenario::RetellEvents
                | Scenario::VapiEvents
                | Scenario::ElevenlabsEvents
        )
    }

    /// The inbound request that loads a pool caller's context and caches
    /// its call's session before the measured run.
    pub fn warm_up(self) -> Scenario {
        match self {
            Scenario::VapiInbound | Scenario::VapiTool => Scenario::VapiInbound,
            Scenario::ElevenlabsInbound => Scenario::ElevenlabsInbound,
            Scenario::ContextApi => Scenario::ContextApi,
            _ => Scenario::RetellInbound,
        }
    }
}

/// The secrets requests are signed with (empty: sent unsigned, which only
/// the demo accepts, from this machine).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub retell: String,
    pub vapi: String,
    pub elevenlabs: String,
    /// A tenant's key to the bots' API.
    pub api_key: String,
    /// The tenant's WhatsApp instance, for the bots' API.
    pub instance: String,
}

/// Who calls whom, for one request.
pub struct Party<'a> {
    pub caller: &'a str,
    pub called: &'a str,
    /// The call's id: the pool caller's standing call for tools, a new one
    /// for inbound calls and events.
    pub call_id: &'a str,
    /// A weekday ahead, for `check_availability`.
    pub day: &'a str,
    /// The n-th request of a run: events alternate start and end.
    pub n: u64,
}

/// A request's owned parts; [`Built::request`] borrows them.
pub struct Built {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: &'static [u8],
}

impl Built {
    pub fn request(&self) -> Request<'_> {
        Request {
            method: self.method,
            path: self.path,
            headers: &self.headers,
            body: &self.body,
            expect: self.expect,
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn build(scenario: Scenario, p: &Party<'_>, s: &Secrets) -> Built {
    let retell_call = || {
        json!({
            "call_id": p.call_id, "agent_id": "agent_loadgen", "call_type": "phone_call",
            "direction": "inbound", "from_number": p.caller, "to_number": p.called,
            "call_status": "ongoing", "start_timestamp": now_ms() - 60_000,
        })
    };
    let vapi_call = |kind: &str| {
        json!({
            "type": kind, "call": { "id": p.call_id, "type": "inboundPhoneCall",
                                    "customer": { "number": p.caller } },
            "phoneNumber": { "number": p.called }, "customer": { "number": p.caller },
        })
    };
    let args = json!({ "date": p.day, "service": "cleaning" });
    let (method, path, body, expect): (_, _, serde_json::Value, &'static [u8]) = match scenario {
        Scenario::Health => ("GET", "/health", serde_json::Value::Null, b""),
        Scenario::RetellInbound => {
            // Retell's documented payload has no call id; its current SDK
            // sends one.
            let mut inbound = json!({ "from_number": p.caller, "to_number": p.called,
                                      "agent_id": "agent_loadgen" });
            if !p.call_id.is_empty() {
                inbound["call_id"] = json!(p.call_id);
            }
            (
                "POST",
                "/retell/inbound",
                json!({ "event": "call_inbound", "call_inbound": inbound }),
                b"dynamic_variables",
            )
        }
        Scenario::RetellTool => (
            "POST",
            "/retell/functions/check_availability",
            json!({ "name": "check_availability", "call": retell_call(), "args": args }),
            b"\"result\"",
        ),
        Scenario::RetellEvents => {
            let mut call = retell_call();
            let event = if p.n.is_multiple_of(2) {
                "call_started"
            } else {
                call["call_status"] = json!("ended");
                call["end_timestamp"] = json!(now_ms());
                call["disconnection_reason"] = json!("user_hangup");
                call["transcript"] = json!("Agent: Hello!\nUser: Just checking my appointment.");
                "call_ended"
            };
            (
                "POST",
                "/retell/events",
                json!({ "event": event, "call": call }),
                b"",
            )
        }
        Scenario::VapiInbound => (
            "POST",
            "/vapi",
            json!({ "message": vapi_call("assistant-request") }),
            b"variableValues",
        ),
        Scenario::VapiTool => {
            let mut m = vapi_call("tool-calls");
            m["toolCallList"] = json!([{ "id": "t1", "type": "function",
                "function": { "name": "check_availability", "arguments": args } }]);
            ("POST", "/vapi", json!({ "message": m }), b"\"result\"")
        }
        Scenario::VapiEvents => {
            let mut m = vapi_call("end-of-call-report");
            m["endedReason"] = json!("customer-ended-call");
            m["artifact"] = json!({ "transcript": "AI: Hello\nUser: Just checking" });
            ("POST", "/vapi", json!({ "message": m }), b"")
        }
        Scenario::ElevenlabsInbound => (
            "POST",
            "/elevenlabs/initiation",
            json!({ "caller_id": p.caller, "called_number": p.called,
                    "agent_id": "agent_loadgen", "call_sid": p.call_id }),
            b"dynamic_variables",
        ),
        Scenario::ContextApi => (
            "POST",
            "/api/v1/context",
            json!({ "caller": p.caller, "instance": s.instance }),
            b"\"is_returning_caller\"",
        ),
        Scenario::ElevenlabsEvents => (
            "POST",
            "/elevenlabs/post-call",
            json!({ "type": "post_call_transcription", "event_timestamp": now_ms() / 1000,
                "data": { "agent_id": "agent_loadgen", "conversation_id": p.call_id, "status": "done",
                    "transcript": [ { "role": "agent", "message": "Hi!" },
                                    { "role": "user", "message": "Just checking" } ],
                    "metadata": { "start_time_unix_secs": now_ms() / 1000 - 60, "call_duration_secs": 60,
                        "phone_call": { "external_number": p.caller, "agent_number": p.called } } } }),
            b"",
        ),
    };
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    Built {
        method,
        path,
        headers: sign(scenario, &body, s),
        body,
        expect,
    }
}

fn sign(scenario: Scenario, body: &[u8], s: &Secrets) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    match scenario {
        Scenario::Health => {}
        Scenario::RetellInbound | Scenario::RetellTool | Scenario::RetellEvents => {
            if !s.retell.is_empty() {
                headers.push((
                    "x-retell-signature",
                    sign_retell(body, s.retell.as_bytes(), now_ms()),
                ));
            }
        }
        Scenario::VapiInbound | Scenario::VapiTool | Scenario::VapiEvents => {
            // Vapi's default credential: the server URL secret as a bearer token.
            if !s.vapi.is_empty() {
                headers.push(("authorization", format!("Bearer {}", s.vapi)));
            }
        }
        Scenario::ElevenlabsInbound => {
            if !s.elevenlabs.is_empty() {
                headers.push(("x-warmline-secret", s.elevenlabs.clone()));
            }
        }
        Scenario::ContextApi => {
            headers.push(("authorization", format!("Bearer {}", s.api_key)));
        }
        Scenario::ElevenlabsEvents => {
            if !s.elevenlabs.is_empty() {
                headers.push((
                    "elevenlabs-signature",
                    sign_elevenlabs(body, s.elevenlabs.as_bytes(), now_ms() / 1000),
                ));
            }
        }
    }
    headers
}
