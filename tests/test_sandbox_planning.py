"""The sandbox's Resource Planning (workforce-planning v2) over real HTTP: groups, people and
projects, 0-based pages of 400, POST updates, 409 on a taken number, every answer checked
against its documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.store import PLANNING_GROUPS
from tests.test_sandbox_changes import FAST, Remote

BASE = "/rest/v1.0/workforce-planning/v2/companies/1"


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**FAST), clock) as server:
        yield Remote(server, clock)


@pytest.fixture(autouse=True)
def fresh(remote: Remote) -> Iterator[None]:
    remote.server.app.state.store.reset()
    remote.server.app.state.contract_violations.clear()
    yield
    remote.assert_conforming()


def groups(remote: Remote) -> dict[str, str]:
    return {g["name"]: g["id"] for g in remote.call("GET", f"{BASE}/groups")}


def person(remote: Remote, number: str, **extra: Any) -> dict[str, Any]:
    return {"first_name": "Ana", "last_name": f"Diaz {number}", "is_user": False, "is_assignable": True,
            "status": "active", "group_ids": [groups(remote)["Civil"]], "employee_number": number,
            "email": f"{number.lower()}@example.com", **extra}


def test_a_company_starts_with_its_groups_and_can_add_one(remote: Remote) -> None:
    assert sorted(groups(remote)) == sorted(PLANNING_GROUPS)
    created = remote.call("POST", f"{BASE}/groups", body={"name": "Marine", "timezone": "America/Denver"})
    assert groups(remote)["Marine"] == created["id"]


def test_people_are_created_read_updated_by_post_and_deleted(remote: Remote) -> None:
    person_id = remote.call("POST", f"{BASE}/people", body=person(remote, "E-1"))["id"]
    shown = remote.call("GET", f"{BASE}/people/{person_id}")
    assert (shown["name"], shown["employee_number"], shown["status"]) == (
        {"first": "Ana", "last": "Diaz E-1"}, "E-1", "active")
    updated = remote.call("POST", f"{BASE}/people/{person_id}", body={"status": "inactive"})
    assert (updated["status"], updated["employee_number"]) == ("inactive", "E-1")
    assert remote.call("GET", f"{BASE}/people", {"employee_number": "E-1"})[0]["id"] == person_id
    remote.call("DELETE", f"{BASE}/people/{person_id}")
    remote.call("GET", f"{BASE}/people/{person_id}", status=404)


def test_people_come_in_zero_based_pages_of_400(remote: Remote) -> None:
    for n in range(401):
        remote.call("POST", f"{BASE}/people", body=person(remote, f"E-{n:03d}"))
    first, second = (remote.call("GET", f"{BASE}/people", {"page": page}) for page in (0, 1))
    assert (len(first), len(second)) == (400, 1)
    assert {p["employee_number"] for p in first + second} == {f"E-{n:03d}" for n in range(401)}
    assert remote.call("GET", f"{BASE}/people", {"page": 2}) == []


def test_a_taken_employee_number_or_email_is_a_conflict(remote: Remote) -> None:
    remote.call("POST", f"{BASE}/people", body=person(remote, "E-1"))
    remote.call("POST", f"{BASE}/people", body=person(remote, "E-1", email="other@example.com"), status=409)
    other = remote.call("POST", f"{BASE}/people", body=person(remote, "E-2"))["id"]
    remote.call("POST", f"{BASE}/people/{other}", body={"email": "e-1@example.com"}, status=409)


@pytest.mark.parametrize(("change", "field"), [
    ({"group_ids": []}, "group_ids"),
    ({"group_ids": ["00000000-0000-0000-0000-000000000000"]}, "group_ids"),
    ({"status": "retired"}, "status"),
])
def test_bad_people_are_refused_naming_the_field(remote: Remote, change: dict, field: str) -> None:
    answer = remote.call("POST", f"{BASE}/people", body=person(remote, "E-9", **change), status=400)
    assert field in answer["errors"]
    remote.server.app.state.contract_violations.clear()  # some of these break the schema on purpose


def test_projects_need_a_start_date_when_active_and_update_by_post(remote: Remote) -> None:
    body = {"name": "Tower", "status": "active", "group_ids": [groups(remote)["North Region"]],
            "project_number": "P-1001"}
    answer = remote.call("POST", f"{BASE}/projects", body=body, status=400)
    assert "start_date" in answer["errors"]
    [created] = remote.call("POST", f"{BASE}/projects", body=body | {"start_date": "2026-03-02"})
    remote.call("POST", f"{BASE}/projects", body=body | {"start_date": "2026-03-02"}, status=409)
    change = {"name": "Tower", "status": "inactive", "group_ids": body["group_ids"]}
    assert remote.call("POST", f"{BASE}/projects/{created['id']}", body=change)["status"] == "inactive"
    listed = remote.call("GET", f"{BASE}/projects", {"project_number": "P-1001"})
    assert [p["id"] for p in listed] == [created["id"]]
