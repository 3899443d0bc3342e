"""A database source: one SQL query per table, run by DuckDB.

The query reads a DuckDB file (``path``), or anything DuckDB reads here without downloading an
extension: more DuckDB files ATTACHed under a name (``attach``: ``{"hr": "/data/hr.duckdb"}``,
then ``FROM hr.people``), CSV and Parquet files (``read_csv('export.csv')``,
``read_parquet(...)``). Each query's rows are treated like a table's: ``updated_at`` filters
them since the cursor (inclusive; rows without it are always read), they come ordered by
``updated_at`` then the key, and timestamps come out UTC-aware. A query has a time limit,
``timeout_s`` (5 minutes by default): one still running then is interrupted and the run stops
with a message (a runaway join, a table on a wedged mount), instead of holding the run forever::

    {"kind": "query", "path": "/data/erp.duckdb",
     "queries": {"resource_projects": "SELECT job_no AS project_number, job_name AS name, ... FROM jobs"}}
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import duckdb

from connectors.duckdb_file import DuckDbFile
from connectors.erp import LOCK_WAIT_S, ErpFileBusy, SourceRow, python_row, quote, select_since, since_utc
from procore_sync.errors import ConfigError
from procore_sync.source_config import QuerySourceConfig


class ErpQueryTooSlow(ConfigError):
    hint = ("make the query faster (a narrower join, an index, a smaller file) or raise the query "
            "source's timeout_s in PROCORE_SYNC_SOURCES.")


class QueryErpSource:
    def __init__(self, config: QuerySourceConfig) -> None:
        self.config = config
        # An instance of its own per read: the queries attach files under names of their own.
        self._file = (DuckDbFile(config.path, what="the ERP database", busy=ErpFileBusy, lock_timeout_s=LOCK_WAIT_S,
                                 attached=False)
                      if config.path is not None else None)

    def describe(self) -> str:
        return f"SQL queries on {self.config.path or 'DuckDB in memory'}"

    def read(self, table: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        query = self.config.queries.get(table)
        if query is None:
            raise ConfigError(f"the query source has no query for {table}; it has: "
                              f"{', '.join(sorted(self.config.queries)) or 'none'}")
        if self.config.path is not None and not self.config.path.is_file():
            raise ConfigError(f"the database {self.config.path} of the query source does not exist")
        return iter([SourceRow(data) for data in self._fetch(table, query.strip().rstrip(";"), since_utc(since))])

    def _fetch(self, table: str, query: str, since: datetime | None) -> list[dict[str, Any]]:
        with self._connect() as con:
            try:
                for name, path in self.config.attach.items():
                    con.execute(f"ATTACH {_literal(str(path))} AS {quote(name)} (READ_ONLY)")
                columns = [column[0] for column in con.execute(f"SELECT * FROM ({query}) LIMIT 0").description]
                with _interrupted_after(con, self.config.timeout_s):
                    cursor = con.execute(*select_since(f"({query})", columns, since, f"the query for {table}"))
                    rows = cursor.fetchall()
            except duckdb.InterruptException as exc:
                raise ErpQueryTooSlow(f"the query for {table} ran longer than {self.config.timeout_s:g} s "
                                      "(timeout_s) and was stopped") from exc
            except duckdb.Error as exc:
                raise ConfigError(f"the query for {table} failed: {exc}") from exc
            names = [column[0] for column in cursor.description]
            return [python_row(names, row) for row in rows]

    def _connect(self) -> Any:
        if self._file is not None:
            return self._file.connect(write=False)
        return duckdb.connect(":memory:")


@contextmanager
def _interrupted_after(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """DuckDB has no statement timeout: a timer interrupts the connection's query instead."""
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
