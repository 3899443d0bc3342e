"""Direct costs and their lines: the origin_id lock, its no-op exception, and the 409 on
overlapping line syncs (over a real socket, where two requests can really overlap)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.resources import ORIGIN_LOCKED
from sandbox.server import start_in_thread
from tests.test_sandbox_setup import Procore

LOCKED = {"base": [ORIGIN_LOCKED]}


@pytest.fixture
def procore() -> Procore:
    return Procore()


class Costs:
    """A project with a vendor and a WBS code, and its direct cost endpoints."""

    def __init__(self, procore: Procore) -> None:
        self.procore = procore
        self.project_id = procore.project()["id"]
        self.vendor_id = procore.vendor("Supplier")
        self.cost_type_id = procore.cost_type("Materials", "M")
        self.cost_code_id = procore.cost_code(self.project_id, "02-300", "Concrete")
        self.wbs_code_id = procore.wbs_code(self.project_id, self.cost_code_id, self.cost_type_id)
        self.base = f"/rest/v1.0/projects/{self.project_id}/direct_costs"

    def sync(self, updates: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        entities, errors = self.procore.sync(f"{self.base}/sync", updates)
        return entities, errors

    def line_sync(self, updates: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        entities, errors = self.procore.sync(f"{self.base}/line_items/sync", updates)
        return entities, errors

    def invoice(self, **attrs: Any) -> dict[str, Any]:
        return {
            "direct_cost_type": "invoice",
            "invoice_number": "INV-1",
            "vendor_id": self.vendor_id,
            "direct_cost_date": "2026-01-05",
            **attrs,
        }


@pytest.fixture
def costs(procore: Procore) -> Costs:
    return Costs(procore)


def test_direct_cost_create_list_and_its_errors(procore: Procore, costs: Costs) -> None:
    entities, errors = costs.sync(
        [
            costs.invoice(origin_id="DC-1"),
            {"direct_cost_type": "expense", "vendor_id": costs.vendor_id, "status": "pending"},
            {"direct_cost_type": "invoice", "vendor_id": costs.vendor_id},
            {"direct_cost_type": "expense"},
            {"direct_cost_type": "receipt", "vendor_id": costs.vendor_id},
            {"direct_cost_type": "expense", "vendor_id": 42, "status": "paid"},
        ]
    )
    assert [(entity["direct_cost_type"], entity["status"]) for entity in entities] == [
        ("invoice", "draft"),
        ("expense", "pending"),
    ]
    assert [error["errors"] for error in errors] == [
        {"invoice_number": ["can't be blank"]},
        {"vendor_id": ["can't be blank"]},
        {"direct_cost_type": ["is not included in the list"]},
        {"vendor_id": ["does not exist"], "status": ["is not included in the list"]},
    ]
    listed = procore.call(
        "GET", f"/rest/v1.1/projects/{costs.project_id}/direct_costs", {"filters[origin_id]": "DC-1"}
    )
    assert [(found["id"], found["vendor"]) for found in listed] == [(entities[0]["id"], "Supplier")]
    # Without an origin_id a direct cost stays editable, but its type is set once.
    plain = entities[1]["id"]
    entities, errors = costs.sync(
        [{"id": plain, "description": "Fuel"}, {"id": plain, "direct_cost_type": "payroll"}]
    )
    assert entities[0]["description"] == "Fuel"
    assert errors[0]["errors"] == {"direct_cost_type": ["cannot be changed once created"]}
    procore.assert_conforming("'receipt'", "'paid'")


def test_a_direct_cost_with_an_origin_id_is_locked_but_an_equal_resend_is_a_no_op(
    procore: Procore, costs: Costs
) -> None:
    created = costs.sync([costs.invoice(origin_id="DC-1", description="Concrete delivery")])[0][0]
    procore.clock.advance(60)
    entities, errors = costs.sync([costs.invoice(origin_id="DC-1", description="Concrete delivery")])
    assert (
        errors == []
        and entities[0]["id"] == created["id"]
        and entities[0]["updated_at"] == created["updated_at"]
    )
    entities, errors = costs.sync(
        [{"origin_id": "DC-1", "status": "approved"}, {"id": created["id"], "invoice_number": "INV-2"}]
    )
    assert entities == [] and [error["errors"] for error in errors] == [LOCKED, LOCKED]
    # A direct cost created without origin_id is editable until one is set by id.
    plain = costs.sync([costs.invoice(invoice_number="INV-9")])[0][0]["id"]
    assert costs.sync([{"id": plain, "origin_id": "DC-9", "status": "pending"}])[1] == []
    assert costs.sync([{"origin_id": "DC-9", "status": "approved"}])[1][0]["errors"] == LOCKED


def test_direct_cost_lines_sync_and_their_lock(procore: Procore, costs: Costs) -> None:
    locked_cost = costs.sync([costs.invoice(origin_id="DC-1")])[0][0]["id"]
    open_cost = costs.sync([costs.invoice(invoice_number="INV-2")])[0][0]["id"]
    other_project = procore.project(name="Elsewhere")["id"]
    elsewhere = procore.sync(f"/rest/v1.0/projects/{other_project}/direct_costs/sync", [costs.invoice()])[0][
        0
    ]["id"]
    line = {
        "direct_cost_id": locked_cost,
        "wbs_code_id": costs.wbs_code_id,
        "amount": 50.5,
        "origin_id": "DC-1|1",
    }
    entities, errors = costs.line_sync(
        [
            line,
            {
                "direct_cost_id": open_cost,
                "cost_code_id": 42,
                "wbs_code_id": costs.wbs_code_id,
                "quantity": 3,
                "unit_cost": 2,
            },
            {
                "direct_cost_id": open_cost,
                "cost_code_id": costs.cost_code_id,
                "line_item_type_id": costs.cost_type_id,
                "amount": 1,
            },
            {"wbs_code_id": costs.wbs_code_id, "amount": 1},
            {"direct_cost_id": elsewhere, "wbs_code_id": costs.wbs_code_id, "amount": 1},
            {"direct_cost_id": open_cost, "cost_code_id": 42, "line_item_type_id": costs.cost_type_id},
        ]
    )
    assert [(entity["holder"], entity["amount"], entity["wbs_code"]["id"]) for entity in entities] == [
        ({"id": locked_cost, "holder_type": "DirectCost"}, "50.5", costs.wbs_code_id),
        (
            {"id": open_cost, "holder_type": "DirectCost"},
            "6.0",
            costs.wbs_code_id,
        ),  # wbs wins over cost_code_id
        (
            {"id": open_cost, "holder_type": "DirectCost"},
            "1.0",
            costs.wbs_code_id,
        ),  # same combination, same WBS code
    ]
    assert [error["errors"] for error in errors] == [
        {"direct_cost_id": ["can't be blank"]},
        {"direct_cost_id": ["does not exist"]},
        {"cost_code_id": ["does not exist"]},
    ]
    entities, errors = costs.line_sync(
        [line, {"origin_id": "DC-1|1", "amount": 60}, {"id": entities[1]["id"], "amount": 7}]
    )
    assert [entity["amount"] for entity in entities] == ["50.5", "7.0"] and errors[0]["errors"] == LOCKED
    listed = procore.call("GET", f"{costs.base}/line_items", {"filters[direct_cost_id]": open_cost})
    assert [found["amount"] for found in listed] == ["7.0", "1.0"]
    shown = procore.call(
        "GET", f"/rest/v1.1/projects/{costs.project_id}/direct_costs", {"filters[id]": [open_cost]}
    )
    assert shown[0]["grand_total"] == "8.0" and shown[0]["line_items_count"] == 2
    procore.assert_conforming()


# --- concurrency -----------------------------------------------------------------------------


def test_overlapping_line_syncs_in_one_project_get_409() -> None:
    """Two real requests overlap: the first holds its project's sync mark until released."""
    entered, release = threading.Event(), threading.Event()

    async def held_until_released(seconds: float) -> None:
        entered.set()
        while not release.is_set():
            await asyncio.sleep(0.005)

    config = SandboxConfig(sync_hold_ms=1)
    with start_in_thread(config, clock=ManualClock(), sleep=held_until_released) as server:
        url = server.url
        token = requests.post(
            f"{url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
            },
            timeout=5,
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}", "Procore-Company-Id": "1"}

        def send(
            method: str, path: str, body: dict[str, Any], params: dict[str, Any] | None = None
        ) -> requests.Response:
            return requests.request(
                method, f"{url}{path}", json=body, params=params, headers=headers, timeout=10
            )

        vendor = send("POST", "/rest/v1.0/vendors", {"company_id": 1, "vendor": {"name": "Supplier"}}).json()[
            "id"
        ]
        project = send("POST", "/rest/v1.0/projects", {"company_id": 1, "project": {"name": "Tower"}}).json()[
            "id"
        ]
        cost_code = server.store.cost_codes(project)[0]["id"]  # the seeded 01-001
        bulk = {"bulk": [{"segment_items": [{"segment_id": 2, "segment_item_id": cost_code}]}]}
        wbs_code = send(
            "PATCH", f"/rest/v1.0/projects/{project}/work_breakdown_structure/wbs_codes/bulk_create", bulk
        ).json()["entities"][0]["id"]
        expense = {"direct_cost_type": "expense", "vendor_id": vendor}
        direct_cost = send(
            "PATCH", f"/rest/v1.0/projects/{project}/direct_costs/sync", {"updates": [expense]}
        ).json()["entities"][0]["id"]
        lines_path = f"/rest/v1.0/projects/{project}/direct_costs/line_items/sync"
        line = {"direct_cost_id": direct_cost, "wbs_code_id": wbs_code, "amount": 10, "origin_id": "L-1"}

        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(send, "PATCH", lines_path, {"updates": [line]})
            assert entered.wait(5), "the first sync never reached its held section"
            second = send("PATCH", lines_path, {"updates": [{**line, "origin_id": "L-2"}]})
            release.set()
            assert first.result(timeout=10).status_code == 200
        assert second.status_code == 409
        assert second.json() == {"errors": "Another direct cost line item sync is running for this project"}
        assert [line["origin_id"] for line in server.store.line_items("direct_cost_line_items", project)] == [
            "L-1"
        ]
        after = send("PATCH", lines_path, {"updates": [{**line, "origin_id": "L-2"}]})
        assert after.status_code == 200 and after.json()["errors"] == []  # the mark is gone
        assert server.app.state.contract_violations == []
