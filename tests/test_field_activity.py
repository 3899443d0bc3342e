"""The field simulator against a real sandbox, through our real Procore client.

The company is put in place over plain HTTP, as the ERP sync would leave it: project A with a
subcontract and a prime contract carrying origin_ids, project B with a purchase order, project C
with only a subcontract the ERP did not send (so the simulator leaves C alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from connectors.procore import ProcoreClient
from demo import field_activity
from demo.field_activity import ChangeOrderActions, FieldActivity
from procore_sync.settings import Settings
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread

COMPANY = 1
FAST = {"spike_limit": 1_000_000, "hourly_limit": 1_000_000}
CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
}
KINDS = {"A": "work_order_contracts", "B": "purchase_order_contracts", "C": "work_order_contracts"}


def _session() -> requests.Session:
    return requests.Session()


@dataclass
class Company:
    server: SandboxServer
    clock: ManualClock
    projects: dict[str, int] = field(default_factory=dict)
    woc_lines: list[int] = field(default_factory=list)

    def call(self, method: str, path: str, params: Any = None, body: Any = None, status: int = 200) -> Any:
        session = _session()
        token = session.post(f"{self.server.url}/oauth/token", data=CREDENTIALS, timeout=10).json()
        session.headers.update(
            {"Authorization": f"Bearer {token['access_token']}", "Procore-Company-Id": str(COMPANY)}
        )
        response = session.request(method, self.server.url + path, params=params, json=body, timeout=10)
        assert response.status_code == status, (method, path, response.text)
        return response.json() if response.content else None

    def sync(self, path: str, updates: list[dict[str, Any]], params: Any = None, **body: Any) -> list[int]:
        answer = self.call("PATCH", path, params, {**body, "updates": updates})
        assert answer["errors"] == [], answer["errors"]
        return [entity["id"] for entity in answer["entities"]]

    def change_orders(self, project: str, collection: str = "commitment_change_orders") -> list[Any]:
        rows: list[Any] = self.call("GET", f"/rest/v1.0/projects/{self.projects[project]}/{collection}")
        return rows

    def activity(self, **kwargs: Any) -> FieldActivity:
        settings = Settings(_env_file=None, local_sandbox_url=self.server.url, quota_enabled=False)
        with ProcoreClient(settings, session=_session()) as client:
            return field_activity.simulate_field_activity(client, COMPANY, **kwargs)

    def violations(self) -> list[Any]:
        return list(self.server.app.state.contract_violations)


def wbs_codes(company: Company, project_id: int, cost_type: int) -> list[int]:
    codes = [{"code": code, "name": code} for code in ("02-300", "03-100")]
    cost_codes = company.sync("/rest/v1.0/cost_codes/sync", codes, {"project_id": project_id})
    segments = [[(2, code), (3, cost_type)] for code in cost_codes]
    bulk = [
        {"segment_items": [{"segment_id": segment, "segment_item_id": item} for segment, item in items]}
        for items in segments
    ]
    path = f"/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes/bulk_create"
    return [code["id"] for code in company.call("PATCH", path, body={"bulk": bulk}, status=201)["entities"]]


def contract(company: Company, name: str, project_id: int, vendor_id: int, wbs: list[int]) -> list[int]:
    """The project's one commitment (sent by the ERP unless in C) and its lines."""
    header = {"number": f"{name}-1", "title": f"{name} works", "vendor_id": vendor_id}
    if name != "C":
        header["origin_id"] = f"{name}-1"
    [contract_id] = company.sync(f"/rest/v1.0/{KINDS[name]}/sync", [header], project_id=project_id)
    lines = [{"amount": "5000", "wbs_code_id": code, "origin_id": f"{name}-1|{code}"} for code in wbs]
    path = f"/rest/v1.0/{KINDS[name]}/{contract_id}/line_items/sync"
    return company.sync(path, lines[: 1 if name == "B" else 2], {"project_id": project_id})


def prime_contract(company: Company, project_id: int, wbs_code_id: int) -> None:
    prime = {"project_id": project_id, "prime_contract": {"number": "PC-A", "origin_id": "PC-A"}}
    prime_id = company.call("POST", "/rest/v1.0/prime_contract", body=prime, status=201)["id"]
    line = {"amount": "9000", "wbs_code_id": wbs_code_id, "origin_id": "PC-A|1"}
    company.sync(f"/rest/v1.0/prime_contracts/{prime_id}/line_items/sync", [line], {"project_id": project_id})


def build(company: Company, order: tuple[str, ...] = ("A", "B", "C")) -> None:
    body = {"company_id": COMPANY, "vendor": {"name": "Sub"}}
    vendor_id = company.call("POST", "/rest/v1.0/vendors", body=body, status=201)["id"]
    cost_type = {"name": "Sub", "csv_import_code": "S"}
    [cost_type_id] = company.sync("/rest/v1.0/line_item_types/sync", [cost_type], company_id=COMPANY)
    for name in order:
        body = {"company_id": COMPANY, "project": {"name": name, "origin_id": name, "project_number": f"P-{name}"}}
        project_id = company.call("POST", "/rest/v1.0/projects", body=body, status=201)["id"]
        company.projects[name] = project_id
        wbs = wbs_codes(company, project_id, cost_type_id)
        lines = contract(company, name, project_id, vendor_id, wbs)
        if name == "A":
            company.woc_lines = lines
            prime_contract(company, project_id, wbs[0])


@pytest.fixture
def company() -> Iterator[Company]:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**FAST), clock) as server:
        built = Company(server, clock)
        build(built)
        yield built


def test_two_rounds_create_edit_void_and_delete_through_the_api(company: Company) -> None:
    first = company.activity(seed=3)
    a, b = company.projects["A"], company.projects["B"]
    assert first.round == 1 and first.projects == (a, b)
    assert len(first.commitment.created) == 4 and len(first.prime.created) == 1
    kept_a, other_a, kept_b, other_b = first.commitment.created
    assert first.commitment.edited == (kept_a, kept_b)
    assert first.commitment.deleted == ()  # nothing of an earlier round to delete yet
    assert first.commitment.voided == () and first.prime.voided == first.prime.created
    assert len(first.budget_changes_created) == 2
    assert first.budget_changes_edited == first.budget_changes_created
    assert first.orphan_contract_id is not None and first.orphan_change_order_id is not None
    assert first.describe().startswith("round 1 in 2 project(s): change orders 5 created")

    rows = {row["id"]: row for row in company.change_orders("A")}
    assert set(rows) == {kept_a, other_a, first.orphan_change_order_id}
    assert rows[kept_a]["title"].startswith("Field r1 #1: ")
    assert rows[kept_a]["title"].endswith("(revised r1)")
    assert rows[first.orphan_change_order_id]["contract_id"] == first.orphan_contract_id
    query = {"project_id": a, "filters[id]": first.orphan_contract_id}
    [orphan] = company.call("GET", "/rest/v1.0/work_order_contracts", query)
    assert orphan["title"] == field_activity.ORPHAN_TITLE and orphan["origin_id"] is None
    lines = f"/rest/v2.0/companies/{COMPANY}/projects/{a}/commitment_change_orders/{kept_a}/line_items"
    linked = [line["commitment_line_item_id"] for line in company.call("GET", lines)["data"]]
    assert linked == [str(line) for line in company.woc_lines]
    [voided] = company.change_orders("A", "prime_change_orders")
    assert voided["status"] == "void" and voided["grand_total"] != "0.0"
    budget_change = f"/rest/v1.0/projects/{a}/budget_changes/{first.budget_changes_created[0]}"
    amounts = [line["amount"] for line in company.call("GET", budget_change)["data"]["adjustment_line_items"]]
    assert len(amounts) == 2 and sum(amounts) == 0 and amounts[1] > 0

    company.clock.advance(3600)
    second = company.activity(seed=3)
    assert second.round == 2 and second.projects == (a, b)
    # Round 1's two open change orders per project: one deleted, the other edited.
    assert len(second.commitment.deleted) == 2 and len(second.commitment.edited) == 2
    assert set(second.commitment.deleted) | set(second.commitment.edited) == set(first.commitment.created)
    assert second.prime.voided == second.prime.created and second.commitment.voided == ()
    deleted = {"project_id": a, "filters[include_deleted]": "only"}
    [gone] = company.call("GET", "/rest/v1.0/change_order_packages", deleted)
    assert gone["title"].startswith("Field r1 #") and gone["deleted_at"] is not None
    assert set(second.budget_changes_edited) == set(first.budget_changes_created)
    assert second.orphan_contract_id is None  # made once only
    [edited_b] = set(second.commitment.edited) & {kept_b, other_b}
    edited = {row["id"]: row for row in company.change_orders("B")}[edited_b]
    assert edited["updated_at"] == "2026-01-01T01:00:00Z" and edited["title"].endswith("(revised r2)")
    third = company.activity(seed=3)
    assert third.round == 3 and len(third.commitment.voided) == 2  # an earlier round's, per project
    assert company.violations() == []


def test_a_round_is_the_same_for_the_same_seed_and_data(company: Company) -> None:
    once = company.activity(seed=5, round=1)
    assert once.commitment == ChangeOrderActions(
        created=once.commitment.created,
        edited=(once.commitment.created[0], once.commitment.created[2]),
        voided=(),
        deleted=(),
    )
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**FAST), clock) as server:
        again = Company(server, clock)
        build(again)
        assert again.activity(seed=5, round=1) == once
        shown = [(row["title"], row["grand_total"]) for row in again.change_orders("A")]
        assert shown == [(row["title"], row["grand_total"]) for row in company.change_orders("A")]
        assert again.violations() == []


def test_a_round_is_the_same_in_a_procore_that_made_the_same_records_in_another_order(company: Company) -> None:
    """Ids say in which order a Procore made its records (a rerun after a fault lands some
    later), never which record is which: the round picks projects, contracts, lines and WBS
    codes by their numbers, so it does the same work wherever the data is the same."""
    company.activity(seed=5, round=1)
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**FAST), clock) as server:
        again = Company(server, clock)
        build(again, order=("C", "B", "A"))
        again.activity(seed=5, round=1)
        for project in ("A", "B"):
            shown = [(row["title"], row["grand_total"]) for row in again.change_orders(project)]
            assert shown == [(row["title"], row["grand_total"]) for row in company.change_orders(project)]
