"""Change orders, their lines and packages, budget changes and budget modifications, over real HTTP.

One sandbox serves the module (reset before each test) on a real port, driven by ``requests``
with a manual clock, so timestamps are exact and nothing sleeps. Every successful answer is
checked against its documented response schema, and each test ends with no contract violations
(other than the ones it provokes on purpose).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.contract import validate_response
from sandbox.resources_changes import APPROVED_LOCKED
from sandbox.server import SandboxServer, start_in_thread

COMPANY = 1
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
}
FAST = {"spike_limit": 1_000_000, "hourly_limit": 1_000_000}
T0 = "2026-01-01T00:00:00Z"
COMMITMENT = "commitment_change_orders"
ADJUSTMENTS = "adjustment_line_items"


class Remote:
    """A sandbox on a real socket, called with a token and the company header."""

    def __init__(self, server: SandboxServer, clock: ManualClock) -> None:
        self.server, self.clock = server, clock
        self.session = requests.Session()
        token = self.session.post(f"{server.url}/oauth/token", data=CREDENTIALS, timeout=10).json()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token['access_token']}",
                "Procore-Company-Id": str(COMPANY),
            }
        )

    def response(self, method: str, path: str, params: Any = None, body: Any = None) -> requests.Response:
        return self.session.request(method, self.server.url + path, params=params, json=body, timeout=10)

    def call(self, method: str, path: str, params: Any = None, body: Any = None, status: int = 200) -> Any:
        response = self.response(method, path, params, body)
        assert response.status_code == status, (method, path, response.text)
        answer = response.json() if response.content else None
        if response.ok and answer is not None:
            assert validate_response(method, path, status, answer) == [], (method, path)
        return answer

    def sync(self, path: str, updates: list[dict[str, Any]], params: Any = None, **body: Any) -> list[Any]:
        answer = self.call("PATCH", path, params, {**body, "updates": updates})
        assert answer["errors"] == [], answer["errors"]
        return [entity["id"] for entity in answer["entities"]]

    def assert_conforming(self, *sent_on_purpose: str) -> None:
        messages = [violation.message for violation in self.server.app.state.contract_violations]
        assert [message for message in messages if not any(bad in message for bad in sent_on_purpose)] == []


class Job:
    """A project with a WBS code, a subcontract (two lines), a purchase order and a prime contract."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        body = {"company_id": COMPANY, "project": {"name": "Tower", "origin_id": "P-1"}}
        self.project_id = remote.call("POST", "/rest/v1.0/projects", body=body, status=201)["id"]
        self.vendor_id, self.supplier_id = (self.vendor(name) for name in ("Sub Inc", "Pipe Supply"))
        [cost_type] = remote.sync(
            "/rest/v1.0/line_item_types/sync", [{"name": "Subcontract", "csv_import_code": "S"}], company_id=1
        )
        self.wbs_codes = [self.wbs_code(code, cost_type) for code in ("02-300", "03-100")]
        self.woc_id, self.woc_lines = self.contract("work_order_contracts", "SC-1", 2)
        self.poc_id, self.poc_lines = self.contract("purchase_order_contracts", "PO-1", 1, self.supplier_id)
        prime = {"project_id": self.project_id, "prime_contract": {"number": "PC-1", "origin_id": "PC-1"}}
        self.prime_id = remote.call("POST", "/rest/v1.0/prime_contract", body=prime, status=201)["id"]
        self.prime_lines = self.lines("prime_contracts", self.prime_id, "PC-1", 1)

    def vendor(self, name: str) -> int:
        body = {"company_id": COMPANY, "vendor": {"name": name}}
        vendor_id: int = self.remote.call("POST", "/rest/v1.0/vendors", body=body, status=201)["id"]
        return vendor_id

    def wbs_code(self, code: str, cost_type: int) -> int:
        [cost_code] = self.remote.sync(
            "/rest/v1.0/cost_codes/sync", [{"code": code, "name": code}], {"project_id": self.project_id}
        )
        items = [
            {"segment_id": 2, "segment_item_id": cost_code},
            {"segment_id": 3, "segment_item_id": cost_type},
        ]
        path = f"/rest/v1.0/projects/{self.project_id}/work_breakdown_structure/wbs_codes/bulk_create"
        answer = self.remote.call("PATCH", path, body={"bulk": [{"segment_items": items}]}, status=201)
        wbs_code_id: int = answer["entities"][0]["id"]
        return wbs_code_id

    def contract(
        self, collection: str, number: str, lines: int, vendor_id: int | None = None
    ) -> tuple[int, list[int]]:
        vendor_id = vendor_id or self.vendor_id
        header = {"origin_id": number, "number": number, "title": number, "vendor_id": vendor_id}
        path = f"/rest/v1.0/{collection}/sync"
        [contract_id] = self.remote.sync(path, [header], project_id=self.project_id)
        return contract_id, self.lines(collection, contract_id, number, lines)

    def lines(self, collection: str, contract_id: int, number: str, count: int) -> list[int]:
        items = [
            {"amount": "1000", "wbs_code_id": self.wbs_codes[index], "origin_id": f"{number}|{index}"}
            for index in range(count)
        ]
        path = f"/rest/v1.0/{collection}/{contract_id}/line_items/sync"
        return self.remote.sync(path, items, {"project_id": self.project_id})

    def path(self, collection: str, *rest: object) -> str:
        return "/".join([f"/rest/v1.0/projects/{self.project_id}/{collection}", *map(str, rest)])

    def v2(self, collection: str, *rest: object) -> str:
        base = f"/rest/v2.0/companies/{COMPANY}/projects/{self.project_id}/{collection}"
        return "/".join([base, *map(str, rest)])

    def change_order(self, contract_id: int, collection: str = COMMITMENT, **attrs: Any) -> Any:
        body = {"change_order": {"contract_id": contract_id, **attrs}}
        return self.remote.call("POST", self.path(collection), body=body, status=201)

    def line(self, change_order_id: int, collection: str = COMMITMENT, **attrs: Any) -> Any:
        body = {"wbs_code_id": str(self.wbs_codes[0]), **attrs}
        return self.remote.call("POST", self.v2(collection, change_order_id, "line_items"), body=body)["data"]

    def packages(self, **params: Any) -> list[Any]:
        answer: list[Any] = self.remote.call(
            "GET", "/rest/v1.0/change_order_packages", {"project_id": self.project_id, **params}
        )
        return answer


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SandboxServer, ManualClock]]:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**FAST), clock) as server:
        yield server, clock


@pytest.fixture
def remote(served: tuple[SandboxServer, ManualClock]) -> Remote:
    server, clock = served
    assert requests.post(f"{server.url}/_sandbox/reset", timeout=10).status_code == 200
    clock.now = ManualClock().now
    return Remote(server, clock)


@pytest.fixture
def job(remote: Remote) -> Job:
    return Job(remote)


# --- change orders -------------------------------------------------------------------------------


def test_commitment_change_order_create_show_update_list_delete(remote: Remote, job: Job) -> None:
    created = job.change_order(job.woc_id, title="Extra pour", description="Slab 3", due_date="2026-02-01")
    assert created["number"] == "1" and created["status"] == "draft" and created["grand_total"] == "0.0"
    assert created["contract"]["id"] == job.woc_id and created["contract"]["type"] == "WorkOrderContract"
    assert created["created_at"] == created["updated_at"] == T0
    assert remote.call("GET", job.path(COMMITMENT, created["id"]), {"view": "extended"}) == created
    on_po = job.change_order(job.poc_id, title="More pipe", number="7", executed=True)
    assert on_po["contract"]["type"] == "PurchaseOrderContract" and on_po["number"] == "7"

    remote.clock.advance(60)
    patch = {"change_order": {"title": "Extra pour, revised", "status": "pending", "revision": 1}}
    updated = remote.call("PATCH", job.path(COMMITMENT, created["id"]), body=patch)
    assert (updated["title"], updated["status"], updated["revision"]) == ("Extra pour, revised", "pending", 1)
    assert updated["updated_at"] == "2026-01-01T00:01:00Z" and updated["created_at"] == T0
    [package] = job.packages(contract_id=job.woc_id)
    assert (package["id"], package["type"]) == (created["legacy_package_id"], "CommitmentContractChangeOrder")
    assert (package["title"], package["status"], package["updated_at"]) == (
        "Extra pour, revised",
        "pending",
        "2026-01-01T00:01:00Z",
    )

    listed = remote.call("GET", job.path(COMMITMENT))
    assert [row["id"] for row in listed] == [created["id"], on_po["id"]]
    by_filter = {
        "filters[contract_id]": job.poc_id,
        "filters[status]": "draft",
        "filters[id]": on_po["id"],
        "filters[executed]": "true",
        "filters[vendor_id]": job.supplier_id,
    }
    for name, value in by_filter.items():
        rows = remote.call("GET", job.path(COMMITMENT), {name: value})
        assert [row["id"] for row in rows] == [on_po["id"]], name

    remote.clock.advance(60)
    remote.call("DELETE", job.path(COMMITMENT, created["id"]), status=204)
    assert [row["id"] for row in remote.call("GET", job.path(COMMITMENT))] == [on_po["id"]]
    remote.call("GET", job.path(COMMITMENT, created["id"]), status=404)
    assert [row["id"] for row in job.packages()] == [on_po["legacy_package_id"]]
    [deleted] = job.packages(**{"filters[include_deleted]": "only"})
    assert deleted["id"] == created["legacy_package_id"]
    assert deleted["deleted_at"] == deleted["updated_at"] == "2026-01-01T00:02:00Z"
    assert len(job.packages(**{"filters[include_deleted]": "with"})) == 2
    today = {"filters[include_deleted]": "only", "filters[updated_at]": "2026-01-01...2026-01-01"}
    assert [package["id"] for package in job.packages(**today)] == [deleted["id"]]
    packages, project = "/rest/v1.0/change_order_packages", {"project_id": job.project_id}
    remote.call("GET", f"{packages}/{deleted['id']}", project, status=404)
    shown = remote.call("GET", f"{packages}/{on_po['legacy_package_id']}", project)
    assert shown["number"] == "7" and shown["deleted_at"] is None
    remote.assert_conforming()


def test_prime_change_orders_and_contract_refusals(remote: Remote, job: Job) -> None:
    prime = job.change_order(job.prime_id, "prime_change_orders", title="Owner extra")
    assert prime["contract"]["type"] == "PrimeContract" and prime["number"] == "1"
    refusals = [
        ("prime_change_orders", job.woc_id),
        ("commitment_change_orders", job.prime_id),
        ("commitment_change_orders", 42),
    ]
    for collection, contract_id in refusals:
        body = {"change_order": {"contract_id": contract_id, "title": "Wrong"}}
        refused = remote.call("POST", job.path(collection), body=body, status=422)
        assert refused == {"errors": {"contract_id": ["does not exist"]}}, collection
    taken = {"change_order": {"contract_id": job.prime_id, "number": "1"}}
    assert remote.call("POST", job.path("prime_change_orders"), body=taken, status=422) == {
        "errors": {"number": ["has already been taken"]}
    }
    moved = {"change_order": {"contract_id": job.woc_id}}
    remote.call("PATCH", job.path(COMMITMENT, prime["id"]), body=moved, status=404)
    approved = {"change_order": {"status": "approved"}}
    remote.call("PATCH", job.path("prime_change_orders", prime["id"]), body=approved)
    refused = remote.call("DELETE", job.path("prime_change_orders", prime["id"]), status=422)
    assert refused == {"errors": {"base": ["An approved change order cannot be deleted"]}}
    assert len(remote.call("GET", job.path("prime_change_orders"))) == 1
    remote.assert_conforming()


def test_updated_at_range_is_inclusive_at_both_ends_to_the_second(remote: Remote, job: Job) -> None:
    ids = []
    for _ in range(3):
        ids.append(job.change_order(job.woc_id)["id"])
        remote.clock.advance(1)
    second = "2026-01-01T00:00:01Z"

    def between(text: str) -> list[int]:
        rows = remote.call("GET", job.path(COMMITMENT), {"filters[updated_at]": text})
        return [row["id"] for row in rows]

    assert between(f"{second}...{second}") == [ids[1]]
    assert between(f"{T0}...{second}") == ids[:2]
    assert between(f"{second}...") == ids[1:]
    assert between("...2026-01-01T00:00:00+00:00") == ids[:1]
    assert between("2026-01-01...2026-01-01") == ids
    assert between("2025-12-31...2025-12-31") == []
    remote.assert_conforming()


# --- change order lines (REST v2) ----------------------------------------------------------------


def test_line_changes_move_the_change_order_and_its_package(remote: Remote, job: Job) -> None:
    change_order = job.change_order(job.woc_id)
    remote.clock.advance(10)
    line = job.line(
        change_order["id"],
        quantity="2",
        unit_cost="10.5",
        uom="EA",
        commitment_line_item_id=str(job.woc_lines[1]),
    )
    assert (line["amount"], line["unit_cost"], line["quantity"], line["position"]) == ("21.0", "10.5", 2.0, 1)
    assert line["id"].isdigit() and line["commitment_line_item_id"] == str(job.woc_lines[1])
    assert line["wbs_code"] == {"id": str(job.wbs_codes[0]), "flat_code": "02-300.S", "description": None}
    path = job.path(COMMITMENT, change_order["id"])
    shown = remote.call("GET", path)
    assert shown["updated_at"] == "2026-01-01T00:00:10Z" and shown["grand_total"] == "21.0"

    remote.clock.advance(10)
    lines = job.v2(COMMITMENT, change_order["id"], "line_items")
    changed = remote.call("PATCH", f"{lines}/{line['id']}", body={"amount": "30"})["data"]
    assert changed["amount"] == "30.0" and changed["quantity"] == 2.0
    assert remote.call("GET", f"{lines}/{line['id']}")["data"] == changed
    assert remote.call("GET", path)["updated_at"] == "2026-01-01T00:00:20Z"
    remote.clock.advance(10)
    remote.call("PATCH", f"{lines}/{line['id']}", body={"amount": "30.00"})  # no change, no stamp
    assert remote.call("GET", path)["updated_at"] == "2026-01-01T00:00:20Z"

    second = job.line(change_order["id"], amount="5", wbs_code_id=str(job.wbs_codes[1]))
    remote.clock.advance(10)
    remote.call("DELETE", f"{lines}/{second['id']}", status=204)
    after = remote.call("GET", path)
    assert after["updated_at"] == "2026-01-01T00:00:40Z" and after["grand_total"] == "30.0"
    [package] = job.packages()
    assert package["updated_at"] == after["updated_at"] and package["grand_total"] == "30.0"
    newer = remote.call(
        "GET", job.path(COMMITMENT), {"filters[updated_at]": "2026-01-01T00:00:40Z..."}
    )
    assert [row["id"] for row in newer] == [change_order["id"]]

    prime = job.change_order(job.prime_id, "prime_change_orders")
    prime_line = job.line(prime["id"], "prime_change_orders", amount="100")
    prime_lines = job.v2("prime_change_orders", prime["id"], "line_items")
    link = {"prime_line_item_id": str(job.prime_lines[0])}
    linked = remote.call("PATCH", f"{prime_lines}/{prime_line['id']}", body=link)
    assert linked["data"]["prime_line_item_id"] == str(job.prime_lines[0])
    assert "commitment_line_item_id" not in linked["data"]
    remote.assert_conforming()


def test_line_refusals(remote: Remote, job: Job) -> None:
    change_order = job.change_order(job.woc_id)
    lines = job.v2(COMMITMENT, change_order["id"], "line_items")
    unknown = remote.call("POST", lines, body={"wbs_code_id": "42"}, status=422)
    assert unknown["error"]["code"] == "UNPROCESSABLE_ENTITY"
    assert unknown["error"]["details"] == [
        {"reason_code": "INVALID", "message": "wbs_code_id does not exist", "source": "wbs_code_id"}
    ]
    other_contract = {"wbs_code_id": str(job.wbs_codes[0]), "commitment_line_item_id": str(job.poc_lines[0])}
    refused = remote.call("POST", lines, body=other_contract, status=422)
    assert refused["error"]["details"][0]["source"] == "commitment_line_item_id"
    elsewhere = lines.replace(f"/companies/{COMPANY}/", "/companies/2/")
    assert remote.call("GET", elsewhere, status=403)["error"]["code"] == "FORBIDDEN"
    missing = remote.call("GET", job.v2(COMMITMENT, 42, "line_items"), status=404)
    assert missing["error"]["message"] == "Couldn't find CommitmentChangeOrder with 'id'=42"
    line = job.line(change_order["id"], amount="10")
    approve = {"change_order": {"status": "approved"}}
    remote.call("PATCH", job.path(COMMITMENT, change_order["id"]), body=approve)
    locked = remote.call("PATCH", f"{lines}/{line['id']}", body={"amount": "11"}, status=422)
    assert locked["error"]["details"][0]["message"] == f"base {APPROVED_LOCKED}"
    remote.call("DELETE", f"{lines}/{line['id']}", status=422)
    remote.call("POST", lines, body={"wbs_code_id": str(job.wbs_codes[0])}, status=422)
    assert len(remote.call("GET", lines)["data"]) == 1
    remote.assert_conforming()


def test_v2_pages_default_to_10_and_stop_at_100(remote: Remote, job: Job) -> None:
    change_order = job.change_order(job.woc_id)
    for index in range(12):
        job.line(change_order["id"], amount=str(index))
    lines = job.v2(COMMITMENT, change_order["id"], "line_items")
    first = remote.response("GET", lines)
    assert first.headers["Total"] == "12" and first.headers["Per-Page"] == "10"
    assert [line["position"] for line in first.json()["data"]] == list(range(1, 11))
    assert first.links["next"]["url"].endswith("page=2&per_page=10") and "prev" not in first.links
    second = remote.response("GET", first.links["next"]["url"].removeprefix(remote.server.url))
    assert [line["amount"] for line in second.json()["data"]] == ["10.0", "11.0"]
    assert "next" not in second.links
    assert remote.response("GET", lines, {"per_page": 500}).headers["Per-Page"] == "100"
    remote.assert_conforming()


# --- budget changes ------------------------------------------------------------------------------


def test_budget_change_create_update_delete_and_the_v2_line_list(remote: Remote, job: Job) -> None:
    low, high = job.wbs_codes
    transfer = [
        {"adjustment_number": 1, "wbs_code_id": low, "amount": -250, "ref": "from", "type": "budget_change"},
        {"adjustment_number": 1, "wbs_code_id": high, "amount": 250, "ref": "to", "description": "Steel"},
    ]
    body = {"status": "draft", "title": "Move to steel", "adjustment_line_items": transfer}
    created = remote.call("POST", job.path("budget_changes"), body=body, status=201)["data"]
    assert created["number"] == "1" and created["status"] == "draft"
    shown_lines = [(line["amount"], line["wbs_code_id"], line["ref"]) for line in created[ADJUSTMENTS]]
    assert shown_lines == [(-250.0, low, "from"), (250.0, high, "to")]
    from_line, to_line = (line["id"] for line in created["adjustment_line_items"])
    assert remote.call("GET", job.path("budget_changes", created["id"]))["data"] == created

    bad = {"status": "draft", "number": 1, ADJUSTMENTS: [{"adjustment_number": 1, "wbs_code_id": 42}]}
    refused = remote.call("POST", job.path("budget_changes"), body=bad, status=422)["errors"]
    assert refused == {
        "number": ["has already been taken"],
        f"{ADJUSTMENTS}[0].wbs_code_id": ["does not exist"],
    }
    assert len(remote.call("GET", job.path("budget_changes"))["data"]) == 1

    remote.clock.advance(30)
    changes = [
        {"id": from_line, "amount": -300},
        {"id": to_line, "_delete": True},
        {"adjustment_number": 1, "wbs_code_id": high, "quantity": 3, "unit_cost": 100, "uom": "t"},
    ]
    patch = {"id": created["id"], "status": "approved", "adjustment_line_items": changes}
    updated = remote.call("PATCH", job.path("budget_changes", created["id"]), body=patch)["data"]
    assert updated["status"] == "approved" and updated["updated_at"] == "2026-01-01T00:00:30Z"
    assert [(line["id"] == from_line, line["amount"]) for line in updated["adjustment_line_items"]] == [
        (True, -300.0),
        (False, 300.0),
    ]
    remote.clock.advance(30)
    only_lines = {"adjustment_line_items": [{"id": from_line, "amount": -299}]}
    moved = remote.call("PATCH", job.path("budget_changes", created["id"]), body=only_lines)["data"]
    assert moved["updated_at"] == "2026-01-01T00:01:00Z"
    unknown = {"adjustment_line_items": [{"id": 42, "amount": 1}]}
    assert "adjustment_line_items[0].id" in remote.call(
        "PATCH", job.path("budget_changes", created["id"]), body=unknown, status=422
    )["errors"]

    second = {"status": "under_review", "number": 5, "title": "Another"}
    other = remote.call("POST", job.path("budget_changes"), body=second, status=201)["data"]
    assert other["number"] == "5" and other["adjustment_line_items"] == []
    summaries = remote.call("GET", job.path("budget_changes"), {"exclude_custom_fields": "true"})["data"]
    assert [(row["id"], row["number"], row["status"]) for row in summaries] == [
        (created["id"], "1", "approved"),
        (other["id"], "5", "under_review"),
    ]
    assert "custom_fields" not in summaries[0]
    rows = remote.call("GET", job.v2("budget_changes", "adjustment_line_items"))["data"]
    holders = [
        (row["budget_change_id"], row["budget_change_number"], row["budget_change_status"]) for row in rows
    ]
    assert holders == [(str(created["id"]), "1", "approved")] * 2
    assert rows[0]["budget_change_name"] == "Move to steel" and rows[1]["quantity"] == 3.0

    remote.call("DELETE", job.path("budget_changes", created["id"]), status=204)
    remote.call("GET", job.path("budget_changes", created["id"]), status=404)
    assert remote.call("GET", job.v2("budget_changes", "adjustment_line_items"))["data"] == []
    remote.assert_conforming()


def test_amounts_are_answered_with_every_digit(remote: Remote, job: Job) -> None:
    """Procore's JSON numbers carry its decimals whole; a float would answer 99999999999999.98."""
    line = f'{{"adjustment_number": 1, "wbs_code_id": {job.wbs_codes[0]}, "amount": 99999999999999.99}}'
    body = f'{{"status": "draft", "{ADJUSTMENTS}": [{line}]}}'  # as text: the stdlib writes floats
    created = remote.session.post(remote.server.url + job.path("budget_changes"), data=body, timeout=10,
                                  headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    budget_change_id = json.loads(created.text)["data"]["id"]
    shown = remote.response("GET", job.path("budget_changes", budget_change_id)).text
    assert json.loads(shown, parse_float=Decimal)["data"][ADJUSTMENTS][0]["amount"] == Decimal("99999999999999.99")
    assert '"amount":99999999999999.99' in shown
    remote.assert_conforming()


# --- budget modifications ------------------------------------------------------------------------


def test_budget_modification_writes_are_405_on_a_budget_changes_company(remote: Remote, job: Job) -> None:
    body = {"budget_modification": {"to_budget_line_item_id": 1, "transfer_amount": "5"}}
    for method, path in [
        ("POST", job.path("budget_modifications")),
        ("PATCH", job.path("budget_modifications", 1)),
        ("DELETE", job.path("budget_modifications", 1)),
    ]:
        refused = remote.response(method, path, body=None if method == "DELETE" else body)
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET", method
        assert "Budget Changes" in refused.json()["errors"]
    assert remote.call("GET", job.path("budget_modifications")) == []
    remote.assert_conforming()


def test_budget_modifications_on_the_legacy_tool() -> None:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(legacy_budget_tool=True, **FAST), clock) as server:
        remote = Remote(server, clock)
        job = Job(remote)
        lines = [{"wbs_code_id": code, "original_budget_amount": "1000"} for code in job.wbs_codes]
        body = {"project_id": job.project_id, "budget_line_items": lines}
        budget = remote.call("POST", "/rest/v1.0/budget_line_items/sync", body=body)
        low, high = (line["id"] for line in budget)
        move = {"from_budget_line_item_id": low, "to_budget_line_item_id": high, "transfer_amount": "150.50"}
        first = {"budget_modification": {**move, "origin_id": "BM-1"}}
        created = remote.call("POST", job.path("budget_modifications"), body=first, status=201)
        assert created["transfer_amount"] == "150.5" and created["origin_id"] == "BM-1"
        clock.advance(5)
        path = job.path("budget_modifications", created["id"])
        updated = remote.call("PATCH", path, body={"budget_modification": {**move, "notes": "Steel"}})
        assert updated["notes"] == "Steel" and updated["updated_at"] == "2026-01-01T00:00:05Z"
        assert remote.call("GET", path) == updated
        assert remote.call("GET", job.path("budget_modifications"), {"page": 1, "per_page": 10}) == [updated]
        same = {"budget_modification": {**move, "to_budget_line_item_id": low}}
        refused = remote.call("POST", job.path("budget_modifications"), body=same, status=422)
        assert refused["errors"] == {"to_budget_line_item_id": ["must differ from from_budget_line_item_id"]}
        unknown = {"budget_modification": {"to_budget_line_item_id": 42, "transfer_amount": "1"}}
        assert remote.call("POST", job.path("budget_modifications"), body=unknown, status=422) == {
            "errors": {"to_budget_line_item_id": ["does not exist"]}
        }
        remote.call("DELETE", path)
        assert remote.call("GET", job.path("budget_modifications")) == []
        remote.assert_conforming()
