"""Constants and helpers shared by the conformance tests (no fixtures)."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from typing import Any

import httpx

# The demo data (README, "The upstream simulator").
DEMO_NUMBER = "+15550100000"
DEMO_TENANT = "demo-dental"
DEMO_BUSINESS = "Demo Dental"
ANA = "+15550100001"  # Ana Souza, with memories
BEN = "+15550100002"  # Ben Carter
CHLOE = "+15550100003"  # Chloe Park
UNKNOWN_NUMBER = "+15550109999"  # no tenant answers it

# The dynamic variables warmline gives every platform (src/webhooks/variables.rs).
VARIABLES = {
    "business_name",
    "customer_name",
    "is_returning_caller",
    "total_calls",
    "memory_summary",
    "next_available_slots",
    "time_zone",
}


def call_id(prefix: str = "call") -> str:
    """A fresh call id, unique per test run."""
    return f"{prefix}_conf_{uuid.uuid4().hex[:16]}"


_GIVEN: set = set()


def fresh_caller() -> str:
    """A caller nobody else in the run uses (not in the demo CRM)."""
    while True:
        number = f"+1555010{random.randint(5000, 8999)}"
        if number not in _GIVEN:
            _GIVEN.add(number)
            return number


def body_bytes(payload: Any) -> bytes:
    """JSON as a platform sends it: compact, UTF-8, non-ASCII kept as is
    (so signatures are checked over real multi-byte bodies)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def assert_refused(resp: httpx.Response) -> None:
    """warmline's one answer to every failed authentication: 401 with JSON."""
    assert resp.status_code == 401, (resp.status_code, resp.text)
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert body["error"]["code"] == "unauthorized", body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def assert_acknowledged(resp: httpx.Response, *, duplicate: bool = False) -> dict:
    """A call event made durable in the database and acknowledged."""
    assert resp.status_code == 200, (resp.status_code, resp.text)
    body = resp.json()
    assert body == {"received": True, "durable_in": "database", "duplicate": duplicate}, body
    return body


def assert_ignored(resp: httpx.Response) -> dict:
    """An event warmline does not use: acknowledged (2xx) so it is not retried."""
    assert resp.status_code == 200, (resp.status_code, resp.text)
    body = resp.json()
    assert body == {"received": True, "ignored": True}, body
    return body


def future_weekday(min_days: int = 7, weekday: int = 1) -> dt.date:
    """A weekday (Monday=0) at least `min_days` ahead: the demo calendars are
    open 9:00–17:00 on weekdays, and no slot of that day is in the past."""
    day = dt.date.today() + dt.timedelta(days=min_days)
    while day.weekday() != weekday:
        day += dt.timedelta(days=1)
    return day


def now_ms() -> int:
    return int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
