"""The local Procore sandbox, driven through its HTTP interface in-process.

A ``ManualClock`` stands in for time: token expiry, quota windows and timestamps move only when
a test advances it, so nothing here sleeps. Tests that need a real socket (lost responses) live
in ``test_sandbox_server.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from sandbox.app import create_app
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.store import Store

COMPANY = 1
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"}
TOO_MANY = "You have surpassed the max number of requests for an hour. Please wait until your limit resets."
RATE_HEADERS = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")


class Api:
    """A sandbox app plus a TestClient that sends a valid token and company header by default."""

    def __init__(self, clock: ManualClock | None = None, **settings: Any) -> None:
        self.clock = clock or ManualClock()
        self.config = SandboxConfig(**settings)
        self.app = create_app(self.config, self.clock)
        self.client = TestClient(self.app)
        self.token = self.fetch_token()

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def fetch_token(self) -> str:
        response = self.client.post("/oauth/token", data=CREDENTIALS)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Procore-Company-Id": str(COMPANY), **extra}

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        return self.client.get(path, params=params, headers=self.headers(**headers))

    def create(self, **vendor: Any) -> httpx.Response:
        body = {"company_id": COMPANY, "vendor": vendor}
        return self.client.post("/rest/v1.0/vendors", json=body, headers=self.headers())

    def update(self, vendor_id: int, **vendor: Any) -> httpx.Response:
        body = {"company_id": COMPANY, "vendor": vendor}
        return self.client.patch(f"/rest/v1.0/vendors/{vendor_id}", json=body, headers=self.headers())

    def sync(self, updates: list[Any]) -> httpx.Response:
        body = {"company_id": COMPANY, "updates": updates}
        return self.client.patch("/rest/v1.0/vendors/sync", json=body, headers=self.headers())

    def vendors(self, **params: Any) -> httpx.Response:
        return self.get("/rest/v1.0/vendors", params={"company_id": COMPANY, **params})


@pytest.fixture
def api() -> Api:
    return Api()


def created_id(response: httpx.Response) -> int:
    assert response.status_code == 201, response.text
    vendor_id: int = response.json()["id"]
    return vendor_id


# --- OAuth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_token_accepts_form_and_json_bodies(as_json: bool) -> None:
    clock = ManualClock()
    client = TestClient(create_app(SandboxConfig(), clock))
    if as_json:
        response = client.post("/oauth/token", json=CREDENTIALS)
    else:
        response = client.post("/oauth/token", data=CREDENTIALS)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 5400
    assert body["created_at"] == int(clock())
    assert len(body["access_token"]) >= 32


def test_each_token_is_new(api: Api) -> None:
    assert api.fetch_token() != api.fetch_token()


def test_bad_credentials_are_invalid_client(api: Api) -> None:
    response = api.client.post("/oauth/token", data={**CREDENTIALS, "client_secret": "wrong"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.json()["error_description"]


def test_other_grant_types_are_refused(api: Api) -> None:
    response = api.client.post("/oauth/token", data={**CREDENTIALS, "grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
def test_rest_calls_need_a_valid_token(api: Api, authorization: str | None) -> None:
    headers = {"Procore-Company-Id": "1"} | ({"Authorization": authorization} if authorization else {})
    response = api.client.get("/rest/v1.0/vendors", params={"company_id": COMPANY}, headers=headers)
    assert response.status_code == 401
    assert isinstance(response.json()["errors"], str)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_expires_after_its_ttl_by_the_clock(api: Api) -> None:
    api.clock.advance(5399)
    assert api.vendors().status_code == 200
    api.clock.advance(1)
    expired = api.vendors()
    assert expired.status_code == 401
    assert expired.json() == {"errors": "The access token expired"}
    api.token = api.fetch_token()
    assert api.vendors().status_code == 200


# --- company header --------------------------------------------------------------------------


def test_missing_company_header_is_refused(api: Api) -> None:
    no_company = {"Authorization": f"Bearer {api.token}"}
    response = api.client.get("/rest/v1.0/vendors", params={"company_id": COMPANY}, headers=no_company)
    assert response.status_code == 400
    assert response.json() == {"errors": "Missing Procore-Company-Id header!"}


def test_company_the_app_is_not_installed_in_is_forbidden(api: Api) -> None:
    assert api.vendors(**{}).status_code == 200
    response = api.get("/rest/v1.0/vendors", params={"company_id": 2}, **{"Procore-Company-Id": "2"})
    assert response.status_code == 403
    assert api.get("/rest/v1.0/vendors", params={"company_id": 2}).status_code == 403


def test_companies_list_needs_no_company_header(api: Api) -> None:
    response = api.client.get("/rest/v1.0/companies", headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 200
    assert response.json() == [{"id": 1, "name": "Sandbox Construction Co", "is_active": True}]


# --- create, show, update --------------------------------------------------------------------


def test_create_show_and_update_a_vendor(api: Api) -> None:
    created = api.create(
        name="Acme Concrete", country_code="US", state_code="CA", origin_id="V-1", email_address="ap@acme.test"
    )
    vendor_id = created_id(created)
    assert vendor_id > 2**32  # ids beyond int32, as in Procore's newer regions
    vendor = created.json()
    assert vendor["created_at"] == vendor["updated_at"] == "2026-01-01T00:00:00Z"
    assert vendor["is_active"] is True and vendor["abbreviated_name"] is None
    assert api.get(f"/rest/v1.0/vendors/{vendor_id}", params={"company_id": COMPANY}).json() == vendor

    api.clock.advance(60)
    updated = api.update(vendor_id, city="Fresno")
    assert updated.status_code == 200
    assert updated.json()["city"] == "Fresno"
    assert updated.json()["created_at"] == "2026-01-01T00:00:00Z"
    assert updated.json()["updated_at"] == "2026-01-01T00:01:00Z"


def test_an_update_that_changes_nothing_keeps_updated_at(api: Api) -> None:
    vendor_id = created_id(api.create(name="Acme"))
    api.clock.advance(60)
    assert api.update(vendor_id, name="Acme").json()["updated_at"] == "2026-01-01T00:00:00Z"


def test_ids_increase(api: Api) -> None:
    first, second = created_id(api.create(name="A")), created_id(api.create(name="B"))
    assert second > first


def test_unknown_vendor_is_404(api: Api) -> None:
    shown = api.get("/rest/v1.0/vendors/42", params={"company_id": COMPANY})
    assert shown.status_code == 404
    assert isinstance(shown.json()["errors"], str)
    assert api.update(42, name="x").status_code == 404


def test_create_validation_errors_are_422_and_write_nothing(api: Api) -> None:
    response = api.create(name=" ", country_code="XX")
    assert response.status_code == 422
    assert response.json() == {
        "errors": {"name": ["can't be blank"], "country_code": ["is not a valid ISO-3166 alpha-2 country code"]}
    }
    assert api.store.vendors(COMPANY) == []


def test_update_is_checked_against_the_stored_record(api: Api) -> None:
    vendor_id = created_id(api.create(name="Acme", country_code="US", state_code="TX"))
    response = api.update(vendor_id, state_code="ZZ")
    assert response.status_code == 422
    assert response.json() == {"errors": {"state_code": ["is not a valid ISO-3166-2 subdivision code for US"]}}


def test_origin_id_is_unique_per_company(api: Api) -> None:
    first = created_id(api.create(name="A", origin_id="ERP-1"))
    taken = api.create(name="B", origin_id="ERP-1")
    assert taken.status_code == 422
    assert taken.json() == {"errors": {"origin_id": ["has already been taken"]}}
    second = created_id(api.create(name="B", origin_id="ERP-2"))
    assert api.update(second, origin_id="ERP-1").status_code == 422
    assert api.update(first, origin_id="ERP-1").status_code == 200  # keeping its own is fine


def test_unknown_vendor_fields_are_ignored_like_procore_does(api: Api) -> None:
    vendor = api.create(name="Acme", favourite_colour="blue")
    assert vendor.status_code == 201
    assert "favourite_colour" not in vendor.json()


# --- lists: pages and filters ----------------------------------------------------------------


def next_link(response: httpx.Response) -> str | None:
    links = response.links
    return links["next"]["url"] if "next" in links else None


def test_pages_walk_through_link_headers(api: Api) -> None:
    api.sync([{"name": f"Vendor {n}"} for n in range(5)])
    response = api.vendors(per_page=2)
    assert response.headers["Total"] == "5" and response.headers["Per-Page"] == "2"
    assert set(response.links) == {"first", "next", "last"}
    seen = [vendor["id"] for vendor in response.json()]
    pages = 1
    while (url := next_link(response)) is not None:
        assert url.startswith("http://testserver/rest/v1.0/vendors?")
        response = api.client.get(url, headers=api.headers())
        seen += [vendor["id"] for vendor in response.json()]
        pages += 1
    assert pages == 3
    assert set(response.links) == {"first", "prev", "last"}
    assert seen == sorted(seen) == [vendor["id"] for vendor in api.store.vendors(COMPANY)]


def test_links_keep_the_filters(api: Api) -> None:
    api.sync([{"name": "Keep 1"}, {"name": "Other"}, {"name": "Keep 2"}])
    response = api.vendors(per_page=1, **{"filters[search]": "keep"})
    assert response.headers["Total"] == "2"
    assert "filters%5Bsearch%5D=keep" in response.links["next"]["url"]
    second = api.client.get(response.links["next"]["url"], headers=api.headers())
    assert [vendor["name"] for vendor in second.json()] == ["Keep 2"]


@pytest.mark.parametrize(("asked", "served"), [(None, "100"), (2000, "2000"), (5000, "2000"), (0, "1")])
def test_per_page_defaults_to_100_and_is_clamped(api: Api, asked: int | None, served: str) -> None:
    params = {} if asked is None else {"per_page": asked}
    assert api.vendors(**params).headers["Per-Page"] == served


def test_a_page_past_the_end_is_empty(api: Api) -> None:
    api.create(name="Only")
    response = api.vendors(page=3)
    assert response.json() == [] and response.headers["Total"] == "1"


def stamped_vendors(api: Api) -> dict[str, int]:
    """Vendors updated at 2026-01-01 00:00, 2026-01-01 12:00 and 2026-01-02 00:00 UTC."""
    ids = {}
    for label in ("midnight", "noon", "next-midnight"):
        ids[label] = created_id(api.create(name=label))
        api.clock.advance(12 * 3600)
        api.token = api.fetch_token()  # twelve hours outlive a token
    return ids


@pytest.mark.parametrize(
    ("range_", "expected"),
    [
        ("2026-01-01T00:00:00Z...2026-01-01T12:00:00Z", {"midnight", "noon"}),
        ("2026-01-01T12:00:01Z...2026-01-02T00:00:00Z", {"next-midnight"}),
        ("2026-01-01T13:00:00+01:00...2026-01-01T13:00:00+01:00", {"noon"}),
        ("2026-01-01...2026-01-01", {"midnight", "noon"}),
        ("2026-01-02...", {"next-midnight"}),
        ("...2025-12-31", set()),
    ],
)
def test_updated_at_filter_is_an_inclusive_range(api: Api, range_: str, expected: set[str]) -> None:
    ids = stamped_vendors(api)
    response = api.vendors(**{"filters[updated_at]": range_})
    assert {vendor["name"] for vendor in response.json()} == expected
    assert {vendor["id"] for vendor in response.json()} == {ids[label] for label in expected}


def test_malformed_updated_at_filter_is_400(api: Api) -> None:
    assert api.vendors(**{"filters[updated_at]": "yesterday"}).status_code == 400


def test_origin_id_filter_is_exact(api: Api) -> None:
    api.sync([{"name": "A", "origin_id": "ERP-1"}, {"name": "B", "origin_id": "ERP-10"}])
    found = api.vendors(**{"filters[origin_id]": "ERP-1"}).json()
    assert [vendor["name"] for vendor in found] == ["A"]


# --- sync ------------------------------------------------------------------------------------


def test_sync_follows_procores_matching_table(api: Api) -> None:
    by_origin = created_id(api.create(name="Held", origin_id="A"))
    by_id = created_id(api.create(name="Plain"))
    relinked = created_id(api.create(name="Relinked", origin_id="OLD"))
    response = api.sync(
        [
            {"name": "Brand new"},  # neither: create, origin_id stays null
            {"id": 999, "name": "Ghost"},  # id, not found: error
            {"id": by_id, "name": "Plain 2"},  # id, found: update
            {"origin_id": "B", "name": "New by origin"},  # origin_id, not found: create
            {"origin_id": "A", "name": "Held 2"},  # origin_id, found: update
            {"id": relinked, "origin_id": "NEW"},  # both: update by id, origin_id changes
        ]
    )
    assert response.status_code == 200
    body = response.json()
    assert body["errors"] == [{"id": 999, "name": "Ghost", "errors": {"id": ["Entity with this ID not found"]}}]
    entities = body["entities"]
    names = [entity["name"] for entity in entities]
    assert names == ["Brand new", "Plain 2", "New by origin", "Held 2", "Relinked"]
    assert entities[0]["origin_id"] is None
    assert entities[1]["id"] == by_id
    assert entities[2]["origin_id"] == "B" and entities[2]["id"] not in (by_origin, by_id, relinked)
    assert entities[3]["id"] == by_origin
    assert entities[4]["id"] == relinked and entities[4]["origin_id"] == "NEW"
    assert len(api.store.vendors(COMPANY)) == 5


def test_sync_by_the_old_origin_id_after_a_relink_creates(api: Api) -> None:
    vendor_id = created_id(api.create(name="V", origin_id="OLD"))
    api.sync([{"id": vendor_id, "origin_id": "NEW"}])
    created = api.sync([{"origin_id": "OLD", "name": "Another"}]).json()["entities"][0]
    assert created["id"] != vendor_id


def test_sync_cannot_take_an_origin_id_held_by_another_vendor(api: Api) -> None:
    api.create(name="Holder", origin_id="A")
    other = created_id(api.create(name="Other"))
    body = api.sync([{"id": other, "origin_id": "A"}]).json()
    assert body["entities"] == []
    assert body["errors"] == [{"id": other, "origin_id": "A", "errors": {"origin_id": ["has already been taken"]}}]


def test_sync_items_fail_alone_and_the_call_is_still_200(api: Api) -> None:
    good = {"name": "Good", "country_code": "CA", "state_code": "ON", "origin_id": "G"}
    bad = [
        {"name": "", "origin_id": "E1"},
        {"name": "Bad country", "country_code": "ZZ"},
        {"name": "Bad state", "country_code": "US", "state_code": "ZZ"},
        {"name": "N" * 256},
        {"name": "Bad email", "email_address": "not-an-email"},
    ]
    response = api.sync([bad[0], good, *bad[1:]])
    assert response.status_code == 200
    body = response.json()
    assert [entity["origin_id"] for entity in body["entities"]] == ["G"]
    expected_errors = [
        {"name": ["can't be blank"]},
        {"country_code": ["is not a valid ISO-3166 alpha-2 country code"]},
        {"state_code": ["is not a valid ISO-3166-2 subdivision code for US"]},
        {"name": ["is too long (maximum is 255 characters)"]},
        {"email_address": ["is invalid"]},
    ]
    pairs = zip(bad, expected_errors, strict=True)
    assert body["errors"] == [{**item, "errors": errors} for item, errors in pairs]
    assert [vendor["name"] for vendor in api.store.vendors(COMPANY)] == ["Good"]


@pytest.mark.parametrize(
    ("country", "state", "valid"),
    [
        ("US", "CA", True),
        ("US", "DC", True),
        ("US", "ON", False),
        ("CA", "QC", True),
        ("CA", "CA", False),
        ("DE", "BY", True),
    ],
)
def test_state_codes_are_checked_for_us_and_canada(api: Api, country: str, state: str, valid: bool) -> None:
    body = api.sync([{"name": "V", "country_code": country, "state_code": state}]).json()
    assert len(body["entities"]) == int(valid)


def test_sync_is_idempotent_by_origin_id(api: Api) -> None:
    batch = [{"origin_id": f"ERP-{n}", "name": f"Vendor {n}"} for n in range(3)]
    first = api.sync(batch).json()["entities"]
    api.clock.advance(3600)
    second = api.sync(batch).json()["entities"]
    assert [(v["id"], v["updated_at"]) for v in second] == [(v["id"], v["updated_at"]) for v in first]
    assert len(api.store.vendors(COMPANY)) == 3


def test_sync_takes_at_most_1000_items(api: Api) -> None:
    too_many = api.sync([{"name": f"V{n}"} for n in range(1001)])
    assert too_many.status_code == 413
    assert api.store.vendors(COMPANY) == []
    assert api.sync([{"name": f"V{n}"} for n in range(1000)]).status_code == 200


# --- quota -----------------------------------------------------------------------------------


def assert_rate_headers(response: httpx.Response) -> None:
    for name in RATE_HEADERS:
        assert response.headers[name].isdigit(), (name, response.status_code)


def test_every_answer_carries_rate_limit_headers(api: Api) -> None:
    answers = [
        api.vendors(),
        api.create(name=""),  # 422
        api.get("/rest/v1.0/vendors/1", params={"company_id": COMPANY}),  # 404
        api.get("/rest/v1.0/vendors", params={"company_id": 2}),  # 403
        api.client.get("/rest/v1.0/vendors", params={"company_id": COMPANY}),  # 401
        api.client.post("/oauth/token", data={**CREDENTIALS, "client_secret": "wrong"}),
    ]
    assert [answer.status_code for answer in answers] == [200, 422, 404, 403, 401, 401]
    for answer in answers:
        assert_rate_headers(answer)


def test_errors_count_against_the_quota_and_oauth_does_not() -> None:
    api = Api(spike_limit=10)
    api.vendors()
    no_token = {"Procore-Company-Id": "1"}
    api.client.get("/rest/v1.0/vendors", params={"company_id": COMPANY}, headers=no_token)  # 401
    api.get("/rest/v1.0/vendors/1", params={"company_id": COMPANY})  # 404
    api.fetch_token()
    assert api.vendors().headers["X-Rate-Limit-Remaining"] == "6"


def test_spike_limit_answers_429_until_the_window_rolls_on() -> None:
    api = Api(spike_limit=5, spike_window_s=10, hourly_limit=50, hourly_window_s=20)
    remaining = []
    for _ in range(5):
        remaining.append(api.vendors().headers["X-Rate-Limit-Remaining"])
        api.clock.advance(1)
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = api.vendors()  # t=5: the five calls of t=0..4 fill the window
    assert refused.status_code == 429
    assert refused.text == TOO_MANY
    assert refused.headers["Retry-After"] == "5"
    assert refused.headers["X-Rate-Limit-Limit"] == "5"
    assert refused.headers["X-Rate-Limit-Reset"] == str(int(api.clock()) + 5)
    api.clock.advance(5)  # t=10: the call of t=0 has left the window, one slot is free
    assert api.vendors().status_code == 200
    assert api.vendors().status_code == 429  # t=1's call is still inside


def test_hourly_limit_answers_429_until_the_window_resets() -> None:
    api = Api(hourly_limit=8, hourly_window_s=20, spike_limit=100)
    for _ in range(8):
        assert api.vendors().status_code == 200
        api.clock.advance(1)
    refused = api.vendors()
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Limit"] == "8"
    assert refused.headers["Retry-After"] == "12"  # the window opened at t=0 and closes at t=20
    api.clock.advance(11)
    assert api.vendors().status_code == 429  # refused calls do not count, but do not help either
    api.clock.advance(1)
    recovered = api.vendors()
    assert recovered.status_code == 200
    assert recovered.headers["X-Rate-Limit-Remaining"] == "7"


def test_headers_report_the_window_closest_to_running_out() -> None:
    api = Api(hourly_limit=12, hourly_window_s=3600, spike_limit=5, spike_window_s=10)
    assert api.vendors().headers["X-Rate-Limit-Limit"] == "5"  # spike: 4 left vs 11
    for _ in range(8):
        api.clock.advance(10)
        last = api.vendors()
    assert last.headers["X-Rate-Limit-Limit"] == "12"  # hourly: 3 left vs spike 4
    assert last.headers["X-Rate-Limit-Remaining"] == "3"


def test_quota_limits_change_at_run_time(api: Api) -> None:
    changed = api.client.put("/_sandbox/quota", json={"spike_limit": 2})
    assert changed.status_code == 200 and changed.json()["spike_limit"] == 2
    assert [api.vendors().status_code for _ in range(3)] == [200, 200, 429]
    assert api.client.put("/_sandbox/quota", json={"spike_limit": 0}).status_code == 422


def test_reset_wipes_data_and_quota() -> None:
    api = Api(spike_limit=3)
    api.create(name="A")
    api.vendors()
    api.vendors()
    assert api.vendors().status_code == 429
    assert api.client.post("/_sandbox/reset").status_code == 200
    assert api.store.vendors(COMPANY) == []
    assert api.vendors().headers["X-Rate-Limit-Remaining"] == "2"


# --- faults ----------------------------------------------------------------------------------


def test_server_errors_write_nothing() -> None:
    api = Api(error_rate=1.0)
    answers = [api.create(name="A"), api.sync([{"name": "B"}]), api.vendors()]
    assert {answer.status_code for answer in answers} <= {500, 503}
    for answer in answers:
        assert_rate_headers(answer)
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "1"
    assert api.store.vendors(COMPANY) == []


def test_faults_are_reproducible_from_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        api = Api(error_rate=0.5, spike_limit=100, seed=seed)
        return [api.vendors().status_code for _ in range(20)]

    assert statuses(7) == statuses(7)
    assert {200, 500, 503} <= set(statuses(7))
    assert statuses(7) != statuses(8)


def test_fault_switches_change_at_run_time(api: Api) -> None:
    off = {"error_rate": 0.0, "latency_ms": 0, "lost_response_rate": 0.0, "sync_hold_ms": 0,
           "rate_limit_burst_rate": 0.0, "rate_limit_burst_s": 2, "latency_spike_rate": 0.0,
           "latency_spike_ms": 0, "aimed": []}
    assert api.client.get("/_sandbox/faults").json() == off
    assert api.client.put("/_sandbox/faults", json={"error_rate": 1.0}).json()["error_rate"] == 1.0
    assert api.vendors().status_code in (500, 503)
    assert api.client.put("/_sandbox/faults", json={"error_rate": 0}).status_code == 200
    assert api.vendors().status_code == 200
    assert api.client.put("/_sandbox/faults", json={"error_rate": 1.5}).status_code == 422
    assert api.client.put("/_sandbox/faults", json={"bogus": 1}).status_code == 422


def test_latency_is_added_before_rest_calls() -> None:
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    app = create_app(SandboxConfig(latency_ms=250), ManualClock(), sleep=record_sleep)
    client = TestClient(app)
    client.post("/oauth/token", data=CREDENTIALS)
    assert slept == []  # OAuth is outside the fault switches
    client.get("/rest/v1.0/companies", headers={"Authorization": "Bearer nope"})
    client.get("/_sandbox/faults")
    assert slept == []  # refused calls and control routes are not delayed
    token = client.post("/oauth/token", json=CREDENTIALS)
    client.get("/rest/v1.0/companies", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert slept == [0.25]


def test_a_429_burst_answers_every_call_until_its_retry_after_is_over() -> None:
    api = Api(rate_limit_burst_rate=1.0, rate_limit_burst_s=5, spike_limit=100)
    refused = api.vendors()
    assert refused.status_code == 429
    assert refused.text == TOO_MANY
    assert refused.headers["Retry-After"] == "5"
    assert refused.headers["X-Rate-Limit-Remaining"] == "0"
    assert refused.headers["X-Rate-Limit-Reset"] == str(int(api.clock()) + 5)
    api.clock.advance(2)
    assert api.client.put("/_sandbox/faults", json={"rate_limit_burst_rate": 0}).status_code == 200
    still = api.vendors()  # the burst that began goes on, whatever the switch says now
    assert (still.status_code, still.headers["Retry-After"]) == (429, "3")
    api.clock.advance(3)
    answered = api.vendors()
    assert answered.status_code == 200
    assert answered.headers["X-Rate-Limit-Remaining"] == "99"  # refused calls were not counted


def test_bursts_and_spikes_leave_the_other_faults_draws_as_they_were() -> None:
    def statuses(**switches: Any) -> list[int]:
        api = Api(error_rate=0.5, spike_limit=100, seed=7, **switches)
        return [api.vendors().status_code for _ in range(20)]

    assert statuses() == statuses(latency_spike_rate=0.5, latency_spike_ms=10)


def test_latency_spikes_delay_a_share_of_the_calls() -> None:
    slept: list[float] = []

    async def record_sleep(seconds: float) -> None:
        slept.append(seconds)

    config = SandboxConfig(latency_spike_rate=0.5, latency_spike_ms=2000, spike_limit=100, seed=3)
    client = TestClient(create_app(config, ManualClock(), sleep=record_sleep))
    token = client.post("/oauth/token", data=CREDENTIALS).json()["access_token"]
    for _ in range(20):
        client.get("/rest/v1.0/companies", headers={"Authorization": f"Bearer {token}"})
    assert set(slept) == {2.0} and 3 <= len(slept) <= 17


# --- persistence -----------------------------------------------------------------------------


def test_file_backed_store_survives_a_restart(tmp_path: Path) -> None:
    data_file = tmp_path / "sandbox" / "data.json"
    first = Api(data_file=data_file)
    synced = first.sync([{"origin_id": "ERP-1", "name": "Kept", "country_code": "US", "state_code": "NY"}])
    kept = synced.json()["entities"][0]
    assert json.loads(data_file.read_text())["vendors"]["1"][0]["name"] == "Kept"
    assert [path.name for path in data_file.parent.iterdir()] == ["data.json"]  # no temp file left

    second = Api(data_file=data_file)
    assert second.store.vendors(COMPANY) == first.store.vendors(COMPANY)
    assert second.sync([{"origin_id": "ERP-1", "name": "Kept"}]).json()["entities"][0]["id"] == kept["id"]
    assert created_id(second.create(name="Later")) > kept["id"]

    second.client.post("/_sandbox/reset")
    assert Api(data_file=data_file).store.vendors(COMPANY) == []


# --- contract recording ----------------------------------------------------------------------


def test_conforming_calls_record_no_contract_violations(api: Api) -> None:
    vendor_id = created_id(api.create(name="A", origin_id="A"))
    api.update(vendor_id, name="A", city="Boise")  # the published update schema requires name
    api.sync([{"origin_id": "A", "trade_name": "A & Sons"}])
    api.vendors(page=1, per_page=10, **{"filters[updated_at]": "2026-01-01...2026-01-02"})
    api.get(f"/rest/v1.0/vendors/{vendor_id}", params={"company_id": COMPANY})
    api.get("/rest/v1.0/companies")
    assert api.app.state.contract_violations == []


def test_nonconforming_calls_are_recorded_not_refused(api: Api) -> None:
    assert api.sync([{"origin_id": "A", "name": "A", "colour": "red"}]).status_code == 200
    assert api.vendors(**{"filters[updated_since]": "2026-01-01"}).status_code == 200
    violations = api.app.state.contract_violations
    where = [(violation.method, violation.path) for violation in violations]
    assert where == [("PATCH", "/rest/v1.0/vendors/sync"), ("GET", "/rest/v1.0/vendors")]
    assert "colour" in violations[0].message and "filters[updated_since]" in violations[1].message
    assert api.client.get("/_sandbox/contract_violations").json()[0]["method"] == "PATCH"


def test_contract_recording_can_be_switched_off() -> None:
    api = Api(validate_requests=False)
    api.create(name="A", colour="red")
    assert api.app.state.contract_violations == []
