"""ERP sources: where the rows of an entity come from, behind one small interface.

An ``ErpSource`` yields ``SourceRow``s (a dict of Python values and, where the source has one,
the row's line number for messages) for a table, optionally only the rows changed since a
cursor. Sources read tolerantly and judge nothing: validation belongs to the entity's mapping,
which reports a bad row by key and line instead of the source dropping it.

- ``DuckDbErpSource``: tables in a DuckDB file (the sample ERP, or an export job's output).
- ``CsvErpSource``: CSV templates in a folder, one ``<table>.csv`` per table, all values strings.

Both map entity names to table names through ``tables`` (e.g. ``{"vendors": "suppliers"}``;
unmapped names are used as they are), both filter ``updated_at >= since`` (inclusive, so a row
saved in the same instant as the cursor is read again rather than lost) and both order rows by
``updated_at`` then key (by convention a table's first column). ``read`` fetches everything
before returning, so errors (missing file or table) surface at the call. Timestamps come out
timezone-aware in UTC; a zone-less timestamp is taken as UTC, as ``docs/erp-templates.md`` says.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import duckdb

from connectors.duckdb_file import DuckDbFile
from procore_sync.errors import ConfigError, TransientError
from procore_sync.records import ErpSource, SourceRow, key_of, key_values  # noqa: F401
from procore_sync.source_config import CURSOR_COLUMN

# The ERP file may be being rewritten (an export job, ``procore-sync sample-erp``): wait a bit.
LOCK_WAIT_S = 10.0


class ErpFileBusy(TransientError):
    hint = "another process is writing the ERP file; the run retries by itself."


def _aware_utc(value: datetime) -> datetime:
    # Zone-less timestamps are UTC by the template contract (module docstring).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def since_utc(since: datetime | None) -> datetime | None:
    if since is not None and since.tzinfo is None:
        raise ValueError(f"since must be timezone-aware (got naive {since.isoformat()})")
    return since.astimezone(UTC) if since is not None else None


# --- DuckDB -----------------------------------------------------------------------------------


class DuckDbErpSource:
    """Tables (or views) of a DuckDB file, opened read-only by each read and closed before it
    returns."""

    def __init__(self, path: Path | str, tables: Mapping[str, str] | None = None, *,
                 lock_timeout_s: float = LOCK_WAIT_S) -> None:
        self.path = Path(path)
        self.tables = dict(tables or {})
        # Turns shared with the ERP sink, which writes Procore's changes into the same file.
        self._file = DuckDbFile(path, what="the ERP database", busy=ErpFileBusy, lock_timeout_s=lock_timeout_s)

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def read(self, entity: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        # Fetched whole before returning: the file must not stay locked while the caller works,
        # and a missing file or table raises here, not at the first row.
        rows = self._fetch(self.tables.get(entity, entity), since_utc(since))
        return iter([SourceRow(data) for data in rows])

    def _fetch(self, table: str, since: datetime | None) -> list[dict[str, Any]]:
        with self._connect_to(table) as (con, columns):
            cursor = con.execute(*select_since(quote(table), list(columns), since, f"table {table!r}"))
            names = [column[0] for column in cursor.description]
            return [python_row(names, row) for row in cursor.fetchall()]

    def read_keys(self, entity: str, key_field: str, keys: Collection[str]) -> list[SourceRow]:
        """The rows whose key is one of ``keys``, found by DuckDB instead of in every row read
        into Python; ``rows_with_keys`` compares the keys exactly."""
        table = self.tables.get(entity, entity)
        with self._connect_to(table) as (con, types):
            columns = list(types)
            if types.get(key_field) != "VARCHAR":  # other types print differently in SQL
                cursor = con.execute(*select_since(quote(table), columns, None, f"table {table!r}"))
            else:
                # Keys as stored, and any key with something around it (the engine strips keys).
                column = quote(key_field)
                near = (f"(SELECT * FROM {quote(table)} WHERE {column} IN (SELECT unnest(?::VARCHAR[]))"
                        f" OR NOT regexp_full_match({column}, '(?s)[!-~](.*[!-~])?'))")
                sql, params = select_since(near, columns, None, f"table {table!r}")
                cursor = con.execute(sql, [sorted(keys), *params])
            names = [column[0] for column in cursor.description]
            return [SourceRow(python_row(names, row)) for row in cursor.fetchall()]

    def key_values(self, entity: str, key_field: str) -> set[str]:
        """The table's keys alone, as the engine reads them (``key_of``): what tells whether a
        parent is in the ERP, without reading its rows."""
        table = self.tables.get(entity, entity)
        with self._connect_to(table) as (con, types):
            if key_field not in types:  # every row reads as blank
                return {""} if con.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0] else set()
            values = con.execute(f"SELECT {quote(key_field)} FROM {quote(table)}").fetchall()
        return {key_of(python_row([key_field], value), key_field) for value in values}

    @contextmanager
    def _connect_to(self, table: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[str, str]]]:
        """A read-only connection, and the table's columns in order with their types."""
        if not self.path.is_file():
            raise ConfigError(
                f"the ERP database {self.path} does not exist; set PROCORE_SYNC_ERP_PATH to the "
                "ERP's DuckDB file (or run `procore-sync sample-erp` for a sample)"
            )
        with self._file.connect(write=False) as con:
            yield con, self._columns(con, table)

    def _columns(self, con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
        rows = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database()"
            " AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        if not rows:
            raise ConfigError(
                f"the ERP database {self.path} has no table {table!r} "
                f"(tables: {', '.join(self._table_names(con)) or 'none'})"
            )
        return dict(rows)

    @staticmethod
    def _table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            " AND schema_name = 'main' ORDER BY 1"
        ).fetchall()
        return [row[0] for row in rows]


def rows_with_keys(source: ErpSource, table: str, key_field: str, keys: Collection[str]) -> list[SourceRow]:
    """The rows of ``table`` whose key is one of ``keys``: asked of a source that can find them
    (``read_keys``: a DuckDB file), else picked from every row."""
    wanted = set(keys)
    if not wanted:
        return []
    read_keys = getattr(source, "read_keys", None)
    rows = read_keys(table, key_field, wanted) if read_keys else source.read(table)
    return [row for row in rows if key_of(row.data, key_field) in wanted]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_since(rows_sql: str, columns: list[str], since: datetime | None, what: str) -> tuple[str, list[Any]]:
    """Rows of ``rows_sql`` (a quoted table, or a parenthesised query) changed since the cursor,
    by ``updated_at`` then every column (the key comes first).

    Rows without ``updated_at`` are always read: nothing says they are unchanged.
    """
    has_cursor = CURSOR_COLUMN in columns
    if since is not None and not has_cursor:
        raise ConfigError(f"{what} has no {CURSOR_COLUMN} column, so it cannot be read since a cursor")
    order = [c for c in columns if c != CURSOR_COLUMN]
    if has_cursor:
        order.insert(0, CURSOR_COLUMN)
    sql = f"SELECT * FROM {rows_sql}"
    params: list[Any] = []
    if since is not None:
        sql += f" WHERE {quote(CURSOR_COLUMN)} >= ? OR {quote(CURSOR_COLUMN)} IS NULL"
        params.append(since)
    sql += " ORDER BY " + ", ".join(f"{quote(c)} NULLS FIRST" for c in order)
    return sql, params


def python_row(names: list[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return {
        name: _aware_utc(value) if isinstance(value, datetime) else value
        for name, value in zip(names, values)
    }


# --- CSV --------------------------------------------------------------------------------------


class CsvErpSource:
    """CSV templates in a folder: ``<folder>/<table>.csv``, UTF-8 (BOM or not) or UTF-16 (with
    its BOM), with a header. A row whose cells cannot be trusted (a wrong cell count, bytes that
    are not UTF-8, a NUL byte, a cell over 128 KiB, a quote left open, a duplicated column with
    two values) carries its ``problem``, naming the column: it fails alone, the file is read."""

    def __init__(self, folder: Path | str, tables: Mapping[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.tables = dict(tables or {})

    def describe(self) -> str:
        return f"CSV folder {self.folder}"

    def path_of(self, entity: str) -> Path:
        return self.folder / f"{self.tables.get(entity, entity)}.csv"

    def read(self, entity: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        since = since_utc(since)
        rows = [row for row in self._rows(self.path_of(entity)) if _changed(row, since)]
        rows.sort(key=cursor_order)
        return iter(rows)

    def _rows(self, path: Path) -> list[SourceRow]:
        if not path.is_file():
            raise ConfigError(f"the ERP template {path} does not exist (folder {self.folder})")
        # The csv module refuses a cell over 128 KiB with an exception that would fail the whole
        # file; a cell may be as large as the file, and the row that has one fails alone (_too_long).
        csv.field_size_limit(max(csv.field_size_limit(), min(path.stat().st_size + 1, 2**31 - 1)))
        # Bytes that are not UTF-8 (a file saved as Windows-1252) fail their own rows, not the file.
        with path.open(encoding=_encoding(path), errors="surrogateescape", newline="") as handle:
            return list(_parse(handle, path))


def _encoding(path: Path) -> str:
    """UTF-16 when the file starts with its byte order mark (Excel's "Unicode text"), else UTF-8
    with or without a BOM."""
    with path.open("rb") as handle:
        start = handle.read(2)
    return "utf-16" if start in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _parse(handle: TextIO, path: Path) -> Iterator[SourceRow]:
    """Rows as dicts of strings; ``line`` is where the row starts (quoted fields span lines)."""
    reader = csv.reader(handle)
    # A BOM written twice (a file re-saved by a tool that adds one) stays on the first name.
    header = [name.strip().strip("\ufeff") for name in next(reader, [])]
    if not header:
        raise ConfigError(f"the ERP template {path} is empty; it needs a header line")
    start = reader.line_num + 1
    for values in reader:
        if any(value.strip() for value in values):
            encoding = _not_utf8(header, values)
            if encoding:  # the row fails; its key and cells must still be text the state can hold
                values = [value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for value in values]
            problem = (_cell_count(header, values, start, reader.line_num) or encoding
                       or _cell_problem(header, values, start, reader.line_num))
            yield SourceRow(_csv_row(header, values), line=start, problem=problem)
        start = reader.line_num + 1


def _cell_count(header: list[str], values: list[str], start: int, end: int) -> str | None:
    """A row with more or fewer cells than the header: its cells cannot be told apart (a
    stray or missing comma shifts every value after it), so the row fails as a whole."""
    if len(values) == len(header):
        return None
    problem = f"{len(values)} cells, but the header has {len(header)} columns (a missing or extra comma?)"
    if end > start:  # a quote left open swallows the lines after it into one cell
        problem += f"; the row runs on to line {end}: a quote left open?"
    return problem


# A cell longer than this is no ERP value: most likely a quote left open swallowed the file.
CELL_MAX = 128 * 1024


def _cell_problem(header: list[str], values: list[str], start: int, end: int) -> str | None:
    """What is wrong in the row's cells, naming the column; None when nothing is."""
    for name, value in zip(header, values):
        if end > start and _holds_rows(value, len(header)):
            return (f"{name} runs on to line {end} and holds what look like rows of their own: "
                    "a quote left open? close it and upload again")
        if len(value) > CELL_MAX:
            return f"{name} is {len(value):,} characters long, more than a cell may hold ({CELL_MAX:,})"
        if "\x00" in value:
            return (f"{name} has a NUL byte: the file is not plain text (half written, or saved as "
                    "UTF-16 without a byte order mark?); save it as CSV UTF-8")
    return _duplicate_columns(header, values)


def _holds_rows(value: str, columns: int) -> bool:
    """A quoted cell over several lines is fine (a note); one whose lines each have as many
    commas as a row is a quote left open that swallowed the rows after it."""
    lines = value.splitlines()[1:]
    return columns > 1 and bool(lines) and all(line.count(",") >= columns - 1 for line in lines[:3])


def _duplicate_columns(header: list[str], values: list[str]) -> str | None:
    """A column twice in the header is harmless while both cells agree; when they differ, which
    one the ERP means cannot be told, so the row fails."""
    for name in {name for name in header if header.count(name) > 1}:
        at = [n for n, column in enumerate(header) if column == name]
        if len({values[n] for n in at if n < len(values)}) > 1:
            columns = ", ".join(str(n + 1) for n in at)
            return (f"{name} is in the header {len(at)} times (columns {columns}) and this row has different "
                    "values in them; remove the extra column")
    return None


# What ``errors="surrogateescape"`` turns a byte that is not UTF-8 into.
_UNDECODED = re.compile("[\udc80-\udcff]")


def _not_utf8(header: list[str], values: list[str]) -> str | None:
    for name, value in zip(header, values):
        if _UNDECODED.search(value):
            raw = value.encode("utf-8", errors="surrogateescape")
            return f"{name} is not UTF-8 text ({raw!r}); save the file as UTF-8 (in Excel: CSV UTF-8)"
    return None


def _csv_row(header: list[str], values: list[str]) -> dict[str, Any]:
    # Short rows read their missing cells as blanks (the row fails anyway: _cell_count).
    data: dict[str, Any] = dict(zip(header, values + [""] * (len(header) - len(values))))
    raw = data.get(CURSOR_COLUMN)
    if raw and raw.strip():
        data[CURSOR_COLUMN] = parse_timestamp(raw.strip()) or raw
    return data


def parse_timestamp(text: str) -> datetime | None:
    """ISO 8601 (``2026-11-01T08:30:00Z``, ``2026-11-01 08:30:00+00:00``, ``2026-11-01``)."""
    try:
        return _aware_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _changed(row: SourceRow, since: datetime | None) -> bool:
    # Unparsable or blank updated_at: read it, so the mapping can report it.
    value = row.data.get(CURSOR_COLUMN)
    return since is None or not isinstance(value, datetime) or value >= since


def cursor_order(row: SourceRow) -> tuple[datetime, str, int]:
    """``updated_at`` (unparsable first), then the key (a template's first column), then line."""
    value = row.data.get(CURSOR_COLUMN)
    first = next(iter(row.data.values()), "")
    when = value if isinstance(value, datetime) else datetime.min.replace(tzinfo=UTC)
    return (when, str(first), row.line or 0)
