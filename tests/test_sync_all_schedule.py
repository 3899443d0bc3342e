"""sync-all's scheduling of entity runs: each starts once the entities it depends on have finished.

The real ``sync_all`` flow on the Prefect test server, over stand-in entity flows (the schedule is
under test, not the entities): they report when they start and wait for each other through
events, never for a time.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from prefect import Flow, flow

from connectors.procore import ProcoreClient
from connectors.procore_webhooks import WebhooksApi
from connectors.state import StateStore
from flows.change_orders import COMMITMENT_CHANGE_ORDERS
from flows.sync_all import Step, schedule, sync_all
from procore_sync.settings import Settings
from sandbox.server import SandboxServer
from tasks.report import RunSummary
from tasks.spec import SyncOptions
from flows import configured_resources
from tasks.webhooks import install
from tests.conftest import settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")

# Bounds a wait for another run's start; reached only when the schedule keeps that run back.
BOUND_S = 30.0


class StandIns:
    """Entity flows that record their runs and can wait for another entity's start."""

    def __init__(self) -> None:
        self.started: dict[str, threading.Event] = {}
        self.runs: list[str] = []
        self.saw_start: dict[str, bool] = {}  # whether the entity it waited for started
        self.ran_before: dict[str, list[str]] = {}  # the runs before its last run
        self.lock = threading.Lock()

    def entity(self, name: str, depends_on: tuple[str, ...] = (), *, waits_for: str | None = None,
               fails: bool = False, revisit: bool = False) -> tuple[SimpleNamespace, Flow]:
        self.started[name] = threading.Event()

        @flow(name=f"stand-in-{name}")
        def stand_in(options: SyncOptions = SyncOptions()) -> RunSummary:
            with self.lock:
                self.ran_before[name] = list(self.runs)
                self.runs.append(name)
            self.started[name].set()
            if waits_for is not None:
                self.saw_start[name] = self.started[waits_for].wait(BOUND_S)
            if fails:
                raise RuntimeError(f"{name} failed on purpose")
            return RunSummary(entity=name, run_id="", status="completed", api_calls=1)

        spec = SimpleNamespace(name=name, depends_on=list(depends_on), revisit=revisit, webhook_resources=(),
                               inbound=False)
        return spec, stand_in


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer) -> StandIns:
    # A real Procore to sync-all's one company check; the stand-ins themselves call nothing.
    settings_env(monkeypatch, sandbox.url, tmp_path / "erp.duckdb", tmp_path / "home")
    return StandIns()


def use(monkeypatch: pytest.MonkeyPatch, *entities: tuple[SimpleNamespace, Flow]) -> None:
    flows = {spec.name: (spec, entity) for spec, entity in entities}
    monkeypatch.setattr("flows.ENTITY_FLOWS", flows)
    monkeypatch.setattr("flows.sync_all.ENTITY_FLOWS", flows)


def test_an_entity_starts_when_its_parents_finished_not_when_its_level_did(
        stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    """``slow`` runs until ``child`` has started: ``child`` needs only ``quick``, so it must not
    wait for ``slow``, its level's slowest member."""
    use(monkeypatch,
        stand_ins.entity("slow", waits_for="child"),
        stand_ins.entity("quick"),
        stand_ins.entity("child", ("quick",)))
    summaries = sync_all(options=SyncOptions())
    assert stand_ins.saw_start["slow"], "child started only after slow finished"
    assert [s.entity for s in summaries] == ["slow", "quick", "child"]
    assert stand_ins.runs.index("child") > stand_ins.runs.index("quick")


def test_a_failed_parent_leaves_its_children_running_and_revisits_come_after_their_dependants(
        stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch,
        stand_ins.entity("parent", fails=True),
        stand_ins.entity("contracts", revisit=True),
        stand_ins.entity("child", ("parent",)),
        stand_ins.entity("lines", ("contracts", "child")))
    summaries = {s.entity: s for s in sync_all(options=SyncOptions())}
    assert summaries["parent"].status == "failed"
    assert summaries["child"].status == summaries["lines"].status == "completed"
    # The revisit ran contracts a second time, after the entities that depend on it.
    assert stand_ins.runs.count("contracts") == 2
    assert "lines" in stand_ins.ran_before["contracts"]
    assert summaries["contracts"].api_calls == 2


def test_two_revisits_wait_for_their_dependants_not_for_each_other(
        stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Subcontracts and purchase orders are both revisited after the change orders that depend
    on both: the two revisits then run together, not one after the other."""
    use(monkeypatch,
        stand_ins.entity("subcontracts", revisit=True),
        stand_ins.entity("purchase_orders", revisit=True),
        stand_ins.entity("change_orders", ("subcontracts", "purchase_orders")))
    after = schedule(["subcontracts", "purchase_orders", "change_orders"])
    assert after[Step("purchase_orders", revisit=True)] == {Step("purchase_orders"), Step("change_orders")}
    assert after[Step("subcontracts", revisit=True)] == {Step("subcontracts"), Step("change_orders")}


def test_while_webhooks_are_healthy_a_procore_to_erp_entity_is_read_only_at_its_sweep(
        stand_ins: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling is the safety net once webhooks bring the field's changes: a Procore → ERP entity
    read less than ``webhook_sweep_s`` ago is left to them; a full resync reads it anyway."""
    _, change_orders = stand_ins.entity("change_orders")
    inbound = dataclasses.replace(COMMITMENT_CHANGE_ORDERS, name="change_orders", parents=())
    use(monkeypatch, stand_ins.entity("vendors"), (inbound, change_orders))
    monkeypatch.setenv("PROCORE_SYNC_WEBHOOK_SECRET", "whsec-sync-all-12345")
    settings = Settings()
    with ProcoreClient(settings) as client:
        install(WebhooksApi(client, settings.company_id), settings, configured_resources(settings))

    sync_all(options=SyncOptions())  # never read: polled
    StateStore(settings.state_path).set_cursor("change_orders", datetime.now(UTC))
    assert [s.entity for s in sync_all(options=SyncOptions())] == ["vendors"]
    assert [s.entity for s in sync_all(options=SyncOptions(full_resync=True))] == ["vendors", "change_orders"]
    assert sorted(stand_ins.runs) == ["change_orders"] * 2 + ["vendors"] * 3
