"""No duplicates, nothing lost: faults, a killed process, and a quota spread over several windows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flows.entities import sync_vendors
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env
from tests.support import engine_runtime, flow_run_logs, free_killed_run_lock, run_vendors
from tests.test_vendors_flow import assert_sandbox_holds_exactly, bad_keys

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_lost_responses_and_server_errors_end_with_exactly_the_good_suppliers(
    small_erp: SampleErp, tmp_path, monkeypatch
) -> None:
    config = SandboxConfig(error_rate=0.25, lost_response_rate=0.25, seed=3, spike_limit=10_000)
    with start_in_thread(config) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_BATCH_SIZE="7")
        delays: list[float] = []
        runtime = engine_runtime(settings, sleep=delays.append)
        states = [run_vendors(runtime, return_state=True) for _ in range(3)]

        assert_sandbox_holds_exactly(sandbox, small_erp)
        summaries = [s.result() for s in states if s.is_completed()]
        assert summaries, "no run completed in three attempts"
        assert sum(s.retries for s in summaries) > 0, "the faults never fired: the test proves nothing"
        assert summaries[-1].write_calls == 0


def test_a_sync_killed_while_loading_converges_on_the_next_run(
    small_erp: SampleErp, tmp_path, monkeypatch, prefect_api: str
) -> None:
    # Slow answers keep the child in its load phase long enough to kill it there.
    with start_in_thread(SandboxConfig(latency_ms=150, spike_limit=10_000)) as sandbox:
        settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_BATCH_SIZE="4")
        child = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "sync", "vendors"],
            env=os.environ | {"PREFECT_API_URL": prefect_api},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            landed = wait_for(lambda: len(sandbox.store.vendors(1)) >= 12, child, timeout_s=180)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            free_killed_run_lock("vendors")
        good = len(small_erp.expected["suppliers"]["bad"])
        assert landed and len(sandbox.store.vendors(1)) < small_erp.expected["suppliers"]["keys"] - good

        monkeypatch.setenv("PROCORE_SYNC_BATCH_SIZE", "1000")
        summary = sync_vendors(options=SyncOptions())
        assert summary.status == "completed"
        assert_sandbox_holds_exactly(sandbox, small_erp)


def wait_for(condition, child: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_sync_that_needs_several_quota_windows_waits_visibly_and_completes(
    small_erp: SampleErp, tmp_path, monkeypatch, prefect_api: str
) -> None:
    clock = ManualClock()
    config = SandboxConfig(hourly_limit=50, hourly_window_s=20, spike_limit=20, spike_window_s=10)
    with start_in_thread(config, clock=clock) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_BATCH_SIZE="1")
        runtime = engine_runtime(settings, sleep=clock.advance, clock=clock)
        state = run_vendors(runtime, return_state=True)

        assert state.is_completed(), state.message
        summary = state.result()
        assert summary.api_calls > config.hourly_limit, "the sync must need more than one window"
        assert summary.failed == len(bad_keys(small_erp))
        assert summary.waited_s >= config.hourly_window_s
        assert_sandbox_holds_exactly(sandbox, small_erp)
        logs = flow_run_logs(prefect_api, str(state.state_details.flow_run_id))
        assert any(line.startswith("waiting for Procore quota until") for line in logs), logs
