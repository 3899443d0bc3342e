"""sync-all's page in the Prefect UI leads to every entity run it started: the entity runs are its
subflow runs (each under a task run of sync-all's own flow run, as Prefect links a subflow to
its parent), and its overview links to each one's page.

The real sync-all over a small sample company: real Prefect server, real sandbox over HTTP, real
DuckDB; the links are read back through Prefect's client, as the UI reads them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.settings import PREFECT_UI_URL

from connectors.state import StateStore
from flows.sync_all import sync_all
from demo import sample_erp
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from tasks.spec import SyncOptions
from tests.conftest import settings_env
from tests.support import flow_run_artifacts

@pytest.fixture(scope="module")
def tiny_erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    sample_erp.generate(folder, scale=0.05, seed=3)
    return folder


def test_sync_all_links_its_entity_runs_as_subflows_and_its_overview_leads_to_each(
        tiny_erp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> None:
    erp = shutil.copytree(tiny_erp, tmp_path / "erp")
    with start_in_thread(SandboxConfig(spike_limit=100_000, hourly_limit=100_000)) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, erp / "erp.duckdb", tmp_path / "home")
        state = sync_all(options=SyncOptions(), return_state=True)
    parent = state.state_details.flow_run_id
    summaries = state.result()
    # Every entity run it started, both passes of the revisited ones, as the state store has them.
    runs_of = {s.entity: [r.flow_run_id for r in StateStore(settings.state_path).runs(s.entity)] for s in summaries}
    assert sum(map(len, runs_of.values())) > len(summaries) > 10, "revisited entities ran twice"

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
