"""The ERP sink: where Procore's changes land in the ERP (change orders, modified budget).

Two forms of the same records, for ERPs that import either way:

- **tables** in the ERP's database, one per record kind (``commitment_change_orders``,
  ``commitment_change_order_lines``, ...), created on first use from the pydantic model that
  describes the rows (columns named and typed as the model's fields, the first one the key;
  ``connectors/erp_sink_tables.py``). The database is the ERP's DuckDB file (``erp_path``,
  ``connectors/erp_sink_duckdb.py``), or, where hosts share the work, a PostgreSQL database
  (``erp_sink_url``, ``connectors/erp_sink_postgres.py``): one interface, two backends;
- **CSV files** in the export folder, ``<table>.csv``, each the whole table in key order, in the
  template format of ``docs/erp-templates.md`` (UTF-8, a header line, ISO 8601 instants in UTC),
  written by DuckDB for both backends, so the same rows make the same bytes. A file is written
  beside its final name and renamed over it (``os.replace``), so an importer never sees half a
  file; a name starting with ``.`` marks the file being written.

Money, quantities and unit costs are exact: ``Decimal`` fields become ``DECIMAL(38, 18)``
columns (20 digits before the point, 18 after), a row whose number does not fit is refused
before anything is written (``SinkTable.misfits``: DuckDB would round the extra decimals
silently and fail the whole write on too many digits), and the CSV files write each number with
its digits (at least two decimals, no padding beyond). Tables made with narrower columns (by an
earlier version, or by an ERP team beforehand) are widened on first use.

Records are keyed by their Procore id: writing one again replaces it (a rerun updates, never
duplicates), and a document's lines are replaced as a whole with it. Nothing is deleted: a record
deleted in Procore stays, marked ``deleted``. Every row carries ``synced_at``, when procore-sync
last wrote it, so an ERP import job can take the rows changed since its last import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.erp_sink_duckdb import CsvExport, DuckDbTables
from connectors.erp_sink_postgres import PostgresTables
from connectors.erp_sink_tables import (
    DECIMAL_TYPE, DELETED, ERP_DECIMAL, SYNCED_AT, ErpSinkBusy, SinkBackend, SinkDocument, SinkTable,
)
from connectors.postgres_db import is_postgres_url
from procore_sync.settings import Settings

__all__ = ["DECIMAL_TYPE", "DELETED", "ERP_DECIMAL", "SYNCED_AT", "ErpSink", "ErpSinkBusy", "SinkDocument",
           "SinkTable"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def sink_location(settings: Settings) -> Path | str:
    """Where the settings put the sink's tables: ``erp_sink_url`` when set, else the ERP file."""
    return settings.erp_sink_url.get_secret_value() if settings.erp_sink_url is not None else settings.erp_path


class ErpSink:
    """The sink's tables at ``location`` (a DuckDB file's path or a ``postgresql://`` URL) and
    their CSV exports in ``export_dir``."""

    def __init__(self, location: Path | str, export_dir: Path | str, *, lock_timeout_s: float = 60.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._exports = CsvExport(export_dir)
        self._tables: SinkBackend = (
            PostgresTables(location, self._exports, lock_timeout_s=lock_timeout_s) if is_postgres_url(location)
            else DuckDbTables(location, self._exports, lock_timeout_s=lock_timeout_s))
        self._clock = clock

    @classmethod
    def open(cls, settings: Settings) -> "ErpSink":
        """The sink the settings name (``sink_location``), exporting to ``export_dir``."""
        return cls(sink_location(settings), settings.export_dir)

    @property
    def export_dir(self) -> Path:
        return self._exports.export_dir

    @property
    def location(self) -> str:
        """The tables' database, without a password."""
        return self._tables.location

    def describe(self) -> str:
        return f"tables in {self.location}, CSV files in {self.export_dir}"

    def write(self, header: SinkTable, lines: SinkTable | None, documents: Sequence[SinkDocument]) -> None:
        """Upsert the documents (and replace their lines) in one transaction, then re-export."""
        tables = [header, *([lines] if lines else [])]
        if not documents and all(self.export_path(table).exists() for table in tables):
            return
        self._tables.write(header, lines, documents, self._clock())

    def mark_deleted(self, header: SinkTable, keys: Sequence[int]) -> None:
        """Mark records deleted in Procore as ``deleted`` (their rows and lines stay)."""
        self._tables.mark_deleted(header, keys, self._clock())

    def rows(self, table: SinkTable) -> list[dict[str, Any]]:
        """Every row of ``table`` in key order (empty when the table does not exist yet)."""
        return self._tables.rows(table)

    def existing(self, tables: Sequence[SinkTable]) -> list[str]:
        """The names of ``tables`` the database holds (a sink not written yet holds none)."""
        return self._tables.existing(tables)

    def export_path(self, table: SinkTable) -> Path:
        return self._exports.path(table)
