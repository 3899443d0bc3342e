"""Compare the ERP with Procore, entity by entity, and list every difference.

For each entity: the ERP rows are mapped exactly as a sync would map them; the records that a
sync would send are looked up in Procore (by the Procore id the state remembers, else by
origin_id) in the scopes they belong to (company, project, contract), and every mapped field is
compared with Procore's value. Money entities also compare totals per project and WBS code
(cost code and cost type). Records that are failed or blocked in the ERP mapping are counted as
known, not as differences; Procore records carrying one of our origin_ids that the ERP no
longer has are reported as unexpected.

The Procore → ERP entities (change orders, modified budget) are compared the other way round by
``reconcile_inbound``: what Procore holds now, mapped as a run would, against the ERP's rows.
``reconcile_entity`` takes either kind of spec and compares it the way its ``direction`` syncs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.erp import ErpSource
from connectors.erp_sink import SYNCED_AT, ErpSink
from connectors.procore import ProcoreClient
from connectors.state import StateStore
from procore_sync.records import ProcoreId, RecordState
from procore_sync.errors import Blocked, InvalidRecord
from tasks.compare import same
from tasks.inbound import KEY_SEPARATOR, InboundSpec, Known, Window, document_payload, known_projects
from tasks.outcomes import field_of, procore_id_of
from tasks.mapping import MappedRecord, map_rows
from tasks.refs import Refs
from tasks.spec import ERP_TO_PROCORE, PROCORE_TO_ERP, Direction, EntitySpec, Spec


@dataclass(frozen=True)
class Difference:
    key: str
    # missing_in_procore | unexpected_in_procore | value | total; Procore → ERP entities:
    # missing_in_erp | unexpected_in_erp | value | lines
    kind: str
    field: str | None = None
    erp: Any = None
    procore: Any = None


@dataclass
class Reconciliation:
    entity: str
    erp_records: int = 0
    to_sync: int = 0
    procore_records: int = 0
    matched: int = 0
    known_failed: int = 0
    known_blocked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"clean": self.clean}, default=str)


def reconcile(spec: EntitySpec, client: ProcoreClient, store: StateStore, source: ErpSource,
              context: dict[str, Any]) -> Reconciliation:
    records = map_rows(spec, source.read(spec.erp_table), Refs(store, source, context))
    states = store.record_states(spec.name)
    # Records Procore refused are known too: the state has Procore's reason.
    refused = {r.key for r in records if r.ok and _refused(states.get(r.key))}
    wanted = [r for r in records if r.ok and r.key not in refused]
    result = Reconciliation(spec.name, erp_records=len(records), to_sync=len(wanted),
                            known_failed=sum(r.error is not None for r in records) + len(refused),
                            known_blocked=sum(r.blocked is not None for r in records))
    procore = _procore_records(spec, client, context, wanted)
    result.procore_records = len(procore)
    by_origin = {r.get("origin_id"): r for r in procore.values() if r.get("origin_id")}
    for record in wanted:
        state = states.get(record.key)
        found = procore.get(state.procore_id) if state and state.procore_id else None
        found = found or by_origin.get(spec.origin_id(record.key))
        if found is None:
            result.differences.append(Difference(record.key, "missing_in_procore"))
            continue
        result.matched += 1
        result.differences += _value_differences(record, found, spec.read_as)
    result.differences += _unexpected(spec, records, by_origin)
    if spec.money_field:
        result.differences += _total_differences(spec.money_field, wanted, procore.values())
    return result


def _procore_records(spec: EntitySpec, client: ProcoreClient, context: dict[str, Any],
                     wanted: list[MappedRecord]) -> dict[ProcoreId, dict[str, Any]]:
    scopes = {tuple(sorted(r.scope.items())) for r in wanted} or {()}
    found: dict[ProcoreId, dict[str, Any]] = {}
    for scope in scopes:
        values = context | dict(scope)
        for record in list_records(spec, client, values):
            found[procore_id_of(record["id"])] = record | {"_scope": dict(scope)}
    return found


def list_records(spec: EntitySpec, client: ProcoreClient, scope: dict[str, Any]) -> Iterable[dict[str, Any]]:
    if spec.lister is not None:
        return spec.lister(client, scope)
    return client.paginate(spec.list_path.format(**scope), {k: scope[k] for k in spec.list_scope})


def _refused(state: RecordState | None) -> bool:
    return state is not None and state.status == "failed" and not state.procore_id


def _value_differences(record: MappedRecord, found: dict[str, Any], read_as: dict[str, str]) -> list[Difference]:
    """Every sent field that Procore's representation shows, compared; fields a representation
    does not carry at all (a budget view's row has no unit of measure) cannot be checked there."""
    names = {name: read_as.get(name, name) for name in record.payload or {}}
    shown = {name: field_of(found, as_shown) for name, as_shown in names.items() if _carries(found, as_shown)}
    return [
        Difference(record.key, "value", name, (record.payload or {})[name], value)
        for name, value in shown.items()
        if not same((record.payload or {})[name], value)
    ]


def _carries(record: dict[str, Any], name: str) -> bool:
    return name in record or name.removesuffix("_id") in record


def _unexpected(spec: EntitySpec, records: list[MappedRecord], by_origin: dict[str, dict]) -> list[Difference]:
    if not spec.uses_origin_id:
        return []
    known = {spec.origin_id(r.key) for r in records}
    ours = [o for o in by_origin if isinstance(o, str) and o.startswith(spec.origin_prefix) and o not in known]
    if not spec.origin_prefix:  # vendors share their list with customers: skip the prefixed ones
        ours = [o for o in ours if ":" not in o]
    return [Difference(spec.key_of_origin(o), "unexpected_in_procore") for o in ours]


def _total_differences(money_field: str, wanted: list[MappedRecord], procore: Iterable[dict]) -> list[Difference]:
    erp: dict[tuple, Decimal] = defaultdict(Decimal)
    for record in wanted:
        erp[(record.scope.get("project_id"), (record.payload or {}).get("wbs_code_id"))] += amount_of(
            (record.payload or {}).get(money_field))
    seen: dict[tuple, Decimal] = defaultdict(Decimal)
    for found in procore:
        seen[(found["_scope"].get("project_id"), field_of(found, "wbs_code_id"))] += amount_of(found.get(money_field))
    return [
        Difference(f"project {project} / wbs code {wbs}", "total", money_field, str(erp[(project, wbs)]),
                   str(seen[(project, wbs)]))
        for project, wbs in sorted(set(erp) | set(seen), key=str)
        if abs(erp[(project, wbs)] - seen[(project, wbs)]) > Decimal("0.005")
    ]


def amount_of(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


# --- Procore → ERP entities -------------------------------------------------------------------


def reconcile_inbound(spec: InboundSpec, client: ProcoreClient, store: StateStore, source: ErpSource,
                      sink: ErpSink, context: dict[str, Any]) -> Reconciliation:
    """The other way round: every record Procore has now, mapped as a run would map it, against
    the ERP's rows (header fields and the set of lines). Records a run blocks or fails are known;
    echoes of an integration are not the ERP's to hold; ERP rows whose record Procore no longer
    has must be marked deleted, else they are unexpected."""
    refs = Refs(store, source, context)
    result = Reconciliation(spec.name)
    expected: dict[str, dict[str, Any]] = {}
    known: set[str] = set()
    everything = Window(None, datetime.now(UTC))
    for project in known_projects(store):
        for record in spec.read(client, context, project, everything, Known()).records:
            key = project.key(record["id"])
            result.procore_records += 1
            if spec.echo(record) is not None:
                known.add(key)
                continue
            try:
                document = spec.map_record(record, project, refs).document
            except Blocked:
                result.known_blocked += 1
                known.add(key)
                continue
            except (InvalidRecord, ValueError):
                document = None
            if document is None or document.misfits(spec.header, spec.lines):  # a run fails it
                result.known_failed += 1
                known.add(key)
            else:
                expected[key] = document_payload(document)
    rows = {f"{row['project_number']}{KEY_SEPARATOR}{row[spec.header.key]}": _as_json(row)
            for row in sink.rows(spec.header)}
    lines: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    if spec.lines is not None:
        for line in sink.rows(spec.lines):
            lines[line[spec.lines.parent]].append(_as_json(line))
    result.erp_records, result.to_sync = len(rows), len(expected)
    for key, payload in expected.items():
        row = rows.get(key)
        if row is None or row.get("deleted"):
            result.differences.append(Difference(key, "missing_in_erp"))
            continue
        result.matched += 1
        result.differences += [Difference(key, "value", name, row.get(name), value)
                               for name, value in payload["header"].items() if not same(value, row.get(name))]
        if spec.lines is not None:
            held = lines.get(int(payload["header"][spec.header.key]), [])
            result.differences += _line_differences(key, spec.lines.key, payload["lines"], held)
    result.differences += [Difference(key, "unexpected_in_erp") for key, row in rows.items()
                           if not row.get("deleted") and key not in expected and key not in known]
    return result


def _line_differences(key: str, line_key: str, expected: list[dict[str, Any]],
                      held: list[dict[str, Any]]) -> list[Difference]:
    """A document's lines, matched by their key and compared field by field."""
    wanted = {str(line[line_key]): line for line in expected}
    found = {str(line[line_key]): line for line in held}
    if set(wanted) != set(found):
        return [Difference(key, "lines", line_key, sorted(found), sorted(wanted))]
    return [Difference(f"{key} line {name}", "value", field_name, found[name].get(field_name), value)
            for name, line in wanted.items() for field_name, value in line.items()
            if not same(value, found[name].get(field_name))]


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A DuckDB row as the JSON a payload holds (decimals and dates as text)."""
    return {name: value if isinstance(value, bool | int | float | str) or value is None else str(value)
            for name, value in row.items() if name != SYNCED_AT}


# --- either direction -------------------------------------------------------------------------


def reconcile_entity(spec: Spec, client: ProcoreClient, store: StateStore, source: ErpSource, sink: ErpSink,
                     context: dict[str, Any]) -> Reconciliation:
    """ERP and Procore compared for ``spec``, the way its direction syncs (``RECONCILERS``)."""
    return RECONCILERS[spec.direction](spec, client, store, source, sink, context)


def _reconcile_outbound(spec: EntitySpec, client: ProcoreClient, store: StateStore, source: ErpSource,
                        sink: ErpSink, context: dict[str, Any]) -> Reconciliation:
    """ERP → Procore, with the company-level ids its mapping needs (``prepare``); the sink is unused."""
    context = context | (spec.prepare(client, context) if spec.prepare else {})
    return reconcile(spec, client, store, source, context)


Reconciler = Callable[[Any, ProcoreClient, StateStore, ErpSource, ErpSink, dict[str, Any]], Reconciliation]
RECONCILERS: dict[Direction, Reconciler] = {ERP_TO_PROCORE: _reconcile_outbound, PROCORE_TO_ERP: reconcile_inbound}
