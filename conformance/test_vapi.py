"""Vapi: warmline's POST /vapi against vapi-server-sdk (Python).

vapi-server-sdk gives:
- the server messages (`ServerMessageAssistantRequest`,
  `ServerMessageToolCalls` with `ToolCall`/`ToolCallFunction`,
  `ServerMessageStatusUpdate`, `ServerMessageEndOfCallReport` with `Artifact`,
  `BotMessage`, `UserMessage`, `Analysis`; `Call`, `CreateCustomerDto`): every
  request body is one of them in Vapi's `{"message": …}` envelope, serialised
  by the SDK (`.json()`: by alias);
- the answers Vapi expects (`ServerMessageResponseAssistantRequest` with
  `CreateAssistantDto` and `AssistantOverrides`; `ServerMessageResponseToolCalls`
  with `ToolCallResult`): every answer is validated with them;
- the HMAC credential (`HmacAuthenticationPlan`): requests are signed as the
  plan describes, with the defaults the SDK documents for each field.

The SDK has no signer or verifier of its own; bearer, X-Vapi-Secret and HMAC
are the credential types of `server.credentialId` it models.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import time
from typing import Any, Optional

import pytest
import vapi.types as V

from support import (
    ANA,
    BEN,
    DEMO_BUSINESS,
    DEMO_NUMBER,
    DEMO_TENANT,
    UNKNOWN_NUMBER,
    VARIABLES,
    assert_acknowledged,
    assert_ignored,
    assert_refused,
    call_id,
    fresh_caller,
    future_weekday,
    now_ms,
)

# ------------------------------------------------------------------ helpers


def _sdk_default(field: str) -> str:
    """The default the SDK documents for an HMAC plan field ("Defaults to …")."""
    description = V.HmacAuthenticationPlan.model_fields[field].description or ""
    m = re.search(r"Defaults to (?:'([^']*)'|(\w+))", description)
    assert m, f"the SDK documents no default for {field}: {description!r}"
    return m.group(1) if m.group(1) is not None else m.group(2)


def hmac_headers(plan: V.HmacAuthenticationPlan, body: bytes, timestamp: Optional[str]) -> dict:
    """Signs `body` as Vapi does with `plan` (fields left unset take the
    defaults the SDK documents)."""
    signature_header = plan.signature_header or _sdk_default("signature_header")
    timestamp_header = plan.timestamp_header or _sdk_default("timestamp_header")
    payload_format = plan.payload_format or _sdk_default("payload_format")
    encoding = plan.signature_encoding or _sdk_default("signature_encoding")
    include_timestamp = (
        plan.include_timestamp
        if plan.include_timestamp is not None
        else _sdk_default("include_timestamp") == "true"
    )
    secret_is_base64 = (
        plan.secret_is_base_64
        if plan.secret_is_base_64 is not None
        else _sdk_default("secret_is_base_64") == "true"
    )
    key = base64.b64decode(plan.secret_key) if secret_is_base64 else plan.secret_key.encode()
    if include_timestamp:
        assert timestamp is not None
        signed = payload_format.replace("{timestamp}", timestamp).replace("{body}", body.decode())
    else:
        signed = body.decode()
    digest = hmac.new(key, signed.encode(), getattr(hashlib, plan.algorithm)).digest()
    encoded = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    headers = {
        "content-type": "application/json",
        signature_header: f"{plan.signature_prefix or ''}{encoded}",
    }
    if include_timestamp:
        headers[timestamp_header] = timestamp
    return headers


def plan(secret: str, **fields: Any) -> V.HmacAuthenticationPlan:
    return V.HmacAuthenticationPlan(secret_key=secret, algorithm="sha256", **fields)


def bearer(secret: str) -> dict:
    return {"content-type": "application/json", "authorization": f"Bearer {secret}"}


def envelope(message: Any) -> bytes:
    """The body Vapi posts: `{"message": …}` (the SDK's `ServerMessage`), the
    message serialised by the SDK. The `ServerMessage` wrapper itself is not
    instantiated: pydantic would build the schema of every one of its ~30
    message types, which costs half a minute and adds nothing."""
    return b'{"message":' + message.json().encode("utf-8") + b"}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def vapi_call(cid: str, caller: Optional[str]) -> V.Call:
    now = _now()
    return V.Call(
        id=cid,
        org_id="org_conformance",
        created_at=now,
        updated_at=now,
        type="inboundPhoneCall",
        phone_number_id="pn_conformance",
        customer=V.CreateCustomerDto(number=caller) if caller else None,
    )


def twilio_number(number: str) -> dict:
    return {"provider": "twilio", "number": number, "twilioAccountSid": "AC00000000000000000000000000000000"}


def assistant_request(caller: Optional[str], called: str = DEMO_NUMBER, cid: Optional[str] = None):
    cid = cid or call_id()
    return V.ServerMessageAssistantRequest.model_validate(
        {
            "type": "assistant-request",
            "timestamp": float(now_ms()),
            "phoneNumber": twilio_number(called),
            **({"customer": {"number": caller}} if caller else {}),
            "call": vapi_call(cid, caller).dict(),
        }
    )


def tool_calls(cid: str, caller: str, calls: list[tuple[str, str, str]]):
    """`calls`: (tool call id, function name, JSON arguments as a string)."""
    tool_call_list = [
        V.ToolCall(id=i, type="function", function=V.ToolCallFunction(name=n, arguments=a))
        for i, n, a in calls
    ]
    return V.ServerMessageToolCalls(
        type="tool-calls",
        timestamp=float(now_ms()),
        phone_number=V.ServerMessageToolCallsPhoneNumber_Twilio.model_validate(twilio_number(DEMO_NUMBER)),
        customer=V.CreateCustomerDto(number=caller),
        call=vapi_call(cid, caller),
        tool_call_list=tool_call_list,
        tool_with_tool_call_list=[
            V.ServerMessageToolCallsToolWithToolCallListItem_Function(
                type="function", tool_call=tc, function=V.OpenAiFunction(name=tc.function.name)
            )
            for tc in tool_call_list
        ],
    )


def status_update(cid: str, caller: str, status: str, ended_reason: Optional[str] = None):
    fields: dict = {
        "type": "status-update",
        "status": status,
        "timestamp": float(now_ms()),
        "phoneNumber": twilio_number(DEMO_NUMBER),
        "customer": {"number": caller},
        "call": vapi_call(cid, caller).dict(),
    }
    if ended_reason:
        fields["endedReason"] = ended_reason
    return V.ServerMessageStatusUpdate.model_validate(fields)


def end_of_call_report(cid: str, caller: str):
    ended = _now()
    started = ended - dt.timedelta(seconds=75)
    t0 = started.timestamp() * 1000
    return V.ServerMessageEndOfCallReport(
        type="end-of-call-report",
        ended_reason="customer-ended-call",
        timestamp=float(now_ms()),
        phone_number=V.ServerMessageEndOfCallReportPhoneNumber_Twilio.model_validate(twilio_number(DEMO_NUMBER)),
        customer=V.CreateCustomerDto(number=caller),
        call=vapi_call(cid, caller),
        started_at=started,
        ended_at=ended,
        cost=0.11,
        artifact=V.Artifact(
            transcript="AI: Thanks for calling Demo Dental.\nUser: Can I move my check-up? Obrigada!\n",
            messages=[
                V.BotMessage(role="bot", message="Thanks for calling Demo Dental.", time=t0 + 500,
                             end_time=t0 + 2500, seconds_from_start=0.5),
                V.UserMessage(role="user", message="Can I move my check-up? Obrigada!", time=t0 + 3000,
                              end_time=t0 + 5000, seconds_from_start=3.0),
            ],
        ),
        analysis=V.Analysis(summary="The caller asked to move a check-up.", success_evaluation="true"),
    )


def post(http, body: bytes, headers: dict):
    return http.post("/vapi", content=body, headers=headers)


def assistant_answer(resp) -> V.ServerMessageResponseAssistantRequest:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return V.ServerMessageResponseAssistantRequest.model_validate(resp.json())


def check_demo_assistant(answer: V.ServerMessageResponseAssistantRequest, customer_name: str) -> dict:
    assert answer.error is None, answer.error
    # The demo tenant names an inline (transient) assistant.
    assert answer.assistant_id is None
    assert isinstance(answer.assistant, V.CreateAssistantDto)
    assert answer.assistant.name == "Demo Dental receptionist"
    assert "{{business_name}}" in (answer.assistant.first_message or "")
    assert type(answer.assistant.model).__name__ == "CreateAssistantDtoModel_Openai", answer.assistant.model
    overrides = answer.assistant_overrides
    assert isinstance(overrides, V.AssistantOverrides)
    values = overrides.variable_values
    assert set(values) == VARIABLES
    assert all(isinstance(v, str) for v in values.values()), values
    assert values["customer_name"] == customer_name
    assert values["business_name"] == DEMO_BUSINESS
    assert overrides.metadata["tenant_id"] == DEMO_TENANT
    return values


def tool_results(resp) -> list[V.ToolCallResult]:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    answer = V.ServerMessageResponseToolCalls.model_validate(resp.json())
    assert answer.error is None
    for r in answer.results:
        assert isinstance(r, V.ToolCallResult)
        text = r.result if r.result is not None else r.error
        assert isinstance(text, str) and text, r
        assert "\n" not in text and "\r" not in text, "Vapi needs single-line results"
    return answer.results


# -------------------------------------------------------- assistant-request


def test_assistant_request_with_bearer_token(http, vapi_secret):
    answer = assistant_answer(post(http, envelope(assistant_request(ANA)), bearer(vapi_secret)))
    values = check_demo_assistant(answer, "Ana Souza")
    assert values["is_returning_caller"] == "true"
    assert values["time_zone"] == "America/New_York"
    assert "morning" in values["memory_summary"].lower()


@pytest.mark.parametrize("unit", ["milliseconds", "seconds"])
def test_assistant_request_with_hmac_credential(http, vapi_secret, unit):
    body = envelope(assistant_request(BEN))
    ts = now_ms() if unit == "milliseconds" else now_ms() // 1000
    headers = hmac_headers(plan(vapi_secret), body, str(ts))
    assert set(headers) == {"content-type", "x-signature", "x-timestamp"}
    check_demo_assistant(assistant_answer(post(http, body, headers)), "Ben Carter")


def test_assistant_request_with_hmac_github_style_prefix(http, vapi_secret):
    """The SDK's example prefix `sha256=` (warmline accepts it unconfigured)."""
    body = envelope(assistant_request(ANA))
    headers = hmac_headers(plan(vapi_secret, signature_prefix="sha256="), body, str(now_ms()))
    assert headers["x-signature"].startswith("sha256=")
    check_demo_assistant(assistant_answer(post(http, body, headers)), "Ana Souza")


def test_assistant_request_with_legacy_x_vapi_secret(http, vapi_secret):
    body = envelope(assistant_request(ANA))
    headers = {"content-type": "application/json", "x-vapi-secret": vapi_secret}
    check_demo_assistant(assistant_answer(post(http, body, headers)), "Ana Souza")


def test_assistant_request_for_an_unknown_number_is_refused_with_a_spoken_error(http, vapi_secret):
    answer = assistant_answer(
        post(http, envelope(assistant_request(ANA, called=UNKNOWN_NUMBER)), bearer(vapi_secret))
    )
    assert answer.assistant is None and answer.assistant_id is None
    assert isinstance(answer.error, str) and answer.error.endswith("."), answer.error


# --------------------------------------------------------------- tool-calls


def test_tool_calls_answer_every_call_with_its_id_and_name(http, vapi_secret):
    cid = call_id()
    day = future_weekday(min_days=10, weekday=1)
    message = tool_calls(
        cid,
        ANA,
        [
            ("call_tool_1", "list_services", "{}"),
            ("call_tool_2", "get_customer_context", ""),
            ("call_tool_3", "check_availability", f'{{"date":"{day.isoformat()}","service":"cleaning"}}'),
            ("call_tool_4", "check_availability", '{"date":"the day after never","service":"cleaning"}'),
        ],
    )
    results = tool_results(post(http, envelope(message), bearer(vapi_secret)))
    assert [(r.tool_call_id, r.name) for r in results] == [
        ("call_tool_1", "list_services"),
        ("call_tool_2", "get_customer_context"),
        ("call_tool_3", "check_availability"),
        ("call_tool_4", "check_availability"),
    ]
    services, context, availability, bad_date = results
    assert services.result and "Teeth cleaning" in services.result
    assert context.result and "The caller is Ana Souza." in context.result
    assert availability.result and re.search(r"\d{1,2}:\d{2}\s?[AP]M", availability.result)
    # A tool's failure is a sentence for the agent, still in `results` (HTTP 200).
    said = bad_date.result or bad_date.error
    assert "date" in said.lower(), said


def test_tool_calls_with_hmac_credential(http, vapi_secret):
    body = envelope(tool_calls(call_id(), BEN, [("call_tool_hmac", "list_services", "{}")]))
    headers = hmac_headers(plan(vapi_secret), body, str(now_ms()))
    (result,) = tool_results(post(http, body, headers))
    assert result.tool_call_id == "call_tool_hmac"
    assert result.result and result.result.startswith(f"{DEMO_BUSINESS} offers")


def test_tool_call_of_an_unknown_tool_is_an_error_result(http, vapi_secret):
    body = envelope(tool_calls(call_id(), ANA, [("call_tool_x", "launch_rocket", "{}")]))
    (result,) = tool_results(post(http, body, bearer(vapi_secret)))
    assert (result.tool_call_id, result.name) == ("call_tool_x", "launch_rocket")
    assert (result.error or result.result), result


def test_a_tool_call_with_unreadable_arguments_is_answered_under_its_name(http, vapi_secret):
    body = envelope(tool_calls(call_id(), ANA, [("call_tool_bad", "check_availability", "{not json")]))
    (result,) = tool_results(post(http, body, bearer(vapi_secret)))
    assert result.tool_call_id == "call_tool_bad"
    assert result.error, result  # refused as an error, HTTP 200
    assert result.name == "check_availability"


# ----------------------------------------------- status-update, end-of-call


def test_status_updates_and_end_of_call_report_are_acknowledged_once_durable(http, vapi_secret):
    caller = fresh_caller()
    cid = call_id()
    first = assistant_answer(post(http, envelope(assistant_request(caller, cid=cid)), bearer(vapi_secret)))
    assert first.assistant_overrides.variable_values["total_calls"] == "0"

    assert_acknowledged(post(http, envelope(status_update(cid, caller, "in-progress")), bearer(vapi_secret)))
    assert_acknowledged(
        post(http, envelope(status_update(cid, caller, "ended", "customer-ended-call")), bearer(vapi_secret))
    )
    report = envelope(end_of_call_report(cid, caller))
    hmac_signed = hmac_headers(plan(vapi_secret), report, str(now_ms()))
    assert_acknowledged(post(http, report, hmac_signed))
    # A re-delivered report changes nothing.
    assert_acknowledged(post(http, report, bearer(vapi_secret)), duplicate=True)

    # The ended call counts in the caller's next context.
    deadline = time.monotonic() + 15
    while True:
        values = assistant_answer(
            post(http, envelope(assistant_request(caller)), bearer(vapi_secret))
        ).assistant_overrides.variable_values
        if values["total_calls"] != "0" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (values["total_calls"], values["is_returning_caller"]) == ("1", "true"), values


def test_other_statuses_are_acknowledged_and_ignored(http, vapi_secret):
    assert_ignored(post(http, envelope(status_update(call_id(), ANA, "ringing")), bearer(vapi_secret)))


def test_a_chat_sessions_report_without_a_call_is_acknowledged(http, vapi_secret):
    message = V.ServerMessageStatusUpdate(type="status-update", status="ended", timestamp=float(now_ms()))
    assert_ignored(post(http, envelope(message), bearer(vapi_secret)))


# ---------------------------------------------------------- authentication


def test_a_wrong_bearer_token_is_refused(http):
    assert_refused(post(http, envelope(assistant_request(ANA)), bearer("not-the-vapi-secret")))


def test_a_wrong_x_vapi_secret_is_refused(http):
    headers = {"content-type": "application/json", "x-vapi-secret": "not-the-vapi-secret"}
    assert_refused(post(http, envelope(assistant_request(ANA)), headers))


def test_an_hmac_signed_with_another_secret_is_refused(http):
    body = envelope(tool_calls(call_id(), ANA, [("call_tool_f", "list_services", "{}")]))
    assert_refused(post(http, body, hmac_headers(plan("another-secret"), body, str(now_ms()))))


@pytest.mark.parametrize("offset_ms", [-6 * 60 * 1000, 6 * 60 * 1000])
def test_an_hmac_timestamp_outside_five_minutes_is_refused(http, vapi_secret, offset_ms):
    body = envelope(assistant_request(ANA))
    assert_refused(post(http, body, hmac_headers(plan(vapi_secret), body, str(now_ms() + offset_ms))))


def test_an_hmac_over_another_body_is_refused(http, vapi_secret):
    body = envelope(assistant_request(ANA))
    headers = hmac_headers(plan(vapi_secret), body, str(now_ms()))
    assert_refused(post(http, envelope(assistant_request(BEN)), headers))


def test_a_request_without_credentials_is_refused(http):
    body = envelope(assistant_request(ANA))
    assert_refused(post(http, body, {"content-type": "application/json"}))
