//! ElevenLabs webhooks end to end, through real HTTP against the upstream
//! simulator: conversation initiation answered with typed dynamic variables,
//! post-call transcriptions verified (fresh signatures only) and stored.

use serde_json::json;
use warmline::domain::{CallId, Provider};
use warmline::webhooks::signature::sign_elevenlabs;

use crate::helpers::TestDb;
use crate::helpers::voice::{ELEVEN_SECRET, app, post};

#[tokio::test]
async fn elevenlabs_initiation_and_post_call_are_answered_and_verified() {
    let (app, _sim) = app(TestDb::sqlite()).await;
    let init = json!({ "caller_id": "+15550100001", "agent_id": "agent_x", "called_number": "+15550100000", "call_sid": "CA123" }).to_string();
    let (status, answer) = post(
        &app,
        "/elevenlabs/initiation",
        &init,
        &[("x-warmline-secret", ELEVEN_SECRET.into())],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "conversation_initiation_client_data");
    assert_eq!(answer["dynamic_variables"]["customer_name"], "Ana Souza");
    assert_eq!(
        answer["dynamic_variables"]["is_returning_caller"], true,
        "typed, not a string"
    );
    let (status, _) = post(
        &app,
        "/elevenlabs/initiation",
        &init,
        &[("x-warmline-secret", "nope".into())],
    )
    .await;
    assert_eq!(status, 401);

    let body = json!({
        "type": "post_call_transcription", "event_timestamp": 1_700_000_000,
        "data": {
            "agent_id": "agent_x", "conversation_id": "conv_42", "status": "done",
            "transcript": [ { "role": "agent", "message": "Hi!" }, { "role": "user", "message": "Cancel my visit" } ],
            "metadata": { "start_time_unix_secs": 1_763_700_000, "call_duration_secs": 42,
                          "phone_call": { "external_number": "+15550100003", "agent_number": "+15550100000" } },
            "analysis": { "call_successful": "success", "transcript_summary": "Asked to cancel" }
        }
    })
    .to_string();
    let sig = sign_elevenlabs(
        body.as_bytes(),
        ELEVEN_SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
    );
    let (status, answer) = post(
        &app,
        "/elevenlabs/post-call",
        &body,
        &[("elevenlabs-signature", sig)],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let call = app
        .store
        .call(Provider::ElevenLabs, &CallId::parse("conv_42").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (call.details.duration_ms, call.details.summary.as_deref()),
        (Some(42_000), Some("Asked to cancel"))
    );
    assert_eq!(
        call.details.transcript.as_deref(),
        Some("Agent: Hi!\nUser: Cancel my visit")
    );

    let stale = sign_elevenlabs(
        body.as_bytes(),
        ELEVEN_SECRET.as_bytes(),
        chrono::Utc::now().timestamp() - 31 * 60,
    );
    let (status, _) = post(
        &app,
        "/elevenlabs/post-call",
        &body,
        &[("elevenlabs-signature", stale)],
    )
    .await;
    assert_eq!(status, 401);
    let audio = json!({ "type": "post_call_audio", "data": { "conversation_id": "conv_42", "full_audio": "AAAA" } }).to_string();
    let sig = sign_elevenlabs(
        audio.as_bytes(),
        ELEVEN_SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
    );
    let (status, answer) = post(
        &app,
        "/elevenlabs/post-call",
        &audio,
        &[("elevenlabs-signature", sig)],
    )
    .await;
    assert_eq!((status, answer["ignored"].as_bool()), (200, Some(true)));
}
