"""Every ERP → Procore entity through sync-all: real Prefect, real sandbox over HTTP, real DuckDB."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.state import StateStore
from flows import ENTITY_FLOWS
from flows.sync_all import sync_all
from procore_sync import sample_erp
from procore_sync.runner import reconcile_entities, run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.spec import HELD, SyncOptions
from tests.conftest import settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")

FAST = SandboxConfig(spike_limit=100_000, hourly_limit=100_000)


@pytest.fixture(scope="module")
def company_erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("company")
    sample_erp.generate(folder, scale=0.2, seed=11)
    return folder


def expected(folder: Path) -> dict:
    return json.loads((folder / "expected.json").read_text())


def copy_erp(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def entity_of_table(table: str) -> str:
    return next(name for name, (spec, _) in ENTITY_FLOWS.items() if spec.erp_table == table)


def run_all(options: SyncOptions | None = None) -> dict[str, object]:
    return {s.entity: s for s in sync_all(options=options or SyncOptions())}


@dataclass
class SyncedCompany:
    sandbox: SandboxServer
    settings: Settings
    erp: Path
    first: dict
    second: dict


@pytest.fixture(scope="module")
def synced(company_erp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncedCompany]:
    """One company synced twice through sync-all; several tests read what it left."""
    home = tmp_path_factory.mktemp("synced")
    erp = copy_erp(company_erp, home / "erp")
    with pytest.MonkeyPatch.context() as monkeypatch, start_in_thread(FAST) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", home)
        first = run_all()
        second = run_all()
        yield SyncedCompany(sandbox, settings, erp, first, second)


def test_sync_all_lands_every_good_record_once_and_explains_every_bad_one(synced: SyncedCompany) -> None:
    assert all(s.status == "completed" for s in synced.first.values()), {k: s.message for k, s in synced.first.items()}
    assert synced.sandbox.app.state.contract_violations == []
    assert_bad_and_blocked_rows_explained(synced.settings, expected(synced.erp))
    assert_reconciled(synced.settings)


def test_a_second_sync_all_writes_nothing(synced: SyncedCompany) -> None:
    assert {k: s.write_calls for k, s in synced.second.items() if s.write_calls} == {}


def assert_bad_and_blocked_rows_explained(settings: Settings, expectations: dict) -> None:
    store = StateStore(settings.state_path)
    for table, facts in expectations.items():
        states = store.record_states(entity_of_table(table))
        for bad in facts.get("bad", []):
            state = states[bad["key"]]
            assert state.status == "failed", (table, bad, state)
            assert state.message, (table, bad)
        for blocked in facts.get("blocked", []):
            state = states[blocked["key"]]
            assert state.status == "blocked", (table, blocked, state)
            assert blocked["parent"]["key"] in state.message, (table, blocked, state.message)


def assert_reconciled(settings: Settings) -> None:
    results = reconcile_entities(settings)
    assert {r.entity for r in results} == set(ENTITY_FLOWS)
    assert {r.entity: r.differences[:3] for r in results if not r.clean} == {}
    assert all(r.matched == r.to_sync for r in results)


COMMITMENT_PATH = ["vendors", "projects", "subcontracts"]


def test_a_failed_supplier_blocks_its_commitments_until_fixed_in_the_erp(
    company_erp: Path, tmp_path, monkeypatch
) -> None:
    erp = copy_erp(company_erp, tmp_path / "erp")
    blocked = next(b for b in expected(erp)["subcontracts"]["blocked"] if b["parent"]["table"] == "suppliers")
    with start_in_thread(FAST) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", tmp_path)
        run_entities(settings, COMMITMENT_PATH)
        store = StateStore(settings.state_path)
        supplier = blocked["parent"]["key"]
        assert store.record_states("vendors")[supplier].status == "failed"
        state = store.record_states("subcontracts")[blocked["key"]]
        assert state.status == "blocked" and f"supplier {supplier}" in state.message

        sample_erp.fix(erp, "suppliers", supplier)
        run_entities(settings, COMMITMENT_PATH)
        assert store.record_states("vendors")[supplier].status in ("ok", "warning")
        assert store.record_states("subcontracts")[blocked["key"]].status in ("ok", "warning")
        landed = {c["origin_id"] for c in sandbox.store.records("work_order_contracts")}
        assert blocked["key"] in landed


def test_dry_run_of_sync_all_plans_everything_and_writes_nothing(company_erp: Path, tmp_path, monkeypatch) -> None:
    with start_in_thread(FAST) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, company_erp / "erp.duckdb", tmp_path)
        summaries = run_all(SyncOptions(dry_run=True))
        assert all(s.dry_run and s.write_calls == 0 for s in summaries.values())
        assert summaries["projects"].created > 0
        assert sandbox.store.vendors(1) == []
        assert StateStore(settings.state_path).record_states("projects") == {}


def test_procore_template_cost_codes_are_linked_not_duplicated(synced: SyncedCompany) -> None:
    states = StateStore(synced.settings.state_path).record_states("project_cost_codes")
    linked = [s for k, s in states.items() if k.endswith("|01-001") and s.status == "warning"]
    assert linked and all("linked to it, not created" in (s.message or "") for s in linked)
    per_project: dict[tuple, int] = {}
    for code in synced.sandbox.store.records("cost_codes"):
        per_project[(code["project_id"], code["code"])] = per_project.get((code["project_id"], code["code"]), 0) + 1
    assert set(per_project.values()) == {1}


def test_approved_contracts_wait_in_draft_until_their_lines_land(synced: SyncedCompany) -> None:
    approved = [c for c in synced.sandbox.store.records("work_order_contracts") if c["status"] == "Approved"]
    assert approved, "the sample has approved subcontracts"
    lines = synced.sandbox.store.records("work_order_contract_line_items")
    assert all(any(line["work_order_contract_id"] == c["id"] for line in lines) for c in approved)
    states = StateStore(synced.settings.state_path).record_states("subcontracts")
    assert not [k for k, s in states.items() if (s.message or "").startswith(HELD)]


def test_a_direct_cost_changed_after_sync_is_not_pushed_over_procores_lock(
    company_erp: Path, tmp_path, monkeypatch
) -> None:
    erp = copy_erp(company_erp, tmp_path / "erp")
    with start_in_thread(FAST) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", tmp_path)
        run_entities(settings, ["vendors", "projects", "direct_costs"])
        [changed] = sample_erp.mutate_table(erp, "direct_costs", changes=1, seed=3)
        [summary] = run_entities(settings, ["direct_costs"])
        state = StateStore(settings.state_path).record_states("direct_costs")[changed]
        assert (summary.updated, summary.write_calls, state.status) == (0, 0, "failed")
        assert "Procore locks it" in state.message



def test_preflight_fails_writes_to_projects_outside_the_permitted_list(company_erp: Path, tmp_path, monkeypatch) -> None:
    from connectors.procore import ProcoreClient
    from flows.cost_structure import SUB_JOBS
    from tasks.engine import preflight
    from tasks.plan import Action

    with start_in_thread(FAST) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, company_erp / "erp.duckdb", tmp_path)
        run_entities(settings, ["projects"])
        permitted = sandbox.store.projects(1)[0]["id"]
        actions = [Action("create", key=key, payload={"code": "01", "name": "A"}, scope={"project_id": pid})
                   for key, pid in (("in", permitted), ("out", 123456789))]
        with ProcoreClient(settings) as client:
            checked = preflight(client, SUB_JOBS, {"company_id": 1}, actions)
    assert [a.kind for a in checked] == ["create", "fail"]
    assert "not among the service account's permitted projects" in checked[1].message
