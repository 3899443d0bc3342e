"""ProcoreClient at the HTTP boundary: pagination, sync batching and quota pacing.

Same set-up as ``test_procore_client.py``: a ``responses`` router, a fake clock and a recording
sleep, so nothing sleeps and every wait is asserted.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.procore import ProcoreClient, SyncResult
from procore_sync.errors import PayloadTooLarge
from tests.client_support import (
    API,
    T0,
    TOKEN_URL,
    VENDORS,
    FakeTime,
    api_calls,
    make_settings,
)

VENDOR_SYNC = f"{VENDORS}/sync"

Handler = Callable[[Any], tuple[int, dict[str, str], str]]


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        token = {"access_token": f"tkn_{uuid.uuid4().hex}", "expires_in": 5400}
        mock.add(responses.POST, TOKEN_URL, json=token)
        yield mock


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def quota_headers(remaining: int, reset_in: float, now: float = T0) -> dict[str, str]:
    return {"X-Rate-Limit-Limit": "25", "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(int(now + reset_in))}


# --- pagination ---------------------------------------------------------------------------------


def test_paginate_follows_link_next_until_it_is_absent(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    page2 = f"{VENDORS}?company_id=42&page=2&per_page=2"
    page3 = f"{VENDORS}?company_id=42&page=3&per_page=2"
    first = f'<{page2}>; rel="next", <{page3}>; rel="last"'
    rsps.add(responses.GET, VENDORS, json=[{"id": 1}, {"id": 2}], headers={"Link": first},
             match=[responses.matchers.query_param_matcher(
                 {"company_id": "42", "page": "1", "per_page": "2"})])
    rsps.add(responses.GET, page2, json=[{"id": 3}, {"id": 4}],
             headers={"Link": f'<{page3}>; rel="next"'})
    rsps.add(responses.GET, page3, json=[{"id": 5}], headers={"Link": f'<{page2}>; rel="prev"'})
    items = list(client.paginate("/rest/v1.0/vendors", {"company_id": 42}, per_page=2))
    assert [i["id"] for i in items] == [1, 2, 3, 4, 5]
    assert len(api_calls(rsps)) == 3


def test_paginate_by_total_without_links(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    def page(request: Any) -> tuple[int, dict[str, str], str]:
        number = int(parse_qs(urlsplit(request.url).query)["page"][0])
        ids = [i for i in range(1, 6)][(number - 1) * 2 : number * 2]
        return 200, {"Total": "5", "Per-Page": "2"}, json.dumps([{"id": i} for i in ids])

    rsps.add_callback(responses.GET, VENDORS, callback=page)
    items = list(client.paginate("/rest/v1.0/vendors", per_page=2))
    assert [i["id"] for i in items] == [1, 2, 3, 4, 5]
    assert [query(c)["page"] for c in api_calls(rsps)] == [["1"], ["2"], ["3"]]


def test_paginate_defaults_to_settings_per_page_and_counts_with_procores_page_size(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    # We ask for 100 (settings.per_page); the endpoint caps pages at 30 and says so.
    def page(request: Any) -> tuple[int, dict[str, str], str]:
        number = int(parse_qs(urlsplit(request.url).query)["page"][0])
        ids = range((number - 1) * 30, min(number * 30, 70))
        return 200, {"Total": "70", "Per-Page": "30"}, json.dumps([{"id": i} for i in ids])

    rsps.add_callback(responses.GET, VENDORS, callback=page)
    items = list(client.paginate("/rest/v1.0/vendors"))
    assert len(items) == 70
    assert {q["per_page"][0] for q in map(query, api_calls(rsps))} == {"100"}
    assert len(api_calls(rsps)) == 3


def test_paginate_stops_at_an_empty_page(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    rsps.add(responses.GET, VENDORS, json=[{"id": 1}, {"id": 2}])
    rsps.add(responses.GET, VENDORS, json=[])
    assert len(list(client.paginate("/rest/v1.0/vendors", per_page=2))) == 2
    assert len(api_calls(rsps)) == 2


def test_paginate_reads_rest_v2_data_envelopes(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    rsps.add(responses.GET, f"{API}/rest/v2.0/companies/42/things",
             json={"data": [{"id": "1"}]}, headers={"Total": "1"})
    assert list(client.paginate("/rest/v2.0/companies/42/things")) == [{"id": "1"}]


def test_companies_lists_every_company(rsps: responses.RequestsMock, client: ProcoreClient) -> None:
    rsps.add(responses.GET, f"{API}/rest/v1.0/companies", json=[{"id": 42, "name": "Acme"}])
    assert client.companies() == [{"id": 42, "name": "Acme"}]


# --- sync -----------------------------------------------------------------------------------


def echo_sync(sizes: list[int], too_large_above: int | None = None) -> Handler:
    """A vendors/sync stand-in: writes every item, records batch sizes, can answer 413."""

    def handler(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        updates = body["updates"]
        sizes.append(len(updates))
        if too_large_above is not None and len(updates) > too_large_above:
            return 413, {}, "payload too large"
        entities = [{"id": n, "company_id": body["company_id"], **u} for n, u in enumerate(updates)]
        return 200, {}, json.dumps({"entities": entities, "errors": []})

    return handler


def vendors(count: int) -> list[dict[str, Any]]:
    return [{"origin_id": f"V-{n}", "name": f"Vendor {n}"} for n in range(count)]


def test_sync_sends_batches_of_at_most_1000_with_the_scope(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    sizes: list[int] = []
    rsps.add_callback(responses.PATCH, VENDOR_SYNC, callback=echo_sync(sizes))
    result = client.sync("/rest/v1.0/vendors/sync", scope={"company_id": 42}, items=vendors(2500))
    assert sizes == [1000, 1000, 500]
    assert len(result.entities) == 2500 and result.errors == []
    assert result.by_origin_id()["V-2499"]["company_id"] == 42
    assert client.stats.write_calls == 3


@pytest.mark.parametrize(
    ("setting", "argument", "expected"),
    [
        (1000, 300, [300] * 8 + [100]),
        (400, None, [400] * 6 + [100]),
        (1000, 5000, [1000, 1000, 500]),  # never more than Procore's 1,000
    ],
)
def test_sync_batch_size_comes_from_the_call_or_the_settings(
    rsps: responses.RequestsMock, fake: FakeTime,
    setting: int, argument: int | None, expected: list[int],
) -> None:
    sizes: list[int] = []
    rsps.add_callback(responses.PATCH, VENDOR_SYNC, callback=echo_sync(sizes))
    settings = make_settings(batch_size=setting)
    with ProcoreClient(settings, sleep=fake.sleep, clock=fake.clock) as client:
        client.sync("/rest/v1.0/vendors/sync", scope={"company_id": 42}, items=vendors(2500),
                    batch_size=argument)
    assert sizes == expected


def test_sync_of_nothing_makes_no_call(rsps: responses.RequestsMock, client: ProcoreClient) -> None:
    result = client.sync("/rest/v1.0/vendors/sync", scope={"company_id": 42}, items=[])
    assert result == SyncResult() and len(rsps.calls) == 0


def test_sync_maps_per_item_errors_back_by_origin_id(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    refused = {"origin_id": "V-2", "name": "", "country_code": "XX",
               "errors": {"name": ["can't be blank"], "country_code": ["is not a valid country"]}}
    rsps.add(responses.PATCH, VENDOR_SYNC,
             json={"entities": [{"id": 7, "origin_id": "V-1"}], "errors": [refused]})
    items = [{"origin_id": "V-1", "name": "A"}, {"origin_id": "V-2", "name": ""}]
    result = client.sync("/rest/v1.0/vendors/sync", scope={"company_id": 42}, items=items)
    assert result.by_origin_id() == {"V-1": {"id": 7, "origin_id": "V-1"}}
    [error] = result.errors
    assert error.origin_id == "V-2"
    assert error.item == {"origin_id": "V-2", "name": "", "country_code": "XX"}
    assert error.text == "name: can't be blank; country_code: is not a valid country"
    assert set(result.errors_by_origin_id()) == {"V-2"}
    sent = json.loads(api_calls(rsps)[0].request.body)
    assert sent == {"company_id": 42, "updates": items}


def test_sync_splits_a_batch_that_is_too_large(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    sizes: list[int] = []
    rsps.add_callback(responses.PATCH, VENDOR_SYNC, callback=echo_sync(sizes, too_large_above=250))
    result = client.sync("/rest/v1.0/vendors/sync", scope={"company_id": 42}, items=vendors(1000))
    assert sizes == [1000, 500, 250, 250, 500, 250, 250]
    assert [e["origin_id"] for e in result.entities] == [f"V-{n}" for n in range(1000)]
    assert client.stats.retries == 0


def test_sync_gives_up_when_a_single_item_is_too_large(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    sizes: list[int] = []
    rsps.add_callback(responses.PATCH, VENDOR_SYNC, callback=echo_sync(sizes, too_large_above=0))
    with pytest.raises(PayloadTooLarge, match="status=413"):
        client.sync("/rest/v1.0/vendors/sync", scope={"company_id": 42}, items=vendors(2))
    assert sizes == [2, 1]


def test_sync_passes_query_scope_and_method(
    rsps: responses.RequestsMock, client: ProcoreClient
) -> None:
    url = f"{API}/rest/v1.0/budget_line_items/sync"
    rsps.add(responses.POST, url, json=[{"id": 1}],
             match=[responses.matchers.query_param_matcher({"project_id": "9"})])
    result = client.sync("/rest/v1.0/budget_line_items/sync", scope={"project_id": 9},
                         items=[{"id": 1}], method="POST", params={"project_id": 9})
    assert result.entities == [{"id": 1}]


# --- pacing -------------------------------------------------------------------------------------


def test_pacing_spreads_calls_when_the_quota_runs_low_and_logs_the_wait(
    rsps: responses.RequestsMock, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.procore")
    waits: list[tuple[datetime, str]] = []
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=2, reset_in=30))
    settings = make_settings(pacing_low_water=5)
    with ProcoreClient(settings, sleep=fake.sleep, clock=fake.clock,
                       on_wait=lambda until, message: waits.append((until, message))) as client:
        client.get("/rest/v1.0/vendors")
        assert fake.sleeps == []
        client.get("/rest/v1.0/vendors")
    assert fake.sleeps == [10.0]  # 30 s left for 2 calls: one every 30 / (2 + 1) s
    until = datetime.fromtimestamp(T0 + 10, timezone.utc)
    expected = f"waiting for Procore quota until {until:%H:%M:%S} (2 calls left, resets in 30 s)"
    assert waits == [(until, expected)] and until.tzinfo is not None
    assert expected in [r.getMessage() for r in caplog.records]
    assert client.stats.waited_s == 10.0 and client.stats.quota.remaining == 2


def test_pacing_waits_for_the_reset_when_the_quota_is_spent(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=0, reset_in=8))
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=24, reset_in=18))
    client.get("/rest/v1.0/vendors")
    client.get("/rest/v1.0/vendors")
    client.get("/rest/v1.0/vendors")
    assert fake.sleeps == [8.0]
    quota = client.stats.quota
    assert (quota.limit, quota.remaining) == (25, 24)
    assert quota.reset_at == datetime.fromtimestamp(int(T0 + 18), timezone.utc)


def test_pacing_does_not_wait_with_quota_to_spare_or_a_past_reset(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime
) -> None:
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=20, reset_in=9))
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=0, reset_in=-5))
    for _ in range(3):
        client.get("/rest/v1.0/vendors")
    assert fake.sleeps == []


def test_short_pacing_waits_are_counted_but_not_announced(
    rsps: responses.RequestsMock, client: ProcoreClient, fake: FakeTime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.procore")
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=3, reset_in=2))
    client.get("/rest/v1.0/vendors")
    client.get("/rest/v1.0/vendors")
    assert fake.sleeps == [0.5] and client.stats.waited_s == 0.5
    assert not any("waiting for Procore quota" in r.getMessage() for r in caplog.records)


def test_before_request_runs_before_every_api_request_including_retries(
    rsps: responses.RequestsMock, fake: FakeTime
) -> None:
    events: list[str] = []
    answers = iter([(500, {}, "boom"), (200, {}, "[]"), (200, {}, "[]")])

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        events.append("http")
        return next(answers)

    rsps.add_callback(responses.GET, VENDORS, callback=answer)
    with ProcoreClient(make_settings(), sleep=fake.sleep, clock=fake.clock,
                       before_request=lambda: events.append("before")) as client:
        client.get("/rest/v1.0/vendors")
        client.get("/rest/v1.0/vendors")
    assert events == ["before", "http"] * 3


def test_debug_line_per_request_with_status_and_quota(
    rsps: responses.RequestsMock, client: ProcoreClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="connectors.procore")
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=24, reset_in=9))
    client.get("/rest/v1.0/vendors", params={"company_id": 42})
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.procore"]
    assert "GET /rest/v1.0/vendors?company_id=42 -> 200 (quota 24 left)" in lines


def test_under_the_shared_budget_the_headers_only_stop_a_spent_window_before_the_slot_is_taken(
    rsps: responses.RequestsMock, fake: FakeTime
) -> None:
    """The budget spaces the calls (connectors/quota.py): spreading them again at the low water
    mark only slowed a sync; a window Procore says is spent is still waited out, and before the
    call's slot is taken, since a spike slot counts from the moment it is taken."""
    events: list[str] = []

    def sleep(seconds: float) -> None:
        events.append(f"sleep {seconds:g}")
        fake.sleep(seconds)

    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=2, reset_in=30))
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=0, reset_in=8))
    rsps.add(responses.GET, VENDORS, json=[], headers=quota_headers(remaining=24, reset_in=9))
    with ProcoreClient(make_settings(pacing_low_water=5), sleep=sleep, clock=fake.clock,
                       before_request=lambda: events.append("slot")) as client:
        for _ in range(3):
            client.get("/rest/v1.0/vendors")
    assert events == ["slot", "slot", "sleep 8", "slot"]


def test_a_calls_spike_slot_is_taken_once_its_body_is_encoded_right_before_it_leaves(
    rsps: responses.RequestsMock, fake: FakeTime
) -> None:
    """A spike slot counts from the moment it is taken; Procore counts the call when it arrives.
    Encoding a batch of a thousand records between the two made a call land later than its slot
    said, and a slot spent again a window later landed in the same Procore window: 429s."""
    events: list[str] = []

    class Key(str):
        def __str__(self) -> str:
            events.append("encoded")
            return super().__str__()

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        events.append("http")
        return 200, {}, "{}"

    rsps.add_callback(responses.POST, VENDORS, callback=answer)
    with ProcoreClient(make_settings(), sleep=fake.sleep, clock=fake.clock,
                       before_request=lambda: events.append("slot")) as client:
        client.request("POST", "/rest/v1.0/vendors", json={Key("vendor"): {"name": "A"}})
    assert events == ["encoded", "slot", "http"]


def test_clients_of_one_process_share_the_hours_last_calls_instead_of_each_spending_them(
    rsps: responses.RequestsMock, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """Sync-all's entities run in threads, each with its own client. As the hour ran out, each
    had last read "1 left", each sent a call, and Procore refused all but one (bench/quota.py's
    small set: a 429 a run). The calls in flight count against the hour's remainder, for every
    client of the company in the process."""
    caplog.set_level(logging.INFO, logger="connectors.procore")
    hour = {"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Reset": str(int(T0 + 100))}
    # As under the shared budget: no spreading at the low water mark; its own window in the process.
    settings = make_settings(pacing_low_water=0, company_id=uuid.uuid4().int % 10**9 + 1)
    sent: list[tuple[str, float]] = []
    with ProcoreClient(settings, sleep=fake.sleep, clock=fake.clock, shared_window=True) as first, \
            ProcoreClient(settings, sleep=fake.sleep, clock=fake.clock, shared_window=True) as second:

        def answer(request: Any) -> tuple[int, dict[str, str], str]:
            who = parse_qs(urlsplit(request.url).query).get("who", ["first"])[0]
            sent.append((who, fake.now))
            if len(sent) == 2:  # the first client's last call of the hour is in flight: the second calls
                second.get("/rest/v1.0/vendors", params={"who": "second"})
            return 200, hour | {"X-Rate-Limit-Remaining": "1" if len(sent) == 1 else "0"}, "[]"

        rsps.add_callback(responses.GET, VENDORS, callback=answer)
        first.get("/rest/v1.0/vendors")  # "1 left in the hour"
        first.get("/rest/v1.0/vendors")
    # The second client waited for the hour's reset instead of overdrawing it, and said why.
    assert sent == [("first", T0), ("first", T0), ("second", T0 + 100)]
    until = datetime.fromtimestamp(T0 + 100, timezone.utc)
    assert (f"waiting for Procore quota until {until:%H:%M:%S} (0 calls left in the hour, 1 on their way)"
            in [r.getMessage() for r in caplog.records])


def test_the_hour_is_counted_by_the_process_as_procore_shows_only_the_spike_window_until_it_is_spent(
    rsps: responses.RequestsMock, fake: FakeTime
) -> None:
    """Procore reports the window with fewer calls left: at full speed the spike window, until
    the hour is spent. So with the budget's figures the process counts the hour itself, from its
    first call; a call Procore refused (429) is not counted."""
    settings = make_settings(pacing_low_water=0, quota_per_hour=3, quota_hour_s=100.0,
                             company_id=uuid.uuid4().int % 10**9 + 1)
    answers = iter([200, 429, 200, 200, 200])
    sent: list[float] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        sent.append(fake.now)
        spike = {"X-Rate-Limit-Limit": "25", "X-Rate-Limit-Remaining": "1",
                 "X-Rate-Limit-Reset": str(int(fake.now + 1)), "Retry-After": "1"}
        return next(answers), spike, "[]"

    rsps.add_callback(responses.GET, VENDORS, callback=answer)
    with ProcoreClient(settings, sleep=fake.sleep, clock=fake.clock, shared_window=True) as client:
        for _ in range(4):
            client.get("/rest/v1.0/vendors")
    # Three calls counted in the hour that opened at T0 (the refused one retried a second later),
    # then the fourth waits for the hour's end.
    assert sent == [T0, T0, T0 + 1, T0 + 1, T0 + 100]
