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
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from uuid import UUID

import httpx
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, FlowRun
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from connectors.state import StateStore
from procore_sync.errors import TransientError

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
    _ensure_limit(name)
    with ExitStack() as held:
        _take(held, name, entity, store, log)
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


def _ensure_limit(name: str) -> None:
    """The limit of one slot, created on first use (two first runs may race to create it)."""
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name=name, limit=1)
        except ObjectAlreadyExists:
            pass  # the other one created it


def _take(held: ExitStack, name: str, entity: str, store: StateStore,
          log: logging.Logger | logging.LoggerAdapter) -> None:
    """Take the slot at once if it is free; otherwise name the holder in the log, then wait."""
    holder: FlowRun | None = None
    for look in range(LOOKS):
        try:
            # The first try answers at once; the later ones wait out one Retry-After each.
            held.enter_context(_lease(name, max_retries=0 if look == 0 else 1))
            return
        except ConcurrencySlotAcquisitionError as exc:
            if not _taken(exc):
                raise
        if (holder := _holder(entity, store)) is not None:
            break
    log.warning(_waiting_message(entity, name, holder))
    try:
        held.enter_context(_lease(name, timeout_seconds=WAIT_S))
    except TimeoutError as exc:
        raise RunLockTimeout(f"waited {WAIT_S / 3600:g} h for {_describe(holder)} of {entity} to finish "
                             f"(lock {name!r})", entity=entity) from exc
    log.info("%s: the other run finished; this run goes on", entity)


def _lease(name: str, *, max_retries: int | None = None,
           timeout_seconds: float | None = None) -> AbstractContextManager[None]:
    # strict: a limit that cannot be found must stop the run, not let it through unlocked; and a
    # run whose lease could not be renewed stops rather than run beside the next holder.
    return concurrency(name, occupy=1, strict=True, lease_duration=LEASE_S, holder=_me(),
                       max_retries=max_retries, timeout_seconds=timeout_seconds,
                       raise_on_lease_renewal_failure=True)


def _taken(exc: ConcurrencySlotAcquisitionError) -> bool:
    """Whether the server refused because the slot is held (423 Locked), not for another reason."""
    cause = exc.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == httpx.codes.LOCKED


def _me() -> ConcurrencyLeaseHolder | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


def _holder(entity: str, store: StateStore) -> FlowRun | None:
    """The flow run holding the lock: the newest run the state has as running whose flow run is
    running too (a crashed run may have left its row at running)."""
    me = _me()
    candidates = [run.flow_run_id for run in store.runs(entity, limit=RECENT_RUNS)
                  if run.status == "running" and run.flow_run_id and (me is None or run.flow_run_id != str(me.id))]
    with get_client(sync_client=True) as client:
        for flow_run_id in candidates:
            try:
                flow_run = client.read_flow_run(UUID(flow_run_id))
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
