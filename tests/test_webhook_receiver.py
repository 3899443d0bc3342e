"""The webhook receiver: what each Procore event asks for (``tasks.events.decide``), and the
receiver over real HTTP with a real state file: Authorization checked, duplicates kept once,
one targeted run per entity for a burst of events, echoes and drift settled without a run.

The runs' start is the one thing recorded instead of done here (the end-to-end test starts real
deployment runs from the sandbox's own deliveries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.state import Outcome, StateStore, WebhookEvent, utc_now
from flows.change_orders import COMMITMENT_CHANGE_ORDERS, PRIME_CHANGE_ORDERS
from flows.modified_budget import BUDGET_CHANGES
from flows.vendors import VENDORS
from app.receiver import PATH, Dispatcher, receiver_app
from procore_sync.settings import Settings
from sandbox.server import run_in_thread
from tasks.events import decide
from tasks.spec import SyncOptions

SECRET = "Bearer hook-secret-1234"  # what install puts on the hook for webhook_secret below
OURS = "sandbox-client"


def event(resource: str, resource_id: int, *, kind: str = "update", project: int | None = 501,
          app: str = "field-app", ulid: str = "01J0000000000000000000000A") -> dict[str, Any]:
    return {"id": 1, "ulid": ulid, "timestamp": "2026-12-04T10:00:00Z", "resource_name": resource,
            "resource_id": resource_id, "event_type": kind, "company_id": 1, "project_id": project,
            "api_version": "v2", "user_id": 9,
            "metadata": {"source_application_id": app, "source_user_id": 9, "source_company_id": 1}}


def stored(payload: dict[str, Any]) -> WebhookEvent:
    project = payload["project_id"]
    return WebhookEvent(payload["ulid"], utc_now(), payload["resource_name"], payload["event_type"],
                        str(payload["resource_id"]), None if project is None else str(project), payload)


def decisions(payload: dict[str, Any], known: dict[tuple[str, str], str] | None = None) -> list[tuple[str, ...]]:
    found = decide(stored(payload), inbound=[COMMITMENT_CHANGE_ORDERS, PRIME_CHANGE_ORDERS, BUDGET_CHANGES],
                   outbound=[VENDORS], projects={"501": "P-1001"}, own_application_ids={OURS},
                   key_of=lambda entity, procore_id: (known or {}).get((entity, procore_id)))
    return [(d.verdict, d.entity or "", d.erp_key or d.project or "", d.message) for d in found]


def test_a_budget_change_edited_in_the_field_is_read_again_by_its_erp_key() -> None:
    found = decisions(event("Budget Changes", 77))
    assert [(v, e, k) for v, e, k, _ in found] == [("run", "budget_changes", "P-1001|77")]


def test_a_line_or_a_change_orders_package_names_no_record_so_its_project_is_read() -> None:
    found = decisions(event("Budget Change Adjustment Line Items", 5))
    assert [(v, e, k) for v, e, k, _ in found] == [("run", "budget_changes", "P-1001")]
    found = decisions(event("Change Order Packages", 77))  # the package's id, not the change order's
    assert [(v, e, k) for v, e, k, _ in found] == [("run", "commitment_change_orders", "P-1001"),
                                                  ("run", "prime_change_orders", "P-1001")]


def test_procore_syncs_own_writes_are_echoes_and_start_nothing() -> None:
    assert decisions(event("Budget Changes", 77, app=OURS))[0][0] == "echo"


def test_events_outside_what_procore_sync_syncs_are_ignored_with_why() -> None:
    (verdict, _, _, message), = decisions(event("Change Order Packages", 77, project=999))
    assert verdict == "ignored" and "project 999" in message
    (verdict, _, _, message), = decisions(event("Punch Items", 3))
    assert verdict == "ignored" and "'Punch Items'" in message


def test_a_supplier_changed_in_procore_is_drift_naming_the_record_and_what_to_do() -> None:
    known = {("vendors", "42"): "S-00017"}
    (verdict, entity, key, message), = decisions(event("Company Vendors", 42, project=None), known)
    assert (verdict, entity, key) == ("drift", "vendors", "S-00017")
    assert "edited in Procore; the ERP is the master" in message
    (_, _, _, message), = decisions(event("Company Vendors", 42, kind="delete", project=None), known)
    assert "deleted in Procore" in message and "recreate_deleted" in message
    (verdict, _, _, message), = decisions(event("Company Vendors", 43, kind="create", project=None), known)
    assert verdict == "drift" and "no record procore-sync wrote" in message


# --- the receiver over HTTP -------------------------------------------------------------------


class Receiver:
    """The receiver's app on a real socket, its state file, and the runs its dispatcher started."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(home=tmp_path, webhook_secret="hook-secret-1234", webhook_coalesce_s=0)
        self.store = StateStore(self.settings.state_path)
        run_id = self.store.start_run("projects")
        self.store.record_outcomes(run_id, "projects", [Outcome("P-1001", "create", "ok", procore_id=501,
                                                                payload_hash="h")])
        self.started: list[tuple[str, SyncOptions, str]] = []
        self.dispatcher = Dispatcher(self.settings, self.store, start=self.start)
        self.server, self.thread, url = run_in_thread(
            receiver_app(self.settings, self.store, self.dispatcher.wake), "webhook-receiver")
        self.url = url + PATH

    def start(self, entity: str, options: SyncOptions, idempotency_key: str) -> str:
        self.started.append((entity, options, idempotency_key))
        return f"run-{len(self.started)}"

    def deliver(self, payload: dict[str, Any], authorization: str = SECRET) -> requests.Response:
        return requests.post(self.url, json=payload, headers={"Authorization": authorization}, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def receiver(tmp_path: Path) -> Any:
    running = Receiver(tmp_path)
    yield running
    running.stop()


def test_a_forged_delivery_is_refused_and_kept_nowhere(receiver: Receiver) -> None:
    answer = receiver.deliver(event("Change Order Packages", 77), authorization="Bearer guessed")
    assert answer.status_code == 401
    assert receiver.store.webhook_events() == []
    assert receiver.dispatcher.dispatch() == [] and receiver.started == []


def test_an_event_delivered_twice_starts_one_run_for_its_record(receiver: Receiver) -> None:
    first = receiver.deliver(event("Budget Changes", 77))
    second = receiver.deliver(event("Budget Changes", 77))
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (second.status_code, second.json()["duplicate"]) == (200, True)
    receiver.dispatcher.dispatch()
    assert [(entity, options.erp_keys) for entity, options, _ in receiver.started] == [
        ("budget_changes", ["P-1001|77"])]
    receiver.deliver(event("Budget Changes", 77))  # Procore's retry after the dispatch
    receiver.dispatcher.dispatch()
    assert len(receiver.started) == 1
    (settled,) = receiver.store.webhook_events()
    assert (settled.status, settled.entity, settled.flow_run_id) == ("started", "budget_changes", "run-1")


def test_a_package_event_starts_both_change_order_entities_for_its_project(receiver: Receiver) -> None:
    receiver.deliver(event("Change Order Packages", 77))
    receiver.dispatcher.dispatch()
    assert [(entity, options.projects) for entity, options, _ in receiver.started] == [
        ("commitment_change_orders", ["P-1001"]), ("prime_change_orders", ["P-1001"])]
    (settled,) = receiver.store.webhook_events()
    assert (settled.status, settled.flow_run_id) == ("started", "run-1, run-2")


def test_a_burst_of_events_is_one_run_per_entity_with_a_key_made_of_its_events(receiver: Receiver) -> None:
    for number, record in enumerate((77, 78, 77)):
        receiver.deliver(event("Budget Changes", record, ulid=f"01J00000000000000000000{number:03d}"))
    receiver.deliver(event("Change Order Packages", 5, ulid="01J000000000000000000000B1"))
    receiver.dispatcher.dispatch()
    runs = {entity: (options.erp_keys, options.projects, key) for entity, options, key in receiver.started}
    assert runs["budget_changes"][:2] == (["P-1001|77", "P-1001|78"], [])
    assert runs["commitment_change_orders"][:2] == ([], ["P-1001"])
    keys = [key for _, _, key in runs.values()]
    assert len(set(keys)) == 3 and all(key.startswith("webhook:") for key in keys)


def test_a_project_read_covers_the_records_named_in_the_same_burst(receiver: Receiver) -> None:
    receiver.deliver(event("Budget Changes", 6, ulid="01J000000000000000000000B2"))
    receiver.deliver(event("Budget Change Adjustment Line Items", 5, ulid="01J000000000000000000000B1"))
    receiver.dispatcher.dispatch()
    assert [(entity, options.erp_keys, options.projects) for entity, options, _ in receiver.started] == [
        ("budget_changes", [], ["P-1001"])]


def test_echoes_and_drift_are_settled_without_a_run(receiver: Receiver) -> None:
    receiver.deliver(event("Budget Changes", 77, app=OURS, ulid="01J000000000000000000000E1"))
    receiver.deliver(event("Company Vendors", 42, project=None, ulid="01J000000000000000000000E2"))
    receiver.dispatcher.dispatch()
    assert receiver.started == []
    assert [(e.status, e.entity) for e in receiver.store.webhook_events()] == [("echo", None), ("drift", "vendors")]


def test_a_delivery_that_is_no_procore_event_is_refused_naming_what_is_missing(receiver: Receiver) -> None:
    answer = receiver.deliver({"ulid": "x", "resource_name": "Change Order Packages"})
    assert answer.status_code == 422
    assert answer.json()["error"] == "not a Procore webhook event: no resource_id, event_type"
