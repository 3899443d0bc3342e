"""The ERP sink's tables in an ERP database on a PostgreSQL server, shared by hosts.

The same tables as in the ERP's DuckDB file (``connectors/erp_sink_duckdb.py``), said in
PostgreSQL's types (``NUMERIC(38,18)``, ``TEXT``; the rest by the same names), in the schema
the URL's ``search_path`` puts first. Connections, transactions and advisory locks are
``connectors/postgres_db.py``'s, as for the state.

What the file's turn gave, asked for here: a write is one transaction holding the advisory lock
of each table it writes (``erp_sink/<table>``). Without it, two hosts' first writes both create
a table (one fails on PostgreSQL's catalog), and two writes of the same documents in different
orders wait for each other's rows crosswise (one fails as a deadlock); replacing a document's
lines (delete, then insert) also relies on no other write of that document in between. Under the
same lock, after the commit, a second transaction reads each table for its CSV export, so the
files are renamed in commit order and the export written last holds every committed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from pydantic import BaseModel

from connectors.erp_sink_duckdb import CsvExport
from connectors.erp_sink_tables import DECIMAL_TYPE, DELETED, SYNCED_AT, ErpSinkBusy, SinkDocument, SinkTable
from connectors.postgres_db import PgConnection, PostgresDatabase
from procore_sync.errors import ConfigError

# DuckDB's type names (erp_sink_tables.COLUMN_TYPES) that PostgreSQL says otherwise.
POSTGRES_TYPES = {DECIMAL_TYPE: "NUMERIC(38,18)", "VARCHAR": "TEXT"}
# format_type() of a column already as wide as the sink's decimals.
_WIDE = "numeric(38,18)"


def _type(kind: str) -> str:
    return POSTGRES_TYPES.get(kind, kind)


def _lock_names(tables: Sequence[SinkTable]) -> list[str]:
    return [f"erp_sink/{table.name}" for table in tables]


class PostgresTables:
    """The sink's tables in a PostgreSQL database (``SinkBackend``)."""

    def __init__(self, url: str, exports: CsvExport, *, lock_timeout_s: float = 60.0) -> None:
        self._db = PostgresDatabase(url, what="the ERP sink database", busy=ErpSinkBusy, lock_timeout_s=lock_timeout_s)
        self.exports = exports

    @property
    def location(self) -> str:
        return self._db.location

    def write(self, header: SinkTable, lines: SinkTable | None, documents: Sequence[SinkDocument],
              now: datetime) -> None:
        tables = [header, *([lines] if lines else [])]
        with self._db.write(*_lock_names(tables)) as con:
            for table in tables:
                self._ensure(con, table)
            _upsert(con, header, [d.header for d in documents], now)
            if lines is not None and documents:
                keys = [getattr(d.header, header.key) for d in documents]
                con.execute(f"DELETE FROM {lines.name} WHERE {lines.parent}"
                            f" = ANY($1::{_type(lines.type_of(lines.parent or ''))}[])", [keys])
                _upsert(con, lines, [line for d in documents for line in d.lines], now)
        self._export(tables)

    def mark_deleted(self, header: SinkTable, keys: Sequence[int], now: datetime) -> None:
        with self._db.write(*_lock_names([header])) as con:
            con.execute(f"UPDATE {header.name} SET {DELETED} = true, {SYNCED_AT} = $1"
                        f" WHERE {header.key} = ANY($2::{_type(header.type_of(header.key))}[])", [now, list(keys)])
        self._export([header])

    def rows(self, table: SinkTable) -> list[dict[str, Any]]:
        with self._db.connect() as con:
            if not _exists(con, table):
                return []
            cursor = con.execute(f"SELECT * FROM {table.name} ORDER BY {table.key}", [])
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def existing(self, tables: Sequence[SinkTable]) -> list[str]:
        with self._db.connect() as con:
            return [table.name for table in tables if _exists(con, table)]

    def _ensure(self, con: PgConnection, table: SinkTable) -> None:
        try:
            _ensure(con, table)
        except psycopg.errors.InvalidSchemaName as exc:
            raise ConfigError(f"{self._db.what} {self.location} has no schema to create {table.name} in: create the "
                              "schema its URL's search_path names (CREATE SCHEMA ...), or name one that exists") from exc

    def _export(self, tables: Sequence[SinkTable]) -> None:
        """Each table's file from its committed rows, under its lock: a later writer's export
        waits for this one, so the files end in commit order."""
        with self._db.write(*_lock_names(tables)) as con:
            self.exports.from_values([(table, _columns(con, table)) for table in tables])


def _columns(con: PgConnection, table: SinkTable) -> list[list[Any]]:
    """Every row of ``table`` in key order, as one list per column."""
    names = ", ".join(name for name, _ in table.columns)
    found = con.execute(f"SELECT {names} FROM {table.name} ORDER BY {table.key}", []).fetchall()
    return [list(column) for column in zip(*found)] if found else [[] for _ in table.columns]


def _exists(con: PgConnection, table: SinkTable) -> bool:
    """Whether ``table`` is found on the connection's search path."""
    return con.execute("SELECT to_regclass($1) IS NOT NULL", [table.name]).fetchone()[0]


def _ensure(con: PgConnection, table: SinkTable) -> None:
    columns = ", ".join(f"{name} {_type(kind)}" for name, kind in table.columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}, PRIMARY KEY ({table.key}))", [])
    _widen(con, table)


def _widen(con: PgConnection, table: SinkTable) -> None:
    """Decimal columns made narrower (NUMERIC(18,2), DOUBLE PRECISION: by an ERP team that made
    the tables first) become exact and wide, through text as in the DuckDB file."""
    found = dict(con.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped", [table.name]).fetchall())
    for name in table.narrowed(found, _WIDE):
        con.execute(f"ALTER TABLE {table.name} ALTER {name} TYPE {_WIDE}"
                    f" USING CAST(CAST({name} AS TEXT) AS {_WIDE})", [])


def _upsert(con: PgConnection, table: SinkTable, rows: Sequence[BaseModel], now: datetime) -> None:
    """All rows in one statement, one array per column; a key already there is replaced."""
    if not rows:
        return
    columns = table.columns
    arrays = ", ".join(f"${n}::{_type(kind)}[]" for n, (_, kind) in enumerate(columns, start=1))
    names = ", ".join(name for name, _ in columns)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name, _ in columns if name != table.key)
    con.execute(f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays})"
                f" ON CONFLICT ({table.key}) DO UPDATE SET {updates}", table.values(rows, now))
