"""One run of one entity, either direction: the skeleton both share.

check the company and the pairing → plan (the direction's ``Work``: read, map, plan) → record
what needs no call → write → move the cursor → summarize. Outcomes are written to the state store
batch by batch (``Ledger``), so a killed run keeps everything that landed; the cursor moves only
at the end, only when every record of the window either landed or was recorded as failed for a
reason of its own, and never past the run's start (``tasks/cursor.py``).

What differs by direction is a ``Work``: ``tasks.outbound.ErpToProcore`` (ERP rows → Procore) and
``tasks.inbound.ProcoreToErp`` (Procore's changes → the ERP). Prefect stays in
``tasks/prefect_run.py``: the run asks it for its logger, flow run id and quota waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.run_lock import one_run_at_a_time
from connectors.sources import build_sources, close_sources
from connectors.state import StateStore
from procore_sync.errors import Handling, RunTimeLimitExceeded, SyncError
from procore_sync.records import ErpSource, Outcome
from procore_sync.settings import Settings
from tasks import liveness, report
from tasks.actions import Action
from tasks.company import checked_company
from tasks.ledger import Ledger
from tasks.outcomes import outcome_without_call
from tasks.pairing import check_pairing
from tasks.prefect_run import flow_run_id, log, quota_waits, run_quota_gate, until_deferred
from tasks.run_labels import label_run
from tasks.spec import SyncOptions


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Everything a run talks to; tests and benchmarks build their own."""

    settings: Settings
    store: StateStore
    source: ErpSource
    make_client: Callable[[Callable[[datetime, str], None]], ProcoreClient]
    # Where Procore → ERP entities write (None where only ERP → Procore runs).
    sink: ErpSink | None = None
    # When a run starts (cursors never pass it); tests share the sandbox's manual clock.
    clock: Callable[[], datetime] = utc_now


def default_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or Settings()

    def make_client(on_wait: Callable[[datetime, str], None]) -> ProcoreClient:
        return ProcoreClient(settings, before_request=run_quota_gate(settings), on_wait=on_wait,
                             shared_window=True)

    return Runtime(
        settings=settings,
        store=StateStore.open(settings),
        source=build_sources(settings),
        make_client=make_client,
        sink=ErpSink.open(settings),
    )


class Planned(NamedTuple):
    actions: list[Action]
    recorded: list[Outcome]  # outcomes known at planning that are no action (echoes)


class Work(Protocol):
    """What one direction does inside the shared skeleton."""

    direction: str

    def plan(self, client: ProcoreClient, context: dict[str, Any], procore_started: datetime | None) -> Planned: ...

    def write(self, client: ProcoreClient, context: dict[str, Any], writes: list[Action]) -> None: ...

    def cursor_after(self, actions: list[Action]) -> datetime | None: ...

    def accept(self) -> str | None:
        """The run completed: what it held (an upload) is accepted; a note for the summary."""
        ...

    def release(self) -> None:
        """The run ends without completing: what it held goes back."""
        ...


class Run:
    """One run of one entity: started in the state store, executed, finished there."""

    def __init__(self, name: str, options: SyncOptions, runtime: Runtime) -> None:
        self.name, self.options, self.runtime = name, options, runtime
        self.store, self.settings = runtime.store, runtime.settings
        self.started = runtime.clock()
        self.clock_start = time.monotonic()
        self.cursor_before = self.store.get_cursor(name)
        self.flow_run_id = flow_run_id()
        # Runs of this entity killed mid-way still say "running": say "crashed" (tasks/liveness.py).
        liveness.mark_dead_runs(self.store, name, self.flow_run_id, log().warning)
        self.run_id = self.store.start_run(name, flow_run_id=self.flow_run_id,
                                           parameters=options.model_dump(mode="json"),
                                           cursor_before=self.cursor_before,
                                           process=liveness.this_process().to_json())
        liveness.started(self.run_id)
        self.ledger = Ledger(self.store, self.run_id, name)
        self.work: Work | None = None  # set by the direction's Work, which needs the run

    def client(self) -> ProcoreClient:
        """The run's Procore client, whose calls and waits end with the run's time limit."""
        client = self.runtime.make_client(quota_waits(self.settings))
        client.stop_by(self.clock_start + self.settings.run_time_limit_s)
        return client

    def execute(self) -> report.RunSummary:
        assert self.work is not None
        with self.client() as client:
            try:
                procore_started = checked_company(client, self.settings)
                check_pairing(self.store, self.settings, self.runtime.source)
                context: dict[str, Any] = {"company_id": self.settings.company_id, "settings": self.settings}
                actions, recorded = self.work.plan(client, context, procore_started)
                if self.options.dry_run:
                    return self._finish_dry_run(client, actions)
                self.ledger.record(recorded + [outcome_without_call(a) for a in actions if not a.writes])
                self.work.write(client, context, [a for a in actions if a.writes])
            except SyncError as exc:
                if exc.handling is Handling.REPORT:
                    raise
                return self._finish(client, actions=None, error=exc)
            else:
                return self._finish(client, actions=actions)
            finally:
                self.work.release()

    def deferred(self, until: datetime, reason: str) -> None:
        """The run stops for the quota: what landed is recorded, the cursor stays for the resume."""
        message = f"deferred until {until.isoformat(timespec='seconds')}: {reason}"
        self.store.finish_run(self.run_id, status="deferred", counts=self.ledger.counts, message=message,
                              cursor_after=self.cursor_before)
        label_run("deferred", self.ledger.counts)  # before the state changes: the alert reads them then
        report.publish_records(self.name, self.ledger.rows)

    def timed_out(self, limit: float) -> RunTimeLimitExceeded:
        """The run outlasted ``run_time_limit_s`` and was stopped: failed, with what to do."""
        error = RunTimeLimitExceeded(
            f"the run of {self.name} took longer than its limit of {limit:g} s and was stopped; what "
            "landed is recorded and the cursor stays", entity=self.name)
        if self.work is not None:
            self.work.release()
        self.store.finish_run(self.run_id, status="failed", counts=self.ledger.counts, message=str(error),
                              cursor_after=self.cursor_before)
        label_run("failed", self.ledger.counts)
        report.publish_records(self.name, self.ledger.rows)
        return error

    def _finish_dry_run(self, client: ProcoreClient, actions: list[Action]) -> report.RunSummary:
        report.publish_records(self.name, report.plan_rows(actions), what="plan")
        self.ledger.planned(actions)
        return self._summarize(client, status="dry_run", cursor_after=self.cursor_before, dry_run=True)

    def _finish(self, client: ProcoreClient, *, actions: list[Action] | None,
                error: SyncError | None = None) -> report.RunSummary:
        assert self.work is not None
        cursor_after = self.cursor_before
        if error is None and actions is not None:
            cursor_after = self.work.cursor_after(actions)
            if cursor_after is not None and cursor_after != self.cursor_before:
                self.store.set_cursor(self.name, cursor_after)
            self.ledger.note(self.work.accept())
        summary = self._summarize(client, status="failed" if error else "completed", cursor_after=cursor_after,
                                  error=error)
        report.publish_records(self.name, self.ledger.rows)
        if error is not None:
            raise error
        return summary

    def _summarize(self, client: ProcoreClient, *, status: str, cursor_after: datetime | None,
                   dry_run: bool = False, error: SyncError | None = None) -> report.RunSummary:
        assert self.work is not None
        stats, ledger = client.stats, self.ledger
        summary = report.RunSummary(
            entity=self.name, run_id=self.run_id, flow_run_id=self.flow_run_id, status=status,
            direction=self.work.direction, dry_run=dry_run, **ledger.counts, erp_writes=ledger.erp_writes,
            api_calls=stats.api_calls, write_calls=stats.write_calls, min_write_calls=ledger.min_write_calls,
            token_calls=stats.token_calls, retries=stats.retries, split_calls=stats.split_calls,
            waited_s=round(stats.waited_s, 3), quota_remaining=stats.quota.remaining,
            duration_s=round(time.monotonic() - self.clock_start, 3),
            cursor_before=_iso(self.cursor_before), cursor_after=_iso(cursor_after),
            blocked_under_failed_parent=ledger.under_failed,
            message=str(error) if error else ledger.message(),
        )
        self.store.finish_run(self.run_id, status=status, counts=ledger.counts, api_calls=stats.api_calls,
                              write_calls=stats.write_calls, message=summary.message, cursor_after=cursor_after)
        label_run(status, ledger.counts)  # for the run's alert (tasks/run_labels.py)
        report.publish_summary(summary)
        return summary


def run_work(name: str, options: SyncOptions, runtime: Runtime, work: Callable[[Run], Work]) -> report.RunSummary:
    """One run of entity ``name``, doing ``work(run)``: alone for its entity and company, within its
    time limit. On its way out it gives back what it held (``Work.release``), and ``timed_out``
    finishes its ``runs`` row."""
    with alone(name, runtime):
        run = Run(name, options, runtime)
        run.work = work(run)
        try:
            return until_deferred(run, runtime.settings.run_time_limit_s)
        finally:
            liveness.ended(run.run_id)
            close_sources(runtime.source)  # an SFTP connection, an HTTP session


def alone(entity: str, runtime: Runtime) -> AbstractContextManager[None]:
    """One run of the entity per company at a time, on every host (``connectors.run_lock``). Taken
    before the run starts, so that its cursor and the state it plans from are the ones the
    previous run left."""
    return one_run_at_a_time(entity, runtime.settings.company_id, runtime.store, log())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
