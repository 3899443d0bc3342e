"""The money a controller reconciles: per project and cost code, the ERP's against Procore's.

Four kinds of money, each from the entity that carries it: the **original budget** (budget
lines), **committed** cost (subcontract and purchase order lines), **change orders** (the
commitment change orders the field makes in Procore and the ERP imports) and **direct costs**
(direct cost lines). A cost code is a WBS code as the ERP names it: project, sub job, cost code
and cost type.

Every record's money lands in an ``Entry``: its amount in the ERP and in Procore (matched by
the Procore id the state remembers, else by origin_id) and its status, decided the way a run
would decide it (``tasks.plan``), with the state's message: ``synced``, ``failed``, ``blocked``
or ``not yet synced`` (new or changed since its last sync); records Procore holds that no ERP
record claims are ``only in Procore``. A cost code's difference (ERP − Procore) is explained by
its failed, blocked and not-yet-synced records; what they do not account for, beyond the
rounding tolerance, is unexplained: Procore was edited, or money went somewhere nobody knows.
Reads only: the ERP, the state, the ERP sink's tables and Procore's lists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from connectors.erp import ErpSource, SourceRow
from connectors.erp_sink import ErpSink
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from procore_sync.records import RecordState
from procore_sync.errors import Blocked, ConfigError, InvalidRecord
from tasks.inbound import InboundSpec, Known, Project, Window, document_payload, known_projects
from tasks.outcomes import field_of
from tasks.mapping import map_rows, payload_hash
from tasks.plan import Action, plan
from tasks.reconcile import amount_of, list_records
from tasks.refs import Refs
from tasks.spec import EntitySpec

BUDGET, COMMITTED, CHANGE_ORDERS, DIRECT = "original budget", "committed", "change orders", "direct costs"
CATEGORIES = (BUDGET, COMMITTED, CHANGE_ORDERS, DIRECT)
SYNCED, FAILED, BLOCKED, NOT_YET, ONLY_IN_PROCORE = "synced", "failed", "blocked", "not yet synced", "only in Procore"
EXPLAINING = (FAILED, BLOCKED, NOT_YET)
VOID = "void"  # a void change order moves no money, on either side


@dataclass(frozen=True)
class OutboundMoney:
    """An ERP → Procore entity carrying money; lines name their header (contract, direct cost),
    whose ERP row names the project, and some are listed in Procore under that header's id."""

    category: str
    spec: EntitySpec
    header: EntitySpec | None = None
    header_field: str = ""  # the ERP model's field holding the header's key
    header_scope: str | None = None  # the list path's placeholder for the header's Procore id


@dataclass(frozen=True, order=True)
class CostCode:
    project: str
    sub_job: str
    cost_code: str
    cost_type: str

    def label(self) -> str:
        return "/".join(part for part in (self.project, self.sub_job, self.cost_code, self.cost_type) if part)


@dataclass(frozen=True)
class Entry:
    """One record's money on one cost code, in the ERP and in Procore."""

    category: str
    entity: str
    key: str
    cost_code: CostCode
    erp: Decimal
    procore: Decimal
    status: str
    message: str | None = None

    @property
    def difference(self) -> Decimal:
        return self.erp - self.procore

    @property
    def explains(self) -> bool:
        return self.status in EXPLAINING

    @property
    def worth_listing(self) -> bool:
        return self.status != SYNCED or self.difference != 0


@dataclass(frozen=True)
class Line:
    """One cost code's money of one category: both sides, the difference and its explanation."""

    cost_code: CostCode
    category: str
    erp: Decimal
    procore: Decimal
    explained: Decimal  # the part of the difference its failed, blocked and not-yet-synced records make

    @property
    def difference(self) -> Decimal:
        return self.erp - self.procore

    @property
    def unexplained(self) -> Decimal:
        return self.difference - self.explained


def cost_code_of(row: dict[str, Any], project: Any) -> CostCode:
    return CostCode(_text(project), _text(row.get("sub_job_code")), _text(row.get("cost_code")),
                    _text(row.get("cost_type")))


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


@dataclass(frozen=True)
class Reading:
    """What a reconciliation reads: Procore, the state, the ERP (source and sink), in the chosen
    projects; ``wbs_codes`` is the entity whose state maps Procore's WBS ids to the ERP's."""

    client: ProcoreClient
    store: StateStore
    source: ErpSource
    sink: ErpSink
    context: dict[str, Any]
    projects: list[Project]
    wbs_codes: EntitySpec

    def refs(self) -> Refs:
        return Refs(self.store, self.source, self.context)


class Wbs:
    """Procore's WBS code ids as the ERP's cost codes, through the state's id map."""

    def __init__(self, refs: Refs, spec: EntitySpec) -> None:
        self.refs, self.spec = refs, spec

    def cost_code(self, wbs_code_id: Any, project: str) -> CostCode:
        key = self.refs.keys_by_id(self.spec).get(int(wbs_code_id)) if wbs_code_id not in (None, "") else None
        row = self.refs.erp_rows(self.spec).get(key or "")
        if row is None:  # a WBS code made in Procore, or one the ERP dropped
            return CostCode(project, "", f"Procore WBS code {wbs_code_id} (not in the ERP)", "")
        return cost_code_of(row, row.get("project_number") or project)


# --- ERP → Procore money ------------------------------------------------------------------------


def outbound_entries(money: OutboundMoney, reading: Reading) -> list[Entry]:
    spec, refs = money.spec, reading.refs()
    numbers = {p.number for p in reading.projects}
    rows = [(row, _project_of(money, row, refs)) for row in reading.source.read(spec.erp_table)]
    rows = [(row, project) for row, project in rows if project in numbers]
    states = reading.store.record_states(spec.name)
    actions = {a.key: a for a in plan(map_rows(spec, [row for row, _ in rows], refs), states,
                                      locked=spec.locked_once_synced)}
    procore = procore_by_key(money, reading, refs, states)
    wbs, entries = Wbs(refs, reading.wbs_codes), []
    for row, project in rows:
        key = str(row.data.get(spec.key_field) or "").strip()
        status, message = outbound_status(actions.get(key), states.get(key))
        erp_side = (cost_code_of(row.data, project), _amount(spec, row))
        found = procore.pop(key, None)
        procore_side = (wbs.cost_code(field_of(found, "wbs_code_id"), project),
                        amount_of(found.get(spec.money_field))) if found else None
        entries += _both_sides(money.category, spec.name, key, erp_side, procore_side, status, message)
    for key, found in procore.items():
        project = found["_project"]
        message = (f"{key} is in Procore but no longer in the ERP" if not key.startswith("Procore id ")
                   else "not created by procore-sync: in Procore only")
        entries.append(Entry(money.category, spec.name, key, wbs.cost_code(field_of(found, "wbs_code_id"), project),
                             Decimal(0), amount_of(found.get(spec.money_field)), ONLY_IN_PROCORE, message))
    return entries


def _project_of(money: OutboundMoney, row: SourceRow, refs: Refs) -> str:
    if money.header is None:
        return _text(row.data.get("project_number"))
    header_key = _model_value(money.spec, row, money.header_field)
    return _text(refs.erp_rows(money.header).get(_text(header_key), {}).get("project_number"))


def _model_value(spec: EntitySpec, row: SourceRow, name: str) -> Any:
    """A field as the ERP model reads it (a line names its contract by one of several columns)."""
    try:
        return getattr(spec.erp_model.model_validate(row.data), name)
    except ValidationError:
        return None


def _amount(spec: EntitySpec, row: SourceRow) -> Decimal:
    """The ERP row's money; a row whose amount cannot be read carries none (it fails, listed)."""
    value = _model_value(spec, row, "amount")
    return value if isinstance(value, Decimal) else Decimal(0)


def outbound_status(action: Action | None, state: RecordState | None) -> tuple[str, str | None]:
    """What a run would do with the record now, in a controller's words."""
    if action is None or action.kind == "skip":
        return SYNCED, None
    if action.kind in ("fail", "blocked"):
        return (FAILED if action.kind == "fail" else BLOCKED), action.message
    if state is not None and state.status in (FAILED, BLOCKED):
        return state.status, state.message
    if action.kind == "create":
        return NOT_YET, "not in Procore yet: the next sync creates it"
    since = f" at {state.updated_at:%Y-%m-%d %H:%M} UTC" if state else ""
    return NOT_YET, f"changed in the ERP since its last sync{since}: the next sync updates it"


def procore_by_key(money: OutboundMoney, reading: Reading, refs: Refs,
                   states: dict[str, RecordState]) -> dict[str, dict[str, Any]]:
    """Procore's records of the entity in the chosen projects, by the ERP key that holds each
    (``Procore id N`` for those no ERP record holds), each with its ERP project."""
    spec = money.spec
    keys = {s.procore_id: key for key, s in states.items() if s.procore_id}
    found: dict[str, dict[str, Any]] = {}
    for scope, project in _scopes(money, reading.projects, refs):
        for record in list_records(spec, reading.client, reading.context | scope):
            origin = record.get("origin_id")
            key = keys.get(int(record["id"])) or (
                spec.key_of_origin(origin) if spec.uses_origin_id and isinstance(origin, str)
                and origin.startswith(spec.origin_prefix) else None)
            found[key or f"Procore id {record['id']}"] = record | {"_project": project}
    return found


def _scopes(money: OutboundMoney, projects: list[Project], refs: Refs) -> Iterator[tuple[dict[str, Any], str]]:
    """Where the entity is listed: per project, or per header (a contract's lines) the state knows."""
    if money.header_scope is None or money.header is None:
        for project in projects:
            yield {"project_id": project.procore_id}, project.number
        return
    by_number = {p.number: p for p in projects}
    headers = refs.erp_rows(money.header)
    for key, state in sorted(refs.states(money.header).items()):
        project = by_number.get(_text((headers.get(key) or {}).get("project_number")))
        if state.procore_id and project is not None:
            yield {"project_id": project.procore_id, money.header_scope: state.procore_id}, project.number


def _both_sides(category: str, entity: str, key: str, erp: tuple[CostCode, Decimal],
                procore: tuple[CostCode, Decimal] | None, status: str, message: str | None) -> list[Entry]:
    """One entry where both sides book the record on one cost code; two where they differ (a
    record moved to another cost code in the ERP and not synced yet)."""
    if procore is None or procore[0] == erp[0]:
        return [Entry(category, entity, key, erp[0], erp[1], procore[1] if procore else Decimal(0), status, message)]
    return [Entry(category, entity, key, erp[0], erp[1], Decimal(0), status, message),
            Entry(category, entity, key, procore[0], Decimal(0), procore[1], status, message)]


# --- Procore → ERP money: change orders ---------------------------------------------------------


def inbound_entries(category: str, spec: InboundSpec, reading: Reading) -> list[Entry]:
    """Each change order's lines per cost code: as the ERP's tables hold them, and as Procore
    has them now; a difference is explained by the state (failed, blocked) or by a version the
    ERP has not imported yet."""
    refs = reading.refs()
    wbs, states = Wbs(refs, reading.wbs_codes), reading.store.record_states(spec.name)
    erp = _erp_change_orders(spec, reading.sink, {p.number for p in reading.projects})
    entries: list[Entry] = []
    everything = Window(None, datetime.now(UTC))
    for project in reading.projects:
        for record in spec.read(reading.client, reading.context, project, everything, Known()).records:
            key = project.key(record["id"])
            if spec.echo(record) is not None:
                continue
            status, message, booked = _procore_change_order(spec, record, project, refs, wbs, states.get(key))
            entries += _per_cost_code(category, spec.name, key, erp.pop(key, {}), booked, status, message)
    for key, booked in erp.items():
        message = "Procore no longer lists it (deleted or voided there): the next change order run marks it"
        entries += _per_cost_code(category, spec.name, key, booked, {}, NOT_YET, message)
    return entries


def _erp_change_orders(spec: InboundSpec, sink: ErpSink, numbers: set[str]) -> dict[str, dict[CostCode, Decimal]]:
    assert spec.lines is not None
    headers = {row["procore_id"]: row for row in sink.rows(spec.header)
               if row["project_number"] in numbers and not row.get("deleted") and _text(row.get("status")) != VOID}
    booked: dict[str, dict[CostCode, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in sink.rows(spec.lines):
        header = headers.get(line[spec.lines.parent])
        if header is not None:
            key = Project(0, header["project_number"]).key(header["procore_id"])
            booked[key][cost_code_of(line, header["project_number"])] += Decimal(line["amount"])
    return booked


def _procore_change_order(spec: InboundSpec, record: dict[str, Any], project: Project, refs: Refs, wbs: Wbs,
                          state: RecordState | None) -> tuple[str, str | None, dict[CostCode, Decimal]]:
    """Its status and its money per cost code, as mapped by a run (or from Procore's WBS ids
    where a run cannot map it)."""
    raw: dict[CostCode, Decimal] = defaultdict(Decimal)
    if _text(record.get("status")) != VOID:
        for line in record.get("lines", []):
            raw[wbs.cost_code(line.get("wbs_code_id"), project.number)] += amount_of(line.get("amount"))
    try:
        document = spec.map_record(record, project, refs).document
    except Blocked as exc:
        return BLOCKED, exc.message, raw
    except (InvalidRecord, ValueError) as exc:
        return FAILED, f"cannot import it into the ERP: {exc}", raw
    if state is not None and state.status in (FAILED, BLOCKED):
        return state.status, state.message, raw
    if state is not None and state.payload_hash == payload_hash(document_payload(document)):
        return SYNCED, None, raw
    return NOT_YET, "changed in Procore since the ERP imported it: the next change order run imports it", raw


def _per_cost_code(category: str, entity: str, key: str, erp: dict[CostCode, Decimal],
                   procore: dict[CostCode, Decimal], status: str, message: str | None) -> list[Entry]:
    return [Entry(category, entity, key, code, erp.get(code, Decimal(0)), procore.get(code, Decimal(0)), status,
                  message) for code in sorted(set(erp) | set(procore))]


# --- the report -----------------------------------------------------------------------------------


def chosen_projects(store: StateStore, numbers: list[str]) -> list[Project]:
    """The projects both sides know, narrowed to the form's; a project it names that Procore
    does not have yet is a mistake worth saying."""
    known = known_projects(store)
    if not numbers:
        return known
    missing = sorted(set(numbers) - {p.number for p in known})
    if missing:
        raise ConfigError(f"project {', '.join(missing)} is not in Procore (not synced yet, or not an ERP "
                          "project number); reconcile only the projects both sides know")
    return [p for p in known if p.number in numbers]


def lines_of(entries: Iterable[Entry]) -> list[Line]:
    """Entries added up per cost code and category, in cost code order."""
    sums: dict[tuple[CostCode, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for entry in entries:
        total = sums[(entry.cost_code, entry.category)]
        total[0] += entry.erp
        total[1] += entry.procore
        total[2] += entry.difference if entry.explains else Decimal(0)
    order = {category: i for i, category in enumerate(CATEGORIES)}
    return [Line(code, category, *values)
            for (code, category), values in sorted(sums.items(), key=lambda item: (item[0][0], order[item[0][1]]))]


@dataclass(frozen=True)
class MoneyReport:
    """The reconciliation's result: every cost code's money, and the records behind it."""

    lines: list[Line]
    entries: list[Entry]
    tolerance: Decimal

    def unexplained(self) -> list[Line]:
        return [line for line in self.lines if abs(line.unexplained) > self.tolerance]

    def explained(self) -> list[Line]:
        return [line for line in self.lines
                if abs(line.difference) > self.tolerance and abs(line.unexplained) <= self.tolerance]

    def verdict(self, line: Line) -> str:
        if abs(line.unexplained) > self.tolerance:
            return f"UNEXPLAINED {shown(line.unexplained)}"
        return "explained" if abs(line.difference) > self.tolerance else "matches"

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        sums = {category: (Decimal(0), Decimal(0)) for category in CATEGORIES}
        for line in self.lines:
            erp, procore = sums[line.category]
            sums[line.category] = (erp + line.erp, procore + line.procore)
        return sums

    def failure(self) -> str | None:
        """What a red run says: how many cost codes nobody explains, and which."""
        red = self.unexplained()
        if not red:
            return None
        named = "; ".join(f"{line.cost_code.label()} {line.category}: ERP {shown(line.erp)}, Procore "
                          f"{shown(line.procore)}, {shown(line.unexplained)} unexplained" for line in red[:5])
        more = f"; and {len(red) - 5} more" if len(red) > 5 else ""
        return (f"{len(red)} unexplained money differences between the ERP and Procore: {named}{more}. "
                "The reconcile-records table names the records behind each.")


def build_report(entries: list[Entry], tolerance: Decimal) -> MoneyReport:
    return MoneyReport(lines_of(entries), entries, tolerance)


def money_rows(report: MoneyReport) -> list[dict[str, Any]]:
    """One row per project and cost code: each kind of money in the ERP, in Procore and their
    difference (ERP − Procore), and the verdict (amounts as exact decimal text)."""
    rows: dict[CostCode, dict[str, Any]] = {}
    for line in report.lines:
        code = line.cost_code
        row = rows.setdefault(code, {"project": code.project, "sub_job": code.sub_job, "cost_code": code.cost_code,
                                     "cost_type": code.cost_type}
                              | {f"{_column(c)}_{side}": "0" for c in CATEGORIES for side in ("erp", "procore", "difference")}
                              | {"verdict": "matches"})
        column = _column(line.category)
        row |= {f"{column}_erp": shown(line.erp), f"{column}_procore": shown(line.procore),
                f"{column}_difference": shown(line.difference)}
        verdict = report.verdict(line)
        if verdict != "matches" and not row["verdict"].startswith("UNEXPLAINED"):
            row["verdict"] = verdict if verdict == "explained" else f"{verdict} ({line.category})"
    return list(rows.values())


CENT = Decimal("0.01")


def shown(amount: Decimal) -> str:
    """An amount as a controller reads it: cents, or every digit where there are more (the ERP
    sink's columns hold 18 decimals, mostly zeros)."""
    cents = amount.quantize(CENT)
    return str(cents) if cents == amount else format(amount.normalize(), "f")


def _column(category: str) -> str:
    return category.replace(" ", "_")


RECORD_COLUMNS = ("project", "cost_code", "money", "entity", "key", "erp", "procore", "difference", "status", "message")


def record_rows(report: MoneyReport) -> list[dict[str, Any]]:
    """The records behind the differences: every failed, blocked, not-yet-synced or
    Procore-only record, and every synced one whose two sides differ."""
    return [{"project": e.cost_code.project, "cost_code": e.cost_code.label(), "money": e.category,
             "entity": e.entity, "key": e.key, "erp": shown(e.erp), "procore": shown(e.procore),
             "difference": shown(e.difference), "status": e.status if e.explains or e.status == ONLY_IN_PROCORE
             else "synced, but Procore differs", "message": e.message or _unexplained_hint(e)}
            for e in sorted(report.entries, key=lambda e: (e.cost_code, e.category, e.key)) if e.worth_listing]


def _unexplained_hint(entry: Entry) -> str:
    return (f"synced unchanged, yet Procore holds {shown(entry.procore)} and the ERP {shown(entry.erp)}: "
            "changed in Procore? "
            f"the ERP is the master: a full resync of {entry.entity} (or a run with erp_keys [{entry.key}]) "
            "puts the ERP's amount back")


def render_summary(report: MoneyReport, projects: int) -> str:
    red, explained = report.unexplained(), report.explained()
    title = (f"{len(red)} cost codes differ and nothing explains it" if red
             else f"every difference explained ({len(explained)} cost codes)" if explained
             else "ERP and Procore agree")
    by_status = defaultdict(int)
    for entry in report.entries:
        if entry.worth_listing:
            by_status[entry.status] += 1
    lines = [f"# Reconciliation: {title}", "",
             f"{projects} projects, {len({line.cost_code for line in report.lines})} cost codes; "
             f"differences up to {report.tolerance} per cost code are rounding.", "",
             "| money | ERP | Procore | difference (ERP − Procore) |", "|---|---:|---:|---:|"]
    lines += [f"| {category} | {shown(erp)} | {shown(procore)} | {shown(erp - procore)} |"
              for category, (erp, procore) in report.totals().items()]
    lines += ["", f"- **Cost codes with a difference**: {len(red) + len(explained)}: {len(explained)} explained "
                  f"by failed, blocked or not-yet-synced records, **{len(red)} unexplained**",
              "- **Records behind them**: " + (", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none")]
    if red:
        lines += ["", "## Unexplained", "", "| cost code | money | ERP | Procore | unexplained |", "|---|---|---:|---:|---:|"]
        lines += [f"| {line.cost_code.label()} | {line.category} | {shown(line.erp)} | {shown(line.procore)} | "
                  f"{shown(line.unexplained)} |"
                  for line in red[:20]]
        lines += ["", "Each is in the `reconcile-records` table with the records on it. Nothing procore-sync "
                      "knows of (a failed, blocked or unsynced record) accounts for it: look for an edit made in "
                      "Procore or in the ERP's tables outside procore-sync."]
    elif explained:
        lines += ["", "The `reconcile-records` table names each record with its message; the failed and blocked "
                      "ones wait for a fix at their source (then `resync-failed`), the others for the next sync."]
    return "\n".join(lines)
