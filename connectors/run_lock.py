"""One run of an entity per Procore company at a time, on every host.

A deployment's ``concurrency_limit: 1`` holds for that deployment only, while sync-all's and
resync-failed's subflows, the entity's own schedule and the CLI all run the same entity too. Two
runs at once both list Procore before either creates, so both create, or the loser records a
false refusal. So every run of an entity first takes the one slot of a Prefect global
concurrency limit named for the company and the entity: it lives on the Prefect server, so it
holds across processes and hosts. The slot is a lease, renewed in the background while the run
works and released however the run ends (completed, failed, deferred for quota by ``Pause``); a
killed process stops renewing, and the server takes the slot back when the lease expires.

A run that finds the slot taken says which run it waits for (found among the state store's
running runs of the entity whose flow run is still running) and waits, bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, FlowRun
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from connectors.state import StateStore
from procore_sync.errors import ConfigError, TransientError

# A killed process's slot is free again within this plus the server's lease sweep (15 s): about
# a minute, less than any schedule's interval. A live run renews it every 45 s (3/4 of it), and
# Prefect's three renewal attempts (seconds apart) fit well inside the remaining 15 s.
LEASE_S = 60.0
# Longer than the longest run we know of (a full resync of a large company within its quota),
# shorter than a working day: a holder stuck for longer shows up as a failed run the same day.
WAIT_S = 4 * 3600.0
# How many times a waiting run looks for the holder before it says it waits for an unnamed run:
# the holder records itself a moment after it takes the slot; each look waits for the server's
# Retry-After (a couple of seconds).
LOOKS = 5
# Enough of the newest runs of an entity to find the running one among crashed leftovers.
RECENT_RUNS = 10


class RunLockTimeout(TransientError):
    """Another run of the entity held the lock for longer than a run waits."""

    hint = ("open the run named above in the Prefect UI: if it is stuck, cancel it (its lock goes with "
            "it within a minute); the entity's next run then proceeds.")


def lock_name(company_id: int, entity: str) -> str:
    return f"procore-sync-run:{company_id}:{entity}"


@contextmanager
def one_run_at_a_time(entity: str, company_id: int, store: StateStore,
                      log: logging.Logger | logging.LoggerAdapter) -> Iterator[None]:
    """Hold the entity's lock for the company while the block runs; wait for it when taken."""
    name = lock_name(company_id, entity)
    with ExitStack() as held:
        prefect = held.enter_context(get_client(sync_client=True))  # one client for the lock's calls
        _ensure_limit(prefect, name)
        _take(held, prefect, name, entity, store, log)
        yield


def free(company_id: int, entities: Iterable[str]) -> None:
    """Free the entities' locks at once, as the Prefect server's repossessor does within a minute
    of a killed holder's lease expiring. Only for a server without that service (Prefect's test
    harness and ephemeral servers run none), and only when no run of those entities is alive."""
    with get_client(sync_client=True) as client:
        for entity in entities:
            try:
                client.update_global_concurrency_limit(lock_name(company_id, entity),
                                                       GlobalConcurrencyLimitUpdate(active_slots=0))
            except ObjectNotFound:
                pass  # never taken


def _ensure_limit(prefect: SyncPrefectClient, name: str) -> None:
    """The limit of one slot, created on first use (two first runs may race to create it)."""
    try:
        prefect.upsert_global_concurrency_limit_by_name(name=name, limit=1)
    except ObjectAlreadyExists:
        pass  # the other one created it


def _take(held: ExitStack, prefect: SyncPrefectClient, name: str, entity: str, store: StateStore,
          log: logging.Logger | logging.LoggerAdapter) -> None:
    """Take the slot at once if it is free; otherwise name the holder in the log, then wait."""
    holder: FlowRun | None = None
    lease_id, retry_after = _try(prefect, name)
    for _look in range(LOOKS):
        if lease_id is not None or (holder := _holder(prefect, entity, store)) is not None:
            break
        time.sleep(retry_after)  # the holder records itself a moment after it takes the slot
        lease_id, retry_after = _try(prefect, name)
    if lease_id is None:
        log.warning(_waiting_message(entity, name, holder))
        deadline = time.monotonic() + WAIT_S
        while lease_id is None:
            if time.monotonic() + retry_after > deadline:
                raise RunLockTimeout(f"waited {WAIT_S / 3600:g} h for {_describe(holder)} of {entity} to finish "
                                     f"(lock {name!r})", entity=entity)
            time.sleep(retry_after)
            lease_id, retry_after = _try(prefect, name)
        log.info("%s: the other run finished; this run goes on", entity)
    held.callback(prefect.release_concurrency_slots_with_lease, lease_id)
    # Renewed in the background while the run works; a lease that cannot be renewed stops the
    # run rather than let it go on beside the next holder (Prefect's own renewal and cancel).
    held.enter_context(maintain_concurrency_lease(lease_id, LEASE_S, raise_on_lease_renewal_failure=True))


def _try(prefect: SyncPrefectClient, name: str) -> tuple[UUID | None, float]:
    """The slot's lease if it is free; else None and how long the server asks us to wait.

    With the run's own Prefect client, not Prefect's ``concurrency()``: that one starts a
    service with a client of its own for each lock and makes another to release it, two TLS
    contexts and a thread per entity run (measured: a second of a no-change sync-all's local
    time at scale 8, bench/delta.py)."""
    try:
        answer = prefect.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=LEASE_S, holder=_me())
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != httpx.codes.LOCKED:
            raise
        return None, float(exc.response.headers.get("Retry-After", 1.0))
    body = answer.json()
    if not body.get("limits"):  # a limit not found must stop the run, not let it through unlocked
        raise ConfigError(f"the run lock's limit {name!r} does not exist on the Prefect server")
    return UUID(str(body["lease_id"])), 0.0


def _me() -> ConcurrencyLeaseHolder | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


def _holder(prefect: SyncPrefectClient, entity: str, store: StateStore) -> FlowRun | None:
    """The flow run holding the lock: the newest run the state has as running whose flow run is
    running too (a crashed run may have left its row at running)."""
    me = _me()
    candidates = [run.flow_run_id for run in store.runs(entity, limit=RECENT_RUNS)
                  if run.status == "running" and run.flow_run_id and (me is None or run.flow_run_id != str(me.id))]
    for flow_run_id in candidates:
        try:
            flow_run = prefect.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            continue
        if flow_run.state is not None and flow_run.state.is_running():
            return flow_run
    return None


def _describe(holder: FlowRun | None) -> str:
    if holder is None:
        return "another run"
    started = f", started {holder.start_time:%Y-%m-%d %H:%M:%S %Z}" if holder.start_time else ""
    return f"run {holder.name!r} (flow run {holder.id}{started})"


def _waiting_message(entity: str, name: str, holder: FlowRun | None) -> str:
    if holder is None:
        return (f"{entity}: waiting for another run of {entity} to finish (lock {name!r}); it is not among "
                "the running runs of this state store (another host, or just starting)")
    return f"{entity}: waiting for {_describe(holder)} to finish: one run of {entity} at a time"
