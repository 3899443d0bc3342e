"""What the writers do when one record's write goes wrong (issue 12, points 5, 6, 11 and 12).

A fault on one record never fails its batch or its run: a create whose answer was lost is
finished through Procore's own update operation, a 5xx on one create is retried for that record
after a look-up by its key, a record deleted in Procore fails alone, and a batch refused without
naming the culprit is halved until the bad lines stand alone. Real Prefect, the real sandbox over
HTTP (with faults aimed at one operation), real DuckDB files; sleeps go to a list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import json

import duckdb
import pytest
import requests
from prefect import flow

from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows.budget import BUDGET_LINES
from flows.cost_structure import WBS_CODES
from flows.projects import PROJECTS
from flows.maintenance import ResyncFailedOptions, resync_failed
from flows.resource_planning import RESOURCE_PEOPLE
from procore_sync.errors import ConnectionLost, Handling, error_for_status
from app.runner import run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.engine import Runtime, run_entity
from tasks.report import RunSummary, render_summary
from tasks.plan import Action
from tasks.spec import EntitySpec, SyncOptions
from tests.conftest import settings_env
from tests.support import engine_runtime

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = SandboxConfig(spike_limit=100_000, hourly_limit=100_000)
SAVED = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Any:
    with start_in_thread(FAST) as running:
        yield running


def erp_with_projects(path: Path, numbers: list[str]) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE projects (project_number VARCHAR, name VARCHAR, city VARCHAR, "
                    "updated_at TIMESTAMPTZ)")
        for number in numbers:
            con.execute("INSERT INTO projects VALUES (?, ?, ?, ?)", [number, f"Tower {number}", "Austin", SAVED])
    return path


def run(runtime: Runtime, spec: EntitySpec, options: SyncOptions | None = None) -> Any:
    @flow(name=f"{spec.name}-under-test")
    def under_test() -> RunSummary:
        return run_entity(spec, options or SyncOptions(), runtime)

    return under_test(return_state=True)


def faults(sandbox: SandboxServer, **changes: Any) -> None:
    requests.put(f"{sandbox.url}/_sandbox/faults", json=changes, timeout=10).raise_for_status()


def states(settings: Settings, entity: str) -> dict[str, Any]:
    return StateStore(settings.state_path).record_states(entity)


# --- point 12 -------------------------------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_finished_not_refused(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = erp_with_projects(tmp_path / "erp.duckdb", ["P-1", "P-2", "P-3"])
    settings = settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home")
    # A run created P-2, Procore's answer was lost and the worker died before it looked again:
    # the project is in Procore with our origin_id, and the state does not know it.
    with ProcoreClient(settings) as client:
        faults(sandbox, lost_response_rate=1.0)
        with pytest.raises(ConnectionLost):
            client.request("POST", "/rest/v1.0/projects", json={
                "company_id": 1, "project": {"name": "Tower P-2", "project_number": "P-2", "origin_id": "P-2"}})
        faults(sandbox, lost_response_rate=0.0)
    [landed] = sandbox.store.projects(1)

    state = run(engine_runtime(settings, sleep=lambda _: None), PROJECTS)

    assert state.is_completed(), state.message
    summary = state.result()
    assert (summary.created, summary.failed) == (3, 0), summary.message
    projects = {p["origin_id"]: p for p in sandbox.store.projects(1)}
    assert sorted(projects) == ["P-1", "P-2", "P-3"]  # found again and finished, not created twice
    assert projects["P-2"]["id"] == landed["id"] and projects["P-2"]["city"] == "Austin"
    assert {key: s.status for key, s in states(settings, "projects").items()} == dict.fromkeys(projects, "ok")
    assert states(settings, "projects")["P-2"].procore_id == landed["id"]
    again = run(engine_runtime(settings, sleep=lambda _: None), PROJECTS).result()
    assert (again.write_calls, again.failed) == (0, 0)
    assert sandbox.app.state.contract_violations == []


def test_a_405_is_a_defect_of_ours_that_stops_the_run_never_a_refusal_of_the_record() -> None:
    from procore_sync.errors import Defect

    error = error_for_status(405)("Procore answered 405 Method Not Allowed to PATCH", status=405)
    assert error_for_status(405) is Defect and error.handling is Handling.STOP
    assert "procore-sync defect" in str(error)


# --- point 11 -------------------------------------------------------------------------------

PROJECT_POST = {"method": "POST", "path": "/rest/v1.0/projects"}


def test_one_5xx_on_one_create_never_fails_the_run(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = erp_with_projects(tmp_path / "erp.duckdb", ["P-1", "P-2", "P-3"])
    settings = settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home", PROCORE_SYNC_MAX_ATTEMPTS="3")
    waits: list[float] = []
    runtime = engine_runtime(settings, sleep=waits.append)
    # P-1's create: a 503, then an answer lost after the project landed; retried after a look-up.
    faults(sandbox, aimed=[{**PROJECT_POST, "fault": "unavailable"}, {**PROJECT_POST, "fault": "lost_response"}])

    first = run(runtime, PROJECTS)

    assert first.is_completed(), first.message
    assert (first.result().created, first.result().failed) == (3, 0), first.result().message
    assert sorted(p["origin_id"] for p in sandbox.store.projects(1)) == ["P-1", "P-2", "P-3"]
    assert waits, "a retried create waits (backoff) before it is sent again"

    # A bad hour: P-4's create meets a 5xx on every attempt; it fails alone, P-5 lands.
    with duckdb.connect(str(erp)) as con:
        con.execute("INSERT INTO projects VALUES ('P-4', 'Tower P-4', 'Austin', ?), ('P-5', 'Tower P-5', 'Austin', ?)",
                    [SAVED, SAVED])
    faults(sandbox, aimed=[{**PROJECT_POST, "fault": "server_error", "times": 3}])
    bad_hour = run(runtime, PROJECTS)

    assert bad_hour.is_completed(), bad_hour.message
    assert (bad_hour.result().created, bad_hour.result().failed) == (1, 1)
    p4 = states(settings, "projects")["P-4"]
    assert (p4.status, p4.rejected_hash) == ("failed", None)  # not a refusal: sent again later
    assert "3 attempts" in (p4.message or "") and "500" in (p4.message or "")
    assert sorted(p["origin_id"] for p in sandbox.store.projects(1)) == ["P-1", "P-2", "P-3", "P-5"]

    after = run(runtime, PROJECTS, SyncOptions(erp_keys=["P-4"])).result()  # what resync-failed runs
    assert (after.created, after.failed) == (1, 0)
    assert len(sandbox.store.projects(1)) == 5

    # A Resource Planning person's create the same way: found again by its employee number.
    people_path = "/rest/v1.0/workforce-planning/v2/companies/1/people"
    faults(sandbox, aimed=[{"method": "POST", "path": people_path, "fault": "unavailable"},
                           {"method": "POST", "path": people_path, "fault": "lost_response"}])
    with ProcoreClient(settings, sleep=waits.append) as client:
        group = client.request("POST", people_path.replace("people", "groups"),
                               json={"name": "Writers test", "timezone": "America/Chicago"}).json()["id"]
        person = {"first_name": "Ana", "is_assignable": True, "is_user": False, "status": "active", "group_ids": [group]}
        people = [Action("create", key, payload={**person, "last_name": key, "employee_number": key}, payload_hash=key)
                  for key in ("E-1", "E-2")]
        outcomes = RESOURCE_PEOPLE.writer.write(client, RESOURCE_PEOPLE, {"company_id": 1}, people)
    assert [(o.key, o.status) for o in outcomes] == [("E-1", "ok"), ("E-2", "ok")], [o.message for o in outcomes]
    assert sorted(p["employee_number"] for p in sandbox.store.records("rp_people")) == ["E-1", "E-2"]
    assert sandbox.app.state.contract_violations == []


# --- point 6 --------------------------------------------------------------------------------

PEOPLE_HEADER = "employee_number,first_name,last_name,email,status,groups,phone,updated_at"


def upload_people(drop: Path, phone: str) -> None:
    """The HR system's export of E-1..E-3, dropped as a complete upload (file, then marker)."""
    rows = [f"E-{n},Ana,Diaz {n},e-{n}@example.com,active,Civil,{phone},2026-03-02T08:00:00Z" for n in (1, 2, 3)]
    (drop / "resource_people.csv").write_text("\n".join([PEOPLE_HEADER, *rows]) + "\n", encoding="utf-8")
    (drop / "resource_people.csv.done").write_text("", encoding="utf-8")


def test_a_record_deleted_in_procore_never_stops_an_entity(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "hr"
    drop.mkdir()
    sources = {"resource_people": {"kind": "folder", "folder": str(drop)}}
    settings = settings_env(monkeypatch, sandbox.url, tmp_path / "no-erp.duckdb", tmp_path / "home",
                            PROCORE_SYNC_SOURCES=json.dumps(sources))
    people_path = "/rest/v1.0/workforce-planning/v2/companies/1/people"
    upload_people(drop, "555-0100")
    [first] = run_entities(Settings(), ["resource_people"], SyncOptions())
    assert (first.status, first.created) == ("completed", 3)
    gone = states(settings, "resource_people")["E-2"].procore_id
    with ProcoreClient(settings) as client:  # someone deletes E-2 in Procore
        client.request("DELETE", f"{people_path}/{gone}")

    upload_people(drop, "555-0199")  # every phone changes: three updates, one to a deleted person
    [changed] = run_entities(Settings(), ["resource_people"], SyncOptions())

    assert (changed.status, changed.updated, changed.failed) == ("completed", 2, 1), changed.message
    e2 = states(settings, "resource_people")["E-2"]
    assert e2.status == "failed" and e2.rejected_hash is not None
    assert (e2.message or "").startswith("deleted in Procore:") and "recreate_deleted" in (e2.message or "")
    assert {p["employee_number"]: p["phone"] for p in sandbox.store.records("rp_people")} == {
        "E-1": "555-0199", "E-3": "555-0199"}

    [again] = resync_failed(ResyncFailedOptions(entities=["resource_people"], dry_run=False))
    assert (again.failed, again.created) == (1, 0)  # off by default: still deleted, not recreated
    [recreated] = resync_failed(ResyncFailedOptions(entities=["resource_people"], dry_run=False,
                                                    recreate_deleted=True))
    assert (recreated.created, recreated.failed) == (1, 0)
    e2 = states(settings, "resource_people")["E-2"]
    assert e2.status == "ok" and e2.procore_id not in (None, gone)
    assert sorted(p["employee_number"] for p in sandbox.store.records("rp_people")) == ["E-1", "E-2", "E-3"]
    assert sandbox.app.state.contract_violations == []


# --- point 5 --------------------------------------------------------------------------------


def project_with_wbs_codes(client: ProcoreClient, count: int) -> tuple[int, list[list[dict[str, int]]]]:
    """A sandbox project with ``count`` cost codes, each with cost type L: the project id and each
    code's WBS segment items (the WBS codes themselves are not made)."""
    project_id = client.request("POST", "/rest/v1.0/projects", json={"company_id": 1, "project": {"name": "Tower"}}).json()["id"]
    codes = client.request("PATCH", "/rest/v1.0/cost_codes/sync", params={"project_id": project_id}, json={
        "updates": [{"code": f"02-{n:03}", "name": f"Code {n}"} for n in range(count)]}).json()["entities"]
    labor = client.request("PATCH", "/rest/v1.0/line_item_types/sync", json={
        "company_id": 1, "updates": [{"name": "Labor", "csv_import_code": "L", "base_type": "other"}]})
    labor_id = labor.json()["entities"][0]["id"]
    return project_id, [[{"segment_id": 2, "segment_item_id": code["id"]}, {"segment_id": 3, "segment_item_id": labor_id}]
                        for code in codes]


def test_one_bad_line_never_fails_a_thousand(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, tmp_path / "no-erp.duckdb", tmp_path / "home")
    with ProcoreClient(settings) as client:
        project_id, segments = project_with_wbs_codes(client, 12)
        scope = {"company_id": 1, "project_id": project_id}

        # WBS bulk_create answers per entry: the one with an unknown cost code fails alone.
        wbs = [Action("create", f"W-{n}", payload={"segment_items": items}, payload_hash=f"w{n}", scope=scope)
               for n, items in enumerate(segments)]
        unknown = [{"segment_id": 2, "segment_item_id": 999_999}, segments[0][1]]
        wbs.insert(5, Action("create", "W-bad", payload={"segment_items": unknown}, payload_hash="wbad", scope=scope))
        outcomes = {o.key: o for o in WBS_CODES.writer.write(client, WBS_CODES, scope, wbs)}
        assert [k for k, o in outcomes.items() if o.status != "ok"] == ["W-bad"]
        assert outcomes["W-bad"].rejected_hash == "wbad"  # Procore named it: a refusal of that entry
        wbs_ids = [outcomes[f"W-{n}"].procore_id for n in range(12)]

        # budget_line_items/sync refuses the whole call for one line and names none.
        lines = [Action("create", f"L-{n}", payload={"wbs_code_id": wbs_id, "original_budget_amount": 100.0 + n},
                        payload_hash=f"l{n}", scope=scope) for n, wbs_id in enumerate(wbs_ids)]
        lines.insert(7, Action("create", "L-bad", payload={"wbs_code_id": 424242, "original_budget_amount": 1.0},
                               payload_hash="lbad", scope=scope))
        calls = client.stats.api_calls
        budget = {o.key: o for o in BUDGET_LINES.writer.write(client, BUDGET_LINES, scope, lines)}
        spent = client.stats.api_calls - calls

    assert [k for k, o in budget.items() if o.status != "ok"] == ["L-bad"]
    assert budget["L-bad"].rejected_hash == "lbad" and "424242" in (budget["L-bad"].message or "")
    assert len(sandbox.store.budget_line_items(project_id)) == 12  # the good ones landed, in this run
    assert client.stats.split_calls == spent - 1 > 0  # every call after the refused one
    summary = RunSummary(entity="budget_lines", run_id="r", status="completed", split_calls=client.stats.split_calls)
    assert f"{spent - 1} calls isolating" in render_summary(summary)
    assert sandbox.app.state.contract_violations == []
