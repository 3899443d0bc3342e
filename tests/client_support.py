"""Set-up shared by the Procore client's unit tests: a fake clock, settings and fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses
from pydantic import SecretStr

from connectors.procore import ProcoreClient
from procore_sync.settings import Settings

API = "https://api.procore.com"
TOKEN_URL = "https://login.procore.com/oauth/token"
VENDORS = f"{API}/rest/v1.0/vendors"
SECRET = "cs_TOPSECRET_4711_client"
T0 = 1_700_000_000.0


class FakeTime:
    """A clock that only moves when the client sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        environment="production", client_id="cid-1", client_secret=SecretStr(SECRET),
        company_id=42, timeout_s=5, max_attempts=4, batch_size=1000, per_page=100,
        pacing_low_water=5,
    )
    return Settings(_env_file=None, **{**values, **overrides})  # type: ignore[call-arg]


def api_calls(rsps: responses.RequestsMock) -> list[Any]:
    return [c for c in rsps.calls if c.request.url.startswith(API)]


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(fake: FakeTime) -> Iterator[ProcoreClient]:
    with ProcoreClient(make_settings(), sleep=fake.sleep, clock=fake.clock) as procore:
        yield procore
