"""The ERP sink: where Procore's changes land in the ERP (change orders, modified budget).

Two forms of the same records, for ERPs that import either way:

- **tables** in the ERP's DuckDB file, one per record kind (``commitment_change_orders``,
  ``commitment_change_order_lines``, ...), created on first use from the pydantic model that
  describes the rows (columns named and typed as the model's fields, the first one the key);
- **CSV files** in the export folder, ``<table>.csv``, each the whole table in key order, in the
  template format of ``docs/erp-templates.md`` (UTF-8, a header line, ISO 8601 instants in UTC).
  A file is written beside its final name and renamed over it (``os.replace``), so an importer
  never sees half a file; a name starting with ``.`` marks the file being written.

Money, quantities and unit costs are exact: ``Decimal`` fields become ``DECIMAL(38, 18)``
columns (DuckDB's widest exact decimal: 20 digits before the point, 18 after), a row whose
number does not fit is refused before anything is written (``SinkTable.misfits``: DuckDB would
round the extra decimals silently and fail the whole write on too many digits), and the CSV
files write each number with its digits (at least two decimals, no padding beyond). Tables made
with narrower columns by an earlier version are widened on first use.

Records are keyed by their Procore id: writing one again replaces it (a rerun updates, never
duplicates), and a document's lines are replaced as a whole with it. Nothing is deleted: a record
deleted in Procore stays, marked ``deleted``. Every row carries ``synced_at``, when procore-sync
last wrote it, so an ERP import job can take the rows changed since its last import.

The file is shared with the ERP source (``connectors/erp.py``) through the same turns
(``connectors/duckdb_file.py``): one writer at a time, readers between writes.
"""

from __future__ import annotations

import os
import tempfile
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from connectors.duckdb_file import DuckDbFile, transaction
from procore_sync.errors import TransientError

SYNCED_AT = "synced_at"
DELETED = "deleted"  # the column of header tables that marks a record deleted in Procore
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Every decimal column: (digits, of which after the point). No float type: money is never rounded.
ERP_DECIMAL = (38, 18)
DECIMAL_TYPE = f"DECIMAL({ERP_DECIMAL[0]},{ERP_DECIMAL[1]})"
# Python type of a model field → DuckDB column type.
COLUMN_TYPES: dict[type, str] = {
    bool: "BOOLEAN",
    int: "BIGINT",
    Decimal: DECIMAL_TYPE,
    date: "DATE",
    datetime: "TIMESTAMPTZ",
    str: "VARCHAR",
}
# A decimal in the CSV files: its digits, with at least two decimals ("0.30", "1.123456789").
CSV_DECIMAL = r"regexp_replace(CAST({0} AS VARCHAR), '(\.[0-9]{{2}}[0-9]*?)0+$', '\1') AS {0}"


class ErpSinkBusy(TransientError):
    hint = "another process is using the ERP database; the run retries by itself."


def _column_type(annotation: Any) -> str:
    """The DuckDB type of ``X`` or ``X | None``; checked against COLUMN_TYPES."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else annotation
    if annotation not in COLUMN_TYPES:  # exact: datetime is a date subclass
        raise TypeError(f"no ERP column type for {annotation!r}")
    return COLUMN_TYPES[annotation]


@dataclass(frozen=True)
class SinkTable:
    """One ERP table, described by the model of its rows; the model's first field is the key.

    ``parent`` names the column that holds the document's key, for tables of lines.
    """

    name: str
    model: type[BaseModel]
    parent: str | None = None

    @property
    def key(self) -> str:
        return next(iter(self.model.model_fields))

    @property
    def columns(self) -> list[tuple[str, str]]:
        declared = [(name, _column_type(info.annotation)) for name, info in self.model.model_fields.items()]
        return [*declared, (SYNCED_AT, "TIMESTAMPTZ")]

    def misfits(self, row: BaseModel) -> list[str]:
        """What in ``row`` its columns cannot hold, each naming the row, the field and the value."""
        where = f"{self.name} {getattr(row, self.key)}"
        return [f"{where}: {name} {value} {problem}" for name, value in row
                if isinstance(value, Decimal) and (problem := _decimal_misfit(value))]


def _decimal_misfit(value: Decimal) -> str | None:
    digits, scale = ERP_DECIMAL
    sign, figures, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int), "Procore's numbers are finite (flows.change_orders.exact)"
    after = max(-exponent, 0)
    before = max(len(figures) + exponent, 0) if value else 0
    if before > digits - scale:
        return f"has {before} digits before the point, more than the {digits - scale} the ERP's {DECIMAL_TYPE} holds"
    if after > scale:
        return f"has {after} decimals, more than the {scale} the ERP's {DECIMAL_TYPE} holds"
    return None


@dataclass(frozen=True)
class SinkDocument:
    """A record and its lines (``header`` is a row of the header table)."""

    header: BaseModel
    lines: list[BaseModel] = field(default_factory=list)

    def misfits(self, header: SinkTable, lines: SinkTable | None) -> list[str]:
        """The numbers of the document the ERP's columns cannot hold (none: it may be written):
        its lines', else its header's (a header's total of misfit lines says nothing more)."""
        found = [m for line in self.lines for m in lines.misfits(line)] if lines else []
        return found or header.misfits(self.header)


class ErpSink:
    def __init__(self, erp_path: Path | str, export_dir: Path | str, *, lock_timeout_s: float = 60.0) -> None:
        self._file = DuckDbFile(erp_path, what="the ERP database", busy=ErpSinkBusy, lock_timeout_s=lock_timeout_s)
        self.export_dir = Path(export_dir)

    def describe(self) -> str:
        return f"tables in {self._file.path}, CSV files in {self.export_dir}"

    def write(self, header: SinkTable, lines: SinkTable | None, documents: Sequence[SinkDocument]) -> None:
        """Upsert the documents (and replace their lines) in one transaction, then re-export."""
        tables = [header, *([lines] if lines else [])]
        if not documents and all(self.export_path(table).exists() for table in tables):
            return
        now = datetime.now(UTC)
        self._file.path.parent.mkdir(parents=True, exist_ok=True)
        with self._file.connect(write=True) as con:
            with transaction(con):
                for table in tables:
                    _ensure(con, table)
                _upsert(con, header, [d.header for d in documents], now)
                if lines is not None and documents:
                    keys = [getattr(d.header, header.key) for d in documents]
                    con.execute(f"DELETE FROM {lines.name} WHERE {lines.parent} IN (SELECT unnest(?))", [keys])
                    _upsert(con, lines, [line for d in documents for line in d.lines], now)
            for table in tables:
                self._export(con, table)

    def mark_deleted(self, header: SinkTable, keys: Sequence[int]) -> None:
        """Mark records deleted in Procore as ``deleted`` (their rows and lines stay)."""
        with self._file.connect(write=True) as con:
            with transaction(con):
                con.execute(f"UPDATE {header.name} SET {DELETED} = true, {SYNCED_AT} = ?"
                            f" WHERE {header.key} IN (SELECT unnest(?))", [datetime.now(UTC), list(keys)])
            self._export(con, header)

    def rows(self, table: SinkTable) -> list[dict[str, Any]]:
        """Every row of ``table`` in key order (empty when the table does not exist yet)."""
        if not self._file.path.is_file():
            return []
        with self._file.connect(write=False) as con:
            if not _exists(con, table):
                return []
            cursor = con.execute(f"SELECT * FROM {table.name} ORDER BY {table.key}")
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def export_path(self, table: SinkTable) -> Path:
        return self.export_dir / f"{table.name}.csv"

    def _export(self, con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
        self.export_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{table.name}.", suffix=".csv.tmp", dir=self.export_dir)
        os.close(handle)
        try:
            shown = ", ".join(CSV_DECIMAL.format(name) if kind == DECIMAL_TYPE else name
                              for name, kind in table.columns)
            con.execute(
                f"COPY (SELECT {shown} FROM {table.name} ORDER BY {table.key}) TO '{temporary}'"
                f" (HEADER, TIMESTAMPFORMAT '{TIMESTAMP_FORMAT}')"
            )
            os.replace(temporary, self.export_path(table))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _exists(con: duckdb.DuckDBPyConnection, table: SinkTable) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?", [table.name]).fetchone()[0])


def _ensure(con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in table.columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, PRIMARY KEY ({table.key}))")
    _widen(con, table)


def _widen(con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
    """Decimal columns an earlier version made narrower (DECIMAL(18,2), DOUBLE) become exact and
    wide. Through text, so a DOUBLE's 1.1 stays 1.1 (a direct cast gives 1.100000000000000088...)."""
    found = dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?", [table.name]).fetchall())
    for name, kind in table.columns:
        if kind == DECIMAL_TYPE and found.get(name) not in (None, DECIMAL_TYPE):
            con.execute(f"ALTER TABLE {table.name} ALTER {name} SET DATA TYPE {kind}"
                        f" USING CAST(CAST({name} AS VARCHAR) AS {kind})")


def _upsert(con: duckdb.DuckDBPyConnection, table: SinkTable, rows: Sequence[BaseModel], now: datetime) -> None:
    """All rows in one statement: one list per column, unnested by DuckDB (``executemany``
    takes seconds for a few hundred rows)."""
    if not rows:
        return
    dumped = [row.model_dump() for row in rows]
    columns = table.columns
    values = [[row.get(name) for row in dumped] if name != SYNCED_AT else [now] * len(dumped) for name, _ in columns]
    select = ", ".join(f"unnest(?::{kind}[]) AS {name}" for name, kind in columns)
    names = ", ".join(name for name, _ in columns)
    con.execute(f"INSERT OR REPLACE INTO {table.name} ({names}) SELECT {names} FROM (SELECT {select})", values)
