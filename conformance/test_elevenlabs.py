"""ElevenLabs Agents: warmline's /elevenlabs/* routes against the `elevenlabs` SDK.

The SDK gives:
- the post-call webhook verifier, `client.webhooks.construct_event(raw_body,
  sig_header, secret)` (`ElevenLabs-Signature: t=<unix s>,v0=<hex HMAC-SHA256
  of "<t>.<body>">`, 30 minutes): every post-call request here is signed the
  way it verifies and checked with it before it is sent;
- the post-call `data` (the GET-conversation shape, `GetConversationResponseModel`
  with `ConversationHistoryMetadataCommonModel`, its Twilio `phone_call`,
  `ConversationHistoryAnalysisCommonModel`, `ConversationHistoryTranscriptResponseModel`s
  and the echoed `ConversationInitiationClientDataRequestOutput`);
- the initiation webhook's configuration (`ConversationInitiationClientDataWebhook`:
  url and the secret `request_headers` ElevenLabs sends) and the client data it
  expects back (`ConversationInitiationClientDataRequestInput`).

ElevenLabs signs nothing on the initiation webhook: it sends the headers
configured there, and warmline expects `X-Warmline-Secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Optional, Union

import pydantic
import pytest
from elevenlabs import ElevenLabs
from elevenlabs.errors import BadRequestError
from elevenlabs.types import (
    ConversationInitiationClientDataRequestInput,
    ConversationInitiationClientDataRequestOutput,
    ConversationInitiationClientDataWebhook,
    GetConversationResponseModel,
)

from support import (
    ANA,
    BEN,
    DEMO_BUSINESS,
    DEMO_NUMBER,
    UNKNOWN_NUMBER,
    VARIABLES,
    assert_acknowledged,
    assert_ignored,
    assert_refused,
    body_bytes,
    call_id,
    fresh_caller,
)

# Dynamic variable values ElevenLabs takes: string, number, integer, boolean.
TYPED_VALUES = pydantic.TypeAdapter(
    Dict[str, Union[pydantic.StrictBool, pydantic.StrictInt, pydantic.StrictFloat, pydantic.StrictStr]]
)


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def elevenlabs() -> ElevenLabs:
    # Offline: constructing the client sends nothing.
    return ElevenLabs(api_key="offline-conformance")


def sign(body: bytes, secret: str, t: Optional[int] = None) -> str:
    """`ElevenLabs-Signature` as `construct_event` verifies it."""
    t = int(time.time()) if t is None else t
    digest = hmac.new(secret.encode("utf-8"), f"{t}.{body.decode('utf-8')}".encode("utf-8"), hashlib.sha256)
    return f"t={t},v0={digest.hexdigest()}"


def signed_headers(elevenlabs: ElevenLabs, body: bytes, secret: str, **kw: Any) -> dict:
    header = sign(body, secret, **kw)
    # Prove it: the SDK's verifier accepts it and hands back the same event.
    event = elevenlabs.webhooks.construct_event(body.decode("utf-8"), header, secret)
    assert event == json.loads(body)
    return {"content-type": "application/json", "elevenlabs-signature": header}


def initiation_webhook(base_url: str, secret: str) -> ConversationInitiationClientDataWebhook:
    """The workspace setting that makes ElevenLabs call warmline, with the
    secret header it sends."""
    return ConversationInitiationClientDataWebhook(
        url=f"{base_url}/elevenlabs/initiation",
        request_headers={"X-Warmline-Secret": secret},
    )


def initiate(http, webhook: ConversationInitiationClientDataWebhook, caller: Optional[str],
             called: str = DEMO_NUMBER, headers: Optional[dict] = None):
    body = body_bytes(
        {
            "caller_id": caller,
            "agent_id": "agent_conformance",
            "called_number": called,
            "call_sid": f"CA{call_id('')[-16:]}",
        }
    )
    sent = {"content-type": "application/json"}
    sent.update(webhook.request_headers if headers is None else headers)
    return http.post(webhook.url, content=body, headers=sent)


def client_data(resp) -> Dict[str, Any]:
    """The answer as ElevenLabs reads it; returns the dynamic variables."""
    assert resp.status_code == 200, (resp.status_code, resp.text)
    answer = resp.json()
    assert answer.get("type") == "conversation_initiation_client_data", answer
    data = ConversationInitiationClientDataRequestInput.model_validate(answer)
    assert data.dynamic_variables is not None
    TYPED_VALUES.validate_python(data.dynamic_variables)
    return data.dynamic_variables


def conversation(cid: str, caller: str, variables: Dict[str, Any], **overrides: Any) -> dict:
    """A post-call `data` object, validated by the SDK's conversation model."""
    start = int(time.time()) - 120
    data = {
        "agent_id": "agent_conformance",
        "conversation_id": cid,
        "status": "done",
        "metadata": {
            "start_time_unix_secs": start,
            "call_duration_secs": 95,
            "cost": 412,
            "termination_reason": "Call ended by remote party",
            "phone_call": {
                "type": "twilio",
                "direction": "inbound",
                "phone_number_id": "pn_conformance",
                "agent_number": DEMO_NUMBER,
                "external_number": caller,
                "stream_sid": "MZ0000000000000000000000000000000",
                "call_sid": "CA0000000000000000000000000000000",
            },
        },
        "analysis": {
            "call_successful": "success",
            "transcript_summary": "The caller booked a whitening consultation.",
            "evaluation_criteria_results": {},
            "data_collection_results": {},
        },
        "conversation_initiation_client_data": ConversationInitiationClientDataRequestOutput(
            dynamic_variables={**variables, "system__caller_id": caller, "system__called_number": DEMO_NUMBER}
        ).dict(),
        "has_audio": True,
        "has_user_audio": True,
        "has_response_audio": True,
        "has_auxiliary_audio": False,
        "transcript": [
            {"role": "agent", "message": f"Hi, thanks for calling {DEMO_BUSINESS}!", "time_in_call_secs": 0},
            {"role": "user", "message": "Olá! Can I book a whitening consultation?", "time_in_call_secs": 4},
        ],
        **overrides,
    }
    model = GetConversationResponseModel.model_validate(data)
    assert type(model.metadata.phone_call).__name__ == "ConversationHistoryMetadataCommonModelPhoneCall_Twilio"
    return json.loads(model.json())


def post_call(http, elevenlabs, secret, payload: dict, **kw):
    body = body_bytes(payload)
    return http.post("/elevenlabs/post-call", content=body, headers=signed_headers(elevenlabs, body, secret, **kw))


# -------------------------------------------------------------- initiation


def test_initiation_answers_typed_dynamic_variables(http, base_url, elevenlabs_secret):
    variables = client_data(initiate(http, initiation_webhook(base_url, elevenlabs_secret), ANA))
    assert set(variables) == VARIABLES
    assert variables["customer_name"] == "Ana Souza"
    assert variables["business_name"] == DEMO_BUSINESS
    assert variables["is_returning_caller"] is True
    assert isinstance(variables["total_calls"], int) and not isinstance(variables["total_calls"], bool)
    assert variables["time_zone"] == "America/New_York"
    assert "morning" in variables["memory_summary"].lower()


def test_initiation_secret_as_a_bearer_header(http, base_url, elevenlabs_secret):
    webhook = ConversationInitiationClientDataWebhook(
        url=f"{base_url}/elevenlabs/initiation",
        request_headers={"Authorization": f"Bearer {elevenlabs_secret}"},
    )
    assert client_data(initiate(http, webhook, BEN))["customer_name"] == "Ben Carter"


def test_initiation_for_an_unknown_number_gets_every_variable_neutral(http, base_url, elevenlabs_secret):
    """ElevenLabs needs every variable the agent declares in every answer."""
    webhook = initiation_webhook(base_url, elevenlabs_secret)
    variables = client_data(initiate(http, webhook, ANA, called=UNKNOWN_NUMBER))
    assert variables == {
        "business_name": "",
        "customer_name": "",
        "is_returning_caller": False,
        "total_calls": 0,
        "memory_summary": "",
        "next_available_slots": "",
        "time_zone": "",
    }


def test_initiation_with_a_wrong_secret_is_refused(http, base_url):
    assert_refused(initiate(http, initiation_webhook(base_url, "not-the-secret"), ANA))


def test_initiation_without_the_secret_header_is_refused(http, base_url, elevenlabs_secret):
    assert_refused(initiate(http, initiation_webhook(base_url, elevenlabs_secret), ANA, headers={}))


# --------------------------------------------------------------- post-call


def test_post_call_transcription_is_acknowledged_once_durable(http, base_url, elevenlabs, elevenlabs_secret):
    caller = fresh_caller()
    webhook = initiation_webhook(base_url, elevenlabs_secret)
    variables = client_data(initiate(http, webhook, caller))
    assert (variables["total_calls"], variables["is_returning_caller"]) == (0, False)

    cid = call_id("conv")
    payload = {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": conversation(cid, caller, variables),
    }
    assert_acknowledged(post_call(http, elevenlabs, elevenlabs_secret, payload))
    # A retried delivery (ElevenLabs' opt-in retries) changes nothing.
    assert_acknowledged(post_call(http, elevenlabs, elevenlabs_secret, payload), duplicate=True)

    # The call counts in the caller's next context.
    deadline = time.monotonic() + 15
    while True:
        again = client_data(initiate(http, webhook, caller))
        if again["total_calls"] != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (again["total_calls"], again["is_returning_caller"]) == (1, True), again


def test_post_call_audio_is_acknowledged_even_above_one_mebibyte(http, elevenlabs, elevenlabs_secret):
    audio = base64.b64encode(b"ID3\x04" + bytes(1_200_000)).decode()
    payload = {
        "type": "post_call_audio",
        "event_timestamp": int(time.time()),
        "data": {"agent_id": "agent_conformance", "conversation_id": call_id("conv"), "full_audio": audio},
    }
    assert_ignored(post_call(http, elevenlabs, elevenlabs_secret, payload))


def test_call_initiation_failure_is_acknowledged(http, elevenlabs, elevenlabs_secret):
    payload = {
        "type": "call_initiation_failure",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "agent_conformance",
            "conversation_id": call_id("conv"),
            "failure_reason": "busy",
            "metadata": {"type": "twilio", "body": {"To": DEMO_NUMBER, "From": ANA, "CallStatus": "busy"}},
        },
    }
    assert_ignored(post_call(http, elevenlabs, elevenlabs_secret, payload))


# -------------------------------------------------------------- signatures


def transcription(caller: str = ANA) -> dict:
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": conversation(call_id("conv"), caller, {"customer_name": "Ana Souza"}),
    }


def test_a_post_call_signed_with_another_secret_is_refused(http, elevenlabs, elevenlabs_secret):
    body = body_bytes(transcription())
    header = sign(body, "another-secret")
    with pytest.raises(BadRequestError):
        elevenlabs.webhooks.construct_event(body.decode(), header, elevenlabs_secret)
    resp = http.post("/elevenlabs/post-call", content=body,
                     headers={"content-type": "application/json", "elevenlabs-signature": header})
    assert_refused(resp)


def test_a_post_call_signature_older_than_30_minutes_is_refused(http, elevenlabs, elevenlabs_secret):
    body = body_bytes(transcription())
    header = sign(body, elevenlabs_secret, t=int(time.time()) - 31 * 60)
    with pytest.raises(BadRequestError):
        elevenlabs.webhooks.construct_event(body.decode(), header, elevenlabs_secret)
    resp = http.post("/elevenlabs/post-call", content=body,
                     headers={"content-type": "application/json", "elevenlabs-signature": header})
    assert_refused(resp)


def test_a_post_call_signature_29_minutes_old_is_accepted_by_both(http, elevenlabs, elevenlabs_secret):
    payload = transcription()
    assert_acknowledged(
        post_call(http, elevenlabs, elevenlabs_secret, payload, t=int(time.time()) - 29 * 60)
    )


def test_a_post_call_signature_from_the_future_is_refused_though_the_sdk_takes_it(
    http, elevenlabs, elevenlabs_secret
):
    """A deliberate difference (README: every scheme refuses timestamps more
    than 5 min ahead): the SDK checks only the age of `t`."""
    body = body_bytes(transcription())
    header = sign(body, elevenlabs_secret, t=int(time.time()) + 10 * 60)
    elevenlabs.webhooks.construct_event(body.decode(), header, elevenlabs_secret)  # the SDK accepts
    resp = http.post("/elevenlabs/post-call", content=body,
                     headers={"content-type": "application/json", "elevenlabs-signature": header})
    assert_refused(resp)


def test_a_post_call_body_changed_after_signing_is_refused(http, elevenlabs, elevenlabs_secret):
    body = body_bytes(transcription())
    header = sign(body, elevenlabs_secret)
    tampered = body.replace(b'"status":"done"', b'"status":"failed"')
    assert tampered != body
    with pytest.raises(BadRequestError):
        elevenlabs.webhooks.construct_event(tampered.decode(), header, elevenlabs_secret)
    resp = http.post("/elevenlabs/post-call", content=tampered,
                     headers={"content-type": "application/json", "elevenlabs-signature": header})
    assert_refused(resp)


def test_an_unsigned_post_call_is_refused(http, elevenlabs, elevenlabs_secret):
    body = body_bytes(transcription())
    with pytest.raises(BadRequestError):
        elevenlabs.webhooks.construct_event(body.decode(), "", elevenlabs_secret)
    resp = http.post("/elevenlabs/post-call", content=body, headers={"content-type": "application/json"})
    assert_refused(resp)
