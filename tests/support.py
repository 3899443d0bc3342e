"""Run the real engine inside a real Prefect flow with an injected clock and sleep.

The flows themselves build their client with real time; these tests hand the engine a client
whose waits advance a manual clock shared with the sandbox, so quota windows and retry backoffs
pass without real sleeps.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID
from datetime import datetime
from typing import Any

import requests
from prefect import flow, get_client
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogWorker

from connectors.erp import DuckDbErpSource
from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors import run_lock
from connectors.state import Outcome, StateStore
from flows.vendors import VENDORS
from procore_sync.settings import Settings
from tasks.engine import Runtime, run_entity
from tasks.report import RunSummary
from tasks.run import utc_now
from tasks.spec import SyncOptions


def engine_runtime(settings: Settings, *, run_clock: Callable[[], datetime] = utc_now, **client_kwargs: Any) -> Runtime:
    """``client_kwargs`` go to the client (its ``clock`` and ``sleep``); ``run_clock`` says when runs start."""
    def make_client(on_wait: Callable) -> ProcoreClient:
        return ProcoreClient(settings, on_wait=on_wait, **client_kwargs)

    assert settings.state_path and settings.erp_path and settings.export_dir
    return Runtime(settings, StateStore(settings.state_path), DuckDbErpSource(settings.erp_path), make_client,
                   sink=ErpSink(settings.erp_path, settings.export_dir), clock=run_clock)


def run_vendors(runtime: Runtime, options: SyncOptions | None = None, *, return_state: bool = False) -> Any:
    @flow(name="vendors-under-test")
    def vendors_under_test() -> RunSummary:
        return run_entity(VENDORS, options or SyncOptions(), runtime)

    return vendors_under_test(return_state=return_state)


def free_killed_run_lock(entity: str, company_id: int = 1) -> None:
    """Free the run lock a killed process held, as the Prefect server's lease sweep (its
    repossessor service) does within a minute: the test server runs in ephemeral mode, without
    that service, so the next run of the entity would otherwise wait for good."""
    run_lock.free(company_id, [entity])


def flow_run_logs(api_url: str, flow_run_id: str) -> list[str]:
    APILogWorker.drain_all(timeout=10)
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200, "offset": 0, "sort": "TIMESTAMP_ASC"}
    answer = requests.post(f"{api_url}/logs/filter", json=body, timeout=30)
    answer.raise_for_status()
    return [entry["message"] for entry in answer.json()]


def flow_run_artifacts(api_url: str, flow_run_id: str) -> dict[str, dict]:
    """The newest artifact of each type on a flow run (Prefect 3.8's sync client cannot read
    artifacts, so this asks the API)."""
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 50, "offset": 0, "sort": "CREATED_DESC"}
    answer = requests.post(f"{api_url}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    return {artifact["type"]: artifact for artifact in answer.json()}


def heartbeats(api_url: str, flow_run_ids: set[str]) -> set[str]:
    """Which of the flow runs sent Prefect's heartbeat event (as far as the server has stored)."""
    body = {"filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                       "resource": {"id": [f"prefect.flow-run.{i}" for i in flow_run_ids]}}, "limit": 50}
    answer = requests.post(f"{api_url}/events/filter", json=body, timeout=30)
    answer.raise_for_status()
    return {event["resource"]["prefect.resource.id"].removeprefix("prefect.flow-run.")
            for event in answer.json()["events"]}


# --- deployments served by a real process ------------------------------------------------------

# The flows to serve are the arguments. Registering all 54 deployments costs the serve process
# and the Prefect server about 8 s of CPU, so a test serves what it runs.
SERVE = ("import sys; from app.runner import serve_forever; from procore_sync.settings import Settings; "
         "serve_forever(Settings(), flows=sys.argv[1:])")


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 120) -> Any:
    """Poll ``condition`` until it returns something other than None."""
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


def _deployment_exists(name: str) -> bool | None:
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
    return True


def finished(name: str, timeout_s: float = 120) -> tuple[UUID, str]:
    """Start a run of deployment ``name`` and wait for its final state."""
    run = run_deployment(name, timeout=0)
    return run.id, wait_for(lambda: final_state(run.id), f"{name} to finish", timeout_s)


@contextmanager
def served_deployments(api_url: str, *flows: str) -> Iterator[None]:
    """The deployments of ``flows`` (flow names), served by a separate process as the demo serves
    them, with the environment of this test; stopped on the way out."""
    assert flows, "name the flows the test runs"
    env = os.environ | {"PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVE, *flows], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def served() -> bool | None:
            assert server.poll() is None, f"the serve process exited ({server.returncode})"
            return all(_deployment_exists(f"{flow}/{flow}") for flow in flows) or None

        wait_for(served, "the served deployments")
        yield
    finally:
        server.terminate()
        server.wait(timeout=30)


def synced_project_and_subcontract(client: ProcoreClient, store: StateStore) -> tuple[int, int]:
    """Project P-1 with subcontract SC-1 in Procore, and the state procore-sync's ERP → Procore
    runs leave of them (each ERP key linked to its Procore id): the Procore ids."""
    vendor = client.request("POST", "/rest/v1.0/vendors", json={"company_id": 1, "vendor": {"name": "Sub"}}).json()
    project = client.request("POST", "/rest/v1.0/projects",
                             json={"company_id": 1, "project": {"name": "Tower", "origin_id": "P-1"}}).json()
    header = {"number": "SC-1", "title": "Steel", "vendor_id": vendor["id"], "origin_id": "SC-1"}
    [contract] = client.sync("/rest/v1.0/work_order_contracts/sync", scope={"project_id": project["id"]},
                             items=[header]).entities
    for entity, key, procore_id in (("projects", "P-1", project["id"]), ("subcontracts", "SC-1", contract["id"])):
        run = store.start_run(entity)
        store.record_outcomes(run, entity, [Outcome(key=key, action="create", status="ok", procore_id=procore_id,
                                                    payload_hash="synced")])
    return int(project["id"]), int(contract["id"])
