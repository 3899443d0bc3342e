"""ProcoreClient at the HTTP boundary: auth, headers, errors and the retry layer.

A ``responses`` router stands in for Procore; a fake clock and a recording sleep replace time,
so nothing sleeps and every wait can be asserted. Paging, sync batching and pacing are in
``test_procore_client_paging.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from connectors.procore import ProcoreClient
from procore_sync.errors import (
    AuthenticationFailed,
    ConnectionLost,
    Handling,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
    ServerError,
    SyncError,
)
from tests.client_support import (
    API,
    SECRET,
    T0,
    TOKEN_URL,
    VENDORS,
    FakeTime,
    api_calls,
    make_settings,
)



def new_token() -> str:
    # Unique per test: the redactor's registry is process-wide, so reusing a value would let
    # one test's registration hide another test's leak.
    return f"tkn_{uuid.uuid4().hex}"


def add_tokens(rsps: responses.RequestsMock, *tokens: str, expires_in: int = 5400) -> None:
    for token in tokens:
        body = {"access_token": token, "token_type": "bearer", "expires_in": expires_in}
        rsps.add(responses.POST, TOKEN_URL, json=body)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def token_calls(rsps: responses.RequestsMock) -> list[Any]:
    return [c for c in rsps.calls if c.request.url == TOKEN_URL]


# --- auth -------------------------------------------------------------------------------------


def test_token_is_fetched_once_with_client_credentials_and_reused(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    token = new_token()
    add_tokens(rsps, token)
    rsps.add(responses.GET, VENDORS, json=[])
    client.get("/rest/v1.0/vendors")
    client.get("/rest/v1.0/vendors")
    assert len(token_calls(rsps)) == 1 and client.stats.token_calls == 1
    form = dict(p.split("=", 1) for p in token_calls(rsps)[0].request.body.split("&"))
    expected = {"grant_type": "client_credentials", "client_id": "cid-1", "client_secret": SECRET}
    assert form == expected
    assert all(c.request.headers["Authorization"] == f"Bearer {token}" for c in api_calls(rsps))
    assert client.stats.api_calls == 2


def test_token_is_renewed_shortly_before_it_expires(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    first, second = new_token(), new_token()
    add_tokens(rsps, first, second)
    rsps.add(responses.GET, VENDORS, json=[])
    client.get("/rest/v1.0/vendors")
    fake.now += 5400 - 541  # 10% of 5400 s is the margin: still 541 s left, keep it
    client.get("/rest/v1.0/vendors")
    fake.now += 2  # now under 540 s left: renew
    client.get("/rest/v1.0/vendors")
    used = [c.request.headers["Authorization"] for c in api_calls(rsps)]
    assert used == [f"Bearer {first}", f"Bearer {first}", f"Bearer {second}"]


def test_short_lived_token_is_renewed_with_five_minutes_left(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token(), new_token(), expires_in=1200)
    rsps.add(responses.GET, VENDORS, json=[])
    client.get("/rest/v1.0/vendors")
    fake.now += 1200 - 301
    client.get("/rest/v1.0/vendors")
    assert client.stats.token_calls == 1
    fake.now += 2
    client.get("/rest/v1.0/vendors")
    assert client.stats.token_calls == 2


def test_401_fetches_a_new_token_and_repeats_the_request_once(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    stale, fresh = new_token(), new_token()
    add_tokens(rsps, stale, fresh)
    rsps.add(responses.GET, VENDORS, status=401, json={"error": "expired"})
    rsps.add(responses.GET, VENDORS, json=[{"id": 1}])
    assert client.get("/rest/v1.0/vendors") == [{"id": 1}]
    used = [c.request.headers["Authorization"] for c in api_calls(rsps)]
    assert used == [f"Bearer {stale}", f"Bearer {fresh}"]
    assert client.stats.token_calls == 2 and client.stats.retries == 0


def test_second_401_is_authentication_failed_without_more_attempts(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token(), new_token())
    rsps.add(responses.GET, VENDORS, status=401, json={"error": "nope"})
    with pytest.raises(AuthenticationFailed) as caught:
        client.get("/rest/v1.0/vendors")
    assert len(api_calls(rsps)) == 2
    assert caught.value.handling is Handling.STOP and "status=401" in str(caught.value)


def test_token_endpoint_401_is_authentication_failed_with_a_hint(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    rsps.add(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(AuthenticationFailed) as caught:
        client.get("/rest/v1.0/vendors")
    text = str(caught.value)
    assert "What to do: check PROCORE_SYNC_CLIENT_ID" in text
    assert "production environment" in text and "cid-1" in text
    assert api_calls(rsps) == [] and len(token_calls(rsps)) == 1


# --- headers and URLs ---------------------------------------------------------------------------


def test_every_api_call_carries_bearer_company_accept_and_user_agent(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    token = new_token()
    add_tokens(rsps, token)
    rsps.add(responses.GET, VENDORS, json=[])
    rsps.add(responses.PATCH, f"{VENDORS}/sync", json={"entities": [], "errors": []})
    client.get("/rest/v1.0/vendors")
    client.request("PATCH", "/rest/v1.0/vendors/sync", json={"updates": []})
    for call in api_calls(rsps):
        headers = call.request.headers
        assert headers["Authorization"] == f"Bearer {token}"
        assert headers["Procore-Company-Id"] == "42"
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"].startswith("procore-sync/")
    assert client.stats.write_calls == 1 and client.stats.api_calls == 2


def test_company_id_is_not_added_to_the_query(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, json=[])
    client.get("/rest/v1.0/vendors")
    client.get("/rest/v1.0/vendors", params={"company_id": 42})
    urls = [c.request.url for c in api_calls(rsps)]
    assert urls == [VENDORS, f"{VENDORS}?company_id=42"]


def test_a_link_to_another_host_is_refused_before_the_token_leaves(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    with pytest.raises(SyncError, match="not under https://api.procore.com"):
        client.request("GET", "https://evil.example.com/rest/v1.0/vendors")
    assert len(rsps.calls) == 0


# --- status mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "handling"),
    [
        (400, Rejected, Handling.REPORT),
        (403, PermissionDenied, Handling.STOP),
        (404, NotFound, Handling.STOP),
        (422, Rejected, Handling.REPORT),
    ],
)
def test_client_errors_are_mapped_with_context_and_not_retried(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime,
    status: int, error: type[SyncError], handling: Handling,
) -> None:
    add_tokens(rsps, new_token())
    body = {"errors": "x" * 1000}
    rsps.add(responses.GET, VENDORS, status=status, json=body, headers={"x-request-id": "req-77"})
    with pytest.raises(error) as caught:
        client.get("/rest/v1.0/vendors", params={"company_id": 42})
    exc = caught.value
    assert type(exc) is error and exc.handling is handling
    assert exc.status == status and exc.url == f"{VENDORS}?company_id=42"
    assert exc.body is not None and len(exc.body) == 300
    assert "x-request-id req-77" in str(exc)
    assert len(api_calls(rsps)) == 1 and fake.sleeps == [] and client.stats.retries == 0


def test_conflict_is_retried_after_a_backoff(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    """409: another sync of the same resource is running (direct cost lines); wait and resend."""
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=409, json={"errors": "busy"})
    rsps.add(responses.GET, VENDORS, status=200, json=[])
    assert client.get("/rest/v1.0/vendors", params={"company_id": 42}) == []
    assert client.stats.retries == 1 and len(fake.sleeps) == 1


def test_secret_query_values_are_masked_in_the_error_url(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=404, json={})
    with pytest.raises(NotFound) as caught:
        client.get("/rest/v1.0/vendors", params={"company_id": 42, "access_token": "leaky-value"})
    assert caught.value.url == f"{VENDORS}?company_id=42&access_token=***"
    assert "leaky-value" not in str(caught.value)


def test_a_body_that_is_not_json_is_a_server_error(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, body="<html>maintenance</html>")
    with pytest.raises(ServerError, match="not JSON"):
        client.get("/rest/v1.0/vendors")


# --- retries ------------------------------------------------------------------------------------


def test_429_waits_for_retry_after(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.procore")
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=429, headers={"Retry-After": "7"})
    rsps.add(responses.GET, VENDORS, json=[])
    assert client.get("/rest/v1.0/vendors") == []
    assert fake.sleeps == [7.0]
    assert client.stats.retries == 1 and client.stats.waited_s == 7.0
    assert any("waiting for Procore quota until" in r.getMessage() for r in caplog.records)


def test_429_without_retry_after_waits_for_the_rate_limit_reset(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token())
    quota = {"X-Rate-Limit-Limit": "25", "X-Rate-Limit-Remaining": "0",
             "X-Rate-Limit-Reset": str(int(T0) + 30)}
    rsps.add(responses.GET, VENDORS, status=429, headers=quota)
    rsps.add(responses.GET, VENDORS, json=[])
    client.get("/rest/v1.0/vendors")
    # One wait of 30 s: pacing sees the window has reset and does not wait again.
    assert fake.sleeps == [30.0] and client.stats.waited_s == 30.0


def test_rate_limited_carries_reset_at_when_attempts_run_out(
    rsps: responses.RequestsMock, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=429, headers={"Retry-After": "5"})
    with ProcoreClient(make_settings(max_attempts=2), sleep=fake.sleep, clock=fake.clock) as c:
        with pytest.raises(RateLimited) as caught:
            c.get("/rest/v1.0/vendors")
    assert caught.value.reset_at is not None
    assert caught.value.reset_at.timestamp() == T0 + 5 + 5  # asked again after the first wait
    assert len(api_calls(rsps)) == 2


def test_5xx_is_retried_with_exponential_backoff_then_succeeds(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=502)
    rsps.add(responses.GET, VENDORS, status=500)
    rsps.add(responses.GET, VENDORS, json=[{"id": 3}])
    assert client.get("/rest/v1.0/vendors") == [{"id": 3}]
    first, second = fake.sleeps
    assert 1 <= first <= 2 and 2 <= second <= 3  # 1 s, then 2 s, plus up to 1 s jitter
    assert client.stats.retries == 2 and client.stats.waited_s == 0.0


def test_503_honours_retry_after(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=503, headers={"Retry-After": "12"})
    rsps.add(responses.GET, VENDORS, json=[])
    client.get("/rest/v1.0/vendors")
    assert fake.sleeps == [12.0]


def test_retries_are_bounded_and_the_last_error_keeps_its_context(
    rsps: responses.RequestsMock, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, status=500, body="upstream broke",
             headers={"x-request-id": "req-500"})
    with ProcoreClient(make_settings(max_attempts=3), sleep=fake.sleep, clock=fake.clock) as c:
        with pytest.raises(ServerError) as caught:
            c.get("/rest/v1.0/vendors")
        assert c.stats.retries == 2 and c.stats.api_calls == 3
    text = str(caught.value)
    assert "status=500" in text and f"url={VENDORS}" in text
    assert "x-request-id req-500" in text and "body: upstream broke" in text
    assert len(api_calls(rsps)) == 3 and len(fake.sleeps) == 2


def test_a_create_after_a_5xx_is_looked_up_then_sent_again_with_backoff(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", status=503)
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", json={"id": 7}, status=201)
    looked: list[int] = []
    answer = client.create("/rest/v1.0/projects", json={"project": {}}, look_up=lambda: looked.append(1))
    assert answer == {"id": 7} and looked == [1] and len(fake.sleeps) == 1


def test_a_create_found_by_its_key_after_a_lost_answer_is_not_sent_again(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", body=requests.exceptions.ReadTimeout("read timed out"))
    answer = client.create("/rest/v1.0/projects", json={"project": {}}, look_up=lambda: {"id": 7})
    assert answer == {"id": 7} and len(api_calls(rsps)) == 1


def test_a_create_whose_attempts_are_spent_raises_with_their_count_and_a_refusal_is_not_retried(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", status=500)
    with pytest.raises(ServerError, match="4 attempts"):
        client.create("/rest/v1.0/projects", json={"project": {}}, look_up=lambda: None)
    assert len(api_calls(rsps)) == 4
    rsps.replace(responses.POST, f"{API}/rest/v1.0/projects", status=422, json={"errors": {"name": ["blank"]}})
    with pytest.raises(Rejected):
        client.create("/rest/v1.0/projects", json={"project": {}}, look_up=lambda: None)
    assert len(api_calls(rsps)) == 5


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout("read timed out"),
     requests.exceptions.ConnectionError("connection reset by peer"),
     requests.exceptions.ChunkedEncodingError("connection broken: incomplete read")],
)
def test_lost_connections_become_connection_lost_and_are_retried(
    rsps: responses.RequestsMock, client: ProcoreClient, failure: Exception
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, body=failure)
    with pytest.raises(ConnectionLost) as caught:
        client.get("/rest/v1.0/vendors")
    assert type(failure).__name__ in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(api_calls(rsps)) == 4 and client.stats.api_calls == 4


def test_a_timeout_then_success(rsps: responses.RequestsMock, client: ProcoreClient) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.GET, VENDORS, body=requests.exceptions.ReadTimeout("slow"))
    rsps.add(responses.GET, VENDORS, json=[])
    assert client.get("/rest/v1.0/vendors") == []
    assert client.stats.retries == 1


def test_a_plain_post_create_is_not_resent_after_a_lost_connection(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects",
             body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ConnectionLost, match="look it up by its key"):
        client.request("POST", "/rest/v1.0/projects", json={"company_id": 42, "project": {}})
    assert len(api_calls(rsps)) == 1 and client.stats.retries == 0


def test_a_plain_post_create_is_not_resent_after_a_5xx(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", status=504)
    with pytest.raises(ServerError):
        client.request("POST", "/rest/v1.0/projects", json={"project": {}})
    assert len(api_calls(rsps)) == 1


@pytest.mark.parametrize(
    "first",
    [
        {"status": 429, "headers": {"Retry-After": "1"}},  # refused: nothing was applied
        {"body": requests.exceptions.ConnectTimeout("no connection")},  # never sent
    ],
)
def test_a_plain_post_create_is_resent_when_procore_certainly_did_not_apply_it(
    rsps: responses.RequestsMock, client: ProcoreClient, first: dict[str, Any]
) -> None:
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", **first)
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", json={"id": 9})
    response = client.request("POST", "/rest/v1.0/projects", json={"project": {}})
    assert response.json() == {"id": 9} and len(api_calls(rsps)) == 2


def test_a_post_sync_is_resent_after_a_lost_connection(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    url = f"{API}/rest/v1.0/budget_line_items/sync"
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, url, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.add(responses.POST, url, json=[])
    client.request("POST", "/rest/v1.0/budget_line_items/sync", json={"project_id": 1})
    assert len(api_calls(rsps)) == 2 and client.stats.write_calls == 2


def test_a_token_endpoint_outage_is_retried_by_the_same_layer(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    rsps.add(responses.POST, TOKEN_URL, status=503)
    add_tokens(rsps, new_token())
    rsps.add(responses.POST, f"{API}/rest/v1.0/projects", json={"id": 1})
    client.request("POST", "/rest/v1.0/projects", json={"project": {}})
    assert client.stats.token_calls == 2 and client.stats.retries == 1
    assert len(api_calls(rsps)) == 1


# --- secrets ------------------------------------------------------------------------------------


def test_secret_and_token_appear_in_no_log_line_and_no_error(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stale, fresh = new_token(), new_token()
    add_tokens(rsps, stale, fresh)
    rsps.add(responses.GET, VENDORS, status=401)
    # A misbehaving server echoing what it was sent, in forms no pattern would recognise.
    echo = f"you sent {fresh} / {stale} and {SECRET}"
    rsps.add(responses.GET, VENDORS, status=422, body=echo)
    rsps.add(responses.GET, VENDORS, status=500, body=echo)
    errors = []
    for _ in range(2):
        with pytest.raises(SyncError) as caught:
            client.get("/rest/v1.0/vendors")
        errors.append(str(caught.value))
    rsps.replace(responses.POST, TOKEN_URL, status=401, body=f"bad secret {SECRET}")
    fake.now += 6000  # the token expired: the next call fetches one, and that fails
    with pytest.raises(AuthenticationFailed) as caught:
        client.get("/rest/v1.0/vendors")
    errors.append(str(caught.value))
    lines = [r.getMessage() for r in caplog.records] + errors
    assert any("/rest/v1.0/vendors" in line for line in lines)  # the check looked at real text
    for secret in (SECRET, stale, fresh):
        assert not any(secret in line for line in lines)
