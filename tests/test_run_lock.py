"""One run of an entity per Procore company at a time, on every host (issue 12, point 2).

The entity's own deployment and sync-all, served by a real serve process (two flow runs, each its
own process), start together on 50 new Resource Planning projects. The projects come from the
planning system's API (``sample_erp.api``), which holds every read until the test lets it go:
either both runs are then at the same point and go on together (nothing keeps them apart), or
one waits for the other and says so. Real Prefect, real sandbox over HTTP, real DuckDB."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments import run_deployment
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.state import StateStore
from demo import sample_erp
from demo.sample_erp.api import create_app
from demo.sample_erp.planning import RESOURCE_PROJECTS_COLUMNS
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, run_in_thread, start_in_thread
from tests.conftest import settings_env
from tests.support import final_state, flow_run_logs, served_deployments, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")

TOKEN = "planning-api-T0ken-5"
NEW_PROJECTS = 50
ENTITY = "resource_projects"


class HeldReads:
    """An ASGI wrapper that holds every request until ``release`` is set, counting the held ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.held, self.release = app, 0, threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.held += 1
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        await self.app(scope, receive, send)


def empty_erp(folder: Path) -> Path:
    """Every table of the sample ERP without a row: sync-all has nothing else to write."""
    sample_erp.generate(folder, scale=0.01, seed=5)
    path = folder / sample_erp.DUCKDB_FILE
    with duckdb.connect(str(path)) as con:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            con.execute(f'DELETE FROM "{table}"')
    return path


def planning_system(folder: Path) -> Path:
    """The planning system's own file: 50 projects Resource Planning does not have yet."""
    folder.mkdir(parents=True)
    path = folder / "planning.duckdb"
    stamp = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    rows = [(f"RP-{n:03}", f"Planned project {n}", "pending", "North Region", date(2027, 1, 4) + timedelta(days=n),
             None, None, None, None, None, None, "America/Denver", stamp) for n in range(1, NEW_PROJECTS + 1)]
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE {ENTITY} ({', '.join(f'{c.name} {c.sql_type}' for c in RESOURCE_PROJECTS_COLUMNS)})")
        con.executemany(f"INSERT INTO {ENTITY} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return path


def entity_runs(since: datetime) -> list[FlowRun]:
    """The runs of the entity started since the test began: the deployment's own, and sync-all's
    (which runs its entities in threads, so Prefect has them as flow runs of their own)."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[ENTITY])),
                                     flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
                                     sort=FlowRunSort.START_TIME_ASC, limit=10)


def waiting_lines(api_url: str, runs: list[FlowRun]) -> dict[str, list[str]]:
    """Per run, its log lines that say it waits for another run."""
    return {str(run.id): [line for line in flow_run_logs(api_url, str(run.id)) if "waiting for run" in line]
            for run in runs}


def test_one_run_of_an_entity_at_a_time_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     prefect_api: str) -> None:
    erp, planning = empty_erp(tmp_path / "erp"), planning_system(tmp_path / "planning")
    held = HeldReads(create_app(planning, TOKEN))
    server, thread, api_url = run_in_thread(held, "planning-api")  # type: ignore[arg-type]
    sandbox: SandboxServer
    try:
        with start_in_thread(SandboxConfig(spike_limit=100_000, hourly_limit=100_000)) as sandbox:
            source: dict[str, Any] = {"kind": "api", "url": f"{api_url}/api", "paths": {ENTITY: f"/{ENTITY}"},
                                      "token": TOKEN, "record_path": "data", "timeout_s": 600}
            settings = settings_env(monkeypatch, sandbox.url, erp, tmp_path / "home",
                                    PROCORE_SYNC_SOURCES=json.dumps({ENTITY: source}))
            with served_deployments(prefect_api, ENTITY, "sync-all"):
                began = datetime.now(UTC)
                own = run_deployment(f"{ENTITY}/{ENTITY}", timeout=0)
                every = run_deployment("sync-all/sync-all", timeout=0)
                wait_for(lambda: True if held.held >= 2 or any(waiting_lines(prefect_api, entity_runs(began))
                                                                .values()) else None,
                         "both runs at the planning system's read, or one waiting for the other", timeout_s=240)
                held.release.set()
                states = [wait_for(lambda run=run: final_state(run.id), "the two runs", timeout_s=240)
                          for run in (own, every)]
            store = StateStore(settings.state_path)
            assert states == ["COMPLETED", "COMPLETED"], [(r.status, r.message) for r in store.runs(ENTITY)]
            records = store.record_states(ENTITY)
            refused = {key: state.message for key, state in records.items() if state.status != "ok"}
            assert refused == {}, f"{len(refused)} refused, e.g. {next(iter(refused.items()))}"
            landed = [p["project_number"] for p in sandbox.store.records("rp_projects")]
            assert sorted(landed) == [f"RP-{n:03}" for n in range(1, NEW_PROJECTS + 1)]
    finally:
        held.release.set()
        server.should_exit = True
        thread.join(timeout=10)

    # The second run waited, and said for which run (the first), by its flow run's name.
    runs = entity_runs(began)
    names = {str(run.id): run.name for run in runs}
    assert len(names) == 2
    [(waiter, lines)] = [(run_id, lines) for run_id, lines in waiting_lines(prefect_api, runs).items() if lines]
    [holder] = set(names) - {waiter}
    assert names[holder] in lines[0] and holder in lines[0], lines
