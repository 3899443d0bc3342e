"""Prime contracts, subcontracts (work order contracts) and purchase orders, with their lines."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_sandbox_setup import Procore

WOC = "/rest/v1.0/work_order_contracts"
POC = "/rest/v1.0/purchase_order_contracts"


@pytest.fixture
def procore() -> Procore:
    return Procore()


class Job:
    """A project with a vendor, a cost type, a cost code and the WBS code of the two."""

    def __init__(self, procore: Procore) -> None:
        self.procore = procore
        self.project_id = procore.project()["id"]
        self.vendor_id = procore.vendor("Owner Inc")
        self.cost_type_id = procore.cost_type("Subcontract", "S")
        self.cost_code_id = procore.cost_code(self.project_id, "02-300", "Concrete")
        self.wbs_code_id = procore.wbs_code(self.project_id, self.cost_code_id, self.cost_type_id)

    @property
    def params(self) -> dict[str, int]:
        return {"project_id": self.project_id}

    def header_sync(self, base: str, updates: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
        entities, errors = self.procore.sync(f"{base}/sync", updates, project_id=self.project_id)
        return entities, errors

    def line_sync(
        self, base: str, contract_id: int, updates: list[dict[str, Any]]
    ) -> tuple[list[Any], list[Any]]:
        entities, errors = self.procore.sync(f"{base}/{contract_id}/line_items/sync", updates, self.params)
        return entities, errors


@pytest.fixture
def job(procore: Procore) -> Job:
    return Job(procore)


# --- prime contracts -------------------------------------------------------------------------


def prime_body(job: Job, **attrs: Any) -> dict[str, Any]:
    contract = {
        "title": "Main contract",
        "number": "PC-1",
        "vendor_id": job.vendor_id,
        "status": "Draft",
        "retainage_percent": "10",
        "origin_id": "PC-1",
        **attrs,
    }
    return {"project_id": job.project_id, "prime_contract": contract}


def test_prime_contract_create_show_update_list(procore: Procore, job: Job) -> None:
    created = procore.call(
        "POST", "/rest/v1.0/prime_contract", body=prime_body(job, contract_date="2026-01-05"), status=201
    )
    assert (
        created["vendor"]["id"] == job.vendor_id
        and created["retainage_percent"] == "10.0"
        and created["grand_total"] == "0.0"
    )
    path = f"/rest/v1.0/prime_contract/{created['id']}"
    assert procore.call("GET", path, job.params) == created
    procore.clock.advance(60)
    updated = procore.call(
        "PATCH",
        path,
        body={"project_id": job.project_id, "prime_contract": {"status": "Approved", "executed": True}},
    )
    assert (
        updated["status"] == "Approved"
        and updated["executed"] is True
        and updated["updated_at"] != created["updated_at"]
    )
    listed = procore.call(
        "GET", "/rest/v1.0/prime_contracts", {**job.params, "filters[updated_at]": "2026-01-01T00:00:30Z..."}
    )
    assert [contract["id"] for contract in listed] == [created["id"]]
    procore.assert_conforming()


def test_prime_contract_errors_are_422_and_unknown_ones_404(procore: Procore, job: Job) -> None:
    procore.call("POST", "/rest/v1.0/prime_contract", body=prime_body(job), status=201)
    refused = procore.call(
        "POST",
        "/rest/v1.0/prime_contract",
        body=prime_body(job, origin_id="PC-2", vendor_id=42, status="Signed"),
        status=422,
    )
    assert refused == {
        "errors": {
            "number": ["has already been taken"],
            "vendor_id": ["does not exist"],
            "status": ["is not included in the list"],
        }
    }
    taken = procore.call("POST", "/rest/v1.0/prime_contract", body=prime_body(job, number="PC-2"), status=422)
    assert taken == {"errors": {"origin_id": ["has already been taken"]}}
    assert procore.call("GET", "/rest/v1.0/prime_contract/42", job.params, status=404) == {
        "errors": "Couldn't find PrimeContract with 'id'=42"
    }
    assert len(procore.store.prime_contracts(job.project_id)) == 1


def test_prime_contract_lines_by_wbs_code_or_by_cost_code_and_type(procore: Procore, job: Job) -> None:
    contract_id = procore.call("POST", "/rest/v1.0/prime_contract", body=prime_body(job), status=201)["id"]
    base = "/rest/v1.0/prime_contracts"
    other_code = procore.cost_code(job.project_id, "03-100", "Steel")
    entities, errors = job.line_sync(
        base,
        contract_id,
        [
            {
                "amount": "1000",
                "wbs_code_id": job.wbs_code_id,
                "origin_id": "PL-1",
                "description": "Concrete",
            },
            {
                "quantity": "2",
                "unit_cost": "3.5",
                "uom": "EA",
                "cost_code_id": other_code,
                "line_item_type_id": job.cost_type_id,
                "origin_id": "PL-2",
            },
            {"amount": "5", "wbs_code_id": 42},
            {"amount": "5", "cost_code_id": 42, "line_item_type_id": job.cost_type_id},
            {"amount": "5", "cost_code_id": other_code},
            {"amount": "5"},
            {"amount": "five", "wbs_code_id": job.wbs_code_id},
        ],
    )
    assert [
        (line["amount"], line["wbs_code"]["flat_code"], line["cost_code"]["id"]) for line in entities
    ] == [
        ("1000.0", "02-300.S", job.cost_code_id),
        ("7.0", "03-100.S", other_code),
    ]
    assert [error["errors"] for error in errors] == [
        {"wbs_code_id": ["does not exist"]},
        {"cost_code_id": ["does not exist"]},
        {"line_item_type_id": ["can't be blank"]},
        {"wbs_code_id": ["can't be blank"]},
        {"amount": ["is not a number"]},
    ]
    assert len(procore.store.wbs_codes(job.project_id)) == 2  # 03-100.S was created for the line
    entities, _ = job.line_sync(base, contract_id, [{"origin_id": "PL-1", "amount": "1200"}])
    lines = procore.call("GET", f"{base}/{contract_id}/line_items", job.params)
    assert [(line["id"], line["amount"]) for line in lines] == [
        (entities[0]["id"], "1200.0"),
        (lines[1]["id"], "7.0"),
    ]
    shown = procore.call("GET", f"/rest/v1.0/prime_contract/{contract_id}", job.params)
    assert shown["grand_total"] == "1207.0"
    assert procore.call("GET", f"{base}/42/line_items", job.params, status=404)["errors"].startswith(
        "Couldn't find PrimeContract"
    )


# --- subcontracts and purchase orders --------------------------------------------------------


@pytest.mark.parametrize(("base", "status"), [(WOC, "Out For Signature"), (POC, "Partially Received")])
def test_commitment_sync_create_list_update_by_origin_id(
    procore: Procore, job: Job, base: str, status: str
) -> None:
    header = {
        "title": "Concrete works",
        "number": "SC-1",
        "vendor_id": job.vendor_id,
        "status": "Draft",
        "origin_id": "SC-1",
        "retainage_percent": "5",
        "contract_date": "2026-01-02",
        "executed": False,
    }
    entities, errors = job.header_sync(base, [header])
    assert errors == [] and entities[0]["vendor"]["id"] == job.vendor_id and entities[0]["status"] == "Draft"
    entities, errors = job.header_sync(base, [{"origin_id": "SC-1", "status": status}])
    assert errors == [] and entities[0]["status"] == status
    listed = procore.call("GET", base, {**job.params, "filters[origin_id]": "SC-1"})
    assert [contract["id"] for contract in listed] == [entities[0]["id"]]
    line = {"amount": "2500", "wbs_code_id": job.wbs_code_id, "origin_id": "SC-1|1"}
    lines, errors = job.line_sync(base, entities[0]["id"], [line])
    assert errors == [] and lines[0]["holder"]["id"] == entities[0]["id"]
    again, _ = job.line_sync(base, entities[0]["id"], [line])
    assert again[0]["id"] == lines[0]["id"]
    assert len(procore.call("GET", f"{base}/{entities[0]['id']}/line_items", job.params)) == 1
    procore.assert_conforming()


@pytest.mark.parametrize(("base", "bad_status"), [(WOC, "Closed"), (POC, "Complete")])
def test_commitment_header_errors(procore: Procore, job: Job, base: str, bad_status: str) -> None:
    job.header_sync(base, [{"title": "A", "number": "C-1", "vendor_id": job.vendor_id}])
    entities, errors = job.header_sync(
        base,
        [
            {"title": "B", "number": "C-1"},
            {"title": "C", "vendor_id": 42},
            {"title": "D", "status": bad_status},
            {"title": "E", "contract_date": "tomorrow"},
        ],
    )
    assert entities == []
    assert [error["errors"] for error in errors] == [
        {"number": ["has already been taken"]},
        {"vendor_id": ["does not exist"]},
        {"status": ["is not included in the list"]},
        {"contract_date": ["is not a valid date"]},
    ]


def test_an_approved_subcontract_locks_its_vendor_and_its_lines(procore: Procore, job: Job) -> None:
    other_vendor = procore.vendor("Other Sub")
    entities, _ = job.header_sync(
        WOC, [{"title": "Sub", "number": "SC-1", "vendor_id": job.vendor_id, "origin_id": "SC-1"}]
    )
    contract_id = entities[0]["id"]
    line = {"amount": "100", "wbs_code_id": job.wbs_code_id, "origin_id": "SC-1|1"}
    job.line_sync(WOC, contract_id, [line])
    job.header_sync(WOC, [{"origin_id": "SC-1", "status": "Approved"}])

    entities, errors = job.header_sync(
        WOC,
        [
            {"origin_id": "SC-1", "vendor_id": other_vendor},
            {"origin_id": "SC-1", "vendor_id": job.vendor_id, "title": "Renamed"},
        ],
    )
    assert errors[0]["errors"] == {"vendor_id": ["cannot be changed once approved"]}
    assert entities[0]["title"] == "Renamed"  # other header fields still change
    lines, errors = job.line_sync(
        WOC, contract_id, [{**line, "amount": "150"}, {"amount": "1", "wbs_code_id": job.wbs_code_id}, line]
    )
    assert [error["errors"] for error in errors] == [
        {"base": ["cannot be changed once the contract is approved or complete"]}
    ] * 2
    assert [found["amount"] for found in lines] == ["100.0"]  # an unchanged resend is a no-op, accepted
    assert procore.call("GET", f"{WOC}/42/line_items", job.params, status=404)["errors"].startswith(
        "Couldn't find WorkOrderContract"
    )
