"""Fixtures of the conformance suite.

conformance/run starts warmline with the first-run demo tenant ("Demo Dental",
called number +15550100000, wired to the built-in upstream simulator) and
exports where it listens and the secrets it was given.
"""

from __future__ import annotations

import os

import httpx
import pytest

# Plain asserts in the shared helpers report like the tests' own.
pytest.register_assert_rewrite("support")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run the suite with conformance/run", returncode=2)
    return value


@pytest.fixture(scope="session")
def base_url() -> str:
    return _env("WARMLINE_URL")


@pytest.fixture(scope="session")
def retell_api_key() -> str:
    return _env("RETELL_API_KEY")


@pytest.fixture(scope="session")
def vapi_secret() -> str:
    return _env("VAPI_SECRET")


@pytest.fixture(scope="session")
def elevenlabs_secret() -> str:
    return _env("ELEVENLABS_WEBHOOK_SECRET")


@pytest.fixture(scope="session")
def http(base_url: str):
    # Generous: a cold inbound call waits for the simulator's latencies.
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(20.0)) as client:
        yield client


@pytest.fixture(scope="session")
def sim(http: httpx.Client):
    """The demo's upstream simulator (`/_sim/requests`), or None when warmline
    did not print where it is."""
    url = os.environ.get("WARMLINE_SIM_URL")
    if not url:
        yield None
        return
    with httpx.Client(base_url=url, timeout=10.0) as client:
        yield client
