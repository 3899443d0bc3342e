"""Natural keys, exact money both ways and updates Procore cannot take, end to end: real
Prefect, the real sandbox over HTTP, a real ERP DuckDB file and a real state store.

Budget lines have no origin_id: Procore keeps one line per WBS code and the writer matches its
answer by that code, so two ERP lines on one WBS code would become one Procore line. Resource
Planning's project update takes fewer fields than its create, so a changed end date cannot
travel by update.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.state import Outcome, RecordState, StateStore
from flows.change_orders import COMMITMENT_CHANGE_ORDERS
from flows.commitments import SUBCONTRACTS
from flows.cost_structure import WBS_CODES
from flows.modified_budget import BUDGET_CHANGES
from flows.projects import PROJECTS
from app.runner import reconcile_entities, run_entities
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


# --- exact money from Procore to the ERP ---------------------------------------------------------


def field_change_orders(client: ProcoreClient, project_id: int, wbs_code_id: int) -> int:
    """Subcontract SC-1 and four change orders the field wrote on it, one with an amount no ERP
    column holds (21 digits before the point); the contract's Procore id."""
    header = {"number": "SC-1", "title": "Steel", "origin_id": "SC-1"}
    [contract] = client.sync("/rest/v1.0/work_order_contracts/sync", scope={"project_id": project_id},
                             items=[header]).entities
    orders = {"Big": [{"amount": "1234567890123.45"}],
              "Cents": [{"amount": "0.1"}, {"amount": "0.2"}],
              "Precise": [{"quantity": "1.123456789012345678", "unit_cost": "0.000001", "amount": "99999999999999.99"}],
              "Too large": [{"amount": "123456789012345678901.23"}]}
    for title, lines in orders.items():
        body = {"change_order": {"contract_id": contract["id"], "title": title, "status": "draft"}}
        change_order = client.request("POST", f"/rest/v1.0/projects/{project_id}/commitment_change_orders",
                                      json=body).json()
        for line in lines:
            client.request("POST", f"/rest/v2.0/companies/1/projects/{project_id}/commitment_change_orders"
                           f"/{change_order['id']}/line_items", json={"wbs_code_id": str(wbs_code_id), **line})
    return int(contract["id"])


def field_budget_change(client: ProcoreClient, project_id: int, wbs_code_id: int) -> None:
    """A budget change whose amounts are JSON numbers with more digits than a float keeps."""
    lines = [{"adjustment_number": 1, "wbs_code_id": wbs_code_id, "amount": Decimal("99999999999999.99")},
             {"adjustment_number": 2, "wbs_code_id": wbs_code_id, "amount": Decimal("0.1")},
             {"adjustment_number": 2, "wbs_code_id": wbs_code_id, "amount": Decimal("0.2"),
              "quantity": Decimal("3.333333333333333333"), "unit_cost": Decimal("0.06")}]
    client.request("POST", f"/rest/v1.0/projects/{project_id}/budget_changes",
                   json={"status": "approved", "title": "Contingency", "adjustment_line_items": lines})


def test_money_stays_exact_from_procore_to_the_erp(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = tmp_path / "erp.duckdb"
    Erp(erp).execute("CREATE TABLE wbs_codes AS SELECT ? AS wbs_key, 'P-1' AS project_number,"
                     " NULL AS sub_job_code, '02-300' AS cost_code, 'L' AS cost_type", [WBS_KEY])
    settings = settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home")
    project_id = budget_parents(settings)
    wbs_code_id = states("wbs_codes")[WBS_KEY].procore_id
    with ProcoreClient(settings) as client:
        contract_id = field_change_orders(client, project_id, wbs_code_id)
        field_budget_change(client, project_id, wbs_code_id)
    store = StateStore(settings.state_path)
    run_id = store.start_run(SUBCONTRACTS.name)
    store.record_outcomes(run_id, SUBCONTRACTS.name, [Outcome("SC-1", "create", "ok", contract_id, payload_hash="h")])
    store.finish_run(run_id, status="completed", counts={})

    change_orders, budget_changes = run_entities(settings, ["commitment_change_orders", "budget_changes"])

    # The amount no ERP column holds fails its record, saying so; the others land.
    assert (change_orders.status, change_orders.created, change_orders.failed) == ("completed", 3, 1)
    [refused] = [s for s in states("commitment_change_orders").values() if s.status == "failed"]
    assert "amount 123456789012345678901.23 has 21 digits before the point, more than the 20" in (refused.message or "")
    assert (budget_changes.status, budget_changes.created) == ("completed", 1)
    sink = ErpSink(erp, settings.export_dir)
    headers = {row["title"]: row["amount"] for row in sink.rows(COMMITMENT_CHANGE_ORDERS.header)}
    assert headers == {"Big": Decimal("1234567890123.45"), "Cents": Decimal("0.3"),
                       "Precise": Decimal("99999999999999.99")}
    [precise] = [row for row in sink.rows(COMMITMENT_CHANGE_ORDERS.lines) if row["quantity"] is not None]
    assert (precise["quantity"], precise["unit_cost"]) == (Decimal("1.123456789012345678"), Decimal("0.000001"))
    [change] = sink.rows(BUDGET_CHANGES.header)
    assert change["amount"] == Decimal("100000000000000.29")
    assert sorted(row["quantity"] or 0 for row in sink.rows(BUDGET_CHANGES.lines))[-1] == Decimal("3.333333333333333333")

    # The export files hold the same digits, as text.
    exported = read_export(settings, "commitment_change_orders")
    assert {row["title"]: row["amount"] for row in exported} == {
        "Big": "1234567890123.45", "Cents": "0.30", "Precise": "99999999999999.99"}
    lines = read_export(settings, "commitment_change_order_lines")
    assert sorted(row["amount"] for row in lines) == ["0.10", "0.20", "1234567890123.45", "99999999999999.99"]
    assert [(row["quantity"], row["unit_cost"]) for row in lines if row["quantity"]] == [
        ("1.123456789012345678", "0.000001")]
    assert [row["amount"] for row in read_export(settings, "budget_changes")] == ["100000000000000.29"]
    assert sorted(row["quantity"] for row in read_export(settings, "budget_change_lines")) == [
        "", "", "3.333333333333333333"]
    # Reconcile reads Procore as the runs do: everything equal, the refused record known as failed.
    reconciled = reconcile_entities(settings, ["commitment_change_orders", "budget_changes"])
    assert [(r.differences, r.matched, r.known_failed) for r in reconciled] == [([], 3, 1), ([], 1, 0)]
    assert sandbox.app.state.contract_violations == []


def read_export(settings: Settings, table: str) -> list[dict[str, str]]:
    with (settings.export_dir / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


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
