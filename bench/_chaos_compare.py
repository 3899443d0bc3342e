"""The chaos run's verdict: two Procores (and the ERP each run wrote) compared record by record.

Nothing here asks procore-sync what it did: the Procore side is the sandbox's own store, the
ERP side the sink's tables and the CSV files on disk. Ids differ between the two sandboxes, so
every record is named by its natural identity instead: its ``origin_id`` where it has one,
else the fields that name it in its company or project (a project's number, a WBS code's
segments, a budget line's WBS code, a Resource Planning person's employee number, a change
order's title), and every id a record holds (``vendor_id``, ``segment_items``, ``group_ids``,
a sink row's ``procore_id``...) is replaced by the identity of the record it points to. Two
records are the same when their identities match, and equal when everything but ``id`` and
the timestamps matches.

The procore-sync state is read for one thing only: a record the clean run landed that is
still failed or blocked (or never tried) in the faulty run's state counts as missing, even
when part of it reached Procore: "stuck" is not "safe".
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

Record = dict[str, Any]
VOLATILE = frozenset({"id", "created_at", "updated_at", "synced_at"})
# Kinds without origin_id: the fields that name a record within its project or company.
NAMED_BY: dict[str, tuple[str, ...]] = {
    "projects": ("project_number",),
    "standard_cost_code_lists": ("name",),
    "rp_groups": ("name",),
    "rp_people": ("employee_number",),
    "rp_projects": ("project_number",),
    "wbs_codes": ("segment_items",),
    "budget_views": ("name",),
    "budget_line_items": ("wbs_code_id",),
    "commitment_change_orders": ("title",),
    "prime_change_orders": ("title",),
    "budget_changes": ("title",),
    "budget_modifications": ("title",),
}
# Which procore-sync entity answers for each kind of Procore record (vendors are split below).
ENTITY_OF_KIND: dict[str, str] = {
    "users": "employees", "projects": "projects", "standard_cost_codes": "standard_cost_codes",
    "line_item_types": "cost_types", "sub_jobs": "sub_jobs", "cost_codes": "project_cost_codes",
    "wbs_codes": "wbs_codes", "budget_line_items": "budget_lines", "prime_contracts": "prime_contracts",
    "prime_contract_line_items": "prime_contract_lines", "work_order_contracts": "subcontracts",
    "work_order_contract_line_items": "subcontract_lines", "purchase_order_contracts": "purchase_orders",
    "purchase_order_contract_line_items": "purchase_order_lines", "direct_costs": "direct_costs",
    "direct_cost_line_items": "direct_cost_lines", "rp_people": "resource_people",
    "rp_projects": "resource_projects", "commitment_change_orders": "commitment_change_orders",
    "commitment_change_order_line_items": "commitment_change_orders", "change_order_packages": "commitment_change_orders",
    "prime_change_orders": "prime_change_orders", "prime_change_order_line_items": "prime_change_orders",
    "budget_changes": "budget_changes", "budget_change_adjustment_line_items": "budget_changes",
    "budget_modifications": "budget_modifications",
    "standard_cost_code_lists": "(the company itself)", "rp_groups": "(the company itself)",
    "budget_views": "(the company itself)",
}
# Amounts compared to the cent per project and cost code: kind -> amount field. Every money
# record the sandbox holds: the ERP's budget, contracts and costs, and the field's changes.
MONEY: dict[str, str] = {
    "budget_line_items": "original_budget_amount",
    "prime_contract_line_items": "amount",
    "work_order_contract_line_items": "amount",
    "purchase_order_contract_line_items": "amount",
    "direct_cost_line_items": "amount",
    "commitment_change_order_line_items": "amount",
    "prime_change_order_line_items": "amount",
    "budget_change_adjustment_line_items": "amount",
}
# The same in the ERP sink, per table of lines: (its header table, the column naming the header).
# Budget modifications move money between two budget lines: (header-less table, None).
ERP_MONEY: dict[str, tuple[str | None, str | None]] = {
    "commitment_change_order_lines": ("commitment_change_orders", "change_order_procore_id"),
    "prime_change_order_lines": ("prime_change_orders", "change_order_procore_id"),
    "budget_change_lines": ("budget_changes", "budget_change_procore_id"),
    "budget_modifications": (None, None),
}
CENT = Decimal("0.01")
LANDED = ("ok", "warning")


@dataclass
class Snapshot:
    """What one side holds at the end: Procore records by kind, ERP sink rows and CSV export
    rows by table (with each table's key column), and the state's status per entity and key."""

    records: dict[str, list[Record]]
    erp: dict[str, tuple[str, list[Record]]] = field(default_factory=dict)
    exports: dict[str, tuple[str, list[Record]]] = field(default_factory=dict)
    states: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Figures:
    """One line of the verdict; every figure must be 0."""

    entity: str
    records: int = 0  # what the clean side holds
    missing: int = 0
    extra: int = 0
    different: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, other: Figures) -> None:
        self.records += other.records
        self.missing += other.missing
        self.extra += other.extra
        self.different += other.different
        self.examples.extend(other.examples)

    @property
    def clean(self) -> bool:
        return self.missing == self.extra == self.different == 0


class Names:
    """Natural identities of every record of one sandbox, by id."""

    def __init__(self, records: dict[str, list[Record]]) -> None:
        self.by_id: dict[Any, tuple[str, Record]] = {
            record["id"]: (kind, record) for kind, rows in records.items() for record in rows
        }
        self._names: dict[Any, str] = {}

    def name(self, record_id: Any) -> str:
        if record_id not in self._names:
            kind, record = self.by_id[record_id]
            self._names[record_id] = "?"  # a reference cycle names itself "?" instead of looping
            self._names[record_id] = self._identity(kind, record)
        return self._names[record_id]

    def _identity(self, kind: str, record: Record) -> str:
        scope = self.name(record["project_id"]) + "/" if "project_id" in record and kind != "projects" else ""
        if record.get("origin_id") is not None:
            return f"{kind}:{record['origin_id']}"
        fields = NAMED_BY.get(kind)
        content = {f: record.get(f) for f in fields} if fields else self.content(record)
        return f"{scope}{kind}:{self.canonical(content)!r}"

    def content(self, record: Record) -> Record:
        """The record without its id and timestamps, every reference replaced by a name."""
        return {k: self.canonical(v, k) for k, v in sorted(record.items()) if k not in VOLATILE}

    def canonical(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return tuple((k, self.canonical(v, k)) for k, v in sorted(value.items()) if k not in VOLATILE)
        if isinstance(value, list):
            return tuple(sorted((self.canonical(v, key) for v in value), key=repr))
        if key.endswith(("_id", "_ids")) and value in self.by_id and not isinstance(value, bool):
            return self.name(value)
        if key.endswith(("_id", "_ids", "_key")) and isinstance(value, str):
            return self.canonical_text(value)
        return value

    def canonical_text(self, text: str) -> str:
        """A key written as text (``P-1002|562949953421474``): each id part named."""
        parts = [self.name(int(p)) if p.isdigit() and int(p) in self.by_id else p for p in text.split("|")]
        return "|".join(parts)


def entity_of(kind: str, record: Record) -> str:
    if kind == "vendors":
        return "customers" if str(record.get("origin_id") or "").startswith("customer:") else "vendors"
    return ENTITY_OF_KIND.get(kind, kind)


def _tally(entity: str, clean: dict[str, list[Any]], faulty: dict[str, list[Any]]) -> Figures:
    """Records grouped by name on each side: names only one side has are missing or extra; a
    name held twice is one extra; equal names with unequal content are different."""
    figures = Figures(entity, records=sum(len(v) for v in clean.values()))
    for name in clean.keys() | faulty.keys():
        mine, theirs = clean.get(name, []), faulty.get(name, [])
        figures.missing += max(0, len(mine) - len(theirs))
        figures.extra += max(0, len(theirs) - len(mine))
        if mine and theirs and set(map(repr, mine)) != set(map(repr, theirs)):
            figures.different += 1
            figures.examples.append(f"{name}: clean {mine[0]!r} != faulty {theirs[0]!r}")
        elif len(mine) != len(theirs):
            figures.examples.append(f"{name}: clean has {len(mine)}, faulty {len(theirs)}")
    return figures


def _grouped(names: Names, rows: Iterable[tuple[str, Record]]) -> dict[str, dict[str, list[Any]]]:
    """entity -> record name -> contents."""
    grouped: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for kind, record in rows:
        grouped[entity_of(kind, record)][names.name(record["id"])].append(names.content(record))
    return grouped


def compare_procore(clean: Snapshot, faulty: Snapshot) -> dict[str, Figures]:
    sides = [Names(s.records) for s in (clean, faulty)]
    grouped = [_grouped(n, ((k, r) for k, rows in s.records.items() for r in rows))
               for n, s in zip(sides, (clean, faulty), strict=True)]
    return {e: _tally(e, grouped[0].get(e, {}), grouped[1].get(e, {})) for e in grouped[0].keys() | grouped[1].keys()}


def _rows_by_name(names: Names, key: str, rows: list[Record]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        content = {k: names.canonical(v, k if k != key else "procore_id") for k, v in sorted(row.items())
                   if k not in VOLATILE}
        found[repr(content[key])].append(content)
    return found


def compare_tables(clean: dict[str, tuple[str, list[Record]]], faulty: dict[str, tuple[str, list[Record]]],
                   clean_records: dict[str, list[Record]], faulty_records: dict[str, list[Record]],
                   what: str) -> dict[str, Figures]:
    """ERP tables (or CSV exports) by table; ids in them named through each side's sandbox."""
    names = Names(clean_records), Names(faulty_records)
    figures: dict[str, Figures] = {}
    for table in clean.keys() | faulty.keys():
        key = (clean.get(table) or faulty[table])[0]
        mine = _rows_by_name(names[0], key, clean.get(table, (key, []))[1])
        theirs = _rows_by_name(names[1], key, faulty.get(table, (key, []))[1])
        figures[f"{what} {table}"] = _tally(f"{what} {table}", mine, theirs)
    return figures


Cell = tuple[str, str, str]  # (kind or table, project, cost code)


def money(snapshot: Snapshot) -> dict[Cell, Decimal]:
    """Procore's totals to the cent per (kind, project, cost code): the cost code of a line on a
    WBS code is the cost code among its segments; a budget modification moves its amount from
    one budget line's cost code to the other's."""
    names = Names(snapshot.records)
    totals: dict[Cell, Decimal] = defaultdict(Decimal)

    def add(kind: str, record: Record, amount: Any) -> None:
        cost_code = record.get("cost_code_id") or _wbs_cost_code(names, record.get("wbs_code_id"))
        totals[(kind, names.name(record["project_id"]), names.name(cost_code) if cost_code else "-")] += amount

    for kind, amount_field in MONEY.items():
        for record in snapshot.records.get(kind, []):
            add(kind, record, exact(record.get(amount_field)))
    for modification in snapshot.records.get("budget_modifications", []):
        for end, sign in (("from", -1), ("to", 1)):
            line = names.by_id.get(modification.get(f"{end}_budget_line_item_id"), ("", None))[1]
            if line is not None:
                add("budget_modifications", line, sign * exact(modification.get("transfer_amount")))
    return to_the_cent(totals)


def erp_money(tables: dict[str, tuple[str, list[Record]]]) -> dict[Cell, Decimal]:
    """The ERP sink's totals to the cent per (table, project, cost code), from its tables or its
    CSV files (numbers as text there): each line takes its project from its header (a line
    without one counts under "(no header)"); a budget modification moves its amount from one
    budget line to the other (their keys name the cost code)."""
    totals: dict[Cell, Decimal] = defaultdict(Decimal)
    for table, (header_table, parent) in ERP_MONEY.items():
        if header_table is None:
            for row in tables.get(table, ("", []))[1]:
                for end, sign in (("from", -1), ("to", 1)):
                    cell = (table, str(row["project_number"]), str(row[f"{end}_budget_line_key"]))
                    totals[cell] += sign * exact(row["transfer_amount"])
            continue
        header_key, headers = tables.get(header_table, ("", []))
        projects = {str(h[header_key]): str(h["project_number"]) for h in headers}
        for line in tables.get(table, ("", []))[1]:
            project = projects.get(str(line[parent]), "(no header)")
            totals[(table, project, str(line.get("cost_code") or "-"))] += exact(line["amount"])
    return to_the_cent(totals)


def exact(amount: Any) -> Decimal:
    """An amount as the decimal it is: Decimal, decimal text (the sandbox, CSV) or None."""
    return Decimal(str(amount)) if amount not in (None, "") else Decimal(0)


def to_the_cent(totals: dict[Cell, Decimal]) -> dict[Cell, Decimal]:
    return {cell: total.quantize(CENT) for cell, total in totals.items()}


def _wbs_cost_code(names: Names, wbs_code_id: Any) -> Any:
    if wbs_code_id not in names.by_id:
        return None
    _, wbs = names.by_id[wbs_code_id]
    items = [i.get("segment_item_id") for i in wbs.get("segment_items") or []]
    return next((i for i in items if i in names.by_id and names.by_id[i][0] == "cost_codes"), None)


def compare_money(clean: Snapshot, faulty: Snapshot) -> list[Figures]:
    """Money per project and cost code, to the cent: in Procore, in the ERP's tables and in its
    CSV files; one line of the verdict each."""
    pairs = {"money per project and cost code": (money(clean), money(faulty)),
             "ERP money per project and cost code": (erp_money(clean.erp), erp_money(faulty.erp)),
             "CSV money per project and cost code": (erp_money(clean.exports), erp_money(faulty.exports))}
    return [_tally(what, {repr(c): [t] for c, t in mine.items()}, {repr(c): [t] for c, t in theirs.items()})
            for what, (mine, theirs) in pairs.items()]


def stuck(clean: Snapshot, faulty: Snapshot) -> dict[str, Figures]:
    """Per entity: keys the clean run landed that the faulty run's state holds as failed,
    blocked, or not at all."""
    figures: dict[str, Figures] = {}
    for entity, statuses in clean.states.items():
        theirs = faulty.states.get(entity, {})
        left = sorted(k for k, s in statuses.items() if s in LANDED and theirs.get(k) not in LANDED)
        figures[entity] = Figures(entity, missing=len(left),
                                  examples=[f"{k}: {theirs.get(k, 'never tried')} in the faulty state" for k in left])
    return figures


def read_exports(folder: Path, keys: dict[str, str]) -> dict[str, tuple[str, list[Record]]]:
    """The CSV files an ERP import job would read, row by row (as text)."""
    found = {}
    for table, key in keys.items():
        path = folder / f"{table}.csv"
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                found[table] = (key, list(csv.DictReader(handle)))
    return found


def verdict(clean: Snapshot, faulty: Snapshot, entities: Iterable[str]) -> list[Figures]:
    """One line per entity (Procore records, its ERP tables and exports, and its stuck records
    added up), then three for money (Procore, ERP tables, CSV files); in the order of ``entities``."""
    lines = {e: Figures(e) for e in entities}
    parts = [compare_procore(clean, faulty), stuck(clean, faulty)]
    for part in parts:
        for entity, figures in part.items():
            lines.setdefault(entity, Figures(entity)).add(figures)
    tables = compare_tables(clean.erp, faulty.erp, clean.records, faulty.records, "ERP table")
    tables |= compare_tables(clean.exports, faulty.exports, clean.records, faulty.records, "CSV export")
    for name, figures in sorted(tables.items()):
        lines[name] = figures
    return [*lines.values(), *compare_money(clean, faulty)]
