"""Retell AI: warmline's /retell/* routes against retell-sdk (Python).

retell-sdk gives:
- the webhook signature helpers (`retell.lib.webhook_auth`: `symmetric["sign"]`,
  and `Retell.verify`, the one the SDK's README tells servers to call);
- the call object of lifecycle events and custom-function payloads
  (`retell.types.PhoneCallResponse`, with `TranscriptObject`, `CallAnalysis`);
- the types of the per-call fields an inbound-webhook answer sets
  (`CallCreatePhoneCallParams`: `retell_llm_dynamic_variables: Dict[str, str]`,
  `metadata`, `override_agent_id`, `agent_override`). The SDK has no model of
  the inbound-webhook answer itself, so its fields are checked with those.

Every request is signed with the SDK's signer, and the SDK's verifier is run
on it before it is sent: what warmline accepts is what Retell's own code
accepts, and the other way round.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, Optional

import pydantic
import pytest
from retell import Retell
from retell.lib.webhook_auth import symmetric as retell_webhook_auth
from retell.types import CallCreatePhoneCallParams, PhoneCallResponse

from support import (
    ANA,
    BEN,
    CHLOE,
    DEMO_BUSINESS,
    DEMO_NUMBER,
    DEMO_TENANT,
    UNKNOWN_NUMBER,
    VARIABLES,
    assert_acknowledged,
    assert_ignored,
    assert_refused,
    body_bytes,
    call_id,
    fresh_caller,
    future_weekday,
    now_ms,
)

FIVE_MINUTES_MS = 5 * 60 * 1000

# The fields Retell reads from an inbound-webhook answer, under `call_inbound`
# (docs.retellai.com/features/inbound-call-webhook).
INBOUND_ANSWER_FIELDS = {
    "override_agent_id",
    "override_agent_version",
    "dynamic_variables",
    "metadata",
    "agent_override",
}
# Their types, as the SDK types the same settings of a call it creates.
_CALL_PARAMS = CallCreatePhoneCallParams.__annotations__
DYNAMIC_VARIABLES = pydantic.TypeAdapter(Dict[str, str], config=pydantic.ConfigDict(strict=True))


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def retell(retell_api_key: str) -> Retell:
    # Offline: constructing the client sends nothing.
    return Retell(api_key=retell_api_key)


def sign(body: bytes, key: str, timestamp_ms: Optional[int] = None) -> str:
    """`x-retell-signature`, made by the SDK's own signer."""
    return retell_webhook_auth["sign"](body.decode("utf-8"), key, timestamp_ms)


def signed_headers(retell: Retell, body: bytes, key: str, **kw: Any) -> dict:
    signature = sign(body, key, **kw)
    # Prove it: the SDK's verifier accepts what is about to be sent.
    assert retell.verify(body.decode("utf-8"), key, signature), signature
    return {"content-type": "application/json", "x-retell-signature": signature}


def post(http, retell, key, path: str, payload: Any, **kw):
    body = body_bytes(payload)
    return http.post(path, content=body, headers=signed_headers(retell, body, key), **kw)


def phone_call(cid: str, caller: str, called: str = DEMO_NUMBER, **fields: Any) -> dict:
    """A Retell call object, validated by the SDK's `PhoneCallResponse`."""
    call = PhoneCallResponse.model_validate(
        {
            "call_id": cid,
            "agent_id": "agent_conformance",
            "agent_version": 1,
            "agent_name": "Recepção Clínica",  # non-ASCII: signatures cover UTF-8 bytes
            "call_type": "phone_call",
            "call_status": "ongoing",
            "direction": "inbound",
            "from_number": caller,
            "to_number": called,
            **fields,
        }
    )
    return call.to_dict(mode="json", exclude_unset=True)


def inbound_payload(caller: Optional[str], called: str = DEMO_NUMBER, cid: Optional[str] = None):
    inbound: dict = {"agent_id": "agent_conformance", "agent_version": 1, "to_number": called}
    if caller is not None:
        inbound["from_number"] = caller
    if cid is not None:
        # retell-sdk 6.2.13 documents call_inbound.call_id (for de-duplication).
        inbound["call_id"] = cid
    return {"event": "call_inbound", "call_inbound": inbound}


def check_inbound_answer(answer: dict) -> dict:
    """The answer's shape as Retell reads it; returns `call_inbound`."""
    assert set(answer) == {"call_inbound"}, answer
    inbound = answer["call_inbound"]
    unknown = set(inbound) - INBOUND_ANSWER_FIELDS
    assert not unknown, f"fields Retell does not read: {unknown}"
    if "dynamic_variables" in inbound:
        # Retell's dynamic variables are strings only (strict: no numbers, no booleans).
        DYNAMIC_VARIABLES.validate_python(inbound["dynamic_variables"])
    for field, sdk_field in [
        ("override_agent_id", "override_agent_id"),
        ("override_agent_version", "override_agent_version"),
        ("metadata", "metadata"),
    ]:
        if field in inbound:
            pydantic.TypeAdapter(_CALL_PARAMS[sdk_field]).validate_python(inbound[field])
    return inbound


def inbound(http, retell, key, caller: Optional[str], called: str = DEMO_NUMBER, cid=None) -> dict:
    resp = post(http, retell, key, "/retell/inbound", inbound_payload(caller, called, cid))
    assert resp.status_code == 200, resp.text
    return check_inbound_answer(resp.json())


def function_result(resp) -> str:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"result"}, body
    result = body["result"]
    assert isinstance(result, str) and result
    assert len(result) <= 15_000  # Retell hands the LLM at most this much
    return result


# ------------------------------------------------------------- call_inbound


def test_call_inbound_answers_dynamic_variables_of_a_returning_caller(http, retell, retell_api_key):
    got = inbound(http, retell, retell_api_key, ANA, cid=call_id())
    variables = got["dynamic_variables"]
    assert set(variables) == VARIABLES
    assert variables["customer_name"] == "Ana Souza"
    assert variables["business_name"] == DEMO_BUSINESS
    assert variables["is_returning_caller"] == "true"
    assert variables["time_zone"] == "America/New_York"
    assert "morning" in variables["memory_summary"].lower()  # Ana's seeded memory
    assert variables["total_calls"].isdigit()
    metadata = got["metadata"]
    assert metadata["tenant_id"] == DEMO_TENANT
    assert re.fullmatch(r"ct_\d+", metadata["crm_contact_id"]), metadata
    assert metadata["context_missing"] == [] and metadata["context_stale"] == []


def test_call_inbound_variables_are_valid_as_the_calls_dynamic_variables(
    http, retell, retell_api_key
):
    """What warmline answers becomes the call's `retell_llm_dynamic_variables`:
    the SDK's call object must accept it as such."""
    variables = inbound(http, retell, retell_api_key, BEN)["dynamic_variables"]
    assert variables["customer_name"] == "Ben Carter"
    call = PhoneCallResponse.model_validate(
        phone_call(call_id(), BEN, retell_llm_dynamic_variables=variables)
    )
    assert call.retell_llm_dynamic_variables == variables


def test_call_inbound_for_an_unknown_number_leaves_the_call_to_retells_default_agent(
    http, retell, retell_api_key
):
    assert inbound(http, retell, retell_api_key, ANA, called=UNKNOWN_NUMBER) == {}


def test_call_inbound_from_a_withheld_number_still_gets_the_business(http, retell, retell_api_key):
    variables = inbound(http, retell, retell_api_key, None)["dynamic_variables"]
    assert variables["business_name"] == DEMO_BUSINESS
    assert variables["customer_name"] == ""
    assert variables["is_returning_caller"] == "false"


# --------------------------------------------------------- custom functions


def test_function_default_payload_list_services(http, retell, retell_api_key):
    cid = call_id()
    result = function_result(
        post(
            http,
            retell,
            retell_api_key,
            "/retell/functions/list_services",
            {"name": "list_services", "call": phone_call(cid, ANA), "args": {}},
        )
    )
    assert result.startswith(f"{DEMO_BUSINESS} offers")
    for service in ("Teeth cleaning", "Check-up", "Whitening consultation"):
        assert service in result


def test_function_named_in_the_body_get_customer_context(http, retell, retell_api_key):
    cid = call_id()
    inbound(http, retell, retell_api_key, ANA, cid=cid)
    result = function_result(
        post(
            http,
            retell,
            retell_api_key,
            "/retell/functions",
            {"name": "get_customer_context", "call": phone_call(cid, ANA), "args": {}},
        )
    )
    assert "The caller is Ana Souza." in result


def test_function_args_at_root_check_availability(http, retell, retell_api_key):
    """A tool with "Payload: args only": the body is the arguments alone and
    the call is named in the query string."""
    day = future_weekday(min_days=9, weekday=2)
    cid = call_id()
    body = body_bytes({"date": day.isoformat(), "service": "cleaning"})
    resp = http.post(
        "/retell/functions/check_availability",
        params={"call_id": cid, "from_number": ANA, "to_number": DEMO_NUMBER},
        content=body,
        headers=signed_headers(retell, body, retell_api_key),
    )
    result = function_result(resp)
    assert "Teeth cleaning" in result
    assert re.search(r"\d{1,2}:\d{2}\s?[AP]M", result), result


def test_function_get_without_body_is_signed_over_the_empty_body(http, retell, retell_api_key):
    """GET and DELETE tools have no body: Retell signs the empty string."""
    cid = call_id()
    resp = http.get(
        "/retell/functions/list_services",
        params={"call_id": cid, "from_number": ANA, "to_number": DEMO_NUMBER},
        headers=signed_headers(retell, b"", retell_api_key),
    )
    assert "Teeth cleaning" in function_result(resp)


def test_function_booking_is_answered_once_when_retell_retries(http, sim, retell, retell_api_key):
    """Retell retries a function call up to twice with the same bytes: the
    booking is made once and the retry gets the first answer."""
    day = future_weekday(min_days=14, weekday=3)
    cid = call_id()
    call = phone_call(cid, BEN)
    free = function_result(
        post(
            http,
            retell,
            retell_api_key,
            "/retell/functions/check_availability",
            {"name": "check_availability", "call": call, "args": {"date": day.isoformat(), "service": "checkup"}},
        )
    )
    times = re.findall(r"\d{1,2}:\d{2}\s?[AP]M", free)
    assert times, free
    slot = times[-1]
    body = body_bytes(
        {
            "name": "book_appointment",
            "call": call,
            "args": {
                "date": day.isoformat(),
                "time": slot,
                "service": "checkup",
                "name": "Ben Carter",
                "email": "ben@example.com",
            },
        }
    )
    headers = signed_headers(retell, body, retell_api_key)
    first = function_result(http.post("/retell/functions/book_appointment", content=body, headers=headers))
    assert "book" in first.lower() and slot.split()[0] in first, first
    again = function_result(http.post("/retell/functions/book_appointment", content=body, headers=headers))
    assert again == first
    after = function_result(
        post(
            http,
            retell,
            retell_api_key,
            "/retell/functions/check_availability",
            {"name": "check_availability", "call": call, "args": {"date": day.isoformat(), "service": "checkup"}},
        )
    )
    assert slot not in re.findall(r"\d{1,2}:\d{2}\s?[AP]M", after), after
    if sim is not None:
        # The calendar (GoHighLevel, simulated) got exactly one booking.
        booked = [
            r for r in sim.get("/_sim/requests", params={"endpoint": "ghl.calendars.appointments"}).json()["requests"]
            if (r.get("body") or {}).get("calendarId") == "cal_demo_checkup"
            and str((r.get("body") or {}).get("startTime", "")).startswith(day.isoformat())
        ]
        assert len(booked) == 1, booked


def test_a_function_naming_only_the_call_id_of_call_inbound_finds_the_caller(
    http, retell, retell_api_key
):
    import inspect

    import retell.types.phone_number_response as sdk_doc

    # The premise is the SDK's: the inbound webhook carries call_inbound.call_id.
    assert "call_inbound.call_id" in inspect.getsource(sdk_doc)
    cid = call_id()
    assert inbound(http, retell, retell_api_key, BEN, cid=cid)["dynamic_variables"]["customer_name"] == "Ben Carter"
    # A GET tool configured with `?call_id={{call_id}}` only.
    resp = http.get(
        "/retell/functions/get_customer_context",
        params={"call_id": cid},
        headers=signed_headers(retell, b"", retell_api_key),
    )
    assert "The caller is Ben Carter." in function_result(resp)


# ------------------------------------------------------------ call events


def test_call_lifecycle_events_are_acknowledged_once_durable(http, retell, retell_api_key):
    cid = call_id()
    variables = inbound(http, retell, retell_api_key, CHLOE, cid=cid)["dynamic_variables"]
    assert variables["customer_name"] == "Chloe Park"
    start = now_ms() - 95_000
    started = phone_call(
        cid, CHLOE, start_timestamp=start, retell_llm_dynamic_variables=variables
    )
    assert_acknowledged(
        post(http, retell, retell_api_key, "/retell/events", {"event": "call_started", "call": started})
    )

    transcript_object = [
        {"role": "agent", "content": "Thanks for calling Demo Dental, how can I help?",
         "words": [{"word": "Thanks", "start": 0.2, "end": 0.5}]},
        {"role": "user", "content": "I'd like a cleaning next week, São Paulo time is fine.",
         "words": [{"word": "I'd", "start": 3.1, "end": 3.3}]},
    ]
    ended = phone_call(
        cid,
        CHLOE,
        call_status="ended",
        start_timestamp=start,
        end_timestamp=start + 90_000,
        duration_ms=90_000,
        disconnection_reason="user_hangup",
        transcript="Agent: Thanks for calling Demo Dental, how can I help?\n"
        "User: I'd like a cleaning next week, São Paulo time is fine.\n",
        transcript_object=transcript_object,
        retell_llm_dynamic_variables=variables,
    )
    ended_payload = {"event": "call_ended", "call": ended}
    assert_acknowledged(post(http, retell, retell_api_key, "/retell/events", ended_payload))

    analyzed = phone_call(
        cid,
        CHLOE,
        call_status="ended",
        start_timestamp=start,
        end_timestamp=start + 90_000,
        duration_ms=90_000,
        disconnection_reason="user_hangup",
        transcript_object=transcript_object,
        call_analysis={
            "call_summary": "Chloe asked for a cleaning next week.",
            "call_successful": True,
            "user_sentiment": "Positive",
            "in_voicemail": False,
            "custom_analysis_data": {"intent": "booking"},
        },
    )
    assert_acknowledged(
        post(http, retell, retell_api_key, "/retell/events", {"event": "call_analyzed", "call": analyzed})
    )

    # Retell retries an event it got no 2xx for: the retry changes nothing.
    assert_acknowledged(
        post(http, retell, retell_api_key, "/retell/events", ended_payload), duplicate=True
    )


def test_an_ended_call_counts_in_the_callers_next_context(http, retell, retell_api_key):
    """call_ended updates the caller's statistics: the caller's next inbound
    call sees one call more (warmline invalidates the cached context)."""
    caller = fresh_caller()
    first = inbound(http, retell, retell_api_key, caller)["dynamic_variables"]
    assert (first["total_calls"], first["is_returning_caller"]) == ("0", "false"), first
    start = now_ms() - 60_000
    call = phone_call(
        call_id(), caller, call_status="ended", start_timestamp=start,
        end_timestamp=start + 50_000, duration_ms=50_000, disconnection_reason="agent_hangup",
        transcript="Agent: Bye.\n",
        transcript_object=[{"role": "agent", "content": "Bye.", "words": []}],
    )
    assert_acknowledged(
        post(http, retell, retell_api_key, "/retell/events", {"event": "call_ended", "call": call})
    )
    deadline = time.monotonic() + 15
    while True:
        again = inbound(http, retell, retell_api_key, caller)["dynamic_variables"]
        if again["total_calls"] != "0" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (again["total_calls"], again["is_returning_caller"]) == ("1", "true"), again


def test_other_events_are_acknowledged_and_ignored(http, retell, retell_api_key):
    payload = {"event": "transcript_updated", "call": phone_call(call_id(), ANA)}
    assert_ignored(post(http, retell, retell_api_key, "/retell/events", payload))


# ------------------------------------------------------------- signatures


@pytest.mark.parametrize("path", ["/retell/inbound", "/retell/events", "/retell/functions/list_services"])
def test_a_request_signed_with_another_key_is_refused(http, retell, retell_api_key, path):
    payload = (
        inbound_payload(ANA)
        if path == "/retell/inbound"
        else {"event": "call_started", "call": phone_call(call_id(), ANA)}
        if path == "/retell/events"
        else {"name": "list_services", "call": phone_call(call_id(), ANA), "args": {}}
    )
    body = body_bytes(payload)
    forged = sign(body, "key_not_the_webhook_key")
    # The SDK, holding the real key, refuses it too.
    assert not retell.verify(body.decode(), retell_api_key, forged)
    resp = http.post(path, content=body, headers={"content-type": "application/json", "x-retell-signature": forged})
    assert_refused(resp)


@pytest.mark.parametrize("offset_ms", [-(FIVE_MINUTES_MS + 60_000), FIVE_MINUTES_MS + 60_000])
def test_a_signature_outside_five_minutes_is_refused(http, retell, retell_api_key, offset_ms):
    body = body_bytes(inbound_payload(ANA))
    signature = sign(body, retell_api_key, now_ms() + offset_ms)
    assert not retell.verify(body.decode(), retell_api_key, signature)  # the SDK's window
    resp = http.post(
        "/retell/inbound", content=body,
        headers={"content-type": "application/json", "x-retell-signature": signature},
    )
    assert_refused(resp)


def test_a_signature_four_minutes_old_is_accepted_by_both(http, retell, retell_api_key):
    body = body_bytes(inbound_payload(ANA))
    signature = sign(body, retell_api_key, now_ms() - 4 * 60 * 1000)
    assert retell.verify(body.decode(), retell_api_key, signature)
    resp = http.post(
        "/retell/inbound", content=body,
        headers={"content-type": "application/json", "x-retell-signature": signature},
    )
    assert resp.status_code == 200, resp.text
    assert check_inbound_answer(resp.json())["dynamic_variables"]["customer_name"] == "Ana Souza"


def test_a_body_changed_after_signing_is_refused(http, retell, retell_api_key):
    body = body_bytes(inbound_payload(ANA))
    signature = sign(body, retell_api_key)
    tampered = body.replace(ANA.encode(), BEN.encode())
    assert not retell.verify(tampered.decode(), retell_api_key, signature)
    resp = http.post(
        "/retell/inbound", content=tampered,
        headers={"content-type": "application/json", "x-retell-signature": signature},
    )
    assert_refused(resp)


def test_an_unsigned_request_is_refused_once_a_key_is_set(http):
    """Even for the demo number from this machine: RETELL_API_KEY is set."""
    resp = http.post(
        "/retell/inbound", content=body_bytes(inbound_payload(ANA)),
        headers={"content-type": "application/json"},
    )
    assert_refused(resp)
