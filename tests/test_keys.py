"""Natural keys, exact money and updates Procore cannot take, end to end: real Prefect, the real
sandbox over HTTP, a real ERP DuckDB file and a real state store.

Budget lines have no origin_id: Procore keeps one line per WBS code and the writer matches its
answer by that code, so two ERP lines on one WBS code would become one Procore line. Resource
Planning's project update takes fewer fields than its create, so a changed end date cannot
travel by update.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.procore import ProcoreClient
from connectors.state import Outcome, RecordState, StateStore
from flows.cost_structure import WBS_CODES
from flows.projects import PROJECTS
from procore_sync.runner import reconcile_entities, run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.report import RunSummary
from tasks.spec import SyncOptions
from tests.conftest import settings_env
from tests.test_refusals import budget_wbs_code

pytestmark = pytest.mark.usefixtures("prefect_api")

WBS_KEY = "P-1|02-300|L"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with start_in_thread(SandboxConfig(spike_limit=100_000, hourly_limit=100_000)) as running:
        yield running


def stamp(day: int) -> datetime:
    return datetime(2026, 3, day, 8, 0, tzinfo=UTC)


def run(entity: str, **options: Any) -> RunSummary:
    [summary] = run_entities(Settings(), [entity], SyncOptions(**options))
    return summary


def states(entity: str) -> dict[str, RecordState]:
    return StateStore(Settings().state_path).record_states(entity)


# --- budget lines on one WBS code -----------------------------------------------------------------


class Erp:
    """The ERP file, opened for each change only (the engine takes its own turns at it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        with duckdb.connect(str(self.path)) as con:
            con.execute(sql, params or [])


def budget_erp(path: Path) -> Erp:
    erp = Erp(path)
    erp.execute("CREATE TABLE budget_lines (budget_line_key VARCHAR, project_number VARCHAR, sub_job_code VARCHAR,"
                " cost_code VARCHAR, cost_type VARCHAR, amount DECIMAL(18,2), quantity DECIMAL(18,4),"
                " unit_cost DECIMAL(18,4), uom VARCHAR, updated_at TIMESTAMPTZ)")
    return erp


def put_line(con: Erp, key: str, amount: str, day: int) -> None:
    con.execute("DELETE FROM budget_lines WHERE budget_line_key = ?", [key])
    con.execute("INSERT INTO budget_lines VALUES (?, 'P-1', NULL, '02-300', 'L', ?, NULL, NULL, NULL, ?)",
                [key, Decimal(amount), stamp(day)])


def budget_parents(settings: Settings) -> int:
    """Project P-1 and its WBS code 02-300.L, in Procore and in the state (as their own runs
    would leave them); the project's Procore id."""
    with ProcoreClient(settings) as client:
        project_id, wbs_code_id = budget_wbs_code(client)
    store = StateStore(settings.state_path)
    for spec, key, procore_id in ((PROJECTS, "P-1", project_id), (WBS_CODES, WBS_KEY, wbs_code_id)):
        run_id = store.start_run(spec.name)
        store.record_outcomes(run_id, spec.name, [Outcome(key, "create", "ok", procore_id, payload_hash="h")])
        store.finish_run(run_id, status="completed", counts={})
    return project_id


def budget_amounts(sandbox: SandboxServer, project_id: int) -> list[str]:
    return [line["original_budget_amount"] for line in sandbox.store.records("budget_line_items", project_id)]


def test_two_erp_rows_never_collapse_into_one_procore_record(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = tmp_path / "erp.duckdb"
    con = budget_erp(erp)
    settings = settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home")
    project_id = budget_parents(settings)

    # Two lines of one run on one WBS code: both fail, each naming the other, nothing is sent.
    put_line(con, "L-1", "100.00", 2)
    put_line(con, "L-2", "200.00", 2)
    both = run("budget_lines")
    assert (both.status, both.failed, both.created, both.write_calls) == ("completed", 2, 0, 0)
    found = states("budget_lines")
    assert "L-2" in (found["L-1"].message or "") and "WBS code" in (found["L-1"].message or "")
    assert "L-1" in (found["L-2"].message or "")
    assert budget_amounts(sandbox, project_id) == []

    # Fixed in the ERP: one line lands (and a later, unrelated one without amount moves the cursor).
    con.execute("DELETE FROM budget_lines WHERE budget_line_key = 'L-2'")
    put_line(con, "L-1", "100.00", 3)
    con.execute("INSERT INTO budget_lines VALUES ('L-9', 'P-1', NULL, '02-300', 'L', NULL, NULL, NULL, NULL, ?)",
                [stamp(4)])
    one = run("budget_lines")
    assert (one.created, one.failed) == (1, 1)
    line_id = states("budget_lines")["L-1"].procore_id

    # A new line on the same WBS code, read without L-1 (the cursor is past it): Procore answers
    # with L-1's line. Both fail, naming each other.
    put_line(con, "L-3", "300.00", 5)
    third = run("budget_lines")
    assert (third.created, third.failed, third.write_calls) == (0, 3, 1)
    found = states("budget_lines")
    holders = [key for key, state in found.items() if state.procore_id == line_id and state.status in ("ok", "warning")]
    assert holders == [], {key: (s.status, s.message) for key, s in found.items()}
    assert found["L-3"].status == "failed" and f"record {line_id}, which budget_line_key L-1 holds" in (found["L-3"].message or "")
    assert found["L-1"].status == "failed" and "overwritten by budget_line_key L-3" in (found["L-1"].message or "")
    assert found["L-3"].procore_id is None and found["L-1"].procore_id == line_id

    # The operator removes the newcomer and resyncs L-1: its amount is back in Procore.
    con.execute("DELETE FROM budget_lines WHERE budget_line_key = 'L-3'")
    healed = run("budget_lines", erp_keys=["L-1"])
    assert (healed.updated, healed.failed) == (1, 0)
    assert budget_amounts(sandbox, project_id) == ["100.0"]
    assert sandbox.app.state.contract_violations == []


def test_money_goes_as_exact_decimals(sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    erp = tmp_path / "erp.duckdb"
    con = budget_erp(erp)
    settings = settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home")
    project_id = budget_parents(settings)
    # 18 digits: more than Procore's JSON numbers hold. A float would round it silently (…56.8);
    # the record fails instead, saying so, and nothing is sent.
    put_line(con, "L-1", "1234567890123456.78", 2)
    refused = run("budget_lines")
    assert (refused.status, refused.created, refused.failed, refused.write_calls) == ("completed", 0, 1, 0)
    assert "at most 15 digits" in (states("budget_lines")["L-1"].message or "")
    assert budget_amounts(sandbox, project_id) == []
    # Within what Procore holds, the amount arrives digit for digit.
    put_line(con, "L-1", "1234567890123.45", 3)
    first = run("budget_lines")
    assert (first.status, first.created) == ("completed", 1)
    assert budget_amounts(sandbox, project_id) == ["1234567890123.45"]
    assert run("budget_lines").write_calls == 0  # the hash of an exact amount is stable
    [reconciled] = reconcile_entities(settings, ["budget_lines"])
    assert reconciled.differences == [] and reconciled.matched == 1
    assert sandbox.app.state.contract_violations == []


# --- a Resource Planning project's end date ---------------------------------------------------------


def planning_erp(path: Path) -> Erp:
    erp = Erp(path)
    erp.execute("CREATE TABLE resource_projects (project_number VARCHAR, name VARCHAR, status VARCHAR, groups VARCHAR,"
                " start_date DATE, est_end_date DATE, updated_at TIMESTAMPTZ)")
    return erp


def put_project(con: Erp, name: str, end: date, day: int) -> None:
    con.execute("DELETE FROM resource_projects")
    con.execute("INSERT INTO resource_projects VALUES ('RP-1', ?, 'active', 'Civil', DATE '2026-01-05', ?, ?)",
                [name, end, stamp(day)])


def test_an_update_procore_cannot_take_is_not_called_updated(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = tmp_path / "erp.duckdb"
    con = planning_erp(erp)
    settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home")

    def in_procore() -> dict[str, Any]:
        [project] = sandbox.store.records("rp_projects")
        return project

    put_project(con, "Tower", date(2026, 12, 31), 2)
    assert run("resource_projects").created == 1
    put_project(con, "Tower", date(2027, 3, 31), 3)  # the end date moves
    moved = run("resource_projects")
    assert (moved.status, moved.warnings) == ("completed", 1)
    state = states("resource_projects")["RP-1"]
    assert state.status == "warning", state
    assert "est_end_date" in (state.message or "") and "2027-03-31" in (state.message or "")
    assert in_procore()["est_end_date"] == "2026-12-31"  # Procore's update cannot change it

    again = run("resource_projects")  # nothing changed: no call, and the warning stays
    assert (again.write_calls, again.unchanged, again.warnings) == (0, 1, 1)
    assert states("resource_projects")["RP-1"].message == state.message

    put_project(con, "Tower West", date(2027, 3, 31), 4)  # a field the update takes lands, the warning stays
    renamed = run("resource_projects")
    assert (renamed.write_calls, renamed.warnings) == (1, 1)
    assert in_procore()["name"] == "Tower West"
    assert "est_end_date" in (states("resource_projects")["RP-1"].message or "")
    assert sandbox.app.state.contract_violations == []


def test_an_amount_a_float_carried_exactly_keeps_its_hash() -> None:
    """Records pushed while money went as floats are not all sent again after the upgrade."""
    from tasks.mapping import payload_hash

    assert payload_hash({"amount": Decimal("1200.50")}) == payload_hash({"amount": 1200.5})
    assert payload_hash({"amount": Decimal("1000")}) == payload_hash({"amount": 1000.0})
    assert payload_hash({"amount": Decimal("1234567890123456.78")}) != payload_hash({"amount": 1234567890123456.8})
