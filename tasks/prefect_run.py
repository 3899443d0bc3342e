"""Where a run meets Prefect: its tasks, its logger, its flow run, and quota deferral.

The run itself (``tasks/run.py``, with ``tasks/ledger.py``, ``tasks/cursor.py`` and
``tasks/reading.py``) knows none of this. Here:

- ``step``: the steps as Prefect tasks over whole batches (never one task per record: a task costs ~10 ms
  of orchestration), with ``retry_whole_task`` as the one retry condition;
- the run's logger (Prefect's inside a flow run, the standard one outside);
- quota deferral: a deployment's own flow run that would wait long for Procore's quota is handed
  back to Prefect as ``AwaitingQuota`` (``QuotaDeferred`` → ``defer_flow_run``);
- ``until_deferred``: the run within its time limit, deferred when its quota wait is;
- ``summary_of``: the summary of a finished entity flow run, from its Prefect state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import Pause
from prefect.states import Scheduled, State
from prefect.utilities.timeout import timeout as prefect_timeout

from connectors.procore import RunOutOfTime
from connectors.quota import QuotaGate, quota_gate
from connectors.state import RunRow, StateStore
from procore_sync.errors import Handling, RunTimeLimitExceeded, SyncError
from procore_sync.settings import Settings
from tasks import report

Step = TypeVar("Step", bound=Callable[..., Any])


def retry_whole_task(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: only transients that no lower layer has retried already.

    HTTP errors carry a URL: the client has spent its bounded retries on them, so retrying
    the task would multiply attempts. Data and config errors are never retried.
    """
    try:
        state.result()
    except SyncError as exc:
        return exc.handling is Handling.RETRY and exc.url is None
    except Exception:
        return False
    return False


def log() -> logging.Logger | logging.LoggerAdapter:
    return get_run_logger() if FlowRunContext.get() else logging.getLogger("tasks.engine")


def flow_run_id() -> str | None:
    context = FlowRunContext.get()
    return str(context.flow_run.id) if context and context.flow_run else None


def step(name: str, *, retried: bool = False) -> Callable[[Step], Step]:
    """A step of a run as a Prefect task. ``retried``: a read whose transients no lower layer
    retried gets two more attempts (``retry_whole_task``)."""
    if retried:
        return task(name=name, retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_whole_task,
                    cache_policy=NO_CACHE)
    return task(name=name, cache_policy=NO_CACHE)


def log_quota_wait(until: datetime, message: str) -> None:
    log().warning("waiting for Procore quota until %s: %s", until.astimezone().strftime("%H:%M:%S"), message)


class QuotaDeferred(Exception):
    """Procore's quota is spent for longer than worth holding a process: the run is deferred.

    Not a ``SyncError``: nothing failed, and no layer may retry or record it as a failure; it
    travels up to ``until_deferred``, which hands the flow run back to Prefect as AwaitingQuota.
    """

    def __init__(self, until: datetime, message: str) -> None:
        super().__init__(message)
        self.until = until


def deferrable_run() -> bool:
    """Whether the current flow run is a deployment's own (a worker or serve can resume it)."""
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    return run is not None and run.deployment_id is not None and run.parent_task_run_id is None


def run_quota_gate(settings: Settings) -> QuotaGate | None:
    """The shared budget's gate for this run: a deployment's own run waits for a slot at most
    ``quota_defer_after_s`` and is then deferred, as for Procore's own windows; other runs wait
    at most ``quota_wait_limit_s`` and then fail with what to check (``QuotaUnavailable``)."""
    if not deferrable_run():
        return quota_gate(settings)

    def defer(message: str) -> None:
        until = datetime.now(UTC) + timedelta(seconds=max(settings.quota_defer_after_s, 1.0))
        log_quota_wait(until, message)
        raise QuotaDeferred(until, message)

    return quota_gate(settings, wait_limit_s=settings.quota_defer_after_s, on_timeout=defer)


def quota_waits(settings: Settings) -> Callable[[datetime, str], None]:
    """What a run does when the client must wait for quota: log it, and in a deployment's own
    flow run (a worker or serve can resume it) defer a wait longer than
    ``settings.quota_defer_after_s``. Subflows (sync-all's entities) and runs started by hand
    sleep instead: nothing would pick them up again."""
    deferrable = deferrable_run()

    def on_wait(until: datetime, message: str) -> None:
        log_quota_wait(until, message)
        if deferrable and (until - datetime.now(UTC)).total_seconds() > settings.quota_defer_after_s:
            raise QuotaDeferred(until, message)

    return on_wait


def defer_flow_run(until: datetime, reason: str) -> None:
    """Hand the current flow run back to Prefect, scheduled at ``until`` as ``AwaitingQuota``.

    Same run id and parameters; the process exits cleanly and the runner starts the run again at
    ``until``. It relies on Prefect's ``Pause`` signal (``prefect.exceptions.Pause``, an internal one: a
    flow run that raises it after setting its own Scheduled state ends without failing), so
    ``tests/test_awaiting_quota.py`` covers it through a real serve process.
    """
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with get_client(sync_client=True) as client:
        answer = client.set_flow_run_state(
            context.flow_run.id, Scheduled(scheduled_time=until, name="AwaitingQuota", message=reason), force=True)
    log().warning("deferred until %s (AwaitingQuota): %s", until.astimezone().strftime("%H:%M:%S"), reason)
    raise Pause(state=answer.state)


class Stoppable(Protocol):
    """What ``until_deferred`` asks of a run (``tasks.run.Run``)."""

    def execute(self) -> Any: ...

    def timed_out(self, limit: float) -> RunTimeLimitExceeded: ...

    def deferred(self, until: datetime, reason: str) -> None: ...


def until_deferred(run: Stoppable, limit: float) -> Any:
    """Execute the run within its time limit; when its quota wait is deferred, record that and
    hand the flow run back.

    The limit is enforced where the run waits most: its Procore client ends every call and
    retry wait by the deadline (``ProcoreClient.stop_by``), in whichever thread, without a
    signal. Prefect's ``timeout`` backs it for the other waits (each has its own limit too): an
    alarm in a main thread whose SIGALRM is free (it interrupts a blocked call), else an
    exception sent to the run's thread (sync-all; it lands when the current call returns)."""
    try:
        with prefect_timeout(limit, timeout_exc_type=RunOutOfTime):
            return run.execute()
    except RunOutOfTime:
        raise run.timed_out(limit) from None
    except QuotaDeferred as deferred:
        run.deferred(deferred.until, str(deferred))
        defer_flow_run(deferred.until, str(deferred))
        raise  # not reached: defer_flow_run raises Pause


def summary_of(state: State, entity: str, settings: Settings) -> report.RunSummary:
    """The summary of a finished entity flow run; for a run that raised, read back from the state
    store (which has its counts and message)."""
    if state.is_completed():
        return state.result()
    flow_run_id = str(state.state_details.flow_run_id)
    message = state.message or state.name or "failed"
    runs = [r for r in StateStore.open(settings).runs(entity, limit=5) if r.flow_run_id == flow_run_id]
    if not runs:
        return report.RunSummary(entity=entity, run_id="", flow_run_id=flow_run_id, status="failed", message=message)
    return summary_of_row(runs[0], status="failed", message=runs[0].message or message)


def summary_of_row(run: RunRow, *, status: str | None = None, message: str | None = None) -> report.RunSummary:
    """A run's summary as the state store recorded it (a run in another process, or one that
    raised): its counts, calls, cursor and message."""
    return report.RunSummary(
        entity=run.entity,
        run_id=run.run_id,
        flow_run_id=run.flow_run_id,
        status=status or run.status,
        api_calls=run.api_calls,
        write_calls=run.write_calls,
        cursor_before=_iso(run.cursor_before),
        cursor_after=_iso(run.cursor_after),
        message=message if message is not None else run.message,
        **{k: v for k, v in run.counts.items() if k in report.RunSummary.model_fields},
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
