"""The ERP sink's tables in the ERP's DuckDB file, and the CSV exports of either backend.

The file is shared with the ERP source (``connectors/erp.py``) through the same turns
(``connectors/duckdb_file.py``): one writer at a time, readers between writes. A write's
transaction and the exports it leaves are one turn, so two writers' files are renamed in the
order their rows committed.

``CsvExport`` writes every export file, for this backend and the PostgreSQL one alike: DuckDB's
``COPY`` of the table (or of the rows PostgreSQL handed over, loaded into an in-memory DuckDB), so
the two backends write the same bytes for the same rows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from connectors.duckdb_file import DuckDbFile, transaction
from connectors.erp_sink_tables import DECIMAL_TYPE, DELETED, SYNCED_AT, ErpSinkBusy, SinkDocument, SinkTable

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# A decimal in the CSV files: its digits, with at least two decimals ("0.30", "1.123456789").
CSV_DECIMAL = r"regexp_replace(CAST({0} AS VARCHAR), '(\.[0-9]{{2}}[0-9]*?)0+$', '\1') AS {0}"


class CsvExport:
    """``<export_dir>/<table>.csv``: the whole table in key order, written beside its final name
    and renamed over it (``os.replace``), so an importer never sees half a file; a name starting
    with ``.`` marks the file being written."""

    def __init__(self, export_dir: Path | str) -> None:
        self.export_dir = Path(export_dir)

    def path(self, table: SinkTable) -> Path:
        return self.export_dir / f"{table.name}.csv"

    def from_table(self, con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
        """The file of ``table`` as ``con`` sees it (its session's TimeZone UTC)."""
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
            os.replace(temporary, self.path(table))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def from_values(self, tables: Sequence[tuple[SinkTable, list[list[Any]]]]) -> None:
        """The files of tables whose rows another database handed over, each as one list per
        column, through an in-memory DuckDB of their own (made in ~10 ms)."""
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET TimeZone = 'UTC'")
            for table, values in tables:
                create(con, table)
                insert(con, table, values)
                self.from_table(con, table)
        finally:
            con.close()


class DuckDbTables:
    """The sink's tables in the ERP's DuckDB file (``SinkBackend``)."""

    def __init__(self, path: Path | str, exports: CsvExport, *, lock_timeout_s: float = 60.0) -> None:
        self._file = DuckDbFile(path, what="the ERP database", busy=ErpSinkBusy, lock_timeout_s=lock_timeout_s)
        self.exports = exports

    @property
    def location(self) -> str:
        return str(self._file.path)

    def write(self, header: SinkTable, lines: SinkTable | None, documents: Sequence[SinkDocument],
              now: datetime) -> None:
        tables = [header, *([lines] if lines else [])]
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
                self.exports.from_table(con, table)

    def mark_deleted(self, header: SinkTable, keys: Sequence[int], now: datetime) -> None:
        with self._file.connect(write=True) as con:
            with transaction(con):
                con.execute(f"UPDATE {header.name} SET {DELETED} = true, {SYNCED_AT} = ?"
                            f" WHERE {header.key} IN (SELECT unnest(?))", [now, list(keys)])
            self.exports.from_table(con, header)

    def rows(self, table: SinkTable) -> list[dict[str, Any]]:
        if not self._file.path.is_file():
            return []
        with self._file.connect(write=False) as con:
            if not _exists(con, table):
                return []
            cursor = con.execute(f"SELECT * FROM {table.name} ORDER BY {table.key}")
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def existing(self, tables: Sequence[SinkTable]) -> list[str]:
        if not self._file.path.is_file():
            return []
        with self._file.connect(write=False) as con:
            return [table.name for table in tables if _exists(con, table)]


def _exists(con: duckdb.DuckDBPyConnection, table: SinkTable) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?", [table.name]).fetchone()[0])


def create(con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in table.columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, PRIMARY KEY ({table.key}))")


def _ensure(con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
    create(con, table)
    _widen(con, table)


def _widen(con: duckdb.DuckDBPyConnection, table: SinkTable) -> None:
    """Decimal columns an earlier version made narrower (DECIMAL(18,2), DOUBLE) become exact and
    wide. Through text, so a DOUBLE's 1.1 stays 1.1 (a direct cast gives 1.100000000000000088...)."""
    found = dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?", [table.name]).fetchall())
    for name in table.narrowed(found, DECIMAL_TYPE):
        con.execute(f"ALTER TABLE {table.name} ALTER {name} SET DATA TYPE {DECIMAL_TYPE}"
                    f" USING CAST(CAST({name} AS VARCHAR) AS {DECIMAL_TYPE})")


def _upsert(con: duckdb.DuckDBPyConnection, table: SinkTable, rows: Sequence[BaseModel], now: datetime) -> None:
    if rows:
        insert(con, table, table.values(rows, now), replace=True)


def insert(con: duckdb.DuckDBPyConnection, table: SinkTable, values: list[list[Any]], *, replace: bool = False) -> None:
    """All rows in one statement: one list per column, unnested by DuckDB (``executemany``
    takes seconds for a few hundred rows)."""
    columns = table.columns
    select = ", ".join(f"unnest(?::{kind}[]) AS {name}" for name, kind in columns)
    names = ", ".join(name for name, _ in columns)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    con.execute(f"{verb} INTO {table.name} ({names}) SELECT {names} FROM (SELECT {select})", values)
