"""Procore → ERP: what the field changed in Procore, read differentially and written to the ERP.

An inbound entity (change orders, budget changes) declares an ``InboundSpec``: how to read one
project's changes in a time window and one record by id, how to map a Procore record (with its
lines) into the ERP's rows, and the ERP tables (``connectors/erp_sink.py``). ``run_inbound``
does the rest, with the same state store, plan and report as the ERP → Procore engine:

1. **Window.** From the entity's cursor minus ``settings.inbound_overlap_s`` (inclusive, cut to
   the second: Procore stamps whole seconds, so a change saved in the very second of the cursor
   is read again, not missed) up to the run's start **on Procore's clock**: the ``Date`` of
   Procore's answer to the run's first call, which precedes every read (under sync-all, to its
   one company check, made earlier still: ``tasks.company.one_company_check``). The cursor moves to
   that time only when the run completes, so it never passes a change the run did not see,
   however far this machine's clock runs ahead of Procore's. ``full_resync`` reads everything
   again.
2. **Read** every project both sides know (the ``projects`` state), plus, by id, the records
   that are blocked or failed in the state (whatever the window), and the records a targeted
   resync names. A record seen twice (overlapping windows, shifting pages) counts once: the
   latest ``updated_at`` wins.
3. **Map and plan.** Each record becomes an ERP document keyed ``<project number>|<Procore id>``
   with its content hash; an unchanged hash is skipped, so rereading the overlap writes nothing.
   A reference Procore has and the ERP does not (a contract created in Procore, a WBS code the
   ERP lacks) blocks the record, naming it; records written by an integration (an ``origin_id``
   is set) are echoes of an ERP, not field changes, and are skipped with that reason. A record
   with a number the ERP's columns cannot hold fails, naming it (``SinkDocument.misfits``).
4. **Write** the changed documents to the ERP tables and export files in one transaction, and
   mark the records deleted in Procore as ``deleted`` (never dropped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, NamedTuple

from connectors.erp_sink import ErpSink, SinkDocument, SinkTable
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from procore_sync.errors import Blocked, InvalidRecord, TransientError
from procore_sync.records import Outcome
from tasks import report
from tasks.actions import Action, MappedRecord
from tasks.cursor import procore_cursor
from tasks.mapping import payload_hash
from tasks.outcomes import done_outcome, failed_outcome
from tasks.plan import plan
from tasks.prefect_run import log, step
from tasks.refs import Refs
from tasks.run import Planned, Run, Runtime, default_runtime, run_work
from tasks.spec import PROCORE_TO_ERP, EntitySpec, SyncOptions

KEY_SEPARATOR = "|"
DELETED = "deleted in Procore; kept in the ERP marked deleted"
DELETED_HASH = "deleted"
MISFIT_HINT = "nothing of it was written: correct the amount in Procore and the next run imports it"


@dataclass(frozen=True)
class Window:
    """Procore's ``updated_at`` range a run reads: ``since`` (None: everything) to ``until``."""

    since: datetime | None
    until: datetime

    def filter(self) -> str:
        """``filters[updated_at]``: whole seconds, the lower bound rounded down."""
        since = _second(self.since) if self.since else ""
        return f"{since}...{_second(self.until + timedelta(seconds=1))}"

    def contains(self, updated_at: Any) -> bool:
        """For lists Procore cannot filter: everything from ``since`` on (later is read again)."""
        moment = procore_time(updated_at)
        return self.since is None or moment is None or moment >= self.since.replace(microsecond=0)


def _second(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def procore_time(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Project:
    """A project both sides know: its Procore id and ERP project number."""

    procore_id: int
    number: str

    def key(self, record_id: Any) -> str:
        return f"{self.number}{KEY_SEPARATOR}{record_id}"


@dataclass(frozen=True)
class Known:
    """What the ERP holds of one project: its rows by Procore id, and the Procore ``updated_at``
    of the version imported, where that version is certainly the last one of its second."""

    rows: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    stamps: Mapping[int, datetime] = field(default_factory=dict)

    def unchanged(self, record: Mapping[str, Any]) -> bool:
        """Procore moves ``updated_at`` on every change (a line's too), so a record showing the
        stamp of the imported version needs no second read: rereading an overlap costs no
        lines and no mapping."""
        stamp = self.stamps.get(int(record["id"]))
        return stamp is not None and stamp == procore_time(record.get("updated_at"))


class Changes(NamedTuple):
    records: list[dict[str, Any]]  # changed in the window, each with its lines under "lines"
    deleted: list[int]  # Procore ids of records deleted (in the window, or missing from a full list)


@dataclass(frozen=True)
class InboundMapped:
    document: SinkDocument
    warnings: list[str] = field(default_factory=list)


# read(client, context, project, window, known): ``known`` is what the ERP holds of that project
# (to skip records unchanged since their import, and to tell which were deleted).
# read_one(client, context, project, id) returns None for a record that no longer exists.
Reader = Callable[[ProcoreClient, dict[str, Any], Project, Window, Known], Changes]
ReadOne = Callable[[ProcoreClient, dict[str, Any], Project, int], dict[str, Any] | None]


@dataclass(frozen=True)
class InboundSpec:
    name: str
    title: str
    header: SinkTable
    lines: SinkTable | None
    read: Reader
    read_one: ReadOne
    map_record: Callable[[dict[str, Any], Project, Refs], InboundMapped]
    # A one-call read of the entity's Procore tool ({company_id}, {project_id}): the health check.
    probe_path: str = ""
    # The ERP → Procore entities whose id maps the mapping links through (contracts, WBS codes).
    parents: tuple[EntitySpec, ...] = ()
    # A reason when a Procore record is an echo of an integration's write, not a field change.
    echo: Callable[[dict[str, Any]], str | None] = lambda record: None
    revisit: bool = False  # as EntitySpec: inbound entities need no second pass in sync-all
    # Procore's webhook resource names of what the entity reads (``procore-sync webhooks install``):
    # an event on one names a record of this entity, so a run reads that record alone
    # (``tasks/events.py``); one on those of them in ``webhook_project_resources`` names something
    # else (a line, a change order's package), so a run reads that project.
    webhook_resources: tuple[str, ...] = ()
    webhook_project_resources: tuple[str, ...] = ()

    direction: ClassVar[Literal["procore_to_erp"]] = PROCORE_TO_ERP
    inbound: ClassVar[Literal[True]] = True

    @property
    def display_name(self) -> str:
        return self.title

    @property
    def erp_table(self) -> str:
        return self.header.name

    @property
    def sink_tables(self) -> tuple[SinkTable, ...]:
        """The ERP tables the entity writes: its header table, then its lines' where it has lines."""
        return (self.header,) if self.lines is None else (self.header, self.lines)

    @property
    def erp_tables(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.sink_tables)

    def probe(self, client: ProcoreClient, context: dict[str, Any]) -> None:
        client.get(self.probe_path.format(**context))

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(parent.name for parent in self.parents)


@dataclass(frozen=True)
class Seen:
    """One Procore record read by this run, with the project it belongs to."""

    project: Project
    record: dict[str, Any]

    @property
    def key(self) -> str:
        return self.project.key(self.record["id"])


@step("extract-from-procore", retried=True)
def extract_changes(client: ProcoreClient, spec: InboundSpec, context: dict[str, Any], projects: Sequence[Project],
                    window: Window | None, known: Mapping[str, Known],
                    again: Sequence[str]) -> tuple[list[Seen], list[tuple[Project, int]]]:
    """Each project's changes in the window (none read without a window), then the records
    named in ``again`` by id."""
    seen: dict[str, Seen] = {}
    deleted: list[tuple[Project, int]] = []

    def keep(item: Seen) -> None:
        previous = seen.get(item.key)
        if previous is None or _stamp(item) >= _stamp(previous):
            seen[item.key] = item

    for project in projects if window else ():
        changes = spec.read(client, context, project, window, known.get(project.number, Known()))
        for record in changes.records:
            keep(Seen(project, record))
        deleted += [(project, record_id) for record_id in changes.deleted]
    by_number = {project.number: project for project in projects}
    for key in again:
        number, _, record_id = key.rpartition(KEY_SEPARATOR)
        if key in seen or number not in by_number or not record_id.isdigit():
            continue
        record = spec.read_one(client, context, by_number[number], int(record_id))
        if record is None:
            deleted.append((by_number[number], int(record_id)))
        else:
            keep(Seen(by_number[number], record))
    return list(seen.values()), deleted


def _stamp(item: Seen) -> datetime:
    return procore_time(item.record.get("updated_at")) or datetime.min.replace(tzinfo=UTC)


@step("map-and-plan")
def map_and_plan_inbound(spec: InboundSpec, seen: list[Seen], store: StateStore, refs: Refs,
                         started: datetime) -> tuple[list[Action], dict[str, SinkDocument], list[Outcome]]:
    """Plan every record read; echoes are skipped here with their reason.

    A record's ``updated_at`` is kept (for ``Known.unchanged``) only when it lies in a second
    before the run started on Procore's clock: Procore stamps whole seconds, so a record stamped
    in the run's own second could change again in that second, after this read, without its
    stamp moving.
    """
    settled = started.replace(microsecond=0)
    records: list[MappedRecord] = []
    documents: dict[str, SinkDocument] = {}
    echoes: list[Outcome] = []
    for item in seen:
        stamp = procore_time(item.record.get("updated_at"))
        base: dict[str, Any] = {"key": item.key, "source_updated_at": stamp if stamp and stamp < settled else None}
        if (reason := spec.echo(item.record)) is not None:
            echoes.append(Outcome(key=item.key, action="skip", status="ok", procore_id=int(item.record["id"]),
                                  message=reason, source_updated_at=base["source_updated_at"]))
            continue
        try:
            mapped = spec.map_record(item.record, item.project, refs)
        except Blocked as exc:
            records.append(MappedRecord(payload=None, blocked=exc.message, **base))
            continue
        except (InvalidRecord, ValueError) as exc:
            message = exc.message if isinstance(exc, InvalidRecord) else str(exc)
            records.append(MappedRecord(payload=None, error=f"cannot import it into the ERP: {message}", **base))
            continue
        if misfits := mapped.document.misfits(spec.header, spec.lines):
            records.append(MappedRecord(payload=None, error=f"cannot import it into the ERP: {'; '.join(misfits)}"
                                        f"; {MISFIT_HINT}", **base))
            continue
        payload = document_payload(mapped.document)
        documents[item.key] = mapped.document
        records.append(MappedRecord(payload=payload, payload_hash=payload_hash(payload),
                                    warnings=mapped.warnings, **base))
    states = store.record_states(spec.name, keys=[r.key for r in records] + [e.key for e in echoes])
    # An echo is re-listed by every run (the list has no filter); its reason is recorded once.
    echoes = [e for e in echoes if (states.get(e.key) and states[e.key].message) != e.message]
    return [_with_procore_id(action) for action in plan(records, states)], documents, echoes


def document_payload(document: SinkDocument) -> dict[str, Any]:
    return {"header": document.header.model_dump(mode="json"),
            "lines": [line.model_dump(mode="json") for line in document.lines]}


def _with_procore_id(action: Action) -> Action:
    """The state keeps the Procore id of a record once it is in the ERP (so a record that was
    blocked is still "created" when it lands)."""
    if action.procore_id is not None or not action.writes:
        return action
    return dataclasses.replace(action, procore_id=int(action.key.rpartition(KEY_SEPARATOR)[2]))


@step("write-to-erp")
def write_documents(sink: ErpSink, spec: InboundSpec, documents: list[SinkDocument]) -> None:
    sink.write(spec.header, spec.lines, documents)


class ProcoreToErp:
    """The Procore → ERP part of a run of ``spec``: read the window, map, plan, write to the ERP."""

    direction = PROCORE_TO_ERP

    def __init__(self, spec: InboundSpec, run: Run) -> None:
        assert run.runtime.sink is not None, "an inbound run needs the runtime's ERP sink"
        self.spec, self.run, self.sink = spec, run, run.runtime.sink
        # When the run started on Procore's clock (set by the first answer); None when Procore's
        # answers carry no Date (a proxy dropped it): then see ``cursor_after``.
        self.procore_started: datetime | None = None
        self.documents: dict[str, SinkDocument] = {}
        self.deleted: list[tuple[Project, int]] = []

    @property
    def until(self) -> datetime:
        """The end of the window: Procore's time at the run's start, else this machine's."""
        return self.procore_started or self.run.started

    @property
    def window(self) -> Window:
        options, before = self.run.options, self.run.cursor_before
        if options.full_resync or options.projects or before is None:
            return Window(None, self.until)
        return Window(before - timedelta(seconds=self.run.settings.inbound_overlap_s), self.until)

    def plan(self, client: ProcoreClient, context: dict[str, Any], procore_started: datetime | None) -> Planned:
        self.procore_started = procore_started
        run = self.run
        projects = [p for p in known_projects(run.store) if not run.options.projects or p.number in run.options.projects]
        seen, self.deleted = self._extract(client, context, projects)
        refs = Refs(run.store, run.runtime.source, context)
        actions, self.documents, echoes = map_and_plan_inbound(self.spec, seen, run.store, refs, self.until)
        log().info("%s: %d records read from Procore in %d projects since %s; %d deleted", self.spec.name,
                   len(seen), len(projects), self.window.since or "the beginning", len(self.deleted))
        return Planned(actions, echoes)

    def _extract(self, client: ProcoreClient, context: dict[str, Any],
                 projects: list[Project]) -> tuple[list[Seen], list[tuple[Project, int]]]:
        """A targeted resync reads only the named records; a run reads every project's window,
        plus the records still blocked or failed; either only in ``projects``."""
        if self.run.options.erp_keys:
            return extract_changes(client, self.spec, context, projects, None, {}, self.run.options.erp_keys)
        states = self.run.store.record_states(self.spec.name)
        rows: dict[str, dict[int, dict[str, Any]]] = {}
        stamps: dict[str, dict[int, datetime]] = {}
        for row in self.sink.rows(self.spec.header):
            number, procore_id = row["project_number"], int(row[self.spec.header.key])
            rows.setdefault(number, {})[procore_id] = row
            state = states.get(Project(0, number).key(procore_id))
            if state is not None and state.status in ("ok", "warning") and state.source_updated_at:
                stamps.setdefault(number, {})[procore_id] = state.source_updated_at
        known = {number: Known(held, stamps.get(number, {})) for number, held in rows.items()}
        unfinished = [key for key, state in states.items() if state.status in ("blocked", "failed")]
        return extract_changes(client, self.spec, context, projects, self.window, known, unfinished)

    def write(self, client: ProcoreClient, context: dict[str, Any], writes: list[Action]) -> None:
        self._write(writes)
        self._mark_deleted(self.deleted)

    def _write(self, writes: list[Action]) -> None:
        if not writes:
            return
        ledger = self.run.ledger
        progress = report.Progress(self.spec.name, len(writes))
        try:
            write_documents(self.sink, self.spec, [self.documents[a.key] for a in writes])
        except TransientError as exc:
            ledger.record([failed_outcome(a, f"not written to the ERP: {exc.message}") for a in writes])
            raise
        ledger.erp_writes += len(writes)
        progress.advance(len(writes))
        ledger.record([done_outcome(a, a.procore_id) for a in writes])

    def _mark_deleted(self, deleted: list[tuple[Project, int]]) -> None:
        """Records the ERP holds are marked deleted; ones that never reached it (blocked or
        failed) stop being read again."""
        keys = {project.key(record_id): record_id for project, record_id in deleted}
        states = self.run.store.record_states(self.spec.name, keys=list(keys))
        held = {k: i for k, i in keys.items() if k in states and states[k].payload_hash not in (None, DELETED_HASH)}
        never = {k: i for k, i in keys.items() if k in states and states[k].payload_hash is None
                 and states[k].status in ("blocked", "failed")}
        if held:
            self.sink.mark_deleted(self.spec.header, list(held.values()))
            self.run.ledger.erp_writes += len(held)
        self.run.ledger.record(
            [Outcome(key=k, action="update", status="ok", procore_id=i, payload_hash=DELETED_HASH, message=DELETED)
             for k, i in held.items()]
            + [Outcome(key=k, action="skip", status="ok", procore_id=i,
                       message="deleted in Procore before it reached the ERP") for k, i in never.items()])

    def cursor_after(self, actions: list[Action]) -> datetime | None:
        """The run's start on Procore's clock (``tasks.cursor.procore_cursor``)."""
        seen = [a.source_updated_at for a in actions if a.source_updated_at is not None]
        return procore_cursor(self.run.cursor_before, self.procore_started, max(seen, default=None),
                              keep=self.run.options.targeted)

    def accept(self) -> str | None:
        return None

    def release(self) -> None:
        return None


def known_projects(store: StateStore) -> list[Project]:
    """The projects both sides know: in the ERP and synced to Procore."""
    states = store.record_states("projects")
    return sorted((Project(s.procore_id, key) for key, s in states.items() if s.procore_id),
                  key=lambda project: project.number)


def run_inbound(spec: InboundSpec, options: SyncOptions | None = None,
                runtime: Runtime | None = None) -> report.RunSummary:
    return run_work(spec.name, options or SyncOptions(), runtime or default_runtime(),
                    lambda run: ProcoreToErp(spec, run))
