//! Metric label values for webhook events, from fixed lists. An event name
//! is chosen by whoever sends the request: used as a label as it is, 20
//! invented names make 20 new series and one 100 KB name makes `/metrics`
//! 100 KB larger. Names not listed here are counted as `other`.

const RETELL: &[&str] = &[
    "call_inbound",
    "chat_inbound",
    "function",
    "event",
    "call_started",
    "call_ended",
    "call_analyzed",
    "transcript_updated",
    "transfer_started",
    "transfer_bridged",
    "transfer_cancelled",
    "transfer_ended",
    "chat_started",
    "chat_ended",
    "chat_analyzed",
];

const VAPI: &[&str] = &[
    "message",
    "assistant-request",
    "tool-calls",
    "status-update",
    "end-of-call-report",
    "conversation-update",
    "speech-update",
    "transcript",
    "hang",
    "function-call",
    "transfer-destination-request",
    "transfer-update",
    "user-interrupted",
    "model-output",
    "voice-input",
    "voice-request",
    "phone-call-control",
    "knowledge-base-request",
    "language-change-detected",
    "status-update:scheduled",
    "status-update:queued",
    "status-update:ringing",
    "status-update:forwarding",
    "status-update:in-progress",
    "status-update:ended",
];

const ELEVENLABS: &[&str] = &[
    "conversation_initiation",
    "post_call",
    "post_call_transcription",
    "post_call_audio",
    "call_initiation_failure",
];

/// Every series of the webhook counters with a known label set, at 0, so
/// dashboards and alerts see 0 rather than no data before the first event.
pub fn register_zero() {
    for (provider, events, unparsed) in [
        ("retell", RETELL, &["function", "event", "call_inbound"][..]),
        ("vapi", VAPI, &["message"]),
        (
            "elevenlabs",
            ELEVENLABS,
            &["conversation_initiation", "post_call"],
        ),
    ] {
        for event in events {
            metrics::counter!("warmline_webhook_requests_total", "provider" => provider, "event" => *event, "outcome" => "ok")
                .increment(0);
        }
        for event in unparsed {
            for outcome in ["unauthorized", "bad_request", "too_large"] {
                metrics::counter!("warmline_webhook_requests_total", "provider" => provider, "event" => *event, "outcome" => outcome)
                    .increment(0);
            }
        }
    }
}

/// The label for `event` from `provider`: the name itself when it is one
/// warmline knows, else `other`.
pub fn event_label(provider: &str, event: &str) -> &'static str {
    let known = match provider {
        "retell" => RETELL,
        "vapi" => VAPI,
        "elevenlabs" => ELEVENLABS,
        _ => &[],
    };
    known
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::event_label;

    #[test]
    fn known_events_keep_their_name_and_the_rest_are_other() {
        assert_eq!(event_label("retell", "call_ended"), "call_ended");
        assert_eq!(
            event_label("vapi", "status-update:ringing"),
            "status-update:ringing"
        );
        assert_eq!(event_label("retell", "+14155550123"), "other");
        assert_eq!(event_label("vapi", &"x".repeat(100_000)), "other");
        assert_eq!(event_label("elevenlabs", "call_ended"), "other");
    }
}
