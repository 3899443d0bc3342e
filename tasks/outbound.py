"""ERP → Procore: read the ERP rows, map, plan, check, write in batches; one ``Work`` of ``tasks.run``.

The steps are Prefect tasks over whole batches (``tasks.prefect_run.step``). A batch whose answer
is lost is parked as failed and stops the run, the cursor where it was; the next run sends it
again. Answers that give one record another ERP record's Procore id fail both (``tasks.keys``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from connectors.procore import ProcoreClient
from connectors.state import StateStore
from procore_sync.errors import TransientError
from procore_sync.records import ErpSource, Outcome, RecordState, SourceRow
from tasks import report
from tasks.actions import Action, MappedRecord
from tasks.cursor import next_cursor, since
from tasks.keys import collisions
from tasks.mapping import map_rows
from tasks.outcomes import failed_outcome
from tasks.plan import plan
from tasks.prefect_run import log, step
from tasks.reading import ErpReading, read_rows
from tasks.refs import Refs
from tasks.run import Planned, Run
from tasks.spec import DELETED, ERP_TO_PROCORE, EntitySpec, SyncOptions


@step("extract", retried=True)
def extract(source: ErpSource, spec: EntitySpec, since: datetime | None, keys: Sequence[str],
            blocked: Sequence[str] = (), projects: Sequence[str] = ()) -> list[SourceRow]:
    return read_rows(source, spec, since, keys, blocked, projects)


@step("map-and-plan")
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


@step("write-batch")
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


class ErpToProcore:
    """The ERP → Procore part of a run of ``spec``."""

    direction = ERP_TO_PROCORE

    def __init__(self, spec: EntitySpec, run: Run) -> None:
        self.spec, self.run = spec, run
        ignore = run.options.ignores_cursor
        self.reading = ErpReading(spec, run.options, run.runtime.source, run.store, run.started,
                                  since(run.cursor_before, run.settings.erp_lookback_s, ignore=ignore), extract)

    def plan(self, client: ProcoreClient, context: dict[str, Any], procore_started: datetime | None) -> Planned:
        run, reading = self.run, self.reading
        context |= self.spec.prepare(client, context) if self.spec.prepare else {}
        refs = Refs(run.store, run.runtime.source, context)
        rows = reading.read()
        run.ledger.still_blocked(reading.not_read_again(rows))
        actions = map_and_plan(self.spec, rows, run.store, refs, run.options)
        actions += reading.deactivations(rows)
        for note in reading.notes:
            run.ledger.note(note)
        actions = preflight(client, self.spec, context, actions)
        log().info("%s: %d records read %s", self.spec.name, len(rows), reading.what())
        return Planned(actions, [])

    def write(self, client: ProcoreClient, context: dict[str, Any], writes: list[Action]) -> None:
        progress = report.Progress(self.spec.name, len(writes))
        size = self.run.options.batch_size or min(self.spec.batch_size, self.run.settings.batch_size)
        for scope, group in groups(writes).items():
            creates = sum(a.kind == "create" for a in group)
            self.run.ledger.min_write_calls += self.spec.writer.fewest_calls(creates, len(group) - creates)
            for batch in batches(group, size):
                self._write_batch(client, context | dict(scope), batch)
                progress.advance(len(batch))

    def _write_batch(self, client: ProcoreClient, scope: dict[str, Any], batch: list[Action]) -> None:
        ledger = self.run.ledger
        try:
            outcomes = write_batch(client, self.spec, scope, batch)
        except TransientError as exc:
            # Whether Procore applied the batch is unknown: park it as failed (history shows the
            # attempt), keep the cursor where it is, and stop; the next run sends it again.
            ledger.record([failed_outcome(a, f"not confirmed by Procore: {exc.message}") for a in batch])
            raise
        ledger.record(collisions(self.spec, outcomes, self.run.store, self.run.runtime.source))

    def cursor_after(self, actions: list[Action]) -> datetime | None:
        # A one-time upload says nothing about what the table's usual source has read.
        seen = [a.source_updated_at for a in actions if a.source_updated_at is not None]
        keep = bool(self.run.options.targeted or self.run.options.upload_file)
        return next_cursor(self.run.cursor_before, max(seen, default=None), self.run.started, keep=keep)

    def accept(self) -> str | None:
        return self.reading.accept()

    def release(self) -> None:
        self.reading.release()


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
