"""The reconcile flow: a controller's money per project and cost code, ERP against Procore.
Real Prefect server, real sandbox over HTTP, real DuckDB ERP and state; a small sample company
synced through sync-all, with the field's change orders in Procore imported once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import requests

from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows.reconcile import ReconcileOptions, reconcile_money
from flows.sync_all import sync_all
from demo import sample_erp
from demo.field_activity import simulate_field_activity
from app.runner import run_entities
from procore_sync.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.spec import SyncOptions
from tests.conftest import settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")


@dataclass(frozen=True)
class Company:
    sandbox: SandboxServer
    settings: Settings
    erp: Path
    expected: dict


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    home = tmp_path_factory.mktemp("reconcile")
    sample_erp.generate(home / "erp", scale=0.05, seed=5)
    with pytest.MonkeyPatch.context() as monkeypatch, \
            start_in_thread(SandboxConfig(spike_limit=100_000, hourly_limit=100_000)) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, home / "erp" / "erp.duckdb", home)
        sync_all(options=SyncOptions())
        field_work(settings)
        run_entities(settings, ["commitment_change_orders"])
        yield Company(sandbox, settings, home / "erp" / "erp.duckdb",
                      json.loads((home / "erp" / "expected.json").read_text()))


def field_work(settings: Settings) -> None:
    with ProcoreClient(settings) as client:
        simulate_field_activity(client, settings.company_id, seed=5)


def artifacts(api_url: str, state) -> dict[str, object]:  # noqa: ANN001 - a Prefect State
    """The run's artifacts by key: a table's rows, a markdown's text."""
    body = {"artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}, "limit": 50, "offset": 0}
    answer = requests.post(f"{api_url}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    found = {}
    for artifact in answer.json():
        data = artifact["data"]
        found[artifact["key"]] = json.loads(data) if artifact["type"] == "table" and isinstance(data, str) else data
    return found


def by_cost_code(rows: list[dict]) -> dict[str, dict]:
    return {"/".join(p for p in (r["project"], r["sub_job"], r["cost_code"], r["cost_type"]) if p): r for r in rows}


def budget_key_parts(key: str) -> str:
    """A budget line's ERP key is its cost code's label (project|sub job|cost code|cost type)."""
    return key.replace("|", "/")


def test_a_synced_company_reconciles_with_every_difference_explained(company: Company, prefect_api: str) -> None:
    state = reconcile_money(return_state=True)
    assert state.is_completed(), state.message
    found = artifacts(prefect_api, state)
    money = by_cost_code(found["reconcile-money"])
    assert not [code for code, row in money.items() if row["verdict"].startswith("UNEXPLAINED")]
    assert "**0 unexplained**" in found["reconcile-summary"]
    records = {(r["entity"], r["key"]): r for r in found["reconcile-records"]}
    # The sample's bad and blocked budget lines are not in Procore: their cost codes differ by
    # their amounts, explained by them, each named with its key and the state's message.
    facts = company.expected["budget_lines"]
    for status, items in (("failed", facts["bad"]), ("blocked", facts["blocked"])):
        for item in items:
            record = records[("budget_lines", item["key"])]
            assert record["status"] == status and record["message"], record
            assert Decimal(record["procore"]) == 0
            code = money.get(budget_key_parts(item["key"]))
            if code is not None and Decimal(code["original_budget_difference"]) != 0:
                assert code["verdict"] == "explained", code
    # Change orders made in the field reached the ERP: both sides hold them.
    change_orders = [r for r in money.values() if Decimal(r["change_orders_procore"]) != 0]
    assert change_orders and all(Decimal(r["change_orders_erp"]) == Decimal(r["change_orders_procore"])
                                 for r in change_orders if r["verdict"] == "matches")
    assert any(r["verdict"] == "matches" for r in change_orders)


def test_records_not_synced_yet_explain_their_difference(company: Company, prefect_api: str) -> None:
    """A budget line changed in the ERP after the sync, and a round of field change orders not
    imported yet: differences, each explained record by record; the run stays completed."""
    store = StateStore(company.settings.state_path)
    synced = next(k for k, s in sorted(store.record_states("budget_lines").items()) if s.status == "ok")
    with duckdb.connect(str(company.erp)) as con:
        con.execute("UPDATE budget_lines SET amount = amount + 1000, updated_at = now() WHERE budget_line_key = ?",
                    [synced])
    field_work(company.settings)
    state = reconcile_money(return_state=True)
    assert state.is_completed(), state.message
    found = artifacts(prefect_api, state)
    money = by_cost_code(found["reconcile-money"])
    code = money[budget_key_parts(synced)]
    assert Decimal(code["original_budget_difference"]) == 1000 and code["verdict"] == "explained"
    records = {(r["entity"], r["key"]): r for r in found["reconcile-records"]}
    assert records[("budget_lines", synced)]["status"] == "not yet synced"
    assert "changed in the ERP since its last sync" in records[("budget_lines", synced)]["message"]
    pending = [r for r in found["reconcile-records"] if r["entity"] == "commitment_change_orders"
               and r["status"] == "not yet synced"]
    assert pending, found["reconcile-records"]
    # Synced, the ERP's change travels and the difference is gone.
    run_entities(company.settings, ["budget_lines", "commitment_change_orders"])
    state = reconcile_money(options=ReconcileOptions(entities=["budget_lines"]), return_state=True)
    assert state.is_completed(), state.message
    assert by_cost_code(artifacts(prefect_api, state)["reconcile-money"])[budget_key_parts(synced)]["verdict"] == "matches"


def test_an_amount_changed_in_procore_fails_the_run_naming_its_cost_code(company: Company, prefect_api: str) -> None:
    store = StateStore(company.settings.state_path)
    key, line = next((k, s) for k, s in sorted(store.record_states("budget_lines").items()) if s.status == "ok")
    wbs_id = next(s.procore_id for k, s in store.record_states("wbs_codes").items() if k == key)
    project = next(s.procore_id for k, s in store.record_states("projects").items() if k == key.split("|")[0])
    with ProcoreClient(company.settings) as client:
        body = {"project_id": project, "budget_line_items": [{"wbs_code_id": wbs_id, "original_budget_amount": 1}]}
        [shown] = client.request("POST", "/rest/v1.0/budget_line_items/sync", json=body).json()
    assert shown["id"] == line.procore_id
    state = reconcile_money(return_state=True)
    assert state.is_failed()
    assert "1 unexplained money differences" in state.message and budget_key_parts(key) in state.message
    found = artifacts(prefect_api, state)
    assert by_cost_code(found["reconcile-money"])[budget_key_parts(key)]["verdict"].startswith("UNEXPLAINED")
    record = next(r for r in found["reconcile-records"] if r["key"] == key)
    assert record["status"] == "synced, but Procore differs" and Decimal(record["procore"]) == 1
    assert "## Unexplained" in found["reconcile-summary"]
