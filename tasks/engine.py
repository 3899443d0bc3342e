"""The generic engine: extract → map → plan → load → record → report, for any ``EntitySpec``.

An entity flow is ``run_entity(SPEC, options)``. The steps are Prefect tasks over whole batches
(never one task per record: a task costs ~10 ms of orchestration). Outcomes are written to the
state store batch by batch, so a killed run keeps everything that landed; the cursor moves only
at the end, only when every record of the window either landed or was recorded as failed for a
reason of its own, and never past the run's start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import get_client, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.exceptions import Pause
from prefect.states import Scheduled, State
from prefect.utilities.timeout import timeout as prefect_timeout

from connectors.erp import CsvErpSource, ErpSource, SourceRow, key_of, rows_with_keys
from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient, RunOutOfTime
from connectors.quota import QuotaGate, quota_gate
from connectors.run_lock import one_run_at_a_time
from connectors.sources import UploadSource, build_sources, close_sources, source_of
from connectors.state import Outcome, RecordState, StateStore
from procore_sync.errors import (ConfigError, Handling, PermissionDenied, RunTimeLimitExceeded, SyncError,
                                 TransientError)
from procore_sync.settings import Settings
from tasks import liveness, report
from tasks.healing import MAY_READ_AGAIN, to_read_again
from tasks.keys import collisions
from tasks.pairing import check_pairing
from tasks.outcomes import blocked_outcome, done_outcome, failed_outcome
from tasks.refs import Refs
from tasks.mapping import MappedRecord, map_rows
from tasks.plan import Action, plan
from tasks.run_labels import label_run
from tasks.replace import plan_deactivations
from tasks.spec import DELETED, EntitySpec, SyncOptions, ancestors


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

    assert settings.erp_path is not None and settings.export_dir is not None
    return Runtime(
        settings=settings,
        store=StateStore(settings.state_path),
        source=build_sources(settings),
        make_client=make_client,
        sink=ErpSink(settings.erp_path, settings.export_dir),
    )


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


def _log() -> logging.Logger | logging.LoggerAdapter:
    return get_run_logger() if FlowRunContext.get() else logging.getLogger("tasks.engine")


def _key(spec: EntitySpec, row: SourceRow) -> str:
    return key_of(row.data, spec.key_field)


@task(name="extract", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_whole_task,
      cache_policy=NO_CACHE)
def extract(source: ErpSource, spec: EntitySpec, since: datetime | None, keys: Sequence[str],
            blocked: Sequence[str] = (), projects: Sequence[str] = ()) -> list[SourceRow]:
    """The rows changed since the cursor, plus the blocked ones (their parent may have landed);
    or, for a targeted run, every row with one of the keys and in one of the projects."""
    if keys or projects:
        return [row for row in source.read(spec.erp_table)
                if (not keys or _key(spec, row) in keys) and (not projects or _project(row) in projects)]
    rows = list(source.read(spec.erp_table, since=since))
    missing = set(blocked) - {_key(spec, row) for row in rows} if since is not None else set()
    # Found by the source (DuckDB: by key), not by reading the whole table into Python.
    return rows + rows_with_keys(source, spec.erp_table, spec.key_field, missing)


def _project(row: SourceRow) -> str:
    """The ERP project a row belongs to; empty for company-wide records such as suppliers."""
    return str(row.data.get("project_number") or "").strip()


@task(name="map-and-plan", cache_policy=NO_CACHE)
def map_and_plan(spec: EntitySpec, rows: list[SourceRow], store: StateStore, refs: Refs,
                 options: SyncOptions) -> list[Action]:
    records: list[MappedRecord] = map_rows(spec, rows, refs)
    states = store.record_states(spec.name, keys=[record.key for record in records])
    if options.recreate_deleted:
        states = without_deleted_ids(states)
    return plan(records, states, locked=spec.locked_once_synced, resend_refused=options.ignores_cursor)


def without_deleted_ids(states: dict[str, RecordState]) -> dict[str, RecordState]:
    """The states as the plan should see them when records deleted in Procore are to be created
    again: their old Procore id forgotten (the new one is stored once the create lands)."""
    return {key: dataclasses.replace(s, procore_id=None) if (s.message or "").startswith(DELETED) else s
            for key, s in states.items()}


@task(name="write-batch", cache_policy=NO_CACHE)
def write_batch(client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], batch: list[Action]) -> list[Outcome]:
    return spec.writer.write(client, spec, scope, batch)


def batches(actions: Sequence[Action], size: int) -> Iterator[list[Action]]:
    for start in range(0, len(actions), size):
        yield list(actions[start : start + size])


def groups(actions: Sequence[Action]) -> dict[tuple[tuple[str, int], ...], list[Action]]:
    """Writes that share a scope (project, contract...) go to Procore in the same request."""
    grouped: dict[tuple[tuple[str, int], ...], list[Action]] = {}
    for action in actions:
        grouped.setdefault(tuple(sorted(action.scope.items())), []).append(action)
    return grouped


def outcome_without_call(action: Action) -> Outcome:
    """Record the actions that need no call: failed mappings, blocked and unchanged records."""
    if action.kind == "fail":
        return failed_outcome(action, action.message or "invalid record")
    if action.kind == "blocked":
        return blocked_outcome(action)
    return done_outcome(action, action.procore_id)


# Which counter an action (planned or done) adds to.
COUNTER = {"create": "created", "update": "updated", "skip": "unchanged", "fail": "failed", "blocked": "blocked"}


def log_quota_wait(until: datetime, message: str) -> None:
    _log().warning("waiting for Procore quota until %s: %s", until.astimezone().strftime("%H:%M:%S"), message)


class QuotaDeferred(Exception):
    """Procore's quota is spent for longer than worth holding a process: the run is deferred.

    Not a ``SyncError``: nothing failed, and no layer may retry or record it as a failure; it
    travels up to ``run_entity``, which hands the flow run back to Prefect as AwaitingQuota.
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
        until = utc_now() + timedelta(seconds=max(settings.quota_defer_after_s, 1.0))
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
    ``until``. It relies on Prefect's ``Pause`` signal (an internal one, measured in
    reference/prefect.md §2), so ``tests/test_awaiting_quota.py`` covers it.
    """
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with get_client(sync_client=True) as client:
        answer = client.set_flow_run_state(
            context.flow_run.id, Scheduled(scheduled_time=until, name="AwaitingQuota", message=reason), force=True)
    _log().warning("deferred until %s (AwaitingQuota): %s", until.astimezone().strftime("%H:%M:%S"), reason)
    raise Pause(state=answer.state)


class EntityRun:
    """One run of one entity: holds the counters while the steps execute."""

    direction = "erp_to_procore"

    def __init__(self, spec: EntitySpec, options: SyncOptions, runtime: Runtime) -> None:
        self.spec, self.options, self.runtime = spec, options, runtime
        self.store = runtime.store
        self.started = runtime.clock()
        self.clock_start = time.monotonic()
        self.counts = dict.fromkeys(("created", "updated", "unchanged", "failed", "blocked", "warnings"), 0)
        self.report_rows: list[dict[str, Any]] = []
        self.min_write_calls = 0
        self.upload: UploadSource | None = None  # the upload this run syncs, if it reads one
        self.note: str | None = None  # what the summary says about the run when nothing failed
        self.erp_writes = 0  # records written to the ERP (Procore → ERP entities)
        self.under_failed = 0  # records left blocked under a failed parent: not a plain green
        self.still_blocked: list[RecordState] = []  # blocked, not read again: no parent changed
        self.cursor_before = self.store.get_cursor(spec.name)
        context = FlowRunContext.get()
        self.flow_run_id = str(context.flow_run.id) if context and context.flow_run else None
        # Runs of this entity killed mid-way still say "running": say "crashed" (tasks/liveness.py).
        liveness.mark_dead_runs(self.store, spec.name, self.flow_run_id, _log().warning)
        self.run_id = self.store.start_run(
            spec.name,
            flow_run_id=self.flow_run_id,
            parameters=options.model_dump(mode="json"),
            cursor_before=self.cursor_before,
            process=liveness.this_process().to_json(),
        )
        liveness.started(self.run_id)

    @property
    def since(self) -> datetime | None:
        """The cursor minus the look-back: a row committed late but stamped before the cursor
        (a long ERP transaction, another server's clock) is read by the next run, not skipped
        until the weekly full resync; the content hash keeps what is read again free of calls."""
        if self.options.ignores_cursor or self.cursor_before is None:
            return None
        return self.cursor_before - timedelta(seconds=self.runtime.settings.erp_lookback_s)

    def client(self) -> ProcoreClient:
        """The run's Procore client, whose calls and waits end with the run's time limit."""
        client = self.runtime.make_client(quota_waits(self.runtime.settings))
        client.stop_by(self.clock_start + self.runtime.settings.run_time_limit_s)
        return client

    def execute(self) -> report.RunSummary:
        log = _log()
        with self.client() as client:
            try:
                checked_company(client, self.runtime.settings)
                check_pairing(self.store, self.runtime.settings, self.runtime.source)
                context: dict[str, Any] = {"company_id": self.runtime.settings.company_id,
                                           "settings": self.runtime.settings}
                context |= self.spec.prepare(client, context) if self.spec.prepare else {}
                refs = Refs(self.store, self.runtime.source, context)
                rows = self._read()
                self._count_still_blocked(rows)
                actions = map_and_plan(self.spec, rows, self.store, refs, self.options)
                actions += self._deactivations(rows)
                actions = preflight(client, self.spec, context, actions)
                log.info("%s: %d records read %s", self.spec.name, len(rows), self._read_what())
                if self.options.dry_run:
                    return self._finish_dry_run(client, actions)
                self._record([outcome_without_call(a) for a in actions if not a.writes])
                self._load(client, context, [a for a in actions if a.writes])
            except SyncError as exc:
                if exc.handling is Handling.REPORT:
                    raise
                return self._finish(client, actions=None, error=exc)
            else:
                return self._finish(client, actions=actions)
            finally:
                if self.upload is not None and self.upload.holds(self.spec.erp_table):
                    # Not accepted (a dry run, a failure, a deferral): back in the drop, where
                    # the next run reads it again.
                    self.upload.discard(self.spec.erp_table)

    def _read(self) -> list[SourceRow]:
        if self.options.upload_file:
            return self._read_one_time(Path(self.options.upload_file))
        source = source_of(self.runtime.source, self.spec.erp_table)
        if not isinstance(source, UploadSource):
            return extract(self.runtime.source, self.spec, self.since, self.options.erp_keys, self._unfinished(),
                           self.options.projects)
        table = self.spec.erp_table
        self.upload = source if source.take(table, self.started) else None
        if self.upload is not None:
            self.note = f"synced the new upload of {table}.csv from {source.drop.describe()}"
            return self._read_whole(source)
        # Nothing new uploaded: only the records still waiting, from the last accepted upload.
        self.note = (f"another run is syncing the upload of {table}.csv" if source.in_use(table)
                     else f"no new upload of {table}.csv in {source.drop.describe()}")
        waiting = self.options.erp_keys or self._unfinished()
        if not source.available(table) or not (waiting or self.options.projects):
            return []
        return self._read_whole(source, waiting)

    def _read_one_time(self, file: Path) -> list[SourceRow]:
        """A one-time upload: the file is the table for this run, whatever its usual source."""
        if not file.is_file():
            raise ConfigError(f"the upload {file} does not exist on the machine that runs the flow")
        self.note = f"one-time upload of {file}"
        return self._read_whole(CsvErpSource(file.parent, tables={self.spec.erp_table: file.stem}))

    def _read_whole(self, source: ErpSource, keys: Sequence[str] | None = None) -> list[SourceRow]:
        """A file's rows, whatever the cursor (its stamps say nothing about what was synced),
        limited to the run's keys and projects."""
        return extract(source, self.spec, None, keys or self.options.erp_keys, (), self.options.projects)

    def _deactivations(self, rows: list[SourceRow]) -> list[Action]:
        """Replace mode (``tasks.replace``): what a new upload no longer has is deactivated;
        runs limited to keys or projects read only part of it, so they never deactivate."""
        if self.upload is None or not self.upload.replace or self.options.targeted:
            return []
        replacement = plan_deactivations(
            self.spec, {_key(self.spec, row) for row in rows},
            [row.line or 0 for row in rows if row.problem or not _key(self.spec, row)],
            self.store.record_states(self.spec.name),
            max_share=self.upload.max_deactivate_share, force=self.options.force_deactivation,
        )
        if replacement.note:
            self.note = f"{self.note}; {replacement.note}"
        return replacement.actions

    def _read_what(self) -> str:
        if self.upload is not None:
            return "from the new upload (every row)"
        if self.options.projects:
            return f"in project(s) {', '.join(self.options.projects)} (company-wide records are not in any)"
        return "by key" if self.options.erp_keys else f"since {self.since or 'the beginning'}"

    def _unfinished(self) -> list[str]:
        """Keys to read again whatever the cursor: held back records, failures outside the
        record whose backoff is over (``tasks/healing.py``), and blocked records whose parents
        changed since they were last tried. The other blocked records would be blocked again for
        the same reason (re-mapping them was most of a no-change sync-all's local time): they
        are counted and reported as they stand (``_count_still_blocked``)."""
        states = self.store.record_states(self.spec.name, statuses=MAY_READ_AGAIN)
        freed = self.store.blocked_since_parents_changed(self.spec.name, ancestors(self.spec))
        self.still_blocked = [s for s in states.values() if s.status == "blocked" and s.key not in freed]
        return to_read_again([s for s in states.values() if s.status != "blocked" or s.key in freed], self.started)

    def _count_still_blocked(self, rows: list[SourceRow]) -> None:
        """The blocked records not read again count in the run as blocked, as they stand, unless
        the run read their row anyway (changed in the ERP); a run limited to keys or projects
        counts only what it read."""
        if self.options.targeted:
            return
        read = {_key(self.spec, row) for row in rows}
        still = [s for s in self.still_blocked if s.key not in read]
        self.counts["blocked"] += len(still)
        self.under_failed += sum(s.parent_failed for s in still)
        self.report_rows.extend({"erp_key": s.key, "procore_id": s.procore_id, "action": "blocked", "status": s.status,
                                 "message": s.message} for s in still)

    def _load(self, client: ProcoreClient, context: dict[str, Any], writes: list[Action]) -> None:
        progress = report.Progress(self.spec.name, len(writes))
        size = self.options.batch_size or min(self.spec.batch_size, self.runtime.settings.batch_size)
        for scope, group in groups(writes).items():
            creates = sum(a.kind == "create" for a in group)
            self.min_write_calls += self.spec.writer.fewest_calls(creates, len(group) - creates)
            for batch in batches(group, size):
                self._load_batch(client, context | dict(scope), batch)
                progress.advance(len(batch))

    def _load_batch(self, client: ProcoreClient, scope: dict[str, Any], batch: list[Action]) -> None:
        try:
            outcomes = write_batch(client, self.spec, scope, batch)
        except TransientError as exc:
            # Whether Procore applied the batch is unknown: park it as failed (history shows the
            # attempt), keep the cursor where it is, and stop; the next run sends it again.
            self._record([failed_outcome(a, f"not confirmed by Procore: {exc.message}") for a in batch])
            raise
        self._record(collisions(self.spec, outcomes, self.store, self.runtime.source))

    def _record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        self.store.record_outcomes(self.run_id, self.spec.name, outcomes)
        for outcome in outcomes:
            self._count(outcome)
        self.under_failed += sum(o.parent_failed for o in outcomes)
        self.report_rows.extend(
            {"erp_key": o.key, "procore_id": o.procore_id, "action": o.action, "status": o.status, "message": o.message}
            for o in outcomes
            if o.status != "ok"
        )

    def _count(self, outcome: Outcome) -> None:
        self.counts[COUNTER[outcome.action]] += 1
        self.counts["warnings"] += outcome.status == "warning"

    def _new_cursor(self, rows_max: datetime | None) -> datetime | None:
        # A one-time upload says nothing about what the table's usual source has read.
        keep = bool(self.options.targeted or self.options.upload_file)
        return next_cursor(self.cursor_before, rows_max, self.started, keep=keep)

    def deferred(self, deferred: QuotaDeferred) -> None:
        """The run stops for the quota: what landed is recorded, the cursor stays for the resume."""
        message = f"deferred until {deferred.until.isoformat(timespec='seconds')}: {deferred}"
        self.store.finish_run(self.run_id, status="deferred", counts=self.counts, message=message,
                              cursor_after=self.cursor_before)
        label_run("deferred", self.counts)  # before the state changes: the alert reads them then
        report.publish_records(self.spec.name, self.report_rows)

    def timed_out(self, limit: float) -> RunTimeLimitExceeded:
        """The run outlasted ``run_time_limit_s`` and was stopped: failed, with what to do."""
        error = RunTimeLimitExceeded(
            f"the run of {self.spec.name} took longer than its limit of {limit:g} s and was stopped; what "
            "landed is recorded and the cursor stays", entity=self.spec.name)
        if self.upload is not None and self.upload.holds(self.spec.erp_table):
            self.upload.discard(self.spec.erp_table)
        self.store.finish_run(self.run_id, status="failed", counts=self.counts, message=str(error),
                              cursor_after=self.cursor_before)
        label_run("failed", self.counts)
        report.publish_records(self.spec.name, self.report_rows)
        return error

    def _finish_dry_run(self, client: ProcoreClient, actions: list[Action]) -> report.RunSummary:
        report.publish_records(self.spec.name, report.plan_rows(actions), what="plan")
        for action in actions:
            self.counts[COUNTER[action.kind]] += 1
            self.counts["warnings"] += bool(action.warnings)
            self.under_failed += action.parent_failed
        return self._summarize(client, status="dry_run", cursor_after=self.cursor_before, dry_run=True)

    def _finish(self, client: ProcoreClient, *, actions: list[Action] | None, error: SyncError | None = None) -> report.RunSummary:
        cursor_after = self.cursor_before
        if error is None and actions is not None:
            seen = [a.source_updated_at for a in actions if a.source_updated_at is not None]
            cursor_after = self._new_cursor(max(seen, default=None))
            if cursor_after is not None and cursor_after != self.cursor_before:
                self.store.set_cursor(self.spec.name, cursor_after)
            if self.upload is not None:
                self.note = f"{self.note}; {self.upload.accept(self.spec.erp_table, self.started)}"
        status = "failed" if error else "completed"
        summary = self._summarize(client, status=status, cursor_after=cursor_after, error=error)
        report.publish_records(self.spec.name, self.report_rows)
        if error is not None:
            raise error
        return summary

    def _message(self) -> str | None:
        """The note, and a named warning when records are left blocked under a failed parent:
        the run did its work (not red), but they wait for an operator (not a plain green)."""
        n = self.under_failed
        warning = (f"warning: {n} record{'s' if n != 1 else ''} blocked under a failed parent; the records "
                   "table names each parent: fix it and they follow") if n else None
        return "; ".join(part for part in (self.note, warning) if part) or None

    def _summarize(self, client: ProcoreClient, *, status: str, cursor_after: datetime | None,
                   dry_run: bool = False, error: SyncError | None = None) -> report.RunSummary:
        stats = client.stats
        summary = report.RunSummary(
            entity=self.spec.name,
            run_id=self.run_id,
            flow_run_id=self.flow_run_id,
            status=status,
            direction=self.direction,
            dry_run=dry_run,
            **self.counts,
            erp_writes=self.erp_writes,
            api_calls=stats.api_calls,
            write_calls=stats.write_calls,
            min_write_calls=self.min_write_calls,
            token_calls=stats.token_calls,
            retries=stats.retries,
            split_calls=stats.split_calls,
            waited_s=round(stats.waited_s, 3),
            quota_remaining=stats.quota.remaining,
            duration_s=round(time.monotonic() - self.clock_start, 3),
            cursor_before=_iso(self.cursor_before),
            cursor_after=_iso(cursor_after),
            blocked_under_failed_parent=self.under_failed,
            message=str(error) if error else self._message(),
        )
        self.store.finish_run(
            self.run_id,
            status=status,
            counts=self.counts,
            api_calls=stats.api_calls,
            write_calls=stats.write_calls,
            message=summary.message,
            cursor_after=cursor_after,
        )
        label_run(status, self.counts)  # for the run's alert (tasks/run_labels.py)
        report.publish_summary(summary)
        return summary


def next_cursor(before: datetime | None, rows_max: datetime | None, started: datetime, *,
                keep: bool) -> datetime | None:
    """The cursor after a run that read rows up to ``rows_max``: never past the run's start,
    never back (the look-back reads rows older than the cursor), unchanged when told to ``keep``
    it (targeted runs, one-time uploads) or when nothing was read."""
    if keep or rows_max is None:
        return before
    # A row stamped after the start (an ERP clock ahead) must not carry the first cursor past it.
    read_to = min(rows_max, started)
    return read_to if before is None else max(read_to, before)


def preflight(client: ProcoreClient, spec: EntitySpec, context: dict[str, Any], actions: list[Action]) -> list[Action]:
    """The per-run configuration check, before any write, at the cost of a call or two.

    The entity's tool answers (a 403 here stops the run with what permission to grant), and every
    project a write goes to is among the service account's permitted projects (Procore adds new
    projects to that list only when the admin does): a write to another project fails with that
    message instead of a 403 per batch.
    """
    writes = [a for a in actions if a.writes]
    if not writes:
        return actions
    if "{" not in spec.list_path and set(spec.list_scope) <= set(context):
        next(iter(client.paginate(spec.list_path, {k: context[k] for k in spec.list_scope}, per_page=1)), None)
    wanted = {a.scope["project_id"] for a in writes if "project_id" in a.scope}
    if not wanted:
        return actions
    visible = {int(p["id"]) for p in client.paginate("/rest/v1.1/projects", {"company_id": context["company_id"]})}
    return [_not_permitted(a) if a.writes and a.scope.get("project_id", 0) not in visible | {0} else a
            for a in actions]


def _not_permitted(action: Action) -> Action:
    message = (f"project {action.scope['project_id']} is not among the service account's permitted projects; "
               "add it in Procore (Company Admin → App Management → permitted projects) and resync")
    # Outside the record: once the admin adds the project, ordinary runs send it again.
    return dataclasses.replace(action, kind="fail", message=message, outside=True)


def check_company(client: ProcoreClient, settings: Settings) -> None:
    """The configuration check of every run: the credentials work and the company is visible."""
    try:
        companies = client.companies()
    except PermissionDenied as exc:
        raise ConfigError(
            f"Procore refuses company {settings.company_id} to this service account ({exc.message}); "
            "install the app in that company or fix PROCORE_SYNC_COMPANY_ID."
        ) from exc
    if not any(int(c.get("id", 0)) == settings.company_id for c in companies):
        names = ", ".join(f"{c.get('id')} ({c.get('name')})" for c in companies) or "none"
        raise ConfigError(
            f"company {settings.company_id} is not visible to this service account; "
            f"it sees: {names}. Install the app in that company or fix PROCORE_SYNC_COMPANY_ID."
        )


# Company checks a sync-all made for its entity runs (threads of this process), by Procore and
# company: Procore's time at the check, and how many sync-alls of this process rely on it.
_SHARED_CHECKS: dict[tuple[str, int], datetime | None] = {}
_SHARED_USERS: Counter[tuple[str, int]] = Counter()
_SHARED_LOCK = threading.Lock()


def _check_key(settings: Settings) -> tuple[str, int]:
    return settings.api_base, settings.company_id


@contextmanager
def one_company_check(settings: Settings) -> Iterator[None]:
    """sync-all's configuration check, made once for all its entity runs instead of once each.

    Every run of the entities inside (threads of this process) relies on it: the credentials
    worked and the company was visible a moment ago, and a run that fails on them later still
    stops with the same ``ConfigError`` from its first call. Procore's time at this check stands
    for the start of each Procore → ERP run inside: an earlier start only narrows the window's
    end, and the cursor moves to that earlier time, so the next run reads what came after.
    """
    with ProcoreClient(settings, before_request=quota_gate(settings), on_wait=log_quota_wait,
                       shared_window=True) as client:
        check_company(client, settings)
        checked = client.procore_time
    key = _check_key(settings)
    with _SHARED_LOCK:
        _SHARED_USERS[key] += 1
        _SHARED_CHECKS.setdefault(key, checked)  # the earliest of overlapping sync-alls: the safe one
    try:
        yield
    finally:
        with _SHARED_LOCK:
            _SHARED_USERS[key] -= 1
            if not _SHARED_USERS[key]:
                del _SHARED_USERS[key], _SHARED_CHECKS[key]


def checked_company(client: ProcoreClient, settings: Settings) -> datetime | None:
    """The run's configuration check, unless a sync-all of this process made it for its runs
    (``one_company_check``): Procore's time at the check (None when its answer had no Date)."""
    key = _check_key(settings)
    with _SHARED_LOCK:
        if key in _SHARED_CHECKS:
            return _SHARED_CHECKS[key]
    check_company(client, settings)
    return client.procore_time


def run_entity(spec: EntitySpec, options: SyncOptions | None = None, runtime: Runtime | None = None) -> report.RunSummary:
    runtime = runtime or default_runtime()
    with alone(spec.name, runtime):
        return until_deferred(EntityRun(spec, options or SyncOptions(), runtime))


def alone(entity: str, runtime: Runtime) -> AbstractContextManager[None]:
    """One run of the entity per company at a time, on every host (``connectors.run_lock``). Taken
    before the run starts, so that its cursor and the state it plans from are the ones the
    previous run left."""
    return one_run_at_a_time(entity, runtime.settings.company_id, runtime.store, _log())


def until_deferred(run: EntityRun) -> report.RunSummary:
    """Execute the run within its time limit; when its quota wait is deferred, record that and
    hand the flow run back.

    The limit is enforced where the run waits most: its Procore client ends every call and
    retry wait by the deadline (``ProcoreClient.stop_by``), in whichever thread, without a
    signal. Prefect's ``timeout`` backs it for the other waits (each has its own limit too): an
    alarm in a main thread whose SIGALRM is free (it interrupts a blocked call), else an
    exception sent to the run's thread (sync-all; it lands when the current call returns). On
    its way out the run gives back its upload claim (``execute``'s ``finally``); ``timed_out``
    finishes its ``runs`` row."""
    limit = run.runtime.settings.run_time_limit_s
    try:
        with prefect_timeout(limit, timeout_exc_type=RunOutOfTime):
            return run.execute()
    except RunOutOfTime:
        raise run.timed_out(limit) from None
    except QuotaDeferred as deferred:
        run.deferred(deferred)
        defer_flow_run(deferred.until, str(deferred))
        raise  # not reached: defer_flow_run raises Pause
    finally:
        liveness.ended(run.run_id)
        close_sources(run.runtime.source)  # an SFTP connection, an HTTP session


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def summary_of(state: State, entity: str, settings: Settings) -> report.RunSummary:
    """The summary of a finished entity flow run; for a run that raised, read back from the state
    store (which has its counts and message)."""
    if state.is_completed():
        return state.result()
    flow_run_id = str(state.state_details.flow_run_id)
    message = state.message or state.name or "failed"
    assert settings.state_path is not None
    runs = [r for r in StateStore(settings.state_path).runs(entity, limit=5) if r.flow_run_id == flow_run_id]
    if not runs:
        return report.RunSummary(entity=entity, run_id="", flow_run_id=flow_run_id, status="failed", message=message)
    run = runs[0]
    return report.RunSummary(
        entity=entity,
        run_id=run.run_id,
        flow_run_id=flow_run_id,
        status="failed",
        api_calls=run.api_calls,
        write_calls=run.write_calls,
        cursor_before=_iso(run.cursor_before),
        cursor_after=_iso(run.cursor_after),
        message=run.message or message,
        **{k: v for k, v in run.counts.items() if k in report.RunSummary.model_fields},
    )
