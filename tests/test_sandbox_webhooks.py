"""Procore's webhooks in the sandbox: hooks, triggers, events, deliveries, over real HTTP.

A real sandbox on a real port with a manual clock, and a real local receiver (``webhook_support``)
that records what arrives. Time moves only by ``clock.advance``; a test waits for the sandbox's
delivery worker to go idle (``settle``), never for time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tests.webhook_support import FIELD_CREDENTIALS, Caller, Receiver, receiving

HOOKS = "/rest/v1.0/webhooks/hooks"
EXACT = {"webhook_duplicate_rate": 0.0, "webhook_reorder_window": 1}  # one delivery each, in order
FIELDS = {
    "id", "ulid", "timestamp", "metadata", "user_id", "company_id", "project_id", "api_version",
    "event_type", "resource_name", "resource_id",
}
METADATA = {"source_user_id", "source_project_id", "source_operation_id", "source_company_id", "source_application_id"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


def serve(clock: ManualClock, **config: Any) -> SandboxServer:
    return start_in_thread(SandboxConfig(**config), clock)


def settle(server: SandboxServer) -> None:
    server.app.state.sandbox.webhooks.settle(timeout_s=20)


def install(api: Caller, url: str, *triggers: tuple[str, str], secret: str = "Bearer s3cret-hook-12345") -> int:
    hook = {"api_version": "v2", "namespace": "procore-sync", "destination_url": url,
            "destination_headers": {"Authorization": secret}}
    hook_id = api.call("POST", HOOKS, body={"company_id": 1, "hook": hook}, status=201)["id"]
    for resource_name, event_type in triggers:
        trigger = {"resource_name": resource_name, "event_type": event_type}
        body = {"company_id": 1, "api_version": "v2", "trigger": trigger}
        api.call("POST", f"{HOOKS}/{hook_id}/triggers", body=body, status=201)
    return hook_id


def create_vendor(api: Caller, name: str) -> int:
    body = {"company_id": 1, "vendor": {"name": name, "is_active": True}}
    return int(api.call("POST", "/rest/v1.0/vendors", body=body, status=201)["id"])


def deliveries(api: Caller, hook_id: int, status: str = "any") -> list[dict[str, Any]]:
    params = {"company_id": 1, "filters[status]": status}
    return list(api.call("GET", f"{HOOKS}/{hook_id}/deliveries", params=params))


# --- events ----------------------------------------------------------------------------------


def test_every_change_of_a_subscribed_resource_is_delivered_with_procores_fields(
    clock: ManualClock, receiver: Receiver
) -> None:
    with serve(clock, **EXACT) as server:
        api = Caller(server)
        install(api, receiver.url, ("Company Vendors", "create"), ("Company Vendors", "update"), ("Cost Codes", "create"))
        vendor_id = create_vendor(api, "Acme")
        api.call("PATCH", f"/rest/v1.0/vendors/{vendor_id}", body={"company_id": 1, "vendor": {"name": "Acme 2"}})
        api.call("PATCH", f"/rest/v1.0/vendors/{vendor_id}", body={"company_id": 1, "vendor": {"name": "Acme 2"}})
        field = Caller(server, FIELD_CREDENTIALS)  # a person in Procore's web UI, no application
        field.call("PATCH", f"/rest/v1.0/vendors/{vendor_id}", body={"company_id": 1, "vendor": {"name": "Acme 3"}})
        project = api.call("POST", "/rest/v1.0/projects", body={"company_id": 1, "project": {"name": "Tower"}}, status=201)
        settle(server)
        arrivals = receiver.arrivals

    config = SandboxConfig()
    assert [a.headers["Authorization"] for a in arrivals] == ["Bearer s3cret-hook-12345"] * 4
    create, update, by_field, cost_code = (arrival.event for arrival in arrivals)
    assert set(create) == FIELDS and set(create["metadata"]) == METADATA
    assert (create["event_type"], update["event_type"], by_field["event_type"]) == ("create", "update", "update")
    assert {create["resource_id"], update["resource_id"]} == {vendor_id}
    assert create["resource_name"] == "Company Vendors" and create["company_id"] == 1 and create["project_id"] is None
    assert create["api_version"] == "v2.0" and len(create["ulid"]) == 26 and create["ulid"] != update["ulid"]
    assert create["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert create["metadata"]["source_application_id"] == config.application_id
    assert create["metadata"]["source_user_id"] == create["user_id"] == config.user_id
    assert by_field["metadata"]["source_application_id"] is None
    assert by_field["metadata"]["source_user_id"] == config.other_clients[0].user_id
    # The project itself has no trigger; the cost code its template seeds does, in its project.
    assert (cost_code["resource_name"], cost_code["project_id"]) == ("Cost Codes", project["id"])


def test_events_come_at_least_once_and_not_in_order(clock: ManualClock, receiver: Receiver) -> None:
    with serve(clock, webhook_duplicate_rate=0.3, webhook_reorder_window=4, seed=5) as server:
        api = Caller(server)
        install(api, receiver.url, ("Company Vendors", "create"))
        updates = [{"origin_id": f"V-{n}", "name": f"Vendor {n}"} for n in range(12)]
        entities = api.call("PATCH", "/rest/v1.0/vendors/sync", body={"company_id": 1, "updates": updates})["entities"]
        settle(server)
        events = receiver.events()

    created = [entity["id"] for entity in entities]
    assert sorted({event["resource_id"] for event in events}) == sorted(created)  # none lost
    copies = Counter(event["ulid"] for event in events)
    assert max(copies.values()) == 2 and len(events) > len(created)  # some sent twice
    first_seen = list(dict.fromkeys(event["resource_id"] for event in events))
    assert first_seen != sorted(first_seen)  # not in the order of the changes


def test_a_failing_endpoint_pauses_its_queue_backs_off_and_recovers(clock: ManualClock, receiver: Receiver) -> None:
    receiver.statuses = [500, 503, 500]
    with serve(clock, **EXACT) as server:
        api = Caller(server)
        hook_id = install(api, receiver.url, ("Company Vendors", "create"))
        create_vendor(api, "First")
        create_vendor(api, "Second")
        attempts_at: list[int] = []
        for step in (0, 0.5, 0.5, 1.5, 0.5, 3.5, 0.5):  # backoff 1 s, 2 s, 4 s after each failure
            clock.advance(step)
            settle(server)
            attempts_at.append(len(receiver.arrivals))
        failing = deliveries(api, hook_id, "failing")
        outcomes = [delivery["outcome"] for delivery in deliveries(api, hook_id)]

    assert attempts_at == [1, 1, 2, 2, 3, 3, 5]
    first, *_ = receiver.events()
    # Paused: the first event is retried alone; the second waits for it, then goes at once.
    assert [event["ulid"] for event in receiver.events()[:4]] == [first["ulid"]] * 4
    assert receiver.events()[4]["resource_id"] != first["resource_id"]
    assert failing == []  # a success resets the endpoint
    assert sorted(outcomes) == ["ok", "ok", "retried", "retried", "retried"]


def test_a_queue_failing_for_12_hours_is_discarded(clock: ManualClock, receiver: Receiver) -> None:
    receiver.statuses = [500] * 1000
    with serve(clock, token_ttl_s=86_400, **EXACT) as server:
        api = Caller(server)
        hook_id = install(api, receiver.url, ("Company Vendors", "create"))
        create_vendor(api, "First")
        create_vendor(api, "Second")
        settle(server)
        hours = 0
        while not deliveries(api, hook_id, "discarded"):
            assert deliveries(api, hook_id, "failing"), f"nothing failing after {hours} h"
            clock.advance(3600)  # never shorter than the backoff, which stops growing at 1 h
            hours += 1
            settle(server)
        discarded = deliveries(api, hook_id, "discarded")
        receiver.statuses = []
        create_vendor(api, "Third")
        settle(server)
        last = receiver.events()[-1]

    assert hours == 12
    assert {delivery["event"]["resource_name"] for delivery in discarded} == {"Company Vendors"}
    assert len(discarded) == 2 and {d["outcome"] for d in discarded} == {"discarded"}
    assert last["resource_name"] == "Company Vendors"  # the endpoint is healthy again, unpaused


def test_the_answer_timeout_counts_as_a_failure(clock: ManualClock) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    try:
        with serve(clock, webhook_timeout_s=0.2, **EXACT) as server:
            api = Caller(server)
            hook_id = install(api, url, ("Company Vendors", "create"))
            create_vendor(api, "Slow")
            settle(server)
            [delivery] = deliveries(api, hook_id)
    finally:
        silent.close()
    assert delivery["outcome"] == "retried" and "timed out" in delivery["response_error"].lower()


def test_dropped_deliveries_never_arrive(clock: ManualClock, receiver: Receiver) -> None:
    with serve(clock, **EXACT) as server:
        api = Caller(server)
        install(api, receiver.url, ("Company Vendors", "create"))
        put = api.session.put(f"{server.url}/_sandbox/webhooks", json={"drop_rate": 1.0}, timeout=10)
        assert put.json()["drop_rate"] == 1.0
        create_vendor(api, "Lost")
        settle(server)
        assert receiver.arrivals == []


# --- hooks and triggers ----------------------------------------------------------------------


def test_hooks_and_triggers_are_procores_resources(clock: ManualClock, receiver: Receiver) -> None:
    with serve(clock) as server:
        api = Caller(server)
        hook_id = install(api, receiver.url, ("Company Vendors", "create"))
        [hook] = api.call("GET", HOOKS, params={"company_id": 1, "namespace": "procore-sync"})
        assert api.call("GET", HOOKS, params={"company_id": 1, "namespace": "someone-else"}) == []
        bulk = {"company_id": 1, "api_version": "v2", "triggers": [
            {"resource_name": "Projects", "event_type": "create"},
            {"resource_name": "Projects", "event_type": "update"},
        ]}
        created = api.call("POST", f"{HOOKS}/{hook_id}/triggers/bulk", body=bulk)["success"]
        listed = api.call("GET", f"{HOOKS}/{hook_id}/triggers", params={"company_id": 1})
        api.call("DELETE", f"{HOOKS}/{hook_id}/triggers/bulk",
                 body={"company_id": 1, "trigger_ids": [trigger["id"] for trigger in created]})
        after_bulk_delete = api.call("GET", f"{HOOKS}/{hook_id}/triggers", params={"company_id": 1})
        api.call("DELETE", f"{HOOKS}/{hook_id}/triggers/{after_bulk_delete[0]['id']}", params={"company_id": 1})
        refused = api.call("POST", f"{HOOKS}/{hook_id}/triggers", status=422, body={
            "company_id": 1, "api_version": "v2", "trigger": {"resource_name": "Projects", "event_type": "delete"}})
        api.call("DELETE", f"{HOOKS}/{hook_id}", params={"company_id": 1})
        gone = api.call("GET", HOOKS, params={"company_id": 1})
        violations = server.app.state.contract_violations

    assert hook["destination_url"] == receiver.url and hook["owned_by_company_id"] == 1
    assert hook["destination_headers"]["Authorization"] == "*****12345"  # Procore shows the last 5
    assert sorted((t["resource_name"], t["event_type"]) for t in listed) == [
        ("Company Vendors", "CREATE"), ("Projects", "CREATE"), ("Projects", "UPDATE")]
    assert [t["resource_name"] for t in after_bulk_delete] == ["Company Vendors"]
    assert "event_type" in refused["errors"]  # Procore sends no delete event for projects
    assert gone == [] and violations == []
