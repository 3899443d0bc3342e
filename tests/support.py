"""Run the real engine inside a real Prefect flow with an injected clock and sleep.

The flows themselves build their client with real time; these tests hand the engine a client
whose waits advance a manual clock shared with the sandbox, so quota windows and retry backoffs
pass without real sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from prefect import flow
from prefect.logging.handlers import APILogWorker

from connectors.erp import DuckDbErpSource
from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from flows.vendors import VENDORS
from procore_sync.settings import Settings
from tasks.engine import Runtime, run_entity, utc_now
from tasks.report import RunSummary
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
