"""Procore's webhook path end to end: the field edits a change order in the sandbox, the sandbox
delivers the event (twice), the receiver keeps it once and starts one targeted run per change
order entity on the served deployments, and the change order lands in the ERP table and its CSV
export, with no scheduled run. A forged delivery starts nothing.

Real parts only: the sandbox's own deliveries over HTTP, the receiver on a real socket with its
dispatcher thread, ``run_deployment`` against the real Prefect server, a real serve process."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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
from connectors.state import StateStore
from flows import ENTITY_FLOWS
from flows.change_orders import COMMITMENT_CHANGE_ORDERS, PRIME_CHANGE_ORDERS
from app.receiver import PATH, Dispatcher, receiver_app
from procore_sync.settings import Settings
from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, run_in_thread, start_in_thread
from flows import configured_resources
from tasks.webhooks import install, polling_left_to_webhooks
from tests.conftest import settings_env
from tests.support import served_deployments, synced_project_and_subcontract, wait_for
from tests.webhook_support import FIELD_CREDENTIALS, Caller, receiving

SECRET = "hook-secret-e2e-1234"
# Every event is delivered twice: Procore's at-least-once, made certain.
EVERY_EVENT_TWICE = {"webhook_duplicate_rate": 1.0, "webhook_reorder_window": 1,
                     "spike_limit": 1_000_000, "hourly_limit": 1_000_000}


def _webhook_runs() -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["webhook"])),
                                     sort=FlowRunSort.START_TIME_ASC, limit=50)


def _exported_titles(settings: Settings) -> list[str]:
    path = settings.export_dir / "commitment_change_orders.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        return [row["title"] for row in csv.DictReader(file)]


@dataclass
class Company:
    """A sandbox on a manual clock holding a project and a subcontract procore-sync synced (the
    state knows both), procore-sync's settings for it, and the field's way in."""

    sandbox: SandboxServer
    clock: ManualClock
    settings: Settings
    store: StateStore
    project_id: int
    contract_id: int

    def field_change_order(self, title: str) -> dict[str, Any]:
        body = {"change_order": {"contract_id": self.contract_id, "title": title, "status": "approved"}}
        path = f"/rest/v1.0/projects/{self.project_id}/commitment_change_orders"
        answer: dict[str, Any] = Caller(self.sandbox, FIELD_CREDENTIALS).call("POST", path, body=body, status=201)
        return answer

    def field_edit(self, change_order_id: int, title: str) -> None:
        path = f"/rest/v1.0/projects/{self.project_id}/commitment_change_orders/{change_order_id}"
        Caller(self.sandbox, FIELD_CREDENTIALS).call("PATCH", path, body={"change_order": {"title": title}})

    def erp_row(self, procore_id: int) -> dict[str, Any] | None:
        sink = ErpSink(self.settings.erp_path, self.settings.export_dir)
        return next((row for row in sink.rows(COMMITMENT_CHANGE_ORDERS.header) if row["procore_id"] == procore_id),
                    None)


@pytest.fixture
def company(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Company]:
    clock = ManualClock()
    with start_in_thread(SandboxConfig(**EVERY_EVENT_TWICE), clock) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, tmp_path / "erp.duckdb", tmp_path,
                                PROCORE_SYNC_WEBHOOK_SECRET=SECRET, PROCORE_SYNC_WEBHOOK_COALESCE_S="0.2",
                                PROCORE_SYNC_WEBHOOK_APPLICATION_IDS=f'["{SandboxConfig().application_id}"]')
        store = StateStore(settings.state_path)
        with ProcoreClient(settings, clock=clock, sleep=clock.advance) as client:
            project_id, contract_id = synced_project_and_subcontract(client, store)
        yield Company(sandbox, clock, settings, store, project_id, contract_id)


def installed(company: Company, monkeypatch: pytest.MonkeyPatch, url: str) -> tuple[WebhooksApi, int]:
    """procore-sync's hook on ``url``, as `procore-sync webhooks install` makes it."""
    monkeypatch.setenv("PROCORE_SYNC_WEBHOOK_URL", url)
    company.settings = Settings()
    client = ProcoreClient(company.settings, clock=company.clock, sleep=company.clock.advance)
    api = WebhooksApi(client, company.settings.company_id)
    return api, install(api, company.settings, configured_resources(company.settings)).hook_id


def test_a_change_order_approved_in_the_field_reaches_the_erp_once_through_its_webhook(
        company: Company, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> None:
    dispatcher, stop = Dispatcher(company.settings, company.store), threading.Event()
    server, thread, url = run_in_thread(receiver_app(company.settings, company.store, dispatcher.wake),
                                        "webhook-receiver")
    dispatching = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    dispatching.start()
    try:
        change_order = company.field_change_order("Steel")  # before the hook: no event, not in the ERP
        api, hook_id = installed(company, monkeypatch, url + PATH)
        with served_deployments(prefect_api, COMMITMENT_CHANGE_ORDERS.name, PRIME_CHANGE_ORDERS.name):
            company.field_edit(change_order["id"], "Extra steel")
            company.sandbox.app.state.sandbox.webhooks.settle(timeout_s=20)

            wait_for(lambda: row if (row := company.erp_row(change_order["id"])) and row["title"] == "Extra steel"
                     else None, "the edited change order in the ERP table")
            runs = wait_for(lambda: runs if len(runs := _webhook_runs()) == 2
                            and all(r.state and r.state.is_final() for r in runs) else None,
                            "both change order runs to finish")
            assert sorted(r.state.type.value for r in runs) == ["COMPLETED", "COMPLETED"]
            assert _exported_titles(company.settings) == ["Extra steel"]

            events = company.store.webhook_events()
            delivered = [d for d in api.deliveries(hook_id, "any", 100) if d.get("outcome") == "ok"]
            assert len(delivered) == 2 * len(events)  # each event arrived twice, kept once
            assert {e.status for e in events} == {"started"}

            forged = requests.post(url + PATH, json={**events[0].payload, "ulid": "01FORGED"},
                                   headers={"Authorization": "Bearer guessed"}, timeout=10)
            assert forged.status_code == 401
            dispatcher.dispatch()
            assert len(_webhook_runs()) == 2
    finally:
        stop.set()
        dispatcher.wake()
        server.should_exit = True
        thread.join(timeout=10)


def test_a_delivery_lost_on_the_way_is_brought_by_the_sweep(company: Company, monkeypatch: pytest.MonkeyPatch,
                                                            prefect_api: str) -> None:
    """Healthy webhooks let sync-all skip polling the change orders until their sweep is due;
    an event Procore never sent (dropped) reaches the ERP at the sweep."""
    sweep_s = 3600
    monkeypatch.setenv("PROCORE_SYNC_WEBHOOK_SWEEP_S", str(sweep_s))
    with receiving() as receiver:
        installed(company, monkeypatch, receiver.url)
        polled = ENTITY_FLOWS[COMMITMENT_CHANGE_ORDERS.name][1]
        polled()  # the last full read: the cursor
        requests.put(f"{company.sandbox.url}/_sandbox/webhooks", json={"drop_rate": 1.0}, timeout=10).raise_for_status()
        change_order = company.field_change_order("Lost event")
        company.sandbox.app.state.sandbox.webhooks.settle(timeout_s=20)
        assert receiver.events() == []

        entities = [COMMITMENT_CHANGE_ORDERS.name]
        left, why = polling_left_to_webhooks(company.settings, entities, configured_resources(company.settings))
        assert left == {COMMITMENT_CHANGE_ORDERS.name}, why

        company.clock.advance(sweep_s)
        left, why = polling_left_to_webhooks(company.settings, entities, configured_resources(company.settings))
        assert left == set(), why
        polled()
        assert company.erp_row(change_order["id"]) is not None
