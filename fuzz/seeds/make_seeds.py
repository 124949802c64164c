#!/usr/bin/env python3
"""Writes the tracked seed corpus, seeds/<target>/<name>, in the input layout
each target documents (fuzz/src/lib.rs: a flags byte, an 8-byte
little-endian clock, `\n`-terminated fields, then the body).

The payloads are the shapes the providers send (as in tests/api/); the
signatures are computed here independently of warmline, so a seed whose
signature verifies is also a cross-check of the schemes. Re-run after a
change of layout: `python3 fuzz/seeds/make_seeds.py`.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
NOW_MS = 1_700_000_000_000
NOW_S = NOW_MS // 1000

CLINIC = "+15550100000"
CALLER = "+15550100001"


def clock(v):
    return struct.pack("<q", v)


def j(v):
    return json.dumps(v, separators=(",", ":")).encode()


def lines(*fields):
    return b"".join((f.encode() if isinstance(f, str) else f) + b"\n" for f in fields)


def mac(key, data, algo=hashlib.sha256):
    return hmac.new(key, data, algo).digest()


def retell_header(body, key, ts):
    return f"v={ts},d={mac(key, body + str(ts).encode()).hex()}"


def elevenlabs_header(body, secret, ts):
    return f"t={ts},v0={mac(secret, str(ts).encode() + b'.' + body).hex()}"


ALGOS = {0: ("sha256", hashlib.sha256), 1: ("sha512", hashlib.sha512), 2: ("sha1", hashlib.sha1)}


def plan_sign(flags, prefix, body, secret, ts):
    _, algo = ALGOS[flags & 3 if flags & 3 != 3 else 0]
    payload = (ts.encode() + b"." + body) if flags & 8 else body
    raw = mac(secret, payload, algo)
    enc = base64.b64encode(raw).decode() if flags & 4 else raw.hex()
    return (prefix if flags & 16 else "") + enc


def retell_call(call_id, **extra):
    call = {
        "call_id": call_id, "agent_id": "agent_1", "call_type": "phone_call",
        "direction": "inbound", "from_number": CALLER, "to_number": CLINIC,
        "call_status": "ongoing", "start_timestamp": NOW_MS - 60_000,
    }
    call.update(extra)
    return call


RETELL_BODY = j({"event": "call_started", "call": retell_call("call_1")})
VAPI_BODY = j({"message": {"type": "tool-calls", "call": {"id": "vapi-call-1"},
                           "toolCallList": [{"id": "t1", "name": "list_services", "arguments": {}}]}})
ELEVEN_BODY = j({"type": "post_call_transcription", "event_timestamp": NOW_S,
                 "data": {"agent_id": "agent_x", "conversation_id": "conv_1", "status": "done"}})
DIGEST0 = "0" * 64

SEEDS = {
    "retell_inbound": {
        "inbound": j({"event": "call_inbound", "call_inbound": {
            "agent_id": "agent_1", "from_number": CALLER, "to_number": CLINIC}}),
        "withheld-caller": j({"event": "call_inbound", "call_inbound": {
            "agent_id": "agent_1", "from_number": None, "to_number": "+1 (555) 010-0000"}}),
        "wrong-event": j({"event": "call_started", "call_inbound": {"to_number": CLINIC}}),
        "bad-number": j({"event": "call_inbound", "call_inbound": {"to_number": "call me"}}),
    },
    "retell_chat_inbound": {
        "sms": j({"event": "chat_inbound", "chat_inbound": {
            "agent_id": "agent_sms", "from_number": CALLER, "to_number": CLINIC}}),
        "withheld": j({"event": "chat_inbound", "chat_inbound": {
            "from_number": None, "to_number": CLINIC, "chat_id": "chat_1"}}),
        "a-call": j({"event": "call_inbound", "call_inbound": {
            "from_number": CALLER, "to_number": CLINIC}}),
    },
    "retell_function": {
        "default-shape": lines("check_availability", "") + j({
            "name": "check_availability", "call": retell_call("call_2"),
            "args": {"date": "2026-11-24", "service": "cleaning"}}),
        "name-in-body": lines("", "") + j({
            "name": "list_services", "call": retell_call("call_3"), "args": {}}),
        "book": lines("book_appointment", "") + j({
            "name": "book_appointment", "call": retell_call("call_4"),
            "args": {"date": "tomorrow", "time": "2:30 PM", "service": "Teeth cleaning",
                     "name": "Ada", "phone": "+1 415 555 0123", "email": "a@example.com"}}),
        "args-at-root": lines("get_alternatives", "call_id=call_5&from_number=%2B15550100001")
        + j({"date": "friday", "time": "14:30"}),
        "query-only": lines("get_customer_context",
                            "call_id=call_6&from_number=%2B15550100001&to_number=%2B15550100000&day=today"),
        "unknown-tool": lines("transfer_call", "") + j({"name": "transfer_call", "call": {}, "args": None}),
    },
    "retell_event": {
        "started": RETELL_BODY,
        "ended": j({"event": "call_ended", "call": retell_call(
            "call_1", call_status="ended", end_timestamp=NOW_MS, duration_ms=60_000,
            transcript="Agent: Hi!\nUser: Hello", disconnection_reason="user_hangup")}),
        "analyzed": j({"event": "call_analyzed", "call": retell_call(
            "call_1", call_analysis={"call_summary": "Booked a cleaning", "call_successful": True,
                                     "user_sentiment": "Positive"})}),
        "ignored": j({"event": "transcript_updated", "call": {"to_number": CLINIC}}),
        "no-call-id": j({"event": "call_ended", "call": {"to_number": CLINIC}}),
    },
    "vapi_message": {
        "assistant-request": j({"message": {
            "type": "assistant-request", "call": {"id": "vapi-call-2"},
            "phoneNumber": {"number": CLINIC}, "customer": {"number": CALLER}}}),
        "tool-calls": j({"message": {
            "type": "tool-calls",
            "call": {"id": "vapi-call-2", "customer": {"number": CALLER}},
            "phoneNumber": {"number": CLINIC},
            "toolCallList": [
                {"id": "t1", "type": "function", "function": {
                    "name": "check_availability",
                    "arguments": "{\"date\":\"2026-11-24\",\"service\":\"cleaning\"}"}},
                {"id": "t2", "name": "check_availability", "arguments": {"date": "tomorrow"}},
                {"id": "t3", "name": "check_availability", "parameters": {"date": "monday"}},
                {"id": "t4", "name": "get_customer_context", "arguments": {}},
                {"id": "t5", "name": "teleport", "arguments": {}},
                {"id": "t6", "name": "book_appointment", "arguments": {"date": "the day after never"}},
                {"name": "no_id"}],
            "toolWithToolCallList": []}}),
        "status-in-progress": j({"message": {
            "type": "status-update", "status": "in-progress",
            "call": {"id": "vapi-call-2", "type": "inboundPhoneCall"},
            "phoneNumber": {"number": CLINIC}, "customer": {"number": CALLER}}}),
        "status-ended": j({"message": {
            "type": "status-update", "status": "ended", "endedReason": "customer-ended-call",
            "call": {"id": "vapi-call-2"}}}),
        "end-of-call-report": j({"message": {
            "type": "end-of-call-report", "call": {"id": "vapi-call-2"},
            "startedAt": "2026-11-21T10:00:00.000Z", "endedAt": "2026-11-21T10:01:00.000Z",
            "transcript": "AI: Hi\nUser: Hello", "summary": "Said hello",
            "messages": [{"role": "bot", "message": "Hi"}, {"role": "user", "message": "Hello"}],
            "analysis": {"summary": "Said hello", "successEvaluation": "true"}}}),
        "chat-status": j({"message": {"type": "status-update", "status": "ended"}}),
    },
    "elevenlabs_initiation": {
        "initiation": j({"caller_id": CALLER, "agent_id": "agent_x",
                         "called_number": CLINIC, "call_sid": "CA123"}),
        "withheld": j({"caller_id": None, "agent_id": "agent_x", "called_number": "0015550100000"}),
        "missing-called": j({"caller_id": CALLER}),
    },
    "elevenlabs_post_call": {
        "transcription": clock(NOW_S) + j({
            "type": "post_call_transcription", "event_timestamp": NOW_S,
            "data": {
                "agent_id": "agent_x", "conversation_id": "conv_42", "status": "done",
                "transcript": [{"role": "agent", "message": "Hi!"},
                               {"role": "user", "message": "Cancel my visit"}],
                "metadata": {"start_time_unix_secs": NOW_S - 60, "call_duration_secs": 42,
                             "termination_reason": "hangup",
                             "phone_call": {"external_number": "+15550100003",
                                            "agent_number": CLINIC}},
                "conversation_initiation_client_data": {
                    "dynamic_variables": {"system__called_number": CLINIC,
                                          "system__caller_id": CALLER}},
                "analysis": {"call_successful": "success",
                             "transcript_summary": "Asked to cancel"}}}),
        "extreme-clock": clock(I64_MAX) + j({
            "type": "post_call_transcription",
            "data": {"conversation_id": "conv_43",
                     "metadata": {"start_time_unix_secs": I64_MAX, "call_duration_secs": I64_MAX}}}),
        "negative-clock": clock(I64_MIN) + j({
            "type": "post_call_transcription",
            "data": {"conversation_id": "conv_44",
                     "metadata": {"start_time_unix_secs": -1, "call_duration_secs": 1.5}}}),
        "audio": clock(NOW_S) + j({"type": "post_call_audio", "data": {
            "agent_id": "agent_x", "conversation_id": "conv_42", "full_audio": "UklGRg=="}}),
    },
    "verify_retell": {
        "valid": b"\x01" + clock(NOW_MS + 1000)
        + lines(retell_header(RETELL_BODY, b"key_retell", NOW_MS), "key_retell") + RETELL_BODY,
        "stale": b"\x01" + clock(NOW_MS + 301_000)
        + lines(retell_header(RETELL_BODY, b"key_retell", NOW_MS), "key_retell") + RETELL_BODY,
        "max-ts": b"\x01" + clock(I64_MIN) + lines(f"v={I64_MAX},d={DIGEST0}", "k") + b"{}",
        "min-ts": b"\x01" + clock(I64_MAX) + lines(f"v={I64_MIN},d={DIGEST0}", "k") + b"{}",
        "missing": b"\x00" + clock(0) + lines("", "k") + b"{}",
    },
    "verify_elevenlabs": {
        "valid": b"\x01" + clock(NOW_S + 60)
        + lines(elevenlabs_header(ELEVEN_BODY, b"wsec_test", NOW_S), "wsec_test") + ELEVEN_BODY,
        "future": b"\x01" + clock(NOW_S - 301)
        + lines(elevenlabs_header(ELEVEN_BODY, b"wsec_test", NOW_S), "wsec_test") + ELEVEN_BODY,
        "extremes": b"\x01" + clock(I64_MIN) + lines(f"t={I64_MAX},v0={DIGEST0}", "s") + b"{}",
        "reordered": b"\x01" + clock(NOW_S) + lines(f"v0={DIGEST0}, t={NOW_S}, t=1", "s") + b"{}",
    },
    "verify_vapi_hmac": {
        "valid-ms": b"\x03" + clock(NOW_MS)
        + lines(mac(b"vsec", f"{NOW_MS}.".encode() + VAPI_BODY).hex(), str(NOW_MS), "vsec")
        + VAPI_BODY,
        "valid-seconds-prefixed": b"\x03" + clock(NOW_MS + 100_000)
        + lines("sha256=" + mac(b"vsec", f"{NOW_S}.".encode() + VAPI_BODY).hex(), str(NOW_S), "vsec")
        + VAPI_BODY,
        "overflowing-seconds": b"\x03" + clock(I64_MAX) + lines(DIGEST0, str(I64_MIN), "vsec") + b"{}",
        "no-timestamp": b"\x01" + clock(NOW_MS) + lines(DIGEST0, "", "vsec") + b"{}",
    },
    "hmac_plan_verify": {
        f"flags-{flags:02x}": bytes([flags | 32 | 64]) + clock(NOW_MS)
        + lines(prefix, plan_sign(flags, prefix, VAPI_BODY, b"vsec", str(NOW_MS)), str(NOW_MS), "vsec")
        + VAPI_BODY
        for flags, prefix in [(0x08, ""), (0x09, ""), (0x0a, ""), (0x0c, ""), (0x00, ""),
                              (0x18, "v1="), (0x1d, "sha512=")]
    },
    "vapi_auth_verify": {
        "bearer": b"\x88" + clock(NOW_MS)
        + lines("authorization", "x-signature", "x-timestamp", "", "vapi-secret",
                "authorization:Bearer vapi-secret", "content-type:application/json", "")
        + VAPI_BODY,
        "custom-header-no-prefix": b"\x08" + clock(NOW_MS)
        + lines("x-my-token", "x-signature", "x-timestamp", "", "vapi-secret",
                "x-my-token:vapi-secret", "") + VAPI_BODY,
        "legacy-secret": b"\x88" + clock(NOW_MS)
        + lines("authorization", "x-signature", "x-timestamp", "", "vapi-secret",
                "x-vapi-secret: vapi-secret", "") + VAPI_BODY,
        "hmac": b"\x88" + clock(NOW_MS)
        + lines("authorization", "x-signature", "x-timestamp", "", "vapi-secret",
                "x-signature:" + plan_sign(0x08, "", VAPI_BODY, b"vapi-secret", str(NOW_MS)),
                f"x-timestamp:{NOW_MS}", "") + VAPI_BODY,
        "hmac-base64-custom": b"\x9c" + clock(NOW_MS)
        + lines("authorization", "x-hub-signature", "x-hub-time", "v1=", "vapi-secret",
                "x-hub-signature:" + plan_sign(0x1c, "v1=", VAPI_BODY, b"vapi-secret", str(NOW_S)),
                f"x-hub-time:{NOW_S}", "") + VAPI_BODY,
    },
    "phone_number": {
        "e164": b"+14155550123",
        "formatted": b"+1 (415) 555-0123",
        "double-zero": b"001 415.555.0123",
        "nbsp": "+44\u00a020\u00a07946\u00a00000".encode(),
        "national-with-country": b"44\n020 7946 0000",
        "too-long": b"+1234567890123456",
        "leading-zero": b"+0123456789",
        "letters": b"+1 415 CALL NOW",
    },
    "tool_request": {
        "check": lines("check_availability") + j({"day": "tomorrow", "service_name": "Cleaning", "extra": 1}),
        "alternatives": lines("get_alternatives") + j({"date": "2026-11-24", "start_time": "9 a.m."}),
        "book": lines("book_appointment") + j({
            "date": "friday", "time": "12 pm", "service_id": "svc_1", "customer_name": "Ada",
            "phone_number": "0044 20 7946 0000", "notes": "first visit"}),
        "bad-date": lines("check_availability") + j({"date": 20260901}),
        "null-args": lines("list_services") + b"null",
        "unknown": lines("transfer_call") + b"{}",
    },
}


def main():
    for target, seeds in SEEDS.items():
        d = os.path.join(HERE, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds.items():
            with open(os.path.join(d, f"seed-{name}"), "wb") as f:
                f.write(data)
    print(f"{sum(len(s) for s in SEEDS.values())} seeds for {len(SEEDS)} targets")


if __name__ == "__main__":
    main()
