"""WBS codes and the original budget in the sandbox.

WBS codes are upserted by segment combination (segment 1 sub job, 2 cost code, 3 cost type, the
sandbox's convention in ``sandbox.wbs``); budget lines are synced as one unit that answers a
plain array, one line per WBS code, and 422 for the whole call when anything is wrong.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import wbs
from tests.test_sandbox_setup import Procore

BUDGET_SYNC = "/rest/v1.0/budget_line_items/sync"


@pytest.fixture
def procore() -> Procore:
    return Procore()


def bulk_path(project_id: int) -> str:
    return f"/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes/bulk_create"


def segments(**items: int) -> list[dict[str, int]]:
    ids = {"sub_job": wbs.SUB_JOB, "cost_code": wbs.COST_CODE, "cost_type": wbs.COST_TYPE}
    return [{"segment_id": ids[name], "segment_item_id": item_id} for name, item_id in items.items()]


def budget_sync(procore: Procore, project_id: int, lines: list[dict[str, Any]], status: int = 200) -> Any:
    return procore.call(
        "POST", BUDGET_SYNC, body={"project_id": project_id, "budget_line_items": lines}, status=status
    )


# --- WBS codes -------------------------------------------------------------------------------


def test_bulk_create_upserts_by_segment_combination(procore: Procore) -> None:
    project_id = procore.project()["id"]
    cost_code_id, labor = procore.cost_code(project_id, "02-300", "Concrete"), procore.cost_type("Labor", "L")
    sub_job_id = procore.sub_job(project_id, "01", "Phase 1")
    bulk = [
        {"description": "Concrete labor", "segment_items": segments(cost_code=cost_code_id, cost_type=labor)},
        {"segment_items": segments(cost_type=labor, cost_code=cost_code_id, sub_job=sub_job_id)},
    ]
    first = procore.call("PATCH", bulk_path(project_id), body={"bulk": bulk}, status=201)
    assert first["errors"] == []
    assert [(code["flat_code"], code["flat_name"]) for code in first["entities"]] == [
        ("02-300.L", "Concrete.Labor"),
        ("01.02-300.L", "Phase 1.Concrete.Labor"),
    ]
    code = first["entities"][0]
    assert code["status"] == "active" and code["description"] == "Concrete labor"
    assert code["segment_items"][0]["segment_id"] == wbs.COST_CODE
    assert code["segment_items"][0]["segment_item_id"] == cost_code_id

    again = procore.call("PATCH", bulk_path(project_id), body={"bulk": list(reversed(bulk))}, status=201)
    assert [entity["id"] for entity in again["entities"]] == [
        entity["id"] for entity in reversed(first["entities"])
    ]
    assert len(procore.store.wbs_codes(project_id)) == 2
    listed = procore.call(
        "GET", f"/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes", {"query": "phase"}
    )
    assert [entity["flat_code"] for entity in listed] == ["01.02-300.L"]
    procore.assert_conforming()


def test_bulk_create_checks_each_entry_on_its_own(procore: Procore) -> None:
    project_id = procore.project()["id"]
    cost_code_id = procore.cost_code(project_id)
    bulk = [
        {"segment_items": segments(cost_code=cost_code_id)},
        {"segment_items": segments(cost_code=42)},
        {"segment_items": segments(cost_code=cost_code_id, cost_type=42, sub_job=43)},
        {"segment_items": segments(cost_type=procore.cost_type())},
        {"segment_items": [{"segment_id": 9, "segment_item_id": cost_code_id}]},
    ]
    answer = procore.call("PATCH", bulk_path(project_id), body={"bulk": bulk}, status=201)
    assert [entity["flat_code"] for entity in answer["entities"]] == ["02-300"]
    errors = [error["errors"] for error in answer["errors"]]
    assert errors[:3] == [
        {"cost_code_id": ["does not exist"]},
        {"line_item_type_id": ["does not exist"], "sub_job_id": ["does not exist"]},
        {"segment_items": ["must include a cost code (segment_id 2)"]},
    ]
    assert errors[3] == {"segment_items": [f"segment_id 9 {wbs.NOT_A_SEGMENT}"]}
    assert answer["errors"][0]["segment_items"] == bulk[1]["segment_items"]  # the entry as sent
    assert procore.call("PATCH", bulk_path(42), body={"bulk": []}, status=404) == {
        "errors": "Couldn't find Project with 'id'=42"
    }


# --- budget lines ----------------------------------------------------------------------------


def budget_codes(procore: Procore) -> tuple[int, int, int]:
    """A project and two WBS codes in it: 02-300.L and 03-100.L."""
    project_id = procore.project()["id"]
    labor = procore.cost_type()
    concrete = procore.wbs_code(
        project_id, procore.cost_code(project_id, "02-300", "Concrete", origin_id="J|02-300"), labor
    )
    steel = procore.wbs_code(project_id, procore.cost_code(project_id, "03-100", "Steel"), labor)
    return project_id, concrete, steel


def test_budget_sync_answers_a_plain_array_and_keeps_one_line_per_wbs_code(procore: Procore) -> None:
    project_id, concrete, steel = budget_codes(procore)
    lines = budget_sync(
        procore,
        project_id,
        [
            {"wbs_code_id": concrete, "original_budget_amount": 1500.5},
            {"wbs_code_id": steel, "quantity": "4", "unit_cost": "25.25", "uom": "EA"},
        ],
    )
    assert isinstance(lines, list)
    assert lines[0] == {
        "id": lines[0]["id"],
        "original_budget_amount": 1500.5,
        "quantity": None,
        "unit_cost": None,
        "uom": None,
        "calculation_strategy": None,
        "wbs_code": {"id": concrete, "flat_code": "02-300.L", "description": None},
        "currency_configuration": {"currency_iso_code": "USD"},
    }
    assert lines[1]["original_budget_amount"] == 101.0  # quantity × unit cost

    procore.clock.advance(60)
    again = budget_sync(procore, project_id, [{"wbs_code_id": concrete, "original_budget_amount": "2000"}])
    assert again[0]["id"] == lines[0]["id"] and again[0]["original_budget_amount"] == 2000.0
    by_id = budget_sync(
        procore, project_id, [{"id": lines[1]["id"], "wbs_code_id": steel, "original_budget_amount": "99.99"}]
    )
    assert by_id[0]["id"] == lines[1]["id"]
    assert len(procore.store.budget_line_items(project_id)) == 2
    procore.assert_conforming()


def test_budget_sync_is_422_as_a_whole_and_writes_nothing(procore: Procore) -> None:
    project_id, concrete, steel = budget_codes(procore)
    existing = budget_sync(procore, project_id, [{"wbs_code_id": steel, "original_budget_amount": 10}])[0]
    answer = budget_sync(
        procore,
        project_id,
        [
            {"wbs_code_id": concrete, "original_budget_amount": 5},
            {"wbs_code_id": 42, "original_budget_amount": 1},
            {"wbs_code_id": concrete, "original_budget_amount": "lots"},
        ],
        status=422,
    )
    assert answer == {
        "errors": {"wbs_code_id": ["does not exist (42)"], "original_budget_amount": ["is not a number"]}
    }
    moved = budget_sync(
        procore,
        project_id,
        [{"wbs_code_id": concrete}, {"id": existing["id"], "wbs_code_id": concrete}],
        status=422,
    )
    assert moved == {"errors": {"wbs_code_id": ["has already been taken"]}}
    assert [line["id"] for line in procore.store.budget_line_items(project_id)] == [existing["id"]]
    assert budget_sync(procore, project_id, [{"id": 42, "original_budget_amount": 1}], status=422)["errors"][
        "id"
    ]


def test_budget_view_detail_rows_show_each_line(procore: Procore) -> None:
    project_id, concrete, steel = budget_codes(procore)
    lines = budget_sync(
        procore,
        project_id,
        [
            {"wbs_code_id": concrete, "original_budget_amount": 1500.5},
            {"wbs_code_id": steel, "original_budget_amount": 20},
        ],
    )
    views = procore.call("GET", "/rest/v1.0/budget_views", {"project_id": project_id})
    assert [view["name"] for view in views] == ["Procore Standard Budget"]
    rows_path = f"/rest/v1.0/budget_views/{views[0]['id']}/detail_rows"
    response = procore.client.get(
        rows_path, params={"project_id": project_id, "per_page": 1}, headers=procore.headers()
    )
    assert response.headers["Total"] == "2" and "next" in response.links
    row = response.json()[0]
    concrete_code = procore.store.cost_codes(project_id)[1]
    assert {
        key: row[key]
        for key in (
            "id",
            "wbs_code_id",
            "cost_code_id",
            "cost_code_origin_id",
            "biller_type",
            "original_budget_amount",
        )
    } == {
        "id": lines[0]["id"],
        "wbs_code_id": concrete,
        "cost_code_id": concrete_code["id"],
        "cost_code_origin_id": "J|02-300",
        "biller_type": "Project",
        "original_budget_amount": "1500.5",
    }
    assert row["category_id"] == procore.store.line_item_types(1)[0]["id"]
    only = procore.call("GET", rows_path, {"project_id": project_id, "cost_code_id[]": [concrete_code["id"]]})
    assert [found["id"] for found in only] == [lines[0]["id"]]
    other_project = procore.project(name="Other")["id"]
    assert procore.call("GET", rows_path, {"project_id": other_project}, status=404)["errors"].startswith(
        "Couldn't find BudgetView"
    )
    procore.assert_conforming()
