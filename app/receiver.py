"""`procore-sync webhooks serve`: Procore's webhook deliveries in, targeted runs out.

Procore POSTs each event to the hook's destination with the Authorization header the hook was
created with (no signature: that header is the only proof) and waits 5 s for a 2xx, delivering
at least once, in no particular order, retrying with a backoff when the answer fails. So:

1. **Receive** (``receiver_app``): check the header, keep the event in the state store keyed
   on its ULID, answer. Nothing else happens before the answer, so it comes well within Procore's
   5 s; a state file busy for longer than ``RECEIVE_LOCK_S`` is answered 503, and Procore
   delivers the event again. A delivery sent twice is one row.
2. **Dispatch** (``Dispatcher``), in a thread: once a burst of events has settled for
   ``webhook_coalesce_s``, every pending event is decided (``tasks.events.decide``) and each
   entity with records to read gets one targeted run of its deployment, for exactly those
   records. ``run_deployment``'s idempotency key is made of the events' keys, so a dispatch
   retried after a failure, or made by a second receiver, never starts a second run for the same
   events. Echoes of procore-sync's own writes are dropped; drift is reported; both are kept.

Events stay pending while Prefect cannot be reached; the next round (a new event, or
``IDLE_S``) takes them again.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, Header
from fastapi.responses import JSONResponse
from prefect.deployments import run_deployment

from connectors.state import StateStore, StateStoreBusy, WebhookEvent, utc_now
from deployments import deployment_name
from flows import ENTITY_FLOWS, enabled
from procore_sync.settings import Settings
from tasks.events import decide
from tasks.inbound import KEY_SEPARATOR
from tasks.spec import SyncOptions
from tasks.webhooks import authorization

log = logging.getLogger(__name__)

PATH = "/procore/webhooks"
# Procore gives up on an answer after 5 s; past this the event is refused (503) and redelivered.
RECEIVE_LOCK_S = 3.0
# Events left pending (Prefect unreachable, the receiver restarted) are taken again this often.
IDLE_S = 30.0

StartRun = Callable[[str, SyncOptions, str], str]


def event_from(payload: dict[str, Any]) -> WebhookEvent:
    """Procore's payload as a stored event; ValueError naming what is missing."""
    key = payload.get("ulid") or payload.get("id")
    missing = [name for name in ("resource_name", "resource_id", "event_type") if payload.get(name) in (None, "")]
    if not key:
        missing.insert(0, "ulid")
    if missing:
        raise ValueError(f"not a Procore webhook event: no {', '.join(missing)}")
    project = payload.get("project_id")
    return WebhookEvent(event_key=str(key), received_at=utc_now(), resource_name=str(payload["resource_name"]),
                        event_type=str(payload["event_type"]), resource_id=str(payload["resource_id"]),
                        project_id=None if project in (None, "") else str(project), payload=payload)


def receiver_app(settings: Settings, store: StateStore, wake: Callable[[], None]) -> FastAPI:
    """The HTTP side: one route for Procore's deliveries (``PATH``) and one for a load balancer."""
    expected = authorization(settings).encode()
    app = FastAPI(title="procore-sync webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    # Plain functions: FastAPI runs them in its thread pool, so a state file taking its time
    # does not hold the event loop.
    @app.post(PATH)
    def receive(payload: dict[str, Any] = Body(...), authorization: str = Header("")) -> JSONResponse:
        if not secrets.compare_digest(authorization.encode(), expected):
            log.warning("webhook delivery refused: wrong Authorization header")
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            event = event_from(payload)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            new = store.add_webhook_event(event)
        except StateStoreBusy:
            return JSONResponse({"error": "busy, deliver again"}, status_code=503)
        if new:
            wake()
        return JSONResponse({"event": event.event_key, "duplicate": not new})

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def start_deployment_run(entity: str, options: SyncOptions, idempotency_key: str, profile: str | None = None) -> str:
    """A run of the entity's deployment (served or on a work pool), not waited for; with a
    profile, of that company's deployment."""
    flow = ENTITY_FLOWS[entity][1]
    parameters = {"options": options.model_dump(mode="json"), **({"profile": profile} if profile else {})}
    run = run_deployment(f"{flow.name}/{deployment_name(entity, profile)}", parameters=parameters,
                         idempotency_key=idempotency_key, timeout=0, as_subflow=False, tags=["webhook"])
    return str(run.id)


@dataclass
class Started:
    """One targeted run the dispatcher started, and the events it answers."""

    entity: str
    flow_run_id: str
    options: SyncOptions
    events: list[str] = field(default_factory=list)


class Dispatcher:
    """Pending events → decisions → one targeted run per entity (see the module's docstring)."""

    def __init__(self, settings: Settings, store: StateStore, start: StartRun = start_deployment_run) -> None:
        self.settings, self.store, self.start = settings, store, start
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Dispatch each burst of events once it settled, until ``stop``."""
        while not stop.is_set():
            self._wake.wait(IDLE_S)
            self._wake.clear()
            if stop.wait(self.settings.webhook_coalesce_s):
                return
            try:
                self.dispatch()
            except Exception as exc:  # noqa: BLE001 - the events stay pending for the next round
                log.warning("webhook events left pending, tried again in %g s: %s: %s", IDLE_S,
                            type(exc).__name__, exc)

    def dispatch(self) -> list[Started]:
        """Decide every pending event; start the runs they need; settle them."""
        events = self.store.webhook_events(status="pending")
        if not events:
            return []
        specs = [spec for name, (spec, _) in ENTITY_FLOWS.items() if enabled(name, self.settings)]
        projects = {str(s.procore_id): key for key, s in self.store.record_states("projects").items() if s.procore_id}
        wanted: dict[str, _Wanted] = defaultdict(_Wanted)
        for event in events:
            decisions = decide(event, inbound=[s for s in specs if s.inbound],
                               outbound=[s for s in specs if not s.inbound], projects=projects,
                               own_application_ids=self.settings.own_application_ids,
                               key_of=lambda entity, procore_id: self.store.keys_of_procore_ids(
                                   entity, [procore_id]).get(procore_id))
            runs = [d for d in decisions if d.verdict == "run"]
            for decision in runs:
                wanted[str(decision.entity)].add(event.event_key, decision.erp_key, decision.project)
            if not runs:
                first = decisions[0]
                log.info("webhook event %s (%s %s %s): %s", event.event_key, event.resource_name,
                         event.event_type, event.resource_id, first.message)
                self.store.settle_webhook_events([event.event_key], first.verdict, entity=first.entity,
                                                 message=first.message)
        started = [self._start(entity, want) for entity, want in wanted.items()]
        self._settle_started(started)
        return started

    def _start(self, entity: str, want: _Wanted) -> Started:
        options = want.options()
        digest = hashlib.sha256("\n".join(sorted(want.events)).encode()).hexdigest()[:32]
        flow_run_id = self.start(entity, options, f"webhook:{entity}:{digest}")
        log.info("%s: run %s started for %d webhook event(s): %s", entity, flow_run_id, len(want.events),
                 ", ".join(options.erp_keys or options.projects))
        return Started(entity, flow_run_id, options, sorted(want.events))

    def _settle_started(self, started: list[Started]) -> None:
        runs_of: dict[str, list[Started]] = defaultdict(list)
        for run in started:
            for key in run.events:
                runs_of[key].append(run)
        for key, runs in runs_of.items():
            self.store.settle_webhook_events(
                [key], "started", entity=", ".join(r.entity for r in runs),
                flow_run_id=", ".join(r.flow_run_id for r in runs),
                message="read again by " + ", ".join(f"{r.entity} run {r.flow_run_id}" for r in runs))


@dataclass
class _Wanted:
    """What one entity's run must read: records by ERP key, or whole projects."""

    events: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)

    def add(self, event_key: str, erp_key: str | None, project: str | None) -> None:
        self.events.add(event_key)
        if erp_key is not None:
            self.keys.add(erp_key)
        if project is not None:
            self.projects.add(project)

    def options(self) -> SyncOptions:
        """A project read covers the records named in it: one run, never two."""
        if not self.projects:
            return SyncOptions(erp_keys=sorted(self.keys))
        keyed = {key.rpartition(KEY_SEPARATOR)[0] for key in self.keys}
        return SyncOptions(projects=sorted(self.projects | keyed))


def serve(settings: Settings, *, ready: Callable[[str], None] | None = None) -> None:
    """Receive and dispatch until interrupted (Ctrl-C, SIGTERM)."""
    authorization(settings)  # no secret, no receiver: it would take any delivery
    store = StateStore.open(settings, lock_timeout_s=RECEIVE_LOCK_S)
    dispatcher = Dispatcher(settings, store, partial(start_deployment_run, profile=settings.profile))
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="webhook dispatcher", daemon=True)
    thread.start()
    server = uvicorn.Server(uvicorn.Config(receiver_app(settings, store, dispatcher.wake), host=settings.webhook_host,
                                           port=settings.webhook_port, log_level="warning"))
    if ready is not None:
        ready(f"http://{settings.webhook_host}:{settings.webhook_port}{PATH}")
    try:
        server.run()
    finally:
        stop.set()
        dispatcher.wake()
        thread.join(timeout=IDLE_S)
