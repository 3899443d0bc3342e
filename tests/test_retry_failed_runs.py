"""retry-failed-runs with a real serve process: deployment runs fail on a faulty Procore, then
come back to Completed with the same run ids once it is healthy again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from uuid import UUID

import pytest
import requests
from prefect import get_client
from prefect.deployments import run_deployment

from flows.maintenance import RetryFailedRunsOptions, retry_failed_runs
from sandbox.server import SandboxServer
from tests.conftest import SampleErp, settings_env

pytestmark = pytest.mark.usefixtures("prefect_api")
SERVE = "from procore_sync.runner import serve_forever; from procore_sync.settings import Settings; serve_forever(Settings())"


def wait_for(condition, what: str, timeout_s: float = 120):  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (value := condition()) is not None:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def final_state(run_id: UUID) -> str | None:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state.type.value if state is not None and state.is_final() else None


def deployment_exists(name: str) -> bool | None:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except Exception:
            return None
    return True


def finished(name: str) -> tuple[UUID, str]:
    run = run_deployment(name, timeout=0)
    return run.id, wait_for(lambda: final_state(run.id), f"{name} to finish")


def test_failed_runs_come_back_completed_with_the_same_ids(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch, prefect_api: str
) -> None:
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_MAX_ATTEMPTS="1")
    env = os.environ | {"PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVE], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: deployment_exists("customers/customers"), "the served deployments")
        requests.put(f"{sandbox.url}/_sandbox/faults", json={"error_rate": 1.0}, timeout=10).raise_for_status()
        vendors_run, vendors_state = finished("vendors/vendors")
        early_customers, early_state = finished("customers/customers")
        assert (vendors_state, early_state) == ("FAILED", "FAILED")

        requests.put(f"{sandbox.url}/_sandbox/faults", json={"error_rate": 0.0}, timeout=10).raise_for_status()
        _, later_state = finished("customers/customers")  # made good by a later run: not retried
        assert later_state == "COMPLETED"

        report = {UUID(r.flow_run_id): r for r in retry_failed_runs(options=RetryFailedRunsOptions())}
        assert report[vendors_run].retried and not report[early_customers].retried
        assert wait_for(lambda: final_state(vendors_run), "the retried vendors run") == "COMPLETED"
        assert final_state(early_customers) == "FAILED"
        assert sandbox.store.vendors(1), "the retried run synced the suppliers"
    finally:
        server.terminate()
        server.wait(timeout=30)
