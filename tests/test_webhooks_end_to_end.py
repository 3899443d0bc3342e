"""Procore's webhook path end to end: the field edits a change order in the sandbox, the sandbox
delivers the event (twice), the receiver keeps it once and starts one targeted run per change
order entity on the served deployments, and the change order lands in the ERP table and its CSV
export, with no scheduled run. A forged delivery starts nothing.

Real parts only: the sandbox's own deliveries over HTTP, the receiver on a real socket with its
dispatcher thread, ``run_deployment`` against the real Prefect server, a real serve process."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.sorting import FlowRunSort

from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.procore_webhooks import WebhooksApi
from connectors.state import Outcome, StateStore
from flows.change_orders import COMMITMENT_CHANGE_ORDERS
from flows.commitments import SUBCONTRACTS
from flows.projects import PROJECTS
from procore_sync.receiver import PATH, Dispatcher, receiver_app
from procore_sync.settings import Settings
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import run_in_thread, start_in_thread
from tasks.webhooks import configured_resources, install
from tests.conftest import settings_env
from tests.support import served_deployments, wait_for
from tests.webhook_support import FIELD_CREDENTIALS, Caller

SECRET = "hook-secret-e2e-1234"
# Every event is delivered twice: Procore's at-least-once, made certain.
EVERY_EVENT_TWICE = {"webhook_duplicate_rate": 1.0, "webhook_reorder_window": 1,
                     "spike_limit": 1_000_000, "hourly_limit": 1_000_000}


def _as_synced(store: StateStore, entity: str, key: str, procore_id: int) -> None:
    run = store.start_run(entity)
    store.record_outcomes(run, entity, [Outcome(key=key, action="create", status="ok", procore_id=procore_id,
                                                payload_hash="synced")])


def _company(client: ProcoreClient) -> tuple[int, int]:
    """A project and a subcontract, as procore-sync's ERP → Procore sync leaves them."""
    vendor = client.request("POST", "/rest/v1.0/vendors", json={"company_id": 1, "vendor": {"name": "Sub"}}).json()
    project = client.request("POST", "/rest/v1.0/projects",
                             json={"company_id": 1, "project": {"name": "Tower", "origin_id": "P-1"}}).json()
    header = {"number": "SC-1", "title": "Steel", "vendor_id": vendor["id"], "origin_id": "SC-1"}
    [contract] = client.sync("/rest/v1.0/work_order_contracts/sync", scope={"project_id": project["id"]},
                             items=[header]).entities
    return int(project["id"]), int(contract["id"])


def _webhook_runs() -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["webhook"])),
                                     sort=FlowRunSort.START_TIME_ASC, limit=50)


def _exported_titles(settings: Settings) -> list[str]:
    assert settings.export_dir is not None
    path = settings.export_dir / "commitment_change_orders.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return [row["title"] for row in csv.DictReader(file)]


def test_a_change_order_approved_in_the_field_reaches_the_erp_once_through_its_webhook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> None:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**EVERY_EVENT_TWICE), clock) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, tmp_path / "erp.duckdb", tmp_path,
                                PROCORE_SYNC_WEBHOOK_SECRET=SECRET, PROCORE_SYNC_WEBHOOK_COALESCE_S="0.2",
                                PROCORE_SYNC_WEBHOOK_APPLICATION_IDS=f'["{SandboxConfig().application_id}"]')
        with ProcoreClient(settings, clock=clock, sleep=clock.advance) as client:
            project_id, contract_id = _company(client)
        store = StateStore(settings.state_path)
        _as_synced(store, PROJECTS.name, "P-1", project_id)
        _as_synced(store, SUBCONTRACTS.name, "SC-1", contract_id)

        dispatcher, stop = Dispatcher(settings, store), threading.Event()
        server, thread, url = run_in_thread(receiver_app(settings, store, dispatcher.wake), "webhook-receiver")
        dispatching = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
        dispatching.start()
        monkeypatch.setenv("PROCORE_SYNC_WEBHOOK_URL", url + PATH)
        settings = Settings()
        try:
            api_client = ProcoreClient(settings, clock=clock, sleep=clock.advance)
            api = WebhooksApi(api_client, settings.company_id)
            hook_id = install(api, settings, configured_resources(settings)).hook_id
            with served_deployments(prefect_api):
                field = Caller(sandbox, FIELD_CREDENTIALS)
                body = {"change_order": {"contract_id": contract_id, "title": "Extra steel", "status": "approved"}}
                change_order = field.call("POST", f"/rest/v1.0/projects/{project_id}/commitment_change_orders",
                                          body=body, status=201)
                sandbox.app.state.sandbox.webhooks.settle(timeout_s=20)

                sink = ErpSink(settings.erp_path, settings.export_dir)
                wait_for(lambda: next((row for row in sink.rows(COMMITMENT_CHANGE_ORDERS.header)
                                       if row["procore_id"] == change_order["id"]), None),
                         "the change order in the ERP table")
                runs = wait_for(lambda: runs if len(runs := _webhook_runs()) == 2
                                and all(r.state and r.state.is_final() for r in runs) else None,
                                "both change order runs to finish")
                assert sorted(r.state.type.value for r in runs) == ["COMPLETED", "COMPLETED"]
                assert _exported_titles(settings) == ["Extra steel"]

                events = store.webhook_events()
                delivered = [d for d in api.deliveries(hook_id, "any", 100) if d.get("outcome") == "ok"]
                assert len(delivered) == 2 * len(events)  # each event arrived twice, kept once
                assert {e.status for e in events} == {"started"}

                forged = requests.post(url + PATH, json={**events[0].payload, "ulid": "01FORGED"},
                                       headers={"Authorization": "Bearer guessed"}, timeout=10)
                assert forged.status_code == 401
                dispatcher.dispatch()
                assert len(_webhook_runs()) == 2
        finally:
            api_client.close()
            stop.set()
            dispatcher.wake()
            server.should_exit = True
            thread.join(timeout=10)
