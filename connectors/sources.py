"""Where each ERP table comes from: one source per table, chosen in the settings.

``PROCORE_SYNC_SOURCES`` maps a table (a template's name: ``suppliers``, ``employees``,
``resource_people``...) or ``default`` to a source; unnamed tables come from the default, which
is the ERP DuckDB file (``PROCORE_SYNC_ERP_PATH``). So people can come from the HR system's SFTP
drop and projects from the ERP's database::

    PROCORE_SYNC_SOURCES='{"resource_people": {"kind": "sftp", "host": "hr.example", ...},
                           "resource_projects": {"kind": "query", "path": "erp.duckdb", ...}}'

Kinds: ``duckdb`` (tables of a DuckDB file), ``query`` (one SQL query per table,
``connectors.erp_query``), ``api`` (a JSON-over-HTTP system of record, ``connectors.erp_api``),
and the two template drops, ``folder`` and ``sftp`` (``connectors.drops``), read here through
``UploadSource``.

An upload is the whole truth for its table once complete (the drop decides when: a ``.done``
marker or an atomic rename). A run takes it (claims it in the drop and copies it into
``<home>/uploads/pending``), syncs every row, and when the run completes accepts it: the drop
archives the file and the copy becomes ``<home>/uploads/current/<table>.csv``, which later runs
and child entities read (a child's parent rows, the records still blocked) until the next
upload. In replace mode, the engine deactivates in Procore the records a new upload no longer
has, within a safety share.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING


from connectors.drops import Drop, FolderDrop, SftpDrop
from connectors.erp import CsvErpSource, DuckDbErpSource, ErpSource, SourceRow, key_values, rows_with_keys
from connectors.erp_api import ApiErpSource
from connectors.erp_query import QueryErpSource
from procore_sync.errors import ConfigError
from procore_sync.source_config import (
    ApiSourceConfig,
    DuckDbSourceConfig,
    QuerySourceConfig,
    SftpTemplatesConfig,
    SourceConfig,
)

try:
    import fcntl
except ImportError:  # Windows: no lock; one run at a time per table is then the operator's to keep.
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from procore_sync.settings import Settings

DEFAULT = "default"


class UploadSource:
    """CSV templates dropped in a folder or on an SFTP server (see the module docstring).

    While a run holds an upload (from ``take`` to ``accept`` or ``discard``) it holds an
    exclusive lock on ``<staging>/<table>.lock``, so two runs on this machine (sync-all's and the
    entity's own deployment) never sync one upload twice; the lock goes with a killed process,
    and the next run resumes the upload that process had claimed.
    """

    def __init__(self, drop: Drop, staging: Path, *, replace: bool = True, max_deactivate_share: float = 0.2) -> None:
        self.drop = drop
        self.replace, self.max_deactivate_share = replace, max_deactivate_share
        self.staging = staging
        self.pending_dir, self.current_dir = staging / "pending", staging / "current"
        self._held: dict[str, IO[str]] = {}

    def describe(self) -> str:
        return f"templates uploaded to {self.drop.describe()}"

    def take(self, table: str, now: datetime) -> Path | None:
        """A complete new upload of ``table``, claimed in the drop and copied locally; None when
        there is none, or when another run is syncing one."""
        if not self._lock(table):
            return None
        try:
            local = self.drop.fetch(table, self.pending_dir) if self.drop.claim(table, now) else None
            if local is None:  # nothing complete (or it changed while copied: still being written)
                self._unlock(table)
            return local
        except BaseException:
            self.discard(table)
            raise

    def in_use(self, table: str) -> bool:
        """Whether another run on this machine holds an upload of ``table`` now."""
        if table in self._held:
            return False
        if not self._lock(table):
            return True
        self._unlock(table)
        return False

    def holds(self, table: str) -> bool:
        """Whether this source holds an upload of ``table`` it has neither accepted nor discarded."""
        return table in self._held

    def discard(self, table: str) -> None:
        """Give back an upload the run did not accept: the drop has it again for the next run."""
        try:
            (self.pending_dir / f"{table}.csv").unlink(missing_ok=True)
            self.drop.release(table)
        finally:
            self._unlock(table)

    def available(self, table: str) -> bool:
        """Whether any upload of ``table`` (pending or accepted) is here to read."""
        return any((folder / f"{table}.csv").is_file() for folder in (self.pending_dir, self.current_dir))

    def accept(self, table: str, stamp: datetime) -> str:
        """The run synced the upload: archive it in the drop and keep it as the current truth;
        what became of the file in the drop, for the run's message."""
        try:
            archived = self.drop.archive(table, stamp)
            self.current_dir.mkdir(parents=True, exist_ok=True)
            os.replace(self.pending_dir / f"{table}.csv", self.current_dir / f"{table}.csv")
        finally:
            self._unlock(table)
        if archived is None:
            return (f"not archived: {table}.csv changed after it was read (still being written?); it stays in "
                    "the drop and counts once its uploader marks it complete again")
        return f"archived as {archived}"

    def read(self, table: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        """The pending upload's rows, else the last accepted upload's (``since`` does not apply:
        an upload is read whole)."""
        for folder in (self.pending_dir, self.current_dir):
            if (folder / f"{table}.csv").is_file():
                return CsvErpSource(folder).read(table)
        raise ConfigError(f"no upload of {table}.csv has reached procore-sync yet ({self.describe()})")

    def close(self) -> None:
        self.drop.close()

    def _lock(self, table: str) -> bool:
        if table in self._held:
            return True
        self.staging.mkdir(parents=True, exist_ok=True)
        handle = (self.staging / f"{table}.lock").open("a")
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._held[table] = handle
        return True

    def _unlock(self, table: str) -> None:
        handle = self._held.pop(table, None)
        if handle is not None:
            handle.close()  # closing the file releases the lock


class SourceSet:
    """Every table's source: ``of(table)``; reading through the set reads the table's source."""

    def __init__(self, default: ErpSource, by_table: Mapping[str, ErpSource] | None = None) -> None:
        self.default, self.by_table = default, dict(by_table or {})

    def of(self, table: str) -> ErpSource:
        return self.by_table.get(table, self.default)

    def read(self, table: str, *, since: datetime | None = None) -> Iterator[SourceRow]:
        return self.of(table).read(table, since=since)

    def read_keys(self, table: str, key_field: str, keys: Collection[str]) -> list[SourceRow]:
        return rows_with_keys(self.of(table), table, key_field, keys)

    def key_values(self, table: str, key_field: str) -> set[str]:
        return key_values(self.of(table), table, key_field)

    def describe(self) -> str:
        named = "; ".join(f"{table}: {source.describe()}" for table, source in sorted(self.by_table.items()))
        return self.default.describe() + (f"; {named}" if named else "")


def close_sources(source: ErpSource) -> None:
    """Close what the sources hold open (an SFTP connection, an HTTP session); they reopen on use."""
    for each in [source.default, *source.by_table.values()] if isinstance(source, SourceSet) else [source]:
        close = getattr(each, "close", None)
        if close is not None:
            close()


def source_of(source: ErpSource, table: str) -> ErpSource:
    """The source that serves ``table``: itself, unless it is a ``SourceSet``."""
    return source.of(table) if isinstance(source, SourceSet) else source


def build_source(config: SourceConfig, *, erp_path: Path, staging: Path) -> ErpSource:
    if isinstance(config, DuckDbSourceConfig):
        return DuckDbErpSource(config.path or erp_path, tables=config.tables)
    if isinstance(config, QuerySourceConfig):
        return QueryErpSource(config)
    if isinstance(config, ApiSourceConfig):
        return ApiErpSource(config)
    drop: Drop = SftpDrop(config) if isinstance(config, SftpTemplatesConfig) else FolderDrop(config)
    return UploadSource(drop, staging, replace=config.replace, max_deactivate_share=config.max_deactivate_share)


def build_sources(settings: Settings) -> SourceSet:
    """The settings' sources; tables they do not name come from the ERP's DuckDB file."""
    made = {table: build_source(config, erp_path=settings.erp_path, staging=settings.uploads_dir)
            for table, config in settings.sources.items()}
    default = made.pop(DEFAULT, None) or DuckDbErpSource(settings.erp_path)
    return SourceSet(default, made)
