"""retry-failed-runs with a real serve process: deployment runs fail on a faulty Procore, then
come back to Completed with the same run ids once it is healthy again."""

from __future__ import annotations

from uuid import UUID

import pytest
import requests

from flows.maintenance import RetryFailedRunsOptions, retry_failed_runs
from sandbox.server import SandboxServer
from tests.conftest import SampleErp, settings_env
from tests.support import final_state, finished, served_deployments, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_failed_runs_come_back_completed_with_the_same_ids(
    sandbox: SandboxServer, small_erp: SampleErp, tmp_path, monkeypatch, prefect_api: str
) -> None:
    settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_MAX_ATTEMPTS="1")
    with served_deployments(prefect_api, "vendors", "customers"):
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
