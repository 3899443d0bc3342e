"""Runs that died say so (issue 12, point 9): a run killed mid-way becomes ``crashed`` at the next
start of its entity, and ``status`` and ``history`` show it; a run still running is left alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
import requests
from prefect import flow, get_client
from prefect.states import Crashed, Running
from typer.testing import CliRunner

from connectors.state import StateStore
from flows.entities import sync_vendors
from app.cli import app
from tests.support import free_killed_run_lock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.liveness import ProcessId, mark_dead_runs
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")


class Hold:
    """The sandbox's added latency, made a gate: while armed, every /rest/ call waits until
    released, so a child process is caught mid-run for certain, without timing."""

    def __init__(self) -> None:
        self.reached, self.released = threading.Event(), threading.Event()

    async def __call__(self, _seconds: float) -> None:
        self.reached.set()
        await asyncio.to_thread(self.released.wait, 120)

    def arm(self) -> None:
        self.reached.clear()
        self.released.clear()


@contextmanager
def held_sync(sandbox: SandboxServer, hold: Hold, prefect_api: str) -> Iterator[subprocess.Popen]:
    """`procore-sync sync vendors` in a child process, held at its first Procore call after the
    run started; killed on the way out, and the sandbox let go."""
    hold.arm()
    requests.put(f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 1}, timeout=10).raise_for_status()
    child = subprocess.Popen([sys.executable, "-m", "app.cli", "sync", "vendors"],
                             env=os.environ | {"PREFECT_API_URL": prefect_api},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert hold.reached.wait(120), "the child never reached Procore"
        yield child
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        free_killed_run_lock("vendors")
        requests.put(f"{sandbox.url}/_sandbox/faults", json={"latency_ms": 0}, timeout=10).raise_for_status()
        hold.released.set()


def cli_json(*args: str) -> list[dict]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return [row for line in result.output.splitlines() if line.strip() for row in _rows(json.loads(line))]


def _rows(value: dict | list) -> list[dict]:
    return value if isinstance(value, list) else [value]


def test_runs_that_died_say_so(small_erp: SampleErp, tmp_path: Path, monkeypatch, prefect_api: str) -> None:
    hold = Hold()
    with start_in_thread(SandboxConfig(spike_limit=10_000), sleep=hold) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path)
        with held_sync(sandbox, hold, prefect_api):
            [killed] = StateStore(settings.state_path).runs("vendors")
            assert killed.status == "running"
        # SIGKILLed: nothing recorded its end, and Prefect still has its flow run Running.

        summary = sync_vendors(options=SyncOptions())

        assert summary.status == "completed"
        store = StateStore(settings.state_path)
        [crashed] = [r for r in store.runs("vendors") if r.run_id == killed.run_id]
        assert crashed.status == "crashed", crashed
        assert "gone" in (crashed.message or "") and crashed.finished_at is not None
        [vendors] = [row for row in cli_json("status") if row["entity"] == "vendors"]
        assert vendors["last_status"] == "completed"
        assert vendors["last_crashed"]["run_id"] == killed.run_id
        history = cli_json("history", "--entity", "vendors", "--limit", "1000")
        events = [row for row in history if row["action"] == "run crashed"]
        assert [killed.run_id in row["message"] for row in events] == [True]

        # A run still running in another process is never called crashed.
        with held_sync(sandbox, hold, prefect_api):
            [alive] = [r for r in store.runs("vendors") if r.status == "running"]
            assert mark_dead_runs(store, "vendors", None, print) == []
            assert store.runs("vendors")[0].status == "running"
        assert mark_dead_runs(store, "vendors", None, print) == [alive.run_id]


def test_a_run_elsewhere_is_judged_by_its_flow_run(tmp_path: Path) -> None:
    """Another host's process cannot be seen from here: Prefect's word decides, and a run that
    may be running is left alone."""
    store = StateStore(tmp_path / "state.duckdb")
    elsewhere = ProcessId("another-host", "another-boot", 7, "1").to_json()

    @flow
    def probe() -> None: ...

    with get_client(sync_client=True) as client:
        running = client.create_flow_run(probe, state=Running())
        crashed = client.create_flow_run(probe, state=Crashed())
    runs = {what: store.start_run("vendors", flow_run_id=flow_run_id, process=elsewhere)
            for what, flow_run_id in [("gone", str(uuid4())), ("running", str(running.id)),
                                      ("crashed", str(crashed.id)), ("no flow run", None)]}

    assert sorted(mark_dead_runs(store, "vendors", None, print)) == sorted([runs["gone"], runs["crashed"]])
    found = {run.run_id: run for run in store.runs("vendors")}
    assert "no longer exists in Prefect" in (found[runs["gone"]].message or "")
    assert "is Crashed in Prefect" in (found[runs["crashed"]].message or "")
    assert found[runs["running"]].status == found[runs["no flow run"]].status == "running"
    # The flow run this process runs now, retried: its earlier attempt is over.
    assert mark_dead_runs(store, "vendors", str(running.id), print) == [runs["running"]]
