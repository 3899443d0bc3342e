"""Every entity through sync-all, both directions: real Prefect, real sandbox over HTTP, real DuckDB.

One company is synced, the field works in Procore (``demo.field_activity``, through the
API), sync-all runs again, the field works once more and the Procore → ERP entities run; the
tests read what that left in the sandbox, the state, the ERP tables, the export files and the
Prefect server (sync-all's page in the UI leads to every entity run it started).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.settings import PREFECT_UI_URL

from connectors.erp import DuckDbErpSource
from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows import ENTITY_FLOWS, enabled
from flows.change_orders import COMMITMENT_CHANGE_ORDERS, PRIME_CHANGE_ORDERS
from flows.modified_budget import BUDGET_CHANGES, BUDGET_MODIFICATIONS
from demo.field_activity import FieldActivity, simulate_field_activity
from flows.sync_all import sync_all
from demo import sample_erp
from app.runner import reconcile_entities, run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.inbound import InboundSpec
from tasks.spec import HELD, SyncOptions
from tests.conftest import settings_env
from tests.support import flow_run_artifacts

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


INBOUND = [name for name, (spec, _) in ENTITY_FLOWS.items() if spec.inbound]


class PinnableClock:
    """Real time, which a test may stop at a chosen instant for the sandbox's stamps."""

    def __init__(self) -> None:
        self.pinned: float | None = None

    def __call__(self) -> float:
        return time.time() if self.pinned is None else self.pinned

    @contextmanager
    def at(self, instant: datetime) -> Iterator[None]:
        self.pinned = instant.timestamp()
        try:
            yield
        finally:
            self.pinned = None


def field_work(settings: Settings) -> FieldActivity:
    with ProcoreClient(settings) as client:
        return simulate_field_activity(client, settings.company_id, seed=5)


def run_inbound_entities(settings: Settings) -> dict[str, object]:
    return {s.entity: s for s in run_entities(settings, [n for n in INBOUND if enabled(n, settings)])}


@dataclass
class SyncedCompany:
    sandbox: SandboxServer
    settings: Settings
    erp: Path
    first: dict
    second: dict
    clock: PinnableClock
    rounds: tuple[FieldActivity, FieldActivity]
    after_the_field: dict
    first_flow_run: UUID  # the first sync-all's
    first_entity_runs: dict[str, list[str]]  # each entity's flow runs by the end of the first sync-all


@pytest.fixture(scope="module")
def synced(company_erp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncedCompany]:
    """One company synced twice through sync-all, with the field at work in Procore after each
    sync, and the Procore → ERP entities run once more; several tests read what it left."""
    home = tmp_path_factory.mktemp("synced")
    erp = copy_erp(company_erp, home / "erp")
    clock = PinnableClock()
    with pytest.MonkeyPatch.context() as monkeypatch, start_in_thread(FAST, clock) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", home)
        first_state = sync_all(options=SyncOptions(), return_state=True)
        first = {s.entity: s for s in first_state.result()}
        store = StateStore(settings.state_path)
        first_entity_runs = {entity: [r.flow_run_id for r in store.runs(entity)] for entity in first}
        round_1 = field_work(settings)
        second = run_all()
        round_2 = field_work(settings)
        after_the_field = run_inbound_entities(settings)
        yield SyncedCompany(sandbox, settings, erp, first, second, clock, (round_1, round_2), after_the_field,
                            first_state.state_details.flow_run_id, first_entity_runs)


def test_sync_all_lands_every_good_record_once_and_explains_every_bad_one(synced: SyncedCompany) -> None:
    assert all(s.status == "completed" for s in synced.first.values()), {k: s.message for k, s in synced.first.items()}
    assert synced.sandbox.app.state.contract_violations == []
    assert_bad_and_blocked_rows_explained(StateStore(synced.settings.state_path), expected(synced.erp))
    assert_reconciled(synced.settings)


def test_a_second_sync_all_writes_nothing(synced: SyncedCompany) -> None:
    assert {k: s.write_calls for k, s in synced.second.items() if s.write_calls} == {}


def test_sync_all_links_its_entity_runs_as_subflows_and_its_overview_leads_to_each(
        synced: SyncedCompany, prefect_api: str) -> None:
    """The entity runs are sync-all's subflow runs (each under a task run of sync-all's own flow
    run, as Prefect links a subflow to its parent), and its overview links to each one's page;
    read back through Prefect's client, as the UI reads them."""
    parent, runs_of = synced.first_flow_run, synced.first_entity_runs
    assert sum(map(len, runs_of.values())) > len(runs_of) > 10, "revisited entities ran twice"
    with get_client(sync_client=True) as client:
        unlinked = []
        for entity, entity_runs in runs_of.items():
            for run_id in entity_runs:
                run = client.read_flow_run(UUID(run_id))
                if run.parent_task_run_id is None or client.read_task_run(run.parent_task_run_id).flow_run_id != parent:
                    unlinked.append(entity)
        assert not unlinked, f"entity runs not sync-all's subflow runs: {unlinked}"
    ui = PREFECT_UI_URL.value()
    overview = flow_run_artifacts(prefect_api, str(parent))["table"]
    assert overview["key"] == "sync-all-overview"
    table = json.loads(overview["data"]) if isinstance(overview["data"], str) else overview["data"]
    rows = {row["entity"]: row for row in table}
    for entity, entity_runs in runs_of.items():
        for run in entity_runs:  # a markdown link, which the UI's table renders as one
            assert f"]({ui}/runs/flow-run/{run})" in str(rows[entity].get("run")), rows[entity]


def assert_bad_and_blocked_rows_explained(store: StateStore, expectations: dict) -> None:
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
    assert {r.entity for r in results} == {name for name in ENTITY_FLOWS if enabled(name, settings)}
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



def test_a_project_resync_reads_only_that_projects_records_and_leaves_the_cursors(
    company_erp: Path, tmp_path, monkeypatch
) -> None:
    erp = copy_erp(company_erp, tmp_path / "erp")
    names = ["vendors", "projects", "sub_jobs"]
    with start_in_thread(FAST) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", tmp_path)
        run_entities(settings, names)
        store = StateStore(settings.state_path)
        cursors = {name: store.get_cursor(name) for name in names}
        sub_jobs = sample_erp.mutate_table(erp, "sub_jobs", changes=8, seed=4)
        projects = sample_erp.mutate_table(erp, "projects", changes=3, seed=4)
        sample_erp.mutate_table(erp, "suppliers", changes=1, seed=4)
        target = sub_jobs[0].split("|")[0]
        in_target = {"sub_jobs": [k for k in sub_jobs if k.startswith(f"{target}|")],
                     "projects": [k for k in projects if k == target]}
        assert len(in_target["projects"]) < len(projects)

        targeted = {s.entity: s for s in run_entities(settings, names, SyncOptions(projects=[target]))}
        assert {name: targeted[name].updated for name in names} == {
            "vendors": 0, "projects": len(in_target["projects"]), "sub_jobs": len(in_target["sub_jobs"])}
        assert targeted["vendors"].unchanged == 0  # company-wide: no project, not read
        assert {name: store.get_cursor(name) for name in names} == cursors
        procore_names = {s["name"] for s in sandbox.store.records("sub_jobs")}
        erp_names = {row.data["sub_job_key"]: row.data["name"]
                     for row in DuckDbErpSource(erp / "erp.duckdb").read("sub_jobs")}
        assert {erp_names[key] for key in in_target["sub_jobs"]} <= procore_names

        after = {s.entity: s.updated for s in run_entities(settings, names)}
        assert after == {"vendors": 1, "projects": len(projects) - len(in_target["projects"]),
                         "sub_jobs": len(sub_jobs) - len(in_target["sub_jobs"])}


def test_preflight_fails_writes_to_projects_outside_the_permitted_list(company_erp: Path, tmp_path, monkeypatch) -> None:
    from connectors.procore import ProcoreClient
    from flows.cost_structure import SUB_JOBS
    from tasks.outbound import preflight
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


# --- Procore → ERP: change orders and the modified budget --------------------------------------


def erp_rows(settings: Settings, spec: InboundSpec, lines: bool = False) -> dict:
    table = spec.lines if lines else spec.header
    assert table is not None
    return {row[table.key]: row for row in ErpSink(settings.erp_path, settings.export_dir).rows(table)}


def exported_ids(settings: Settings, table: str) -> list[str]:
    with (settings.export_dir / f"{table}.csv").open(newline="", encoding="utf-8") as handle:
        return [row["procore_id"] for row in csv.DictReader(handle)]


def sandbox_change_orders(sandbox: SandboxServer, kind: str) -> dict[int, dict]:
    return {record["id"]: record for record in sandbox.store.records(kind)}


def test_the_fields_change_orders_land_in_the_erp_once_linked_to_their_contracts(synced: SyncedCompany) -> None:
    settings, sandbox = synced.settings, synced.sandbox
    round_1, round_2 = synced.rounds
    assert all(s.status == "completed" for s in synced.after_the_field.values())
    for spec, kind, actions in ((COMMITMENT_CHANGE_ORDERS, "commitment_change_orders", "commitment"),
                                (PRIME_CHANGE_ORDERS, "prime_change_orders", "prime")):
        in_procore = sandbox_change_orders(sandbox, kind)
        erp = erp_rows(settings, spec)
        created = [i for r in synced.rounds for i in getattr(r, actions).created]
        assert created and set(created) <= set(erp), kind  # deleted ones included: they stay, marked
        exported = exported_ids(settings, spec.header.name)
        assert sorted(exported) == sorted(str(i) for i in erp) and len(exported) == len(set(exported))
        contracts = {c["id"]: c["origin_id"] for k in ("work_order_contracts", "purchase_order_contracts",
                                                       "prime_contracts") for c in sandbox.store.records(k)}
        for procore_id in created:
            row = erp[procore_id]
            if procore_id in getattr(round_2, actions).deleted:
                assert row["deleted"] and procore_id not in in_procore
                continue
            record = in_procore[procore_id]
            assert row["contract_number"] == contracts[record["contract_id"]]  # the ERP key, via origin_id
            assert (row["title"], row["status"], row["deleted"]) == (record["title"], record["status"], False)
            own_lines = [line for line in sandbox.store.records(f"{kind.removesuffix('s')}_line_items")
                         if line[f"{kind.removesuffix('s')}_id"] == procore_id]
            assert float(row["amount"]) == sum(float(line["amount"]) for line in own_lines)
        voided = [i for r in synced.rounds for i in getattr(r, actions).voided]
        assert all(erp[i]["status"] == "void" for i in voided)
    edited = round_2.commitment.edited
    rows = erp_rows(settings, COMMITMENT_CHANGE_ORDERS)
    assert edited and all(rows[i]["title"].endswith("(revised r2)") for i in edited)


def test_the_fields_budget_changes_land_with_their_lines(synced: SyncedCompany) -> None:
    settings, sandbox = synced.settings, synced.sandbox
    erp = erp_rows(settings, BUDGET_CHANGES)
    lines = erp_rows(settings, BUDGET_CHANGES, lines=True)
    created = [i for r in synced.rounds for i in r.budget_changes_created]
    assert created and set(created) == set(erp)
    in_procore = {line["id"]: line for line in sandbox.store.records("budget_change_adjustment_line_items")}
    for procore_id in created:
        mine = [line for line in lines.values() if line["budget_change_procore_id"] == procore_id]
        assert len(mine) == 2 and sum(line["amount"] for line in mine) == 0  # a transfer
        for line in mine:
            assert float(line["amount"]) == float(in_procore[int(line["line_key"].split(":")[1])]["amount"])
            assert line["wbs_key"] and line["cost_code"]


def test_a_change_order_on_a_contract_the_erp_lacks_is_blocked_naming_it(synced: SyncedCompany) -> None:
    orphan = synced.rounds[0].orphan_change_order_id
    assert orphan is not None
    states = StateStore(synced.settings.state_path).record_states("commitment_change_orders")
    [state] = [s for key, s in states.items() if key.endswith(f"|{orphan}")]
    assert state.status == "blocked"
    assert f"subcontract {synced.rounds[0].orphan_contract_id}" in state.message
    assert "not in the ERP" in state.message
    assert orphan not in erp_rows(synced.settings, COMMITMENT_CHANGE_ORDERS)


def test_a_run_with_nothing_new_writes_nothing(synced: SyncedCompany) -> None:
    exports = sorted(synced.settings.export_dir.glob("*.csv"))
    before = {path: path.stat().st_mtime_ns for path in exports}
    again = run_inbound_entities(synced.settings)
    assert {k: (s.created, s.updated, s.erp_writes, s.write_calls) for k, s in again.items()} == {
        k: (0, 0, 0, 0) for k in again}
    assert {path: path.stat().st_mtime_ns for path in exports} == before


def test_a_change_in_the_very_second_of_the_cursor_is_not_missed(
    synced: SyncedCompany, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Procore stamps whole seconds: a change saved in the second the last run's window ended
    (the cursor, Procore's time when that run started) is read by the next run even with no
    overlap, because the lower bound is inclusive."""
    monkeypatch.setenv("PROCORE_SYNC_INBOUND_OVERLAP_S", "0")
    settings = Settings()
    run_entities(settings, ["commitment_change_orders"])
    cursor = StateStore(settings.state_path).get_cursor("commitment_change_orders")
    assert cursor is not None
    erp = erp_rows(settings, COMMITMENT_CHANGE_ORDERS)
    target = next(i for i, row in erp.items() if not row["deleted"] and row["status"] == "draft")
    project = synced.sandbox.store.scope_of("commitment_change_orders", target)
    with synced.clock.at(cursor), ProcoreClient(settings) as client:
        client.request("PATCH", f"/rest/v1.0/projects/{project}/commitment_change_orders/{target}",
                       json={"change_order": {"title": "Edited in the cursor's second"}})
    stamped = synced.sandbox.store.record("commitment_change_orders", project, target)["updated_at"]
    assert stamped == cursor.strftime("%Y-%m-%dT%H:%M:%SZ")
    [summary] = run_entities(settings, ["commitment_change_orders"])
    assert summary.updated == 1
    assert erp_rows(settings, COMMITMENT_CHANGE_ORDERS)[target]["title"] == "Edited in the cursor's second"


def test_a_project_resync_imports_only_that_projects_changes(synced: SyncedCompany) -> None:
    settings = synced.settings
    store = StateStore(settings.state_path)
    cursor = store.get_cursor("commitment_change_orders")
    drafts = [row for row in erp_rows(settings, COMMITMENT_CHANGE_ORDERS).values()
              if not row["deleted"] and row["status"] == "draft"]
    first = drafts[0]
    other = next(row for row in drafts if row["project_number"] != first["project_number"])
    with ProcoreClient(settings) as client:
        for row in (first, other):
            change_order = row["procore_id"]
            project = synced.sandbox.store.scope_of("commitment_change_orders", change_order)
            client.request("PATCH", f"/rest/v1.0/projects/{project}/commitment_change_orders/{change_order}",
                           json={"change_order": {"title": f"Edited for {row['project_number']}"}})

    [targeted] = run_entities(settings, ["commitment_change_orders"], SyncOptions(projects=[first["project_number"]]))
    titles = {i: row["title"] for i, row in erp_rows(settings, COMMITMENT_CHANGE_ORDERS).items()}
    assert targeted.updated == 1 and titles[first["procore_id"]] == f"Edited for {first['project_number']}"
    assert titles[other["procore_id"]] == other["title"]
    assert store.get_cursor("commitment_change_orders") == cursor

    [after] = run_entities(settings, ["commitment_change_orders"])
    assert after.updated == 1
    assert erp_rows(settings, COMMITMENT_CHANGE_ORDERS)[other["procore_id"]]["title"] == f"Edited for {other['project_number']}"


def test_legacy_budget_modifications_land_and_integration_echoes_do_not(
    synced: SyncedCompany, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCORE_SYNC_BUDGET_TOOL", "budget_modifications")
    settings = Settings()
    store = synced.sandbox.store
    lines = StateStore(settings.state_path).record_states("budget_lines")
    line_ids = {s.procore_id: key for key, s in lines.items() if s.procore_id}
    project = next(p for p in store.projects(1) if len([l for l in store.budget_line_items(p["id"]) if l["id"] in line_ids]) >= 2)
    first, second = [l["id"] for l in store.budget_line_items(project["id"]) if l["id"] in line_ids][:2]
    transfer = {"from_budget_line_item_id": first, "to_budget_line_item_id": second, "notes": None}
    field = store.insert("budget_modifications", project["id"], {**transfer, "transfer_amount": "250.0",
                                                                 "origin_id": None, "origin_data": None})
    echo = store.insert("budget_modifications", project["id"], {**transfer, "transfer_amount": "99.0",
                                                                "origin_id": "erp-mod-7", "origin_data": None})
    [summary] = run_entities(settings, ["budget_modifications"])
    assert (summary.created, summary.unchanged) == (1, 1)
    erp = erp_rows(settings, BUDGET_MODIFICATIONS)
    assert set(erp) == {field["id"]}
    assert (erp[field["id"]]["from_budget_line_key"], erp[field["id"]]["to_budget_line_key"]) == (
        line_ids[first], line_ids[second])
    states = StateStore(settings.state_path).record_states("budget_modifications")
    [echo_state] = [s for k, s in states.items() if k.endswith(f"|{echo['id']}")]
    assert "written by an integration (origin_id erp-mod-7)" in echo_state.message
    [result] = reconcile_entities(settings, ["budget_modifications"])
    assert result.clean and result.matched == 1
