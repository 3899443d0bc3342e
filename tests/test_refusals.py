"""Records Procore refuses, end to end: Resource Planning's 409 on a taken e-mail fails that one
person and the others land; the same upload again makes no call for the refused person, while
a targeted resync sends it, and a fix in the HR system lands it. A budget line sync refused as a
whole is halved until the refused line stands alone: it keeps the refused hash, the other lands. Real Prefect, real sandbox
over HTTP, a real folder drop and real DuckDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows.budget import BUDGET_LINES
from app.runner import run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.plan import NOT_SENT_AGAIN, Action
from tasks.report import RunSummary
from tasks.spec import SyncOptions
from tests.conftest import settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")

PEOPLE = "resource_people"
HEADER = "employee_number,first_name,last_name,email,status,groups,updated_at"
SHARED = "shared@example.com"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with start_in_thread(SandboxConfig(spike_limit=100_000, hourly_limit=100_000)) as running:
        yield running


def upload(drop: Path, emails: dict[str, str]) -> None:
    """The HR system's export of these people, dropped as a complete upload (file, then marker)."""
    rows = [f"{key},Ana,Diaz {key},{email},active,Civil,2026-03-02T08:00:00Z" for key, email in emails.items()]
    (drop / f"{PEOPLE}.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    (drop / f"{PEOPLE}.csv.done").write_text("", encoding="utf-8")


def run(**options: object) -> RunSummary:
    [summary] = run_entities(Settings(), [PEOPLE], SyncOptions(**options))  # type: ignore[arg-type]
    return summary


def test_a_taken_email_fails_one_person_once_and_is_not_sent_again_unchanged(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "hr"
    drop.mkdir()
    sources = {PEOPLE: {"kind": "folder", "folder": str(drop)}}
    settings_env(monkeypatch, sandbox.url, tmp_path / "no-erp.duckdb", tmp_path / "home",
                 PROCORE_SYNC_SOURCES=json.dumps(sources))
    people = {"E-1": SHARED, "E-2": SHARED, "E-3": "e-3@example.com"}

    def message_of(key: str) -> str:
        return StateStore(Settings().state_path).record_states(PEOPLE)[key].message or ""

    upload(drop, people)
    first = run()
    assert (first.status, first.created, first.failed) == ("completed", 2, 1)
    assert {p["employee_number"] for p in sandbox.store.records("rp_people")} == {"E-1", "E-3"}
    refusal = message_of("E-2")
    assert refusal.startswith("Procore rejected resource planning people E-2: Procore answered 409 Conflict")
    assert f"email '{SHARED}' is already taken" in refusal

    upload(drop, people)  # the same export again: read whole, nothing to send
    again = run()
    assert (again.status, again.write_calls, again.unchanged, again.failed) == ("completed", 0, 2, 1)
    assert message_of("E-2") == refusal + NOT_SENT_AGAIN

    resync = run(erp_keys=["E-2"])  # what resync-failed runs: sent again, and refused again
    assert (resync.write_calls, resync.failed) == (1, 1)
    assert message_of("E-2") == refusal

    upload(drop, people | {"E-2": "e-2@example.com"})  # fixed in the HR system
    fixed = run()
    assert (fixed.status, fixed.created, fixed.failed, fixed.write_calls) == ("completed", 1, 0, 1)
    assert {p["employee_number"] for p in sandbox.store.records("rp_people")} == {"E-1", "E-2", "E-3"}
    assert sandbox.app.state.contract_violations == []


def budget_wbs_code(client: ProcoreClient) -> tuple[int, int]:
    """A sandbox project with one WBS code (cost code 02-300, cost type L): their ids."""
    project = client.request("POST", "/rest/v1.0/projects", json={"company_id": 1, "project": {"name": "Tower"}})
    project_id = project.json()["id"]
    code = client.request("PATCH", "/rest/v1.0/cost_codes/sync", params={"project_id": project_id},
                          json={"updates": [{"code": "02-300", "name": "Concrete"}]}).json()["entities"][0]["id"]
    labor = client.request("PATCH", "/rest/v1.0/line_item_types/sync", json={
        "company_id": 1, "updates": [{"name": "Labor", "csv_import_code": "L", "base_type": "other"}]})
    segments = [{"segment_id": 2, "segment_item_id": code},
                {"segment_id": 3, "segment_item_id": labor.json()["entities"][0]["id"]}]
    wbs = client.request("PATCH", f"/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes/bulk_create",
                         json={"bulk": [{"segment_items": segments}]})
    return project_id, wbs.json()["entities"][0]["id"]


def test_a_batch_refused_as_a_whole_is_halved_until_the_refused_line_stands_alone(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, tmp_path / "no-erp.duckdb", tmp_path / "home")
    with ProcoreClient(settings) as client:
        project_id, wbs_code_id = budget_wbs_code(client)
        scope = {"company_id": 1, "project_id": project_id}

        def line(key: str, wbs: int) -> Action:
            return Action("create", key, payload={"wbs_code_id": wbs, "original_budget_amount": 5.0},
                          payload_hash=f"hash-{key}", scope={"project_id": project_id})

        good, bad = line("L-1", wbs_code_id), line("L-2", 424242)  # no such WBS code: 422 for the call
        both = BUDGET_LINES.writer.write(client, BUDGET_LINES, scope, [good, bad])
        [alone] = BUDGET_LINES.writer.write(client, BUDGET_LINES, scope, [bad])
    assert [(o.key, o.status, o.rejected_hash) for o in both] == [("L-1", "ok", None), ("L-2", "failed", "hash-L-2")]
    assert "424242" in (both[1].message or "")
    assert (alone.status, alone.rejected_hash) == ("failed", "hash-L-2")
    assert sandbox.app.state.contract_violations == []
