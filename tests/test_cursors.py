"""Differential cursors that skip nothing: late ERP commits and a worker clock that is not Procore's.

Real parts: the sandbox over HTTP (with a manual clock where Procore's time matters), DuckDB files
for the ERP and the state, and the engine inside real Prefect flows.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from connectors.erp import DuckDbErpSource
from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows.change_orders import COMMITMENT_CHANGE_ORDERS
from flows.entities import sync_vendors
from demo import sample_erp
from procore_sync.settings import Settings
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.engine import Runtime
from tasks.inbound import run_inbound
from tasks.report import RunSummary
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env
from tests.support import engine_runtime, synced_project_and_subcontract

pytestmark = pytest.mark.usefixtures("prefect_api")


# --- point 1: ERP → Procore -------------------------------------------------------------------


def test_late_commits_are_never_skipped(sandbox: SandboxServer, small_erp: SampleErp, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Suppliers committed after a run read the table, but stamped before the cursor it left (a
    long ERP transaction, another server's clock), are read by the next run; every other row the
    look-back reads again costs no call."""
    erp = SampleErp(tmp_path / "erp", small_erp.expected)
    shutil.copytree(small_erp.folder, erp.folder)
    settings = settings_env(monkeypatch, sandbox.url, erp.path, tmp_path)
    first = sync_vendors(options=SyncOptions())
    cursor = StateStore(settings.state_path).get_cursor("vendors")
    assert first.status == "completed" and cursor is not None

    late = sample_erp.mutate(erp.folder, changes=3, seed=1, now=cursor - timedelta(minutes=10))
    second = sync_vendors(options=SyncOptions())

    assert (second.updated, second.created, second.write_calls) == (len(late), 0, 1)
    phones = {v["origin_id"]: v["business_phone"] for v in sandbox.store.vendors(1)}
    rows = {r.data["supplier_code"]: r.data for r in DuckDbErpSource(erp.path).read("suppliers")}
    assert {key: phones[key] for key in late} == {key: rows[key]["business_phone"] for key in late}
    assert StateStore(settings.state_path).get_cursor("vendors") == cursor  # never moved back


# --- point 8: Procore → ERP -------------------------------------------------------------------

FAST = SandboxConfig(spike_limit=1_000_000, hourly_limit=1_000_000)
WORKER_AHEAD = timedelta(minutes=5)


@dataclass
class Field:
    """A sandbox on a manual clock with one project and one subcontract that procore-sync synced
    (the state knows both), and a client to work in it as the field does."""

    sandbox: SandboxServer
    clock: ManualClock
    settings: Settings
    client: ProcoreClient
    project_id: int
    contract_id: int

    def procore_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def change_order(self, title: str) -> int:
        body = {"change_order": {"contract_id": self.contract_id, "title": title, "status": "draft"}}
        answer = self.client.request("POST", self.path(), json=body).json()
        return int(answer["id"])

    def edit(self, change_order_id: int, title: str) -> None:
        self.client.request("PATCH", self.path(change_order_id), json={"change_order": {"title": title}})

    def path(self, change_order_id: int | None = None) -> str:
        base = f"/rest/v1.0/projects/{self.project_id}/commitment_change_orders"
        return base if change_order_id is None else f"{base}/{change_order_id}"


@pytest.fixture
def field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Field]:
    clock = ManualClock()
    with start_in_thread(FAST, clock) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, tmp_path / "erp.duckdb", tmp_path)
        with ProcoreClient(settings, clock=clock, sleep=clock.advance) as client:
            project_id, contract_id = synced_project_and_subcontract(client, StateStore(settings.state_path))
            yield Field(sandbox, clock, settings, client, project_id, contract_id)


def _import_change_orders(runtime: Runtime) -> RunSummary:
    @flow(name="commitment-change-orders-under-test")
    def under_test() -> RunSummary:
        return run_inbound(COMMITMENT_CHANGE_ORDERS, SyncOptions(), runtime)

    return under_test()


def _titles(settings: Settings) -> dict[int, Any]:
    rows = ErpSink(settings.erp_path, settings.export_dir).rows(COMMITMENT_CHANGE_ORDERS.header)
    return {row["procore_id"]: row["title"] for row in rows}


def test_procore_clock_not_the_workers(field: Field) -> None:
    """The worker's clock runs five minutes ahead of Procore's: a change the field saves after a
    run, stamped by Procore before the worker's time of that run, is still imported by the next."""
    runtime = engine_runtime(field.settings, run_clock=lambda: field.procore_now() + WORKER_AHEAD,
                             clock=field.clock, sleep=field.clock.advance)
    change_order = field.change_order("Extra steel")
    first = _import_change_orders(runtime)
    assert (first.status, first.created, _titles(field.settings)) == ("completed", 1, {change_order: "Extra steel"})
    cursor = StateStore(field.settings.state_path).get_cursor(COMMITMENT_CHANGE_ORDERS.name)
    assert cursor is not None and cursor <= field.procore_now()

    field.clock.advance(60)  # Procore's time now lies between the last run's start on both clocks
    field.edit(change_order, "Extra steel, revised")
    second = _import_change_orders(runtime)

    assert (second.status, second.updated) == ("completed", 1)
    assert _titles(field.settings) == {change_order: "Extra steel, revised"}


# --- issue 14: a sync-all that finds nothing costs the fewest calls ----------------------------


def test_a_run_inside_sync_alls_check_makes_no_company_call(field: Field) -> None:
    """Inside sync-all's one company check, an inbound run with nothing new makes two calls per
    project (its change order list in the window, and the deleted packages of the change orders
    the ERP holds), not a company check of its own."""
    from tasks.company import one_company_check

    runtime = engine_runtime(field.settings, clock=field.clock, sleep=field.clock.advance)
    field.change_order("Extra steel")
    field.clock.advance(1)  # stamped a second before the import: its lines are not read again
    assert _import_change_orders(runtime).created == 1
    field.clock.advance(60)
    with one_company_check(field.settings):
        idle = _import_change_orders(runtime)
    assert (idle.status, idle.created, idle.updated, idle.api_calls) == ("completed", 0, 0, 2)


def test_a_change_saved_after_sync_alls_check_is_read_by_the_next_run(field: Field) -> None:
    """Procore's time at sync-all's check stands for the start of its inbound runs, however late
    they come: a change the field saves after that check, past the look-back, and before the
    run reads, is read by a later run, never passed by the cursor."""
    from tasks.company import one_company_check

    runtime = engine_runtime(field.settings, run_clock=lambda: field.procore_now() + WORKER_AHEAD,
                             clock=field.clock, sleep=field.clock.advance)
    change_order = field.change_order("Extra steel")
    assert _import_change_orders(runtime).created == 1
    field.clock.advance(60)
    with one_company_check(field.settings):
        checked = field.procore_now()
        field.clock.advance(600)  # the earlier entities of sync-all take ten minutes
        field.edit(change_order, "Extra steel, revised")
        field.clock.advance(1)
        _import_change_orders(runtime)
    assert StateStore(field.settings.state_path).get_cursor(COMMITMENT_CHANGE_ORDERS.name) <= checked

    field.clock.advance(60)
    with one_company_check(field.settings):
        _import_change_orders(runtime)
    assert _titles(field.settings) == {change_order: "Extra steel, revised"}
