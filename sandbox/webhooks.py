"""Procore's webhooks: hooks, triggers, the events changes cause, and their deliveries.

As Procore documents them (reference "Webhooks"; Procore's "How Webhooks Work" and "Set Up
Webhooks"): a **hook** is a destination URL with headers, owned by a company or a project, in a
namespace; its **triggers** name a resource (``Company Vendors``, ``Budget Changes``...) and an
event type (create, update, delete). Every change the store commits to a record with a webhook
resource name (``RESOURCE_NAMES``) becomes one **event** in Procore's v2.0 ("legacy") payload,
queued for each hook with a matching trigger; ``metadata`` names the application and user of the
token that made the change (``sandbox.auth.CURRENT_ACTOR``). No record body, no signature: only
the hook's own headers.

A **delivery worker** (one thread, started with the first hook) POSTs each event, one hook's
queue at a time, as Procore's delivery does:

- an answer other than 2xx within ``webhook_timeout_s`` (5 s) fails; the endpoint's queue then
  pauses: the same event is retried alone after 1 s, 2 s, 4 s... up to 1 h between attempts, and
  the events behind it wait. A success resets the counters and the queue resumes;
- after 12 h of failing, the queue is flushed: its events are marked ``discarded``;
- at least once, not in order: a share of the events delivered is sent once more
  (``webhook_duplicate_rate``), and each delivery is drawn from the first
  ``webhook_reorder_window`` queued events. Both draws come from ``seed``, so a test sees the
  same duplicates and order every time;
- ``drop_rate`` (``PUT /_sandbox/webhooks``) loses events before they are queued: the gap a
  delayed or dropped notification leaves, which the scheduled sync must close.

Every attempt is a delivery row (``outcome`` ok, retried or discarded), newest first in
Procore's deliveries list. Time is the sandbox's clock: with a ``ManualClock`` the worker waits
for ``advance`` (it is told), so tests move time instead of sleeping, and ``settle`` waits until
nothing is due at the clock's present.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field

from sandbox.auth import CURRENT_ACTOR
from sandbox.config import SandboxConfig
from sandbox.store import PROJECT_KINDS, Change

# Store kinds → Procore's webhook resource names (reference: the resources relevant to sync).
# Change orders show as their packages: Procore names no change order resource.
RESOURCE_NAMES: dict[str, str] = {
    "projects": "Projects",
    "vendors": "Company Vendors",
    "users": "Company Users",
    "standard_cost_code_lists": "Standard Cost Code Lists",
    "standard_cost_codes": "Standard Cost Codes",
    "line_item_types": "Line Item Types",
    "cost_codes": "Cost Codes",
    "sub_jobs": "Sub Jobs",
    "budget_line_items": "Budget Line Items",
    "budget_changes": "Budget Changes",
    "budget_change_adjustment_line_items": "Budget Change Adjustment Line Items",
    "budget_modifications": "Budget Modifications",
    "prime_contracts": "Prime Contracts",
    "prime_contract_line_items": "Prime Contract Line Items",
    "work_order_contracts": "Work Order Contracts",
    "work_order_contract_line_items": "Work Order Contract Line Items",
    "purchase_order_contracts": "Purchase Order Contracts",
    "purchase_order_contract_line_items": "Purchase Order Contract Line Items",
    "change_order_packages": "Change Order Packages",
    "direct_costs": "Direct Costs",
    "direct_cost_line_items": "Direct Cost Line Items",
}
EVENT_TYPES = ("create", "update", "delete")
# Event types a resource cannot be subscribed to (its "except" in Procore's resources list).
EXCEPT: dict[str, frozenset[str]] = {
    "Projects": frozenset({"delete"}),
    "Company Vendors": frozenset({"delete"}),
    "Company Users": frozenset({"delete"}),
    "Standard Cost Code Lists": frozenset({"update", "delete"}),
}
# Hook api_version → the payload version the sandbox sends (the legacy v2.0 only).
PAYLOAD_VERSIONS = {"v2": "v2.0", "v2.0": "v2.0"}
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 3600.0
DISCARD_AFTER_S = 12 * 3600.0
IDLE_CHECK_S = 1.0  # a real clock's worker looks again at least this often
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BODY_KEPT = 1000


class DeliverySettings(BaseModel):
    """What ``PUT /_sandbox/webhooks`` may change while the sandbox runs."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(gt=0)
    duplicate_rate: float = Field(ge=0.0, le=1.0)
    reorder_window: int = Field(ge=1)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)


@dataclass
class Hook:
    id: int
    company_id: int
    project_id: int | None  # None: the company's hook, for every project's events too
    namespace: str
    destination_url: str
    destination_headers: dict[str, str]
    api_version: str
    user_id: int | None

    def view(self) -> dict[str, Any]:
        # Procore shows the Authorization header masked to its last 5 characters.
        headers = {name: "*****" + value[-5:] for name, value in self.destination_headers.items()}
        return {
            "id": self.id, "api_version": self.api_version, "namespace": self.namespace,
            "destination_url": self.destination_url, "destination_headers": headers,
            "owned_by_company_id": self.company_id, "owned_by_project_id": self.project_id,
            "owned_by_user_id": self.user_id,
        }

    def covers(self, event: dict[str, Any]) -> bool:
        if self.project_id is not None:
            return bool(event["project_id"] == self.project_id)
        return bool(event["company_id"] == self.company_id)


@dataclass(frozen=True)
class Trigger:
    id: int
    hook_id: int
    resource_name: str
    event_type: str
    company_id: int | None
    project_id: int | None
    user_id: int | None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "webhook_hook_id": self.hook_id, "resource_name": self.resource_name,
            "event_type": self.event_type.upper(),  # as Procore's trigger schema spells it
            "company_id": self.company_id, "project_id": self.project_id, "user_id": self.user_id,
        }


@dataclass
class Delivery:
    id: int
    hook_id: int
    event: dict[str, Any]
    outcome: str  # ok | retried | discarded
    started_at: float
    completed_at: float
    response_status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: str | None = None
    response_error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "event_id": self.event["id"], "event": self.event, "outcome": self.outcome,
            "started_at": stamp(self.started_at), "completed_at": stamp(self.completed_at),
            "response_status": self.response_status, "response_headers": self.response_headers,
            "response_body": self.response_body, "response_error": self.response_error,
        }


@dataclass
class Queued:
    event: dict[str, Any]
    again: bool = False  # the second sending of a delivered event (never sent a third time)


@dataclass
class Queue:
    """One hook's events; ``head`` is the one being delivered (and retried while it fails)."""

    waiting: list[Queued] = field(default_factory=list)
    head: Queued | None = None
    failures: int = 0
    failing_since: float | None = None
    retry_at: float | None = None

    def due_at(self, now: float) -> float | None:
        if self.head is None and not self.waiting:
            return None
        if self.failing_since is None or self.retry_at is None:
            return now
        return min(self.retry_at, self.failing_since + DISCARD_AFTER_S)


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status: int | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    error: str | None = None


def stamp(unix_seconds: float) -> str:
    """Procore's event time: ISO 8601 UTC with microseconds."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ulid(unix_seconds: float, rng: random.Random) -> str:
    """A ULID: 48 bits of milliseconds, 80 random bits, in Crockford's base 32 (26 characters)."""
    value = (int(unix_seconds * 1000) << 80) | rng.getrandbits(80)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def post_event(url: str, headers: dict[str, str], event: dict[str, Any], timeout_s: float) -> Attempt:
    """One delivery: Procore's POST of the event, judged by its status within the timeout."""
    sent = {"Content-Type": "application/json", "User-Agent": "Procore-Webhooks (sandbox)", **headers}
    try:
        response = requests.post(url, data=json.dumps(event), headers=sent, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        return Attempt(ok=False, error=f"{type(exc).__name__}: {exc}")
    return Attempt(
        ok=200 <= response.status_code < 300, status=response.status_code,
        headers=dict(response.headers), body=response.text[:BODY_KEPT],
    )


Post = Callable[[str, dict[str, str], dict[str, Any], float], Attempt]


class Webhooks:
    """The hooks, triggers and deliveries of one sandbox, and its delivery worker."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float], post: Post = post_event) -> None:
        self._config, self._clock, self._post = config, clock, post
        self.settings = DeliverySettings(
            timeout_s=config.webhook_timeout_s, duplicate_rate=config.webhook_duplicate_rate,
            reorder_window=config.webhook_reorder_window,
        )
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._busy = False
        self._clear()

    def _clear(self) -> None:
        self.hooks: dict[int, Hook] = {}
        self.triggers: dict[int, Trigger] = {}
        self.deliveries: list[Delivery] = []
        self._queues: dict[int, Queue] = {}
        self._settled: set[tuple[int, int]] = set()  # (hook, event) delivered or discarded
        self._next_id = 1
        # Two generators: events are made in the server's thread, deliveries in the worker's.
        self._event_rng = random.Random(self._config.seed)
        self._delivery_rng = random.Random(self._config.seed + 1)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # --- configuration (called by the routes, under ``lock``) -----------------------------------

    @property
    def lock(self) -> threading.Condition:
        return self._cond

    def add_hook(self, hook: Hook) -> None:
        self.hooks[hook.id] = hook
        self._queues[hook.id] = Queue()
        self._start()

    def remove_hook(self, hook_id: int) -> None:
        del self.hooks[hook_id]
        self._queues.pop(hook_id, None)
        for trigger_id in [t.id for t in self.triggers.values() if t.hook_id == hook_id]:
            del self.triggers[trigger_id]

    def reset(self) -> None:
        with self._cond:
            self._clear()

    # --- events ------------------------------------------------------------------------------

    def on_commit(self, changes: list[Change]) -> None:
        """The store's listener: queue an event per change for every hook with its trigger."""
        with self._cond:
            if not self.hooks:
                return
            for change in changes:
                name = RESOURCE_NAMES.get(change.kind)
                if name is not None:
                    self._publish(self._event(change, name))
            self._cond.notify_all()

    def _event(self, change: Change, resource_name: str) -> dict[str, Any]:
        now, actor = self._clock(), CURRENT_ACTOR.get()
        project_id = change.scope_id if change.kind in PROJECT_KINDS else None
        user_id = actor.user_id if actor else None
        metadata = {
            "source_user_id": user_id, "source_project_id": project_id, "source_operation_id": None,
            "source_company_id": change.company_id,
            "source_application_id": actor.application_id if actor else None,
        }
        return {
            "id": self.new_id(), "ulid": ulid(now, self._event_rng), "timestamp": stamp(now),
            "metadata": metadata, "user_id": user_id, "company_id": change.company_id,
            "project_id": project_id, "api_version": "v2.0", "event_type": change.event,
            "resource_name": resource_name, "resource_id": change.record_id,
        }

    def _publish(self, event: dict[str, Any]) -> None:
        subscribed = {
            trigger.hook_id for trigger in self.triggers.values()
            if (trigger.resource_name, trigger.event_type) == (event["resource_name"], event["event_type"])
        }
        for hook_id in sorted(subscribed):
            if self.hooks[hook_id].covers(event) and self._event_rng.random() >= self.settings.drop_rate:
                self._queues[hook_id].waiting.append(Queued(event))

    # --- the worker --------------------------------------------------------------------------

    def wake(self) -> None:
        """The clock moved (a manual clock tells us): look at what is due."""
        with self._cond:
            self._cond.notify_all()

    def settle(self, timeout_s: float = 30.0) -> None:
        """Return once no delivery is under way or due at the clock's present."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._busy or self._due_now():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("webhook deliveries did not settle")
                self._cond.wait(left)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s + 5)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def _due_now(self) -> bool:
        now = self._clock()
        return any((due := queue.due_at(now)) is not None and due <= now for queue in self._queues.values())

    def _run(self) -> None:
        while True:
            with self._cond:
                work = self._take()
                while work is None:
                    if self._stopped:
                        return
                    self._cond.notify_all()  # idle: wake whoever settles
                    self._cond.wait(self._idle_wait())
                    work = self._take()
                self._busy = True
                url, headers, timeout_s = work[1].destination_url, dict(work[1].destination_headers), self.settings.timeout_s
            started = self._clock()
            attempt = self._post(url, headers, work[2].event, timeout_s)
            with self._cond:
                self._finish(work[0], work[2], started, attempt)
                self._busy = False
                self._cond.notify_all()

    def _idle_wait(self) -> float:
        now = self._clock()
        dues = [due for queue in self._queues.values() if (due := queue.due_at(now)) is not None]
        return min([IDLE_CHECK_S, *(max(due - now, 0.0) for due in dues)])

    def _take(self) -> tuple[int, Hook, Queued] | None:
        """The next event to send (discarding queues failing for 12 h on the way), or None."""
        if self._stopped:
            return None
        now = self._clock()
        for hook_id, queue in self._queues.items():
            due = queue.due_at(now)
            if due is None or due > now:
                continue
            if queue.failing_since is not None and now - queue.failing_since >= DISCARD_AFTER_S:
                self._discard(hook_id, queue, now)
                continue
            if queue.head is None:
                window = min(self.settings.reorder_window, len(queue.waiting))
                queue.head = queue.waiting.pop(self._delivery_rng.randrange(window))
            return hook_id, self.hooks[hook_id], queue.head
        return None

    def _finish(self, hook_id: int, sent: Queued, started: float, attempt: Attempt) -> None:
        queue = self._queues.get(hook_id)
        if queue is None or queue.head is not sent:
            return  # the hook was deleted (or reset) meanwhile
        now = self._clock()
        outcome = "ok" if attempt.ok else "retried"
        self.deliveries.append(Delivery(
            self.new_id(), hook_id, sent.event, outcome, started, now,
            attempt.status, attempt.headers, attempt.body, attempt.error,
        ))
        if attempt.ok:
            queue.head, queue.failures, queue.failing_since, queue.retry_at = None, 0, None, None
            self._settled.add((hook_id, sent.event["id"]))
            if not sent.again and self._delivery_rng.random() < self.settings.duplicate_rate:
                queue.waiting.append(Queued(sent.event, again=True))
            return
        queue.failures += 1
        queue.failing_since = queue.failing_since if queue.failing_since is not None else started
        queue.retry_at = now + min(FIRST_BACKOFF_S * 2 ** (queue.failures - 1), MAX_BACKOFF_S)

    def _discard(self, hook_id: int, queue: Queue, now: float) -> None:
        flushed = ([queue.head] if queue.head is not None else []) + queue.waiting
        for queued in flushed:
            if queued.again:
                continue  # already delivered once
            self.deliveries.append(Delivery(
                self.new_id(), hook_id, queued.event, "discarded", now, now,
                response_error="the endpoint failed for 12 hours: its queue was flushed",
            ))
            self._settled.add((hook_id, queued.event["id"]))
        self._queues[hook_id] = Queue()

    # --- the deliveries list -----------------------------------------------------------------

    def listed_deliveries(self, hook_id: int, status: str) -> list[Delivery]:
        """A hook's deliveries, newest first: ``any``, ``successful``, ``discarded``, or
        ``failing`` (failed attempts of events not yet delivered nor discarded)."""
        rows = [delivery for delivery in reversed(self.deliveries) if delivery.hook_id == hook_id]
        if status == "successful":
            return [row for row in rows if row.outcome == "ok"]
        if status == "discarded":
            return [row for row in rows if row.outcome == "discarded"]
        if status == "failing":
            return [row for row in rows
                    if row.outcome == "retried" and (hook_id, row.event["id"]) not in self._settled]
        return rows
