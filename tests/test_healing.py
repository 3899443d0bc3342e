"""Records that failed for a reason outside themselves heal by themselves, and records stuck
under a failed parent are not reported as a plain green run (issue 12, points 4 and 12).

Real Prefect, the real sandbox over HTTP, the sample ERP and the state in real DuckDB files. The
backoff is spaced by time, so the healing test runs the engine with a manual clock shared by the
runs and the state store: no real sleep.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect import flow

from connectors.erp import DuckDbErpSource
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows.commitments import SUBCONTRACTS
from flows.projects import PROJECTS
from flows.vendors import VENDORS
from app.runner import run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.engine import Runtime, run_entity
from tasks.outcomes import failed_outcome
from tasks.plan import Action
from tasks.report import RunSummary, publish_overview
from tasks.spec import EntitySpec, SyncOptions
from tests.conftest import SampleErp, settings_env
from tests.support import flow_run_artifacts

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with start_in_thread(SandboxConfig(spike_limit=100_000, hourly_limit=100_000)) as running:
        yield running


@pytest.fixture
def erp(small_erp: SampleErp, tmp_path: Path) -> SampleErp:
    """A copy of the sample company this test may change, as an operator changes the ERP."""
    copy = SampleErp(tmp_path / "erp", small_erp.expected)
    shutil.copytree(small_erp.folder, copy.folder)
    return copy


class ManualClock:
    """Now, as the test says: the runs start and the state stamps its rows at this instant."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def manual_runtime(settings: Settings, clock: ManualClock) -> Runtime:
    def make_client(on_wait: Callable[[datetime, str], None]) -> ProcoreClient:
        return ProcoreClient(settings, on_wait=on_wait)

    assert settings.state_path and settings.erp_path
    return Runtime(settings, StateStore(settings.state_path, clock=clock), DuckDbErpSource(settings.erp_path),
                   make_client, clock=clock)


def run(spec: EntitySpec, runtime: Runtime) -> RunSummary:
    @flow(name=f"{spec.name}-under-test")
    def entity_under_test() -> RunSummary:
        return run_entity(spec, SyncOptions(), runtime)

    return entity_under_test()


def bad_key(erp: SampleErp, table: str, problem: str) -> str:
    return next(b["key"] for b in erp.expected[table]["bad"] if b["problem"] == problem)


def add_supplier(erp: SampleErp, code: str) -> None:
    """The missing supplier is created in the ERP (a copy of a good one under its code); the
    subcontract that names it is not touched, so the cursor has passed it."""
    bad = {b["key"] for b in erp.expected["suppliers"]["bad"]}
    model = next(r.data["supplier_code"] for r in DuckDbErpSource(erp.path).read("suppliers")
                 if r.data["supplier_code"] not in bad)
    con = duckdb.connect(str(erp.path))
    try:
        con.execute("INSERT INTO suppliers SELECT * REPLACE (?::VARCHAR AS supplier_code, now() AS updated_at)"
                    " FROM suppliers WHERE supplier_code = ?", [code, model])
    finally:
        con.close()


def test_failures_outside_the_record_heal_by_themselves(
    sandbox: SandboxServer, erp: SampleErp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, erp.path, tmp_path / "home")
    clock = ManualClock()
    runtime = manual_runtime(settings, clock)
    orphan = bad_key(erp, "subcontracts", "non_existent_supplier")  # its supplier is not in the ERP
    own = bad_key(erp, "subcontracts", "invalid_status")  # wrong in itself
    [supplier] = [r.data["supplier_code"] for r in DuckDbErpSource(erp.path).read("subcontracts")
                  if r.data["subcontract_number"] == orphan]

    def state(key: str) -> Any:
        return runtime.store.record_states("subcontracts")[key]

    for spec in (VENDORS, PROJECTS, SUBCONTRACTS):
        run(spec, runtime)
    assert f"supplier {supplier} does not exist in the ERP" in state(orphan).message
    assert (state(orphan).attempts, state(own).attempts) == (1, 1)

    # Ordinary runs read it again though the cursor passed it: twice right away...
    quiet = []
    for _ in range(2):
        clock.advance(timedelta(minutes=1))
        quiet.append(run(SUBCONTRACTS, runtime))
    assert (state(orphan).status, state(orphan).attempts) == ("failed", 3)
    # ... then it waits (30 minutes after its third attempt), while the record wrong in itself
    # is never read again unchanged; and a mapping that still fails calls nothing.
    clock.advance(timedelta(minutes=1))
    quiet.append(run(SUBCONTRACTS, runtime))
    assert state(orphan).attempts == 3 and state(own).attempts == 1
    assert [(s.failed, s.write_calls) for s in quiet] == [(1, 0), (1, 0), (0, 0)]

    add_supplier(erp, supplier)  # the ERP gets the supplier; the subcontract itself is unchanged
    clock.advance(timedelta(minutes=7))
    run(VENDORS, runtime)
    assert run(SUBCONTRACTS, runtime).created == 0  # still within its wait
    clock.advance(timedelta(minutes=30))
    healed = run(SUBCONTRACTS, runtime)
    assert (healed.created, healed.failed) == (1, 0)
    assert state(orphan).status in ("ok", "warning") and state(orphan).attempts == 0
    assert orphan in {c["origin_id"] for c in sandbox.store.records("work_order_contracts")}
    assert sandbox.app.state.contract_violations == []


def test_what_fails_outside_the_record_is_told_from_what_is_wrong_in_it() -> None:
    """The writers' contract: a write that failed without Procore refusing the record itself
    (a batch refused in one answer, unconfirmed, a 5xx after all retries) is outside the record;
    a refusal, and a planned failure of the record's own content, are not."""
    write = Action("create", "V-1", payload={"name": "A"}, payload_hash="h")
    assert failed_outcome(write, "not confirmed by Procore").outside
    assert not failed_outcome(write, "Procore rejected it", refused=True).outside
    assert not failed_outcome(Action("fail", "V-2", message="name is blank"), "name is blank").outside
    assert failed_outcome(Action("fail", "V-3", outside=True), "project 9 not permitted").outside


def test_blocked_under_a_failed_parent_is_not_green(
    sandbox: SandboxServer, erp: SampleErp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str
) -> None:
    settings = settings_env(monkeypatch, sandbox.url, erp.path, tmp_path / "home")
    under_failed = {b["key"] for b in erp.expected["subcontracts"]["blocked"]}
    summaries = {s.entity: s for s in run_entities(settings, ["vendors", "projects", "subcontracts",
                                                             "subcontract_lines"])}
    contracts, lines = summaries["subcontracts"], summaries["subcontract_lines"]
    # Not red: the run did its work; but not a plain green either: its state names the stuck records.
    [row] = StateStore(settings.state_path).runs("subcontracts", limit=1)
    assert row.status == "completed" and "blocked under a failed parent" in (row.message or "")
    assert f"{len(under_failed)} records blocked under a failed parent" in (contracts.message or "")
    assert contracts.status == "completed" and contracts.blocked_under_failed_parent == len(under_failed) > 0
    # The lines of those contracts wait for a parent that is itself stuck: they count too.
    assert lines.status == "completed" and lines.blocked_under_failed_parent > 0
    assert summaries["vendors"].blocked_under_failed_parent == 0

    @flow(name="overview-under-test")
    def overview() -> None:
        publish_overview(list(summaries.values()))

    state = overview(return_state=True)
    table = flow_run_artifacts(prefect_api, str(state.state_details.flow_run_id))["table"]
    assert "2 with records blocked under a failed parent" in table["description"]
    assert f"completed, {len(under_failed)} blocked under a failed parent" in table["data"]
    assert '"completed"' in table["data"]  # the entities that are fine stay a plain completed


def test_a_blocked_record_is_tried_again_only_once_a_parent_changed_and_still_counts_meanwhile(
    sandbox: SandboxServer, erp: SampleErp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-mapping every blocked record on every run found them blocked again for the same reason
    (most of a no-change sync-all's local time, bench/delta.py). Until one of its parents
    changes, a blocked record is not read again; the run still counts and reports it."""
    settings = settings_env(monkeypatch, sandbox.url, erp.path, tmp_path / "home")
    entities = ["vendors", "projects", "subcontracts"]
    first = {s.entity: s for s in run_entities(settings, entities)}["subcontracts"]
    store = StateStore(settings.state_path)
    blocked = {k for k, s in store.record_states("subcontracts", statuses=["blocked"]).items()}
    assert first.blocked == len(blocked) > 0

    again = {s.entity: s for s in run_entities(settings, entities)}["subcontracts"]
    [latest, _] = store.runs("subcontracts", limit=2)
    tried = {a.key for a in store.history(entity="subcontracts", limit=10_000) if a.run_id == latest.run_id}
    assert not tried & blocked  # not read, mapped or recorded again
    assert (again.blocked, again.blocked_under_failed_parent, again.message) == (
        first.blocked, first.blocked_under_failed_parent, first.message)
    assert latest.counts["blocked"] == first.blocked

    # A run limited to keys counts what it read, not the blocked records it left alone.
    fine = next(k for k, s in store.record_states("subcontracts", statuses=["ok"]).items())
    [targeted] = run_entities(settings, ["subcontracts"], SyncOptions(erp_keys=[fine]))
    assert (targeted.blocked, targeted.unchanged) == (0, 1)
