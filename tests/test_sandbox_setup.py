"""The sandbox's company and project set-up resources: projects, standard cost codes, cost types,
project cost codes, sub jobs and users.

Every call goes through ``Procore.call``, which also checks each successful answer against the
documented response schema, so these tests double as the response half of the contract. The
other ``test_sandbox_*`` files import ``Procore`` and the small builders below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.contract import validate_response
from sandbox.store import FIRST_ID
from tests.test_sandbox import COMPANY, Api

USERS = f"/rest/v1.3/companies/{COMPANY}/users"


class Procore(Api):
    """An ``Api`` without quota worries, plus one checked ``call`` for any operation."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{"spike_limit": 1_000_000, "hourly_limit": 1_000_000, **settings})

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        status: int = 200,
    ) -> Any:
        response = self.client.request(method, path, params=params, json=body, headers=self.headers())
        assert response.status_code == status, (method, path, response.text)
        if response.is_success:
            assert validate_response(method, path, status, response.json()) == [], (method, path)
        return response.json()

    def sync(self, path: str, updates: list[Any], params: dict[str, Any] | None = None, **body: Any) -> Any:
        """A sync call; returns ``(entities, errors)``."""
        answer = self.call("PATCH", path, params, {**body, "updates": updates})
        return answer["entities"], answer["errors"]

    def project(self, **attrs: Any) -> dict[str, Any]:
        body = {"company_id": COMPANY, "project": {"name": "Tower", **attrs}}
        project: dict[str, Any] = self.call("POST", "/rest/v1.0/projects", body=body, status=201)
        return project

    def vendor(self, name: str = "Acme", **attrs: Any) -> int:
        response = self.create(name=name, **attrs)
        assert response.status_code == 201, response.text
        vendor_id: int = response.json()["id"]
        return vendor_id

    def cost_type(self, name: str = "Labor", code: str = "L", **attrs: Any) -> int:
        item = {"name": name, "csv_import_code": code, "base_type": "other", **attrs}
        entities, errors = self.sync("/rest/v1.0/line_item_types/sync", [item], company_id=COMPANY)
        assert errors == []
        type_id: int = entities[0]["id"]
        return type_id

    def cost_code(self, project_id: int, code: str = "02-300", name: str = "Concrete", **attrs: Any) -> int:
        item = {"code": code, "name": name, **attrs}
        entities, errors = self.sync("/rest/v1.0/cost_codes/sync", [item], {"project_id": project_id})
        assert errors == []
        code_id: int = entities[0]["id"]
        return code_id

    def sub_job(self, project_id: int, code: str = "01", name: str = "Phase 1", **attrs: Any) -> int:
        item = {"code": code, "name": name, **attrs}
        params = {"project_id": project_id}
        entities, errors = self.sync("/rest/v1.0/sub_jobs/sync", [item], params, project_id=project_id)
        assert errors == []
        sub_job_id: int = entities[0]["id"]
        return sub_job_id

    def wbs_code(
        self,
        project_id: int,
        cost_code_id: int,
        cost_type_id: int | None = None,
        sub_job_id: int | None = None,
    ) -> int:
        items = [{"segment_id": 2, "segment_item_id": cost_code_id}]
        if cost_type_id is not None:
            items.append({"segment_id": 3, "segment_item_id": cost_type_id})
        if sub_job_id is not None:
            items.append({"segment_id": 1, "segment_item_id": sub_job_id})
        path = f"/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes/bulk_create"
        answer = self.call("PATCH", path, body={"bulk": [{"segment_items": items}]}, status=201)
        assert answer["errors"] == []
        wbs_code_id: int = answer["entities"][0]["id"]
        return wbs_code_id

    def assert_conforming(self, *sent_on_purpose: str) -> None:
        """No contract violations, except ones naming a bad value a test sent on purpose."""
        messages = [violation.message for violation in self.app.state.contract_violations]
        assert [
            message for message in messages if not any(value in message for value in sent_on_purpose)
        ] == []


@pytest.fixture
def procore() -> Procore:
    return Procore()


# --- projects --------------------------------------------------------------------------------


def test_project_create_list_update_by_origin_id_and_no_duplicate(procore: Procore) -> None:
    created = procore.project(
        name="Tower",
        project_number="P-1",
        origin_id="JOB-1",
        country_code="US",
        state_code="CA",
        total_value=1200.5,
    )
    assert created["id"] > 2**32 and created["active"] is True
    assert created["display_name"] == "P-1 - Tower" and created["total_value"] == "1200.5"
    procore.clock.advance(60)
    entities, errors = procore.sync(
        "/rest/v1.0/projects/sync", [{"origin_id": "JOB-1", "name": "Tower B"}], company_id=COMPANY
    )
    assert errors == [] and entities[0]["id"] == created["id"] and entities[0]["name"] == "Tower B"
    listed = procore.call(
        "GET", "/rest/v1.1/projects", {"company_id": COMPANY, "filters[origin_id]": "JOB-1"}
    )
    assert [project["id"] for project in listed] == [created["id"]]
    shown = procore.call("GET", f"/rest/v1.0/projects/{created['id']}", {"company_id": COMPANY})
    assert shown["updated_at"] == "2026-01-01T00:01:00Z" and shown["standard_cost_code_list_id"] == FIRST_ID
    assert len(procore.store.projects(COMPANY)) == 1
    procore.assert_conforming()


def test_project_validation_on_create_and_in_sync(procore: Procore) -> None:
    procore.project(project_number="P-1")
    duplicate = procore.client.post(
        "/rest/v1.0/projects",
        json={"company_id": COMPANY, "project": {"name": "Other", "project_number": "P-1"}},
        headers=procore.headers(),
    )
    assert duplicate.status_code == 422
    assert duplicate.json() == {"errors": {"project_number": ["has already been taken"]}}
    bad = [
        {"name": "", "origin_id": "A"},
        {"name": "B", "project_number": "P-1"},
        {"name": "C", "country_code": "US", "state_code": "ZZ"},
        {"name": "D", "start_date": "01/02/2026"},
    ]
    entities, errors = procore.sync("/rest/v1.0/projects/sync", bad, company_id=COMPANY)
    assert entities == []
    assert [error["errors"] for error in errors] == [
        {"name": ["can't be blank"]},
        {"project_number": ["has already been taken"]},
        {"state_code": ["is not a valid ISO-3166-2 subdivision code for US"]},
        {"start_date": ["is not a valid date"]},
    ]


def test_projects_list_filters_and_its_300_page_cap(procore: Procore) -> None:
    first = procore.project(name="A")
    procore.clock.advance(86_400)
    procore.token = procore.fetch_token()
    procore.project(name="B", active=False)
    base = {"company_id": COMPANY}
    assert len(procore.call("GET", "/rest/v1.1/projects", base)) == 2  # no by_status: all of them
    active = procore.call("GET", "/rest/v1.1/projects", {**base, "filters[by_status]": "Active"})
    assert [project["name"] for project in active] == ["A"]
    older = procore.call("GET", "/rest/v1.1/projects", {**base, "filters[updated_at]": "...2026-01-01"})
    assert [project["id"] for project in older] == [first["id"]]
    response = procore.client.get(
        "/rest/v1.1/projects", params={**base, "per_page": 1000}, headers=procore.headers()
    )
    assert response.headers["Per-Page"] == "300"


def test_unknown_project_is_404_for_the_whole_request(procore: Procore) -> None:
    assert procore.call("GET", "/rest/v1.0/projects/42", {"company_id": COMPANY}, status=404) == {
        "errors": "Couldn't find Project with 'id'=42"
    }
    answer = procore.call(
        "PATCH",
        "/rest/v1.0/cost_codes/sync",
        {"project_id": 42},
        {"updates": [{"code": "1", "name": "x"}]},
        status=404,
    )
    assert answer == {"errors": "Couldn't find Project with 'id'=42"}
    assert procore.call("GET", "/rest/v1.0/sub_jobs", {}, status=400) == {
        "errors": "param is missing or the value is empty: project_id"
    }


# --- standard cost codes and cost types ------------------------------------------------------


def test_the_company_has_one_standard_cost_code_list_with_a_stable_id(procore: Procore) -> None:
    lists = procore.call("GET", "/rest/v1.0/standard_cost_code_lists", {"company_id": COMPANY})
    assert lists == [
        {
            "id": FIRST_ID,
            "name": "Standard Cost Codes",
            "available_to_use_on_new_projects": True,
            "is_erp_list": False,
        }
    ]
    procore.project()
    assert procore.call("GET", "/rest/v1.0/standard_cost_code_lists", {"company_id": COMPANY}) == lists


def test_standard_cost_codes_sync_by_origin_id_and_codes_unique_in_the_list(procore: Procore) -> None:
    path, params = (
        "/rest/v1.0/standard_cost_codes/sync",
        {"company_id": COMPANY, "standard_cost_code_list_id": FIRST_ID},
    )
    entities, errors = procore.sync(
        path, [{"code": "02-300", "name": "Concrete", "origin_id": "S-1"}], **params
    )
    assert errors == [] and entities[0]["full_code"] == "02-300"
    entities, errors = procore.sync(
        path,
        [
            {"origin_id": "S-1", "name": "Cast concrete"},
            {"code": "02-300", "name": "Again"},
            {"name": "No code"},
        ],
        **params,
    )
    assert [entity["name"] for entity in entities] == ["Cast concrete"]
    assert [error["errors"] for error in errors] == [
        {"code": ["has already been taken"]},
        {"code": ["can't be blank"]},
    ]
    listed = procore.call("GET", "/rest/v1.0/standard_cost_codes", {**params, "filters[origin_id]": "S-1"})
    assert [code["name"] for code in listed] == ["Cast concrete"]
    unknown = {"company_id": COMPANY, "standard_cost_code_list_id": 42}
    assert procore.call("GET", "/rest/v1.0/standard_cost_codes", unknown, status=404)["errors"].startswith(
        "Couldn't find"
    )
    procore.assert_conforming()


def test_cost_types_sync_by_origin_id_and_their_base_types(procore: Procore) -> None:
    path = "/rest/v1.0/line_item_types/sync"
    entities, _ = procore.sync(
        path,
        [
            {
                "name": "Labor",
                "csv_import_code": "L",
                "base_type": "professional_services",
                "origin_id": "CT-L",
            }
        ],
        company_id=COMPANY,
    )
    assert entities[0]["code"] == "L" and entities[0]["base_type"] == "professional_services"
    entities, errors = procore.sync(
        path,
        [{"origin_id": "CT-L", "name": "Labour"}, {"name": "Bad", "base_type": "plumbing"}],
        company_id=COMPANY,
    )
    assert entities[0]["id"] == procore.store.line_item_types(COMPANY)[0]["id"]
    assert errors[0]["errors"] == {"base_type": ["is not included in the list"]}
    assert [
        kind["name"] for kind in procore.call("GET", "/rest/v1.0/line_item_types", {"company_id": COMPANY})
    ] == ["Labour"]
    project = procore.project()
    by_project = procore.call(
        "GET", "/rest/v1.0/line_item_types", {"project_id": project["id"], "filters[origin_id]": "CT-L"}
    )
    assert [kind["name"] for kind in by_project] == ["Labour"]
    procore.assert_conforming("'plumbing'")  # and company_id or project_id, either will do


def test_sync_takes_at_most_1000_items_everywhere(procore: Procore) -> None:
    body = {"company_id": COMPANY, "updates": [{"name": f"T{n}"} for n in range(1001)]}
    assert procore.call("PATCH", "/rest/v1.0/line_item_types/sync", body=body, status=413) == {
        "errors": {"updates": ["is too long (maximum is 1000 items)"]}
    }
    assert procore.store.line_item_types(COMPANY) == []


# --- project cost codes and sub jobs ---------------------------------------------------------


def test_a_new_project_has_the_seeded_01_001_cost_code_to_link_to(procore: Procore) -> None:
    project_id = procore.project()["id"]
    codes = procore.call("GET", "/rest/v1.0/cost_codes", {"project_id": project_id})
    assert [
        (code["code"], code["name"], code["origin_id"], code["standard_cost_code_id"]) for code in codes
    ] == [("01-001", "General Requirements", None, None)]
    seeded = codes[0]["id"]
    path, params = "/rest/v1.0/cost_codes/sync", {"project_id": project_id}
    entities, errors = procore.sync(
        path, [{"code": "01-001", "name": "General Requirements", "origin_id": "JOB-1|01-001"}], params
    )
    assert entities == [] and errors[0]["errors"] == {"code": ["has already been taken"]}
    entities, errors = procore.sync(path, [{"id": seeded, "origin_id": "JOB-1|01-001"}], params)  # link by id
    assert errors == [] and entities[0]["id"] == seeded
    entities, _ = procore.sync(path, [{"origin_id": "JOB-1|01-001", "name": "General Conditions"}], params)
    assert entities[0]["id"] == seeded and len(procore.store.cost_codes(project_id)) == 1
    procore.assert_conforming()


def test_cost_code_sync_create_list_update_and_its_errors(procore: Procore) -> None:
    project_id = procore.project()["id"]
    path, params = "/rest/v1.0/cost_codes/sync", {"project_id": project_id}
    standard = procore.sync(
        "/rest/v1.0/standard_cost_codes/sync",
        [{"code": "02-300", "name": "Concrete"}],
        company_id=COMPANY,
        standard_cost_code_list_id=FIRST_ID,
    )[0][0]
    items = [
        {
            "code": "02-300",
            "name": "Concrete",
            "origin_id": "J|02-300",
            "standard_cost_code_id": standard["id"],
        },
        {"code": "03-100", "name": "Steel", "standard_cost_code_id": 42},
        {"code": "03-200", "name": "Rebar", "parent_id": 42},
        {"id": 42, "name": "Ghost"},
    ]
    entities, errors = procore.sync(path, items, params)
    assert [entity["code"] for entity in entities] == ["02-300"]
    assert entities[0]["standard_cost_code_list_id"] == FIRST_ID and entities[0]["biller_type"] == "Project"
    assert [error["errors"] for error in errors] == [
        {"standard_cost_code_id": ["does not exist"]},
        {"parent_id": ["does not exist"]},
        {"id": ["Entity with this ID not found"]},
    ]
    entities, _ = procore.sync(path, [{"origin_id": "J|02-300", "name": "Cast-in-place concrete"}], params)
    listed = procore.call("GET", "/rest/v1.0/cost_codes", {**params, "filters[origin_id]": "J|02-300"})
    assert [(code["id"], code["name"]) for code in listed] == [(entities[0]["id"], "Cast-in-place concrete")]
    procore.assert_conforming()


def test_origin_ids_are_unique_across_the_projects_of_a_company(procore: Procore) -> None:
    first, second = procore.project(name="A")["id"], procore.project(name="B")["id"]
    procore.cost_code(first, origin_id="CC-1")
    entities, errors = procore.sync(
        "/rest/v1.0/cost_codes/sync",
        [{"code": "9", "name": "x", "origin_id": "CC-1"}],
        {"project_id": second},
    )
    assert entities == [] and errors[0]["errors"] == {"origin_id": ["has already been taken"]}
    other_project_code = procore.store.cost_codes(first)[-1]["id"]
    entities, errors = procore.sync(
        "/rest/v1.0/cost_codes/sync", [{"id": other_project_code, "name": "x"}], {"project_id": second}
    )
    assert errors[0]["errors"] == {"id": ["Entity with this ID not found"]}


def test_sub_jobs_and_cost_codes_inside_them(procore: Procore) -> None:
    project_id = procore.project()["id"]
    sub_job_id = procore.sub_job(project_id, code="01", name="Phase 1", origin_id="SJ-1")
    path, params = "/rest/v1.0/sub_jobs/sync", {"project_id": project_id}
    entities, errors = procore.sync(
        path,
        [{"origin_id": "SJ-1", "name": "Phase One"}, {"code": "01", "name": "Again"}],
        params,
        project_id=project_id,
    )
    assert entities[0]["id"] == sub_job_id and errors[0]["errors"] == {"code": ["has already been taken"]}
    assert [job["name"] for job in procore.call("GET", "/rest/v1.0/sub_jobs", params)] == ["Phase One"]
    # 01-001 is taken at project level, not inside the sub job
    inside = {"project_id": project_id, "sub_job_id": sub_job_id}
    entities, errors = procore.sync("/rest/v1.0/cost_codes/sync", [{"code": "01-001", "name": "GR"}], inside)
    assert errors == [] and entities[0]["biller_type"] == "SubJob" and entities[0]["biller_id"] == sub_job_id
    assert [code["code"] for code in procore.call("GET", "/rest/v1.0/cost_codes", inside)] == ["01-001"]
    assert len(procore.call("GET", "/rest/v1.0/cost_codes", params)) == 2
    assert procore.call("GET", "/rest/v1.0/cost_codes", {**params, "sub_job_id": 42}, status=404)[
        "errors"
    ].startswith("Couldn't find SubJob")
    procore.assert_conforming()


# --- users -----------------------------------------------------------------------------------


def test_users_sync_by_origin_id_and_their_unique_fields(procore: Procore) -> None:
    vendor_id = procore.vendor("Our Company")
    employee = {
        "first_name": "Ada",
        "last_name": "Byron",
        "email_address": "ada@example.test",
        "is_employee": True,
        "employee_id": "E-7",
        "origin_id": "EMP-7",
        "vendor_id": vendor_id,
    }
    entities, errors = procore.sync(f"{USERS}/sync", [employee])
    assert (
        errors == []
        and entities[0]["name"] == "Ada Byron"
        and entities[0]["vendor"] == {"id": vendor_id, "name": "Our Company"}
    )
    entities, errors = procore.sync(
        f"{USERS}/sync",
        [
            {"origin_id": "EMP-7", "job_title": "Estimator"},
            {"last_name": "Twin", "email_address": "ADA@example.test"},
            {"last_name": "Other", "email_address": "o@example.test", "employee_id": "E-7"},
            {"last_name": "Bad", "email_address": "not-an-email"},
            {"last_name": "Nobody", "email_address": "n@example.test", "vendor_id": 42},
            {"first_name": "No", "email_address": "x@example.test"},
        ],
    )
    assert entities[0]["job_title"] == "Estimator" and len(procore.store.users(COMPANY)) == 1
    assert [error["errors"] for error in errors] == [
        {"email_address": ["has already been taken"]},
        {"employee_id": ["has already been taken"]},
        {"email_address": ["is invalid"]},
        {"vendor_id": ["does not exist"]},
        {"last_name": ["can't be blank"]},
    ]
    listed = procore.call(
        "GET", USERS, {"filters[origin_id]": "EMP-7", "filters[updated_at]": "2026-01-01..."}
    )
    assert [user["employee_id"] for user in listed] == ["E-7"]
    assert procore.call("GET", "/rest/v1.3/companies/2/users", status=403) == {
        "errors": "App is not connected to this company"
    }
    procore.assert_conforming()


# --- persistence and reset -------------------------------------------------------------------


def test_every_kind_survives_a_restart_and_reset_reseeds(tmp_path: Path) -> None:
    data_file = tmp_path / "data.json"
    first = Procore(data_file=data_file)
    project_id = first.project(origin_id="JOB-1")["id"]
    cost_code_id = first.cost_code(project_id, origin_id="J|02-300")
    first.wbs_code(project_id, cost_code_id, first.cost_type())
    first.store.flush()  # writes within a second of each other reach the file on flush (server stop)
    saved = json.loads(data_file.read_text())
    assert {kind for kind, scopes in saved.items() if scopes and kind != "next_id"} >= {
        "projects",
        "cost_codes",
        "wbs_codes",
        "budget_views",
        "line_item_types",
        "standard_cost_code_lists",
    }

    second = Procore(data_file=data_file)
    for kind in ("cost_codes", "wbs_codes", "budget_views"):
        assert second.store.records(kind, project_id) == first.store.records(kind, project_id)
    entities, _ = second.sync(
        "/rest/v1.0/cost_codes/sync",
        [{"origin_id": "J|02-300", "name": "Renamed"}],
        {"project_id": project_id},
    )
    assert entities[0]["id"] == cost_code_id  # the origin_id index was rebuilt

    second.client.post("/_sandbox/reset")
    third = Procore(data_file=data_file)
    assert third.store.projects(COMPANY) == [] and len(third.store.standard_cost_code_lists(COMPANY)) == 1
