"""The sandbox over a real socket: what only real HTTP can show.

A lost response has to break a real connection, so these tests run uvicorn in a thread on
127.0.0.1 and talk to it with ``requests``, the client library procore-sync uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread

CREDENTIALS = {"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"}
BROKEN_CONNECTION = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with start_in_thread(SandboxConfig(lost_response_rate=1.0), clock=ManualClock()) as running:
        yield running


def auth_headers(session: requests.Session, url: str) -> dict[str, str]:
    token = session.post(f"{url}/oauth/token", data=CREDENTIALS, timeout=5).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "Procore-Company-Id": "1"}


def sync(
    session: requests.Session, url: str, headers: dict[str, str], updates: list[dict[str, Any]]
) -> requests.Response:
    body = {"company_id": 1, "updates": updates}
    return session.patch(f"{url}/rest/v1.0/vendors/sync", json=body, headers=headers, timeout=5)


def test_lost_response_commits_the_write_and_breaks_the_connection(server: SandboxServer) -> None:
    session = requests.Session()
    headers = auth_headers(session, server.url)  # OAuth is outside the fault switches
    create = {"company_id": 1, "vendor": {"name": "Acme"}}
    with pytest.raises(BROKEN_CONNECTION):
        session.post(f"{server.url}/rest/v1.0/vendors", json=create, headers=headers, timeout=5)
    assert [vendor["name"] for vendor in server.store.vendors(1)] == ["Acme"]

    # The client cannot know the write landed; replaying a sync by origin_id is safe.
    with pytest.raises(BROKEN_CONNECTION):
        sync(session, server.url, headers, [{"origin_id": "ERP-1", "name": "Beta"}])
    session.put(f"{server.url}/_sandbox/faults", json={"lost_response_rate": 0}, timeout=5)
    replay = sync(session, server.url, headers, [{"origin_id": "ERP-1", "name": "Beta"}])
    assert replay.status_code == 200 and replay.json()["errors"] == []
    assert [vendor["name"] for vendor in server.store.vendors(1)] == ["Acme", "Beta"]


def test_server_serves_the_sandbox_on_its_url_until_stopped() -> None:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(), clock=clock) as server:
        assert server.url.startswith("http://127.0.0.1:")
        session = requests.Session()
        headers = auth_headers(session, server.url)
        companies = session.get(f"{server.url}/rest/v1.0/companies", headers=headers, timeout=5)
        assert companies.status_code == 200
        assert companies.headers["X-Rate-Limit-Remaining"] == "24"
        clock.advance(5400)  # the injected clock rules over real HTTP too
        assert session.get(f"{server.url}/rest/v1.0/companies", headers=headers, timeout=5).status_code == 401
        assert server.app.state.contract_violations == []
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.url}/rest/v1.0/companies", timeout=5)


def test_an_aimed_fault_hits_only_its_operation_and_only_as_often_as_asked() -> None:
    with start_in_thread(SandboxConfig(), clock=ManualClock()) as server:
        session = requests.Session()
        headers = auth_headers(session, server.url)
        aimed = [{"method": "POST", "path": "/rest/v1.0/vendors", "fault": "unavailable", "times": 2}]
        session.put(f"{server.url}/_sandbox/faults", json={"aimed": aimed}, timeout=5).raise_for_status()
        create = {"company_id": 1, "vendor": {"name": "Acme"}}

        def post() -> int:
            return session.post(f"{server.url}/rest/v1.0/vendors", json=create, headers=headers, timeout=5).status_code

        assert sync(session, server.url, headers, [{"origin_id": "ERP-1", "name": "Beta"}]).status_code == 200
        assert [post(), post(), post()] == [503, 503, 201]
        assert session.get(f"{server.url}/_sandbox/faults", timeout=5).json()["aimed"] == []
        assert [vendor["name"] for vendor in server.store.vendors(1)] == ["Beta", "Acme"]
