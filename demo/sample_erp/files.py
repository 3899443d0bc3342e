"""Generating the sample: every table in dependency order, written to DuckDB, CSV and JSON."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from demo.sample_erp import contracts, costs, jobcost, people, planning, projects
from demo.sample_erp.base import Company, TableData
from demo.sample_erp.suppliers import generate_suppliers
from flows.registry import template_columns

DUCKDB_FILE = "erp.duckdb"
TEMPLATES_DIR = "templates"
EXPECTED_FILE = "expected.json"

Generator = Callable[[random.Random, Company], TableData]

# In dependency order: a generator sees the tables before it (in ``Company.tables``).
GENERATORS: dict[str, Generator] = {
    "suppliers": generate_suppliers,
    "customers": people.generate_customers,
    "employees": people.generate_employees,
    "cost_types": projects.generate_cost_types,
    "standard_cost_codes": projects.generate_standard_cost_codes,
    "projects": projects.generate_projects,
    "sub_jobs": projects.generate_sub_jobs,
    "project_cost_codes": jobcost.generate_project_cost_codes,
    "wbs_codes": jobcost.generate_wbs_codes,
    "budget_lines": jobcost.generate_budget_lines,
    "prime_contracts": contracts.generate_prime_contracts,
    "prime_contract_lines": contracts.generate_prime_contract_lines,
    "subcontracts": contracts.generate_subcontracts,
    "subcontract_lines": contracts.generate_subcontract_lines,
    "purchase_orders": contracts.generate_purchase_orders,
    "purchase_order_lines": contracts.generate_purchase_order_lines,
    "direct_costs": costs.generate_direct_costs,
    "direct_cost_lines": costs.generate_direct_cost_lines,
    "resource_people": planning.generate_resource_people,
    "resource_projects": planning.generate_resource_projects,
}


@dataclass(frozen=True)
class SampleSummary:
    out_dir: Path
    seed: int
    scale: float
    now: datetime
    rows: dict[str, int]
    bad: dict[str, int]
    blocked: dict[str, int]
    warnings: dict[str, int]
    unicode: dict[str, int]

    def __str__(self) -> str:
        tables = ", ".join(f"{count} {table}" for table, count in self.rows.items())
        return (
            f"{sum(self.rows.values())} rows in {len(self.rows)} tables ({tables}); "
            f"{sum(self.bad.values())} bad, {sum(self.blocked.values())} blocked by a bad parent, "
            f"{sum(self.warnings.values())} with warnings, "
            f"{sum(self.unicode.values())} with odd Unicode"
        )


def generated_columns() -> dict[str, list[str]]:
    """Each table's columns as its generator declares them (a tiny company is built to learn
    them); a test holds them to the templates, which the ERP models declare."""
    company = Company(0.01, datetime.now(UTC).replace(microsecond=0))
    for name, make in GENERATORS.items():
        company.add(make(random.Random(f"0:{name}"), company))
    return {table: [column.name for column in data.columns] for table, data in company.tables.items()}


def in_template_order(data: TableData, templates: dict[str, list[str]]) -> TableData:
    """The table with its columns in its template's order, so that the sample's files and the
    empty templates agree; a generator's columns must be the template's (its ERP model's)."""
    by_name = {column.name: column for column in data.columns}
    order = templates[data.table]
    if set(order) != set(by_name):
        raise ValueError(f"{data.table}: the generator's columns {sorted(by_name)} are not the template's {order}")
    return dataclasses.replace(data, columns=tuple(by_name[name] for name in order))


def generate(
    out_dir: Path | str, *, scale: float = 1.0, seed: int = 42, now: datetime | None = None
) -> SampleSummary:
    """Write ``erp.duckdb``, ``templates/*.csv`` and ``expected.json`` into ``out_dir``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    out = Path(out_dir)
    now = aware(now or datetime.now(UTC)).replace(microsecond=0)
    company = Company(scale, now)
    # One stream per table, seeded by (seed, table): a new entity leaves the others' draws alone.
    for name, make in GENERATORS.items():
        company.add(make(random.Random(f"{seed}:{name}"), company))
    templates = template_columns()
    tables = [in_template_order(data, templates) for data in company.tables.values()]
    out.mkdir(parents=True, exist_ok=True)
    _write_duckdb(out / DUCKDB_FILE, tables)
    export_templates(out)
    write_expected(out, {data.table: data.expected() for data in tables})
    return SampleSummary(
        out_dir=out,
        seed=seed,
        scale=scale,
        now=now,
        rows={d.table: len(d.rows) for d in tables},
        bad={d.table: len(d.bad) for d in tables},
        blocked={d.table: len(d.blocked) for d in tables},
        warnings={d.table: len(d.warnings) for d in tables},
        unicode={d.table: len(d.unicode) for d in tables},
    )


def aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def read_expected(out: Path) -> dict[str, Any]:
    return json.loads((out / EXPECTED_FILE).read_text("utf-8"))


def write_expected(out: Path, expected: dict[str, Any]) -> None:
    text = json.dumps(expected, indent=2, ensure_ascii=False, default=str) + "\n"
    (out / EXPECTED_FILE).write_text(text, encoding="utf-8")


def _write_duckdb(path: Path, tables: Sequence[TableData]) -> None:
    """Build the file beside the target and swap it in, so no reader sees half a database."""
    building = path.with_name(path.name + ".building")
    for stale in (building, Path(f"{building}.wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(building))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for data in tables:
            con.execute(f'CREATE TABLE "{data.table}" ({_column_sql(data)})')
            insert_rows(con, data.table, [(c.name, c.sql_type) for c in data.columns], data.rows)
    finally:
        con.close()
    # A WAL left by an older file would be replayed into the new one.
    Path(f"{path}.wal").unlink(missing_ok=True)
    os.replace(building, path)


def _column_sql(data: TableData) -> str:
    return ", ".join(f'"{c.name}" {c.sql_type}' for c in data.columns)


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, types: Sequence[tuple[str, str]],
    rows: Sequence[dict[str, Any]],
) -> None:
    # Column lists unnested in one statement: executemany would take seconds at 10,000 rows.
    selects = ", ".join(f"unnest(?::{sql_type}[])" for _, sql_type in types)
    values = [[row[name] for row in rows] for name, _ in types]
    con.execute(f'INSERT INTO "{table}" SELECT {selects}', values)


def export_templates(out_dir: Path | str) -> list[Path]:
    """(Re)write ``templates/<table>.csv`` from ``erp.duckdb``: both always hold the same rows."""
    out = Path(out_dir)
    folder = out / TEMPLATES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(out / DUCKDB_FILE), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        tables = [row[0] for row in con.execute(_TABLES).fetchall()]
        return [_export_table(con, table, folder / f"{table}.csv") for table in tables]
    finally:
        con.close()


_TABLES = (
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    " AND schema_name = 'main' ORDER BY table_name"
)


def _export_table(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> Path:
    cursor = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL')
    header = [column[0] for column in cursor.description]
    rows = cursor.fetchall()
    # One converter per column, chosen by its first value: the same text as ``csv_value``.
    firsts = [next((row[i] for row in rows if row[i] is not None), None) for i in range(len(header))]
    converters = [_converter(first) for first in firsts]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([convert(value) for convert, value in zip(converters, row)] for row in rows)
    return path


def _converter(first: Any) -> Callable[[Any], str]:
    """Text columns need no conversion, which saves seconds at a hundred thousand rows."""
    if isinstance(first, str):
        return lambda value: "" if value is None else value
    return csv_value


def csv_value(value: Any) -> str:
    """How a DuckDB value is written in a CSV template."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)
